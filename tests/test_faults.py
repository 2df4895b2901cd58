"""Fault injection on `copy`: one transient fault on the first attempt of every request of a job (on
the source and on the destination) leaves the job successful with the right digests; a stalled
source is abandoned within --read-idle-timeout; what is not transient fails at once.

Real parts: docker-registry processes, the CLI, and support.faultproxy.FaultProxy in front of each
registry."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

from faultcheck import cache_is_sound, transient_faults, dir_holds, registry_holds, registry_lacks
from helpers import assert_one_line_error, fastsync, ok
from support import images
from support.faultproxy import Fault, FaultProxy
from support.registry import Registry

IMAGE = images.make_image(901, layers=2, layer_size=300_000)
REPO, TAG = "faults/app", "v1"

TRANSIENT = transient_faults()


@pytest.fixture(scope="module")
def source() -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = Registry().start()
    try:
        reg.push_image(IMAGE, REPO, TAG)
        yield reg
    finally:
        reg.cleanup()


def fast(name: str = "") -> tuple[str, ...]:
    """Retries, and an idle timeout short enough for a stall to cost seconds (an unanswered upload
    waits 10x as long)."""
    return ("--retry-times", "3", "--read-idle-timeout", "0.5" if name == "stall" else "2")


def copy(src: FaultProxy, dest: str, *extra: str, name: str = "") -> "object":
    return fastsync("copy", "-q", *fast(name), "--src-tls-verify=false", "--dest-tls-verify=false", *extra,
                    f"docker://{src.host}/{REPO}:{TAG}", dest)


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_a_fault_on_the_first_attempt_of_every_request_is_survived(name: str, src_proxy: FaultProxy,
                                                                   dst_proxy: FaultProxy,
                                                                   fresh_registry: Registry) -> None:
    """docker -> docker: every source and destination request (ping, manifest GET/HEAD/PUT, blob
    HEAD/GET, upload POST/PUT, mounts) fails once."""
    src_proxy.add(TRANSIENT[name])
    dst_proxy.add(TRANSIENT[name])
    ok(copy(src_proxy, f"docker://{dst_proxy.host}/{REPO}:{TAG}", name=name))
    registry_holds(fresh_registry, REPO, TAG, IMAGE)
    kinds = {k for k, _, _ in src_proxy.hits + dst_proxy.hits}
    assert kinds == {TRANSIENT[name].kind}
    methods = {m for _, m, _ in dst_proxy.hits}
    assert "PUT" in methods or name == "corrupt"        # uploads and the manifest PUT were hit too


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_a_fault_on_every_first_attempt_into_dir_with_a_cache(name: str, src_proxy: FaultProxy,
                                                             tmp_path: Path) -> None:
    src_proxy.add(TRANSIENT[name])
    out = tmp_path / "out"
    ok(fastsync("sync", "-q", *fast(name), "--cache", str(tmp_path / "cache"), "--src", "docker", "--dest", "dir",
                "--src-tls-verify=false", f"{src_proxy.host}/{REPO}:{TAG}", str(out)))
    dir_holds(out / f"app:{TAG}", IMAGE)
    assert cache_is_sound(tmp_path / "cache") == len(IMAGE.all_blobs())
    assert src_proxy.hits


@pytest.mark.parametrize("kind", ["corrupt", "truncate"])
def test_a_layer_damaged_on_the_way_is_fetched_again_when_recompressing(kind: str, src_proxy: FaultProxy,
                                                                        tmp_path: Path) -> None:
    """--dest-compress-format decompresses as it reads: a flipped byte breaks the gzip stream before the
    digest is known; still damage on the way, so fetched again."""
    src_proxy.add(Fault(kind, "blob-get"))
    ok(fastsync("copy", "-q", *fast(), "--dest-compress-format", "zstd", "--src-tls-verify=false",
                f"docker://{src_proxy.host}/{REPO}:{TAG}", f"oci:{tmp_path / 'out'}:v1"))
    assert len({p for _, _, p in src_proxy.hits}) == len(IMAGE.all_blobs())
    layers = [p for m, p, s in src_proxy.requests if "/blobs/" in p and s == 200]
    assert len(layers) >= len(IMAGE.all_blobs())


def test_a_stalled_source_is_abandoned_within_the_idle_timeout(src_proxy: FaultProxy, tmp_path: Path) -> None:
    src_proxy.add(Fault("stall", "blob-get", stall=60))
    t0 = time.monotonic()
    ok(fastsync("copy", "-q", "--read-idle-timeout", "1", "--src-tls-verify=false",
                f"docker://{src_proxy.host}/{REPO}:{TAG}", f"dir:{tmp_path / 'out'}"))
    took = time.monotonic() - t0
    dir_holds(tmp_path / "out", IMAGE)
    assert len(src_proxy.hits) == len(IMAGE.all_blobs())
    assert took < 15, took                 # each stalled body given up after ~1 s, not 300 s


def test_an_unanswered_upload_is_abandoned_and_the_blob_sent_again(src_proxy: FaultProxy, dst_proxy: FaultProxy,
                                                                   fresh_registry: Registry) -> None:
    dst_proxy.add(Fault("stall", "upload-put", stall=60))
    t0 = time.monotonic()
    ok(copy(src_proxy, f"docker://{dst_proxy.host}/{REPO}:{TAG}", "--read-idle-timeout", "0.5"))
    assert time.monotonic() - t0 < 20                   # 10 x 0.5 s for the answer, then again
    registry_holds(fresh_registry, REPO, TAG, IMAGE)
    assert len(dst_proxy.hits) == len(IMAGE.all_blobs())


def test_a_slow_but_live_source_is_not_abandoned(src_proxy: FaultProxy, tmp_path: Path) -> None:
    """300 kB at 200 kB/s in pieces every 50 ms: slower than the whole idle timeout, never idle."""
    src_proxy.add(Fault("slow", "blob-get", times=-1, rate=200_000))
    ok(fastsync("copy", "-q", "--retry-times", "0", "--read-idle-timeout", "1", "--src-tls-verify=false",
                f"docker://{src_proxy.host}/{REPO}:{TAG}", f"dir:{tmp_path / 'out'}"))
    dir_holds(tmp_path / "out", IMAGE)
    gets = [p for m, p, _ in src_proxy.requests if m == "GET" and "/blobs/" in p]
    assert len(gets) == len(IMAGE.all_blobs())       # no retry


def test_a_stalled_manifest_is_retried(src_proxy: FaultProxy, tmp_path: Path) -> None:
    src_proxy.add(Fault("stall", "manifest-get", stall=60))
    ok(fastsync("copy", "-q", "--read-idle-timeout", "1", "--src-tls-verify=false",
                f"docker://{src_proxy.host}/{REPO}:{TAG}", f"dir:{tmp_path / 'out'}"))
    dir_holds(tmp_path / "out", IMAGE)


def test_retry_after_is_honoured_on_a_manifest_put(src_proxy: FaultProxy, dst_proxy: FaultProxy,
                                                   fresh_registry: Registry) -> None:
    dst_proxy.add(Fault("status", "manifest-put", status=429, retry_after="2"))
    t0 = time.monotonic()
    ok(copy(src_proxy, f"docker://{dst_proxy.host}/{REPO}:{TAG}"))
    assert time.monotonic() - t0 >= 2
    puts = [(s, p) for m, p, s in dst_proxy.requests if m == "PUT" and "/manifests/" in p]
    assert [s for s, _ in puts] == [429, 201]
    registry_holds(fresh_registry, REPO, TAG, IMAGE)


def test_a_persistent_corrupt_layer_fails_cleanly_naming_it(src_proxy: FaultProxy, dst_proxy: FaultProxy,
                                                             fresh_registry: Registry) -> None:
    layer = IMAGE.layers[1].digest
    src_proxy.add(Fault("corrupt", "blob-get", times=-1, digest=layer))
    proc = fastsync("copy", "-q", "--retry-times", "2", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{src_proxy.host}/{REPO}:{TAG}", f"docker://{dst_proxy.host}/{REPO}:{TAG}")
    assert_one_line_error(proc, "digest mismatch", layer, code=1)
    assert len(src_proxy.hits) == 3                    # the first attempt and two retries, from the start
    assert not any("Range" in p for _, _, p in src_proxy.hits)
    registry_lacks(fresh_registry, REPO, TAG)          # no tag pointing at missing content


@pytest.mark.parametrize("status, fragment", [(400, "injected fault"), (403, "denied"), (404, "")])
def test_what_is_not_transient_fails_at_once(status: int, fragment: str, src_proxy: FaultProxy,
                                             dst_proxy: FaultProxy, fresh_registry: Registry) -> None:
    dst_proxy.add(Fault("status", "manifest-put", times=-1, status=status))
    proc = copy(src_proxy, f"docker://{dst_proxy.host}/{REPO}:{TAG}")
    assert_one_line_error(proc, "writing manifest", fragment, code=1)
    puts = [p for m, p, _ in dst_proxy.requests if m == "PUT" and "/manifests/" in p]
    assert len(puts) == 1
    registry_lacks(fresh_registry, REPO, TAG)


def test_a_persistent_5xx_gives_up_after_retry_times(src_proxy: FaultProxy, dst_proxy: FaultProxy) -> None:
    dst_proxy.add(Fault("status", "manifest-put", times=-1, status=503))
    proc = fastsync("copy", "-q", "--retry-times", "2", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{src_proxy.host}/{REPO}:{TAG}", f"docker://{dst_proxy.host}/{REPO}:{TAG}")
    assert_one_line_error(proc, "writing manifest", "HTTP 503", code=1)
    puts = [p for m, p, _ in dst_proxy.requests if m == "PUT" and "/manifests/" in p]
    assert len(puts) == 3                              # tried once, retried twice: not 3 x 3


def test_the_retry_deadline_bounds_the_retries(src_proxy: FaultProxy, dst_proxy: FaultProxy) -> None:
    dst_proxy.add(Fault("status", "manifest-put", times=-1, status=429, retry_after="3"))
    t0 = time.monotonic()
    proc = fastsync("copy", "-q", "--retry-times", "10", "--retry-deadline", "5", "--src-tls-verify=false",
                    "--dest-tls-verify=false", f"docker://{src_proxy.host}/{REPO}:{TAG}",
                    f"docker://{dst_proxy.host}/{REPO}:{TAG}")
    assert_one_line_error(proc, "writing manifest", "HTTP 429", code=1)
    assert time.monotonic() - t0 < 20
    puts = [p for m, p, _ in dst_proxy.requests if m == "PUT" and "/manifests/" in p]
    assert len(puts) == 2                              # a retry at 3 s; the next would start after 6 s


def test_inspect_and_list_tags_survive_first_attempt_faults(src_proxy: FaultProxy) -> None:
    src_proxy.add(Fault("reset", "any"))
    out = ok(fastsync("inspect", "--retry-times", "2", "--tls-verify=false", f"docker://{src_proxy.host}/{REPO}:{TAG}"))
    assert IMAGE.digest.encode() in out.stdout
    ok(fastsync("list-tags", "--retry-times", "2", "--tls-verify=false", f"docker://{src_proxy.host}/{REPO}"))
    assert {p.split("?")[0] for _, _, p in src_proxy.hits} >= {f"/v2/{REPO}/tags/list", f"/v2/{REPO}/manifests/{TAG}"}
