"""`fastsync bench REGISTRY` against real docker-registry processes (plain and htpasswd): a row per
operation, size and concurrency level, generated blobs verified on the way back, no manifest or tag
left behind, refused deletes said, and one-line errors for a bad registry, bad creds, bad flags."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import assert_one_line_error, fastsync, ok
from support.registry import Registry, free_port

TINY = ("--blob-size", "3000,70000", "--concurrency", "1,3", "--count", "3")


def bench(reg: Registry, *extra: str) -> "object":
    creds = ("--creds", reg.creds) if reg.creds else ()
    return fastsync("bench", "--tls-verify=false", *creds, *TINY, *extra, reg.host)


def manifests_left(reg: Registry, repo: str) -> list[Path]:
    """The manifest revisions distribution still links in `repo` (deleted ones lose their link)."""
    revisions = reg.root / "docker/registry/v2/repositories" / repo / "_manifests/revisions"
    return sorted(revisions.rglob("link")) if revisions.exists() else []


def blobs_linked(reg: Registry, repo: str) -> int:
    layers = reg.root / "docker/registry/v2/repositories" / repo / "_layers"
    return len(list(layers.rglob("link")))


def tags_of(reg: Registry, repo: str) -> list:
    resp = reg.request("GET", f"/v2/{repo}/tags/list")
    return (json.loads(resp.body).get("tags") or []) if resp.status == 200 else []


def test_bench_prints_a_row_per_operation_size_and_level_and_leaves_no_manifest(registry: Registry,
                                                                                 tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = ok(bench(registry, "--repository", "bench/plain", "--json", str(out)))
    lines = proc.stdout.decode().splitlines()
    assert lines[0].startswith(f"fastsync bench {registry.host}, repository bench/plain")
    assert lines[1].split()[:4] == ["OPERATION", "SIZE", "CONC", "COUNT"]
    rows = [ln.split() for ln in lines[2:-1]]
    assert {r[0] for r in rows} == {"push", "pull", "manifest-put", "manifest-get"}
    doc = json.loads(out.read_bytes())
    keys = {(r["op"], r["size"], r["concurrency"]) for r in doc["rows"]}
    assert {(op, size, c) for op in ("push", "pull") for size in (3000, 70000) for c in (1, 3)} <= keys
    assert {(op, c) for op in ("manifest-put", "manifest-get") for c in (1, 3)} == \
        {(op, c) for op, _, c in keys if op.startswith("manifest")}
    assert len(doc["rows"]) == len(rows) == 12
    for r in doc["rows"]:
        assert r["count"] == 3 and r["seconds"] > 0 and r["latency_ms"]["count"] == 3
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        if r["op"] in ("push", "pull"):
            assert r["mb_per_s"] == pytest.approx(r["size"] * 3 / 1e6 / r["seconds"], rel=0.01)
    # what is left: no tag ever, no manifest linked; the blobs (until GC), as the last line says
    cleanup = doc["cleanup"]
    left = cleanup.pop("blob_bytes_left_for_gc")
    assert cleanup == {"manifests_deleted": 6, "manifests_left": 0, "deletes_refused": None, "blobs_left_for_gc": 13}
    assert 0 < left - 2 * 3 * (3000 + 70000) < 400       # 12 blobs and the manifests' small config
    assert tags_of(registry, "bench/plain") == []
    assert manifests_left(registry, "bench/plain") == []
    assert blobs_linked(registry, "bench/plain") == 13
    assert re.fullmatch(r"cleanup: 6 manifests deleted; 13 blobs \(42\d\.\d KiB\) stay in bench/plain until the "
                        r"registry's garbage collection runs", lines[-1]), lines[-1]


def test_bench_format_json_prints_the_document_only(registry: Registry) -> None:
    proc = ok(bench(registry, "--format", "json"))
    doc = json.loads(proc.stdout)
    assert doc["registry"] == registry.host and doc["repository"].startswith("fastsync-bench-")
    assert len(doc["rows"]) == 12 and doc["cleanup"]["manifests_left"] == 0
    assert manifests_left(registry, doc["repository"]) == []
    assert proc.stderr == b""


def test_bench_with_basic_auth(auth_registry: Registry) -> None:
    proc = ok(bench(auth_registry, "--format", "json"))
    doc = json.loads(proc.stdout)
    assert doc["cleanup"]["manifests_deleted"] == 6
    assert manifests_left(auth_registry, doc["repository"]) == []


def test_bench_says_when_the_registry_refuses_deletes(registry_factory) -> None:  # noqa: ANN001
    reg = registry_factory(extra_config={"storage": {"delete": {"enabled": False}}})
    proc = ok(bench(reg, "--repository", "bench/kept"))
    last = proc.stdout.decode().splitlines()[-1]
    assert last.startswith("cleanup: the registry refused to delete a manifest (")
    assert "(HTTP 405)" in last and "6 manifests and 13 blobs" in last
    assert len(manifests_left(reg, "bench/kept")) == 6
    assert tags_of(reg, "bench/kept") == []


def test_bench_fails_with_one_line_on_bad_creds(auth_registry: Registry) -> None:
    proc = fastsync("bench", "--tls-verify=false", "--creds", "fastsync:wrong", *TINY, auth_registry.host)
    assert_one_line_error(proc, "unauthorized", code=1)


def test_bench_fails_with_one_line_on_an_unreachable_registry() -> None:
    proc = fastsync("bench", "--tls-verify=false", *TINY, f"127.0.0.1:{free_port()}")
    assert_one_line_error(proc, "pinging container registry", "connection refused", code=1)


@pytest.mark.parametrize("args,fragment", [
    (("--blob-size", "1MiB,lots"), "--blob-size"),
    (("--blob-size", "0"), "--blob-size"),
    (("--concurrency", "0"), "--concurrency"),
    (("--concurrency", "two"), "--concurrency"),
    (("--count", "0"), "--count"),
    (("--repository", "Bad:Name"), "--repository"),
])
def test_bench_refuses_bad_flags_with_one_line(args: tuple, fragment: str) -> None:
    assert_one_line_error(fastsync("bench", *args, "localhost:5000"), fragment, code=1)


@pytest.mark.parametrize("name", ["library/alpine", "docker://", "https://localhost:5000"])
def test_bench_refuses_what_is_not_a_registry_host(name: str) -> None:
    assert_one_line_error(fastsync("bench", name), "is not a registry host", code=1)


def test_generated_blobs_are_deterministic_unique_and_chunked() -> None:
    from fastsync.regbench import CHUNK, GeneratedBlob

    block = bytes(range(256)) * (CHUNK // 256)
    a = GeneratedBlob(block, b"a" * 24, CHUNK * 2 + 5).compute_digest()
    again = GeneratedBlob(block, b"a" * 24, CHUNK * 2 + 5).compute_digest()
    other = GeneratedBlob(block, b"b" * 24, CHUNK * 2 + 5).compute_digest()
    pieces = list(a.pieces())
    assert [len(p) for p in pieces] == [CHUNK, CHUNK, 5]
    assert pieces[0] != pieces[1]                        # each piece is numbered
    assert a.digest == again.digest != other.digest
    import hashlib
    assert a.digest.hex == hashlib.sha256(b"".join(pieces)).hexdigest()
