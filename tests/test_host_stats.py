"""Per-host figures: the `hosts` section of `sync --report`, `sync --stats` and `copy --stats`.

Real parts: docker-registry processes (plain and htpasswd), the CLI, and support.faultproxy.FaultProxy
in front of each registry, which records every request it answers: the figures must say what the
proxies saw (requests by method and status, body bytes, retries of injected faults)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from helpers import fastsync, ok
from support import images
from support.faultproxy import Fault, FaultProxy
from support.registry import Registry

IMAGE = images.make_image(1701, layers=3, layer_size=150_000)
REPO, TAG = "stats/app", "v1"
PLAIN = ("--src-tls-verify=false", "--dest-tls-verify=false")


@pytest.fixture(scope="module")
def source() -> Iterator[Registry]:
    with Registry() as reg:
        reg.start()
        reg.push_image(IMAGE, REPO, TAG)
        yield reg


def sync(src: FaultProxy, dst: FaultProxy, tmp_path: Path, *extra: str) -> tuple[dict, "object"]:
    """Sync the image with the figures on; attachments off, so that the only traffic is the image's
    (their probes' 404 answers would add bodies and manifest GETs)."""
    report = tmp_path / "report.json"
    proc = ok(fastsync("sync", "--no-attachments", "--src", "docker", "--dest", "docker", "--report", str(report),
                       "--cache",
                       str(tmp_path / "cache"), *PLAIN, *extra,
                       f"{src.host}/{REPO}:{TAG}", f"{dst.host}/mirror"))
    doc = json.loads(report.read_bytes())
    return {h["host"]: h for h in doc["hosts"]}, proc


def answered(host: dict) -> Counter:
    """(method, status) -> count of the requests that got an answer."""
    return Counter({(m, int(s)): n for m, by in host["requests_by_method"].items() for s, n in by.items()
                    if s != "error"})


def seen(proxy: FaultProxy) -> Counter:
    return Counter((m, s) for m, _, s in proxy.requests)


def blob_bytes() -> int:
    return sum(len(b) for b in IMAGE.all_blobs().values())


def test_the_report_counts_what_the_registries_saw(src_proxy: FaultProxy, dst_proxy: FaultProxy,
                                                   tmp_path: Path) -> None:
    hosts, _ = sync(src_proxy, dst_proxy, tmp_path)
    src, dst = hosts[src_proxy.host], hosts[dst_proxy.host]
    assert answered(src) == seen(src_proxy)
    assert answered(dst) == seen(dst_proxy)
    # the one request no proxy answered: the ping's https attempt on a plain-http port (--tls-verify=false)
    assert src["requests_by_method"]["GET"].get("error") == dst["requests_by_method"]["GET"].get("error") == 1
    assert src["requests"] == sum(seen(src_proxy).values()) + 1
    # bodies: every blob and the manifest went down from the source and up to the destination, once
    assert dst["bytes_sent"] == blob_bytes() + len(IMAGE.manifest)
    assert blob_bytes() + len(IMAGE.manifest) <= src["bytes_received"] <= blob_bytes() + len(IMAGE.manifest) + 64
    assert src["bytes_sent"] == 0
    for h in (src, dst):
        assert h["retries"] == 0
        assert h["connections_opened"] >= 1
        assert h["in_flight_peak"] >= 1
        assert h["seconds_active"] > 0
        assert h["ttfb_ms"]["count"] == sum(answered(h).values())
        assert 0 < h["ttfb_ms"]["p50"] <= h["ttfb_ms"]["p90"] <= h["ttfb_ms"]["p99"]
        assert isinstance(h["limit_final"], int) and h["limit_peak"] >= h["limit_final"] >= 1
    assert dst["mb_per_s_sent"] > 0 and src["mb_per_s_received"] > 0


def test_the_reports_other_keys_stay_as_they_were(src_proxy: FaultProxy, dst_proxy: FaultProxy,
                                                  tmp_path: Path) -> None:
    sync(src_proxy, dst_proxy, tmp_path)
    doc = json.loads((tmp_path / "report.json").read_bytes())
    assert set(doc) == {"started", "seconds", "images", "totals", "hosts"}
    assert doc["totals"]["copied"] == 1 and doc["totals"]["bytes_transferred"] == blob_bytes()


def test_retries_are_counted_against_the_host_that_failed(src_proxy: FaultProxy, dst_proxy: FaultProxy,
                                                          tmp_path: Path) -> None:
    """A 503 on the first GET of every blob (retried by the engine, whole blob) and of the manifest
    (retried by the registry client)."""
    src_proxy.add(Fault("status", "blob-get", status=503))
    src_proxy.add(Fault("status", "manifest-get", status=503))
    hosts, _ = sync(src_proxy, dst_proxy, tmp_path, "--retry-times", "2")
    src, dst = hosts[src_proxy.host], hosts[dst_proxy.host]
    faults = len(src_proxy.hits)
    assert faults == len(IMAGE.all_blobs()) + 1
    assert src["retries"] == faults
    assert src["requests_by_method"]["GET"]["503"] == faults
    assert dst["retries"] == 0
    assert answered(src) == seen(src_proxy)


def test_a_dropped_connection_is_a_request_without_answer_and_a_retry(src_proxy: FaultProxy,
                                                                      dst_proxy: FaultProxy,
                                                                      tmp_path: Path) -> None:
    dst_proxy.add(Fault("reset", "manifest-put"))
    hosts, _ = sync(src_proxy, dst_proxy, tmp_path, "--retry-times", "2")
    dst = hosts[dst_proxy.host]
    assert dst["retries"] == 1
    assert dst["requests_by_method"]["PUT"]["error"] == 1
    assert ("PUT", 0) in seen(dst_proxy)          # what the proxy dropped


def test_basic_auth_challenges_are_counted(auth_registry: Registry, src_proxy: FaultProxy,
                                           tmp_path: Path) -> None:
    with FaultProxy(auth_registry.url) as dst:
        hosts, _ = sync(src_proxy, dst, tmp_path, "--dest-creds", auth_registry.creds or "")
        assert answered(hosts[dst.host]) == seen(dst)
        assert seen(dst)[("GET", 401)] >= 1           # the ping's challenge


def test_sync_stats_prints_the_table_on_stderr(src_proxy: FaultProxy, dst_proxy: FaultProxy,
                                               tmp_path: Path) -> None:
    hosts, proc = sync(src_proxy, dst_proxy, tmp_path, "--stats")
    err = proc.stderr.decode()
    lines = err.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("HOST "))
    assert "TTFB p50/p90/p99 ms" in lines[head] and "RETRIES" in lines[head]
    rows = {ln.split()[0]: ln for ln in lines[head + 1:] if not ln.startswith(" ")}
    assert set(rows) == {src_proxy.host, dst_proxy.host}
    assert rows[dst_proxy.host].split()[1] == str(hosts[dst_proxy.host]["requests"])
    assert any(ln.startswith("  ") and "PUT 201 x" in ln for ln in lines[head + 1:])
    assert b"HOST" not in proc.stdout                     # stdout holds skopeo's copy report only
    assert b"Writing manifest to image destination" in proc.stdout


def test_copy_stats_prints_the_table(src_proxy: FaultProxy, tmp_path: Path) -> None:
    proc = ok(fastsync("copy", "--stats", "--src-tls-verify=false", f"docker://{src_proxy.host}/{REPO}:{TAG}",
                       f"dir:{tmp_path / 'out'}"))
    lines = proc.stderr.decode().splitlines()
    assert lines[0].startswith("HOST ") and lines[1].split()[0] == src_proxy.host
    assert int(lines[1].split()[1]) == sum(seen(src_proxy).values()) + 1
    assert lines[1].split()[-2] == "-"                   # no adaptive limit in a copy
    assert b"HOST" not in proc.stdout


def test_without_report_or_stats_nothing_is_printed(src_proxy: FaultProxy, tmp_path: Path) -> None:
    proc = ok(fastsync("copy", "-q", "--src-tls-verify=false", f"docker://{src_proxy.host}/{REPO}:{TAG}",
                       f"dir:{tmp_path / 'out'}"))
    assert proc.stderr == b"" and proc.stdout == b""


def test_percentiles_are_nearest_rank() -> None:
    from fastsync.registry.stats import Latency, percentile

    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50.0, 90.0, 99.0)
    assert percentile([3.0], 99) == 3.0
    lat = Latency.of([0.002, 0.001, 0.004])
    assert lat is not None and lat.to_json() == {"count": 3, "p50": 2.0, "p90": 4.0, "p99": 4.0}
    assert Latency.of([]) is None


def test_a_failed_copy_prints_its_figures_before_the_error_line(src_proxy: FaultProxy, tmp_path: Path) -> None:
    proc = fastsync("copy", "--stats", "--src-tls-verify=false", f"docker://{src_proxy.host}/{REPO}:missing",
                    f"dir:{tmp_path / 'out'}")
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 1
    assert lines[0].startswith("HOST ") and lines[1].split()[0] == src_proxy.host
    assert "GET" in lines[2] and "404 x1" in lines[2]
    assert lines[-1].startswith("Error: ") and "manifest unknown" in lines[-1]
    assert len(lines) == 4 and "Traceback" not in proc.stderr.decode()
