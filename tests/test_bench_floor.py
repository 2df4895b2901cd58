"""bench/floor.py, the benchmark's raw mover: it must leave a complete, byte-exact destination
(the harness only reports a number for a verified copy), and its no-op floor must tell an
unchanged destination from one that is not."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import images
from support.registry import Registry

ROOT = Path(__file__).resolve().parent.parent


def _corpus() -> dict[str, images.SampleImage]:
    """Five images sharing a base layer (mounts across repositories), OCI and Docker, an index."""
    amd = images.make_image(31, layers=2, fmt="oci", base_seed=30, base_layers=1)
    arm = images.make_image(32, layers=2, fmt="oci", arch="arm64", base_seed=30, base_layers=1)
    return {
        "lib/app-a:1": images.make_image(21, layers=3, base_seed=30, base_layers=1, layer_size=200_000),
        "lib/app-b:1": images.make_image(22, layers=2, fmt="oci", base_seed=30, base_layers=1),
        "lib/app-b:2": images.make_image(23, layers=2, fmt="oci", base_seed=30, base_layers=1),
        "other/app-c:v1": images.make_image(24, layers=1),
        "lib/multi:1": images.make_index([amd, arm]),
    }


@pytest.fixture(scope="module")
def corpus() -> dict[str, images.SampleImage]:
    return _corpus()


@pytest.fixture
def source(registry_factory, corpus, tmp_path: Path) -> tuple[Registry, Path]:
    src = registry_factory()
    repos: dict[str, list[str]] = {}
    for ref, image in corpus.items():
        repo, tag = ref.rsplit(":", 1)
        src.push_image(image, repo, tag)
        repos.setdefault(repo, []).append(tag)
    yaml = tmp_path / "sync.yaml"
    yaml.write_text(f"{src.host}:\n  images:\n" + "".join(f"    {r}: [{', '.join(t)}]\n" for r, t in repos.items())
                    + "  tls-verify: false\n")
    return src, yaml


def floor(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    return subprocess.run([sys.executable, "-m", "bench.floor", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_floor_copies_every_image_byte_exact_into_a_fresh_registry(source, corpus, registry_factory,
                                                                   tmp_path: Path) -> None:
    _src, yaml = source
    dest = registry_factory()
    timings = tmp_path / "t.json"
    proc = floor("copy", str(yaml), f"docker://{dest.host}/mirror", "--timings", str(timings))
    assert proc.returncode == 0, proc.stderr
    for ref, image in corpus.items():
        name, tag = ref.rsplit("/", 1)[-1].rsplit(":", 1)
        r = dest.request("GET", f"/v2/mirror/{name}/manifests/{tag}", headers={"Accept": image.media_type})
        assert r.status == 200 and r.body == image.manifest, ref
        assert r.headers["Docker-Content-Digest"] == image.digest
        for digest, data in image.all_blobs().items():   # every blob, in this repository (mounted or uploaded)
            b = dest.request("GET", f"/v2/mirror/{name}/blobs/{digest}")
            assert b.status == 200 and hashlib.sha256(b.body).hexdigest() == digest.split(":")[1], (ref, digest)
    assert '"work"' in timings.read_text()

    # the HEAD-only no-op floor: unchanged -> 0; a destination missing the images -> 1, naming them
    assert floor("noop", str(yaml), f"docker://{dest.host}/mirror").returncode == 0
    empty = registry_factory()
    proc = floor("noop", str(yaml), f"docker://{empty.host}/mirror")
    assert proc.returncode == 1 and "app-c:v1" in proc.stderr


def _check_dir_tree(out: Path, corpus: dict[str, images.SampleImage]) -> None:
    inodes: dict[str, set[int]] = {}
    for ref, image in corpus.items():
        d = out / ref.rsplit("/", 1)[-1]
        assert (d / "manifest.json").read_bytes() == image.manifest
        for digest, data in image.all_blobs().items():
            path = d / digest.split(":")[1]
            assert path.read_bytes() == data
            inodes.setdefault(digest, set()).add(path.stat().st_ino)
    assert all(len(v) == 1 for v in inodes.values())   # one file per blob, hardlinked everywhere


def test_floor_to_dir_links_each_blob_once_and_reuses_a_warm_pool(source, corpus, tmp_path: Path) -> None:
    _src, yaml = source
    assert floor("copy", str(yaml), f"dir:{tmp_path / 'nopool'}").returncode == 0
    _check_dir_tree(tmp_path / "nopool", corpus)
    pool, out = tmp_path / "pool", tmp_path / "out"
    assert floor("copy", str(yaml), f"dir:{out}", "--pool", str(pool)).returncode == 0
    _check_dir_tree(out, corpus)
    # warm: a new tree from the pool; the pool's files are linked, not fetched again
    before = {p.name: p.stat().st_ino for p in pool.iterdir()}
    out2 = tmp_path / "out2"
    assert floor("copy", str(yaml), f"dir:{out2}", "--pool", str(pool)).returncode == 0
    assert {p.name: p.stat().st_ino for p in pool.iterdir()} == before
    some = next(iter(corpus["lib/app-a:1"].all_blobs()))
    assert (out2 / "app-a:1" / some.split(":")[1]).stat().st_ino == before[some.split(":")[1]]


def test_floor_failure_is_one_line_and_exit_1(tmp_path: Path, registry_factory) -> None:
    src = registry_factory()
    yaml = tmp_path / "sync.yaml"
    yaml.write_text(f"{src.host}:\n  images:\n    lib/absent: [x]\n")
    proc = floor("copy", str(yaml), f"docker://{src.host}/mirror")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("floor: ") and "HTTP 404" in proc.stderr and "Traceback" not in proc.stderr


def test_floor_to_registry_storage_is_served_by_docker_registry(source, corpus, tmp_path: Path) -> None:
    _src, yaml = source
    root, pool = tmp_path / "root", tmp_path / "pool"
    assert floor("copy", str(yaml), f"registry-storage:{root}", "--pool", str(pool)).returncode == 0
    with Registry(root=root) as served:
        for ref, image in corpus.items():
            repo, tag = ref.rsplit(":", 1)
            r = served.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": image.media_type})
            assert r.status == 200 and r.body == image.manifest, ref
            for digest in image.all_blobs():
                assert served.request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200, (ref, digest)
    some = next(iter(corpus["lib/app-a:1"].all_blobs()))[7:]
    assert (root / "docker/registry/v2/blobs/sha256" / some[:2] / some / "data").stat().st_ino == \
        (pool / some).stat().st_ino


def test_startup_first_request_is_timed_from_spawn_and_the_process_is_killed() -> None:
    from bench import startup

    listener = startup.FirstBytes()
    try:
        code = (f"import socket, time; s = socket.create_connection(('127.0.0.1', {listener.port})); "
                "s.sendall(b'GET /v2/ HTTP/1.1\\r\\n\\r\\n'); time.sleep(30)")
        took = startup._first_request([sys.executable, "-c", code], dict(os.environ), listener, timeout=20)
        assert 0 < took < 10   # the 30 s sleep never ran out: the process was killed at the first bytes
    finally:
        listener.close()


def test_cpu_of_a_tracked_registry_is_read_from_proc(registry_factory) -> None:
    import contextlib

    from bench import cputime

    reg = registry_factory()
    with contextlib.ExitStack() as stack:
        cputime.track(reg, stack)
        before, _ = cputime.side_cpu()
        for _ in range(50):
            reg.request("GET", "/v2/")
        after, _ = cputime.side_cpu()
        assert reg.pid in before and cputime.cpu_delta(before, after) >= 0
    assert reg.pid not in cputime.side_cpu()[0]   # untracked when its stack closes
