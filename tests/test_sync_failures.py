"""`sync`/`copy` into `dir:` when things go wrong, the directories' modes, and the report's accounting.

Real parts only: docker-registry processes, the TamperProxy in front of them, the CLI, skopeo.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from support import images
from support.proxy import TamperProxy
from support.registry import Registry
from fastsync.transports.localfs import UMASK

from helpers import ROOT, assert_dir_holds, assert_one_line_error, fastsync, ok

RUNS = 6


def entries(root: Path) -> list[str]:
    """Every path below root (hidden ones included), relative."""
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs)


def staging_leftovers(root: Path) -> list[str]:
    return [e for e in entries(root) if ".tmp-" in e or ".old-" in e]


@pytest.fixture(scope="module")
def two_images() -> Iterator[tuple[Registry, images.SampleImage, images.SampleImage]]:
    """A registry holding t/app:bad and t/app:good, three ~1 MB layers each (the bad one's config is
    what a test corrupts in transit, so its layers are still moving when it fails)."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = Registry().start()
    bad = images.make_image(77, layers=3, layer_size=1_000_000)
    good = images.make_image(78, layers=3, layer_size=2_000_000)
    try:
        reg.push_image(bad, "t/app", "bad")
        reg.push_image(good, "t/app", "good")
        yield reg, bad, good
    finally:
        reg.cleanup()


# ---- 1. a failed image leaves nothing behind -------------------------------------------------------

def test_failed_dir_sync_leaves_no_staging_directory(seeded_registry: Registry, tmp_path: Path) -> None:
    """The reviewer's reproduction: one corrupt layer, --retry-times 0, with the cache (the good blobs
    are hardlinked from the store into the staging directory while the image is being aborted)."""
    layer = images.sample_set()["v2s2"].layers[1].digest
    with TamperProxy(seeded_registry.url) as proxy:
        proxy.corrupt_blobs(layer)
        for run in range(RUNS):
            out, cache = tmp_path / f"out{run}", tmp_path / f"cache{run}"
            proc = fastsync("sync", "-q", "--cache", str(cache), "--retry-times", "0", "--src", "docker",
                            "--dest", "dir", "--src-tls-verify=false", f"{proxy.host}/samples/v2s2", str(out))
            assert_one_line_error(proc, "Error: copying ref", "digest mismatch", layer, code=1)
            assert not out.exists() or entries(out) == [], (run, entries(out))


def test_failed_image_is_aborted_while_others_keep_going(two_images, tmp_path: Path) -> None:
    """With --keep-going the job (and its loop) outlives the failed image, so its layers always finish
    after the failure: none of them may land in (or recreate) the aborted staging directory."""
    reg, bad, good = two_images
    with TamperProxy(reg.url) as proxy:
        proxy.corrupt_blobs(bad.config.digest)
        for run in range(RUNS):
            out = tmp_path / f"out{run}"
            proc = fastsync("sync", "-q", "--keep-going", "--cache", str(tmp_path / f"cache{run}"),
                            "--retry-times", "0", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                            f"{proxy.host}/t/app", str(out), "--report", str(tmp_path / f"r{run}.json"))
            assert_one_line_error(proc, "failed for 1 of 2 images", code=1)
            assert staging_leftovers(out) == [], (run, staging_leftovers(out))
            assert not (out / "app:bad").exists()                  # no half image
            assert_dir_holds(out / "app:good", good)
            assert sorted(os.listdir(out)) == ["app:good"]
            report = json.loads((tmp_path / f"r{run}.json").read_bytes())
            assert sorted(i["status"] for i in report["images"]) == ["copied", "failed"]


def test_failed_copy_to_dir_leaves_nothing(two_images, tmp_path: Path) -> None:
    reg, bad, _ = two_images
    with TamperProxy(reg.url) as proxy:
        proxy.corrupt_blobs(bad.config.digest)
        for run in range(3):
            proc = fastsync("copy", "-q", "--retry-times", "0", "--src-tls-verify=false",
                            f"docker://{proxy.host}/t/app:bad", f"dir:{tmp_path / 'out' / 'x'}")
            assert_one_line_error(proc, "digest mismatch", code=1)
            assert entries(tmp_path / "out") == []


def test_a_later_success_sweeps_stale_staging_directories_of_that_image_only(two_images, tmp_path: Path) -> None:
    reg, _, good = two_images
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".app:good.tmp-k1ll3d_0"            # what a killed run leaves (mkdtemp's 8-char suffix)
    stale.mkdir()
    (stale / "version").write_text("Directory Transport Version: 1.1\n")
    (stale / "deadbeef").write_bytes(b"half a blob")
    live = out / ".app:good.tmp-l1vel0ck"             # another process is writing this one right now
    live.mkdir()
    others = [out / ".app:goodish.tmp-abcdefgh", out / ".app:good.tmp-x.tmp-abcdefgh", out / ".other.tmp-abcdefgh"]
    for p in others:
        p.mkdir()
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        ok(fastsync("sync", "-q", "--cache", str(tmp_path / "cache"), "--src", "docker", "--dest", "dir",
                    "--src-tls-verify=false", f"{reg.host}/t/app:good", str(out)))
    finally:
        os.close(fd)
    assert not stale.exists()
    assert live.is_dir() and all(p.is_dir() for p in others)
    assert_dir_holds(out / "app:good", good)


def test_every_image_of_a_dir_sync_is_complete(seeded_registry: Registry, tmp_path: Path) -> None:
    """Many dir: destinations in one job: each one gets every blob (none is mistaken for another)."""
    sample = images.sample_set()
    names = ["v2s2", "oci", "shared", "empty", "list", "multiarch"]
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"samples/{n}:latest\n" for n in names))
    for run in range(2):
        out = tmp_path / f"out{run}"
        ok(fastsync("sync", "-q", "--cache", str(tmp_path / "cache"), "--src", "list", "--dest", "dir",
                    "--src-registry", seeded_registry.host, "--src-tls-verify=false", str(lst), str(out)))
        for n in names:
            image = sample[n]
            if image.children:
                raw = json.loads((out / "samples" / f"{n}:latest" / "manifest.json").read_bytes())
                assert raw["schemaVersion"] == 2
                continue
            assert_dir_holds(out / "samples" / f"{n}:latest", image)
        assert staging_leftovers(out) == []


# ---- 2. directory modes like skopeo's ----------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _with_umask(mask: int, argv: list[str], env: dict) -> subprocess.CompletedProcess:
    def pre() -> None:
        os.umask(mask)
    return subprocess.run(argv, capture_output=True, env=env, preexec_fn=pre, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_dir_modes_match_skopeo(mask: int, skopeo: str, seeded_registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_text("{}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    src = f"docker://{seeded_registry.host}/samples/v2s2:latest"
    theirs = _with_umask(mask, [skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", src,
                                f"dir:{tmp_path / 'skopeo'}"], env)
    assert theirs.returncode == 0, theirs.stderr
    ours = _with_umask(mask, [sys.executable, "-m", "fastsync", "copy", "--src-tls-verify=false", src,
                              f"dir:{tmp_path / 'copy'}"], env)
    assert ours.returncode == 0, ours.stderr
    synced = _with_umask(mask, [sys.executable, "-m", "fastsync", "sync", "--cache", str(tmp_path / "cache"),
                                "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                                f"{seeded_registry.host}/samples/v2s2:latest", str(tmp_path / "sync")], env)
    assert synced.returncode == 0, synced.stderr
    want = _mode(tmp_path / "skopeo")
    assert want == 0o755 & ~mask          # skopeo: MkdirAll(path, 0755), so the umask applies
    assert _mode(tmp_path / "copy") == want
    assert _mode(tmp_path / "sync" / "v2s2:latest") == want
    # replacing an existing image keeps the same mode
    again = _with_umask(mask, [sys.executable, "-m", "fastsync", "copy", "--src-tls-verify=false", src,
                               f"dir:{tmp_path / 'copy'}"], env)
    assert again.returncode == 0, again.stderr
    assert _mode(tmp_path / "copy") == want


# ---- 3. the report: transferred vs from the cache -------------------------------------------------

def _report(path: Path) -> dict:
    return json.loads(path.read_bytes())


def test_report_counts_cache_hits_as_from_cache(seeded_registry: Registry, tmp_path: Path) -> None:
    image = images.sample_set()["v2s2"]
    blob_bytes = sum(len(b) for b in image.all_blobs().values())
    args = ["sync", "--cache", str(tmp_path / "cache"), "--src", "docker", "--dest", "dir",
            "--src-tls-verify=false", f"{seeded_registry.host}/samples/v2s2:latest"]

    ok(fastsync(*args, str(tmp_path / "cold"), "--report", str(tmp_path / "cold.json")))
    cold = _report(tmp_path / "cold.json")
    [img] = cold["images"]
    assert img["status"] == "copied"
    assert img["bytes_transferred"] == blob_bytes and img["blobs_transferred"] == 3
    assert img["bytes_from_cache"] == 0 and img["blobs_from_cache"] == 0
    assert cold["totals"]["bytes_transferred"] == blob_bytes and cold["totals"]["bytes_from_cache"] == 0

    proc = ok(fastsync(*args, str(tmp_path / "warm"), "--report", str(tmp_path / "warm.json")))
    warm = _report(tmp_path / "warm.json")
    [img] = warm["images"]
    assert img["status"] == "copied"
    assert img["bytes_transferred"] == 0 and img["blobs_transferred"] == 0
    assert img["bytes_from_cache"] == blob_bytes and img["blobs_from_cache"] == 3
    assert img["bytes_skipped"] == 0 and img["blobs_skipped"] == 0
    assert warm["totals"]["bytes_transferred"] == 0 and warm["totals"]["bytes_from_cache"] == blob_bytes
    assert warm["totals"]["blobs_transferred"] == 0 and warm["totals"]["blobs_from_cache"] == 3
    assert 'msg="Copying image ref 1/1"' in proc.stderr.decode()
    assert_dir_holds(tmp_path / "warm" / "v2s2:latest", image)

    # the destination already holding it: skipped, neither transferred nor from the cache
    ok(fastsync(*args, str(tmp_path / "warm"), "--report", str(tmp_path / "again.json")))
    again = _report(tmp_path / "again.json")
    assert again["totals"]["up-to-date"] == 1
    assert again["totals"]["bytes_transferred"] == 0 and again["totals"]["bytes_from_cache"] == 0


def test_no_cache_sync_reports_everything_transferred(seeded_registry: Registry, tmp_path: Path) -> None:
    image = images.sample_set()["v2s2"]
    blob_bytes = sum(len(b) for b in image.all_blobs().values())
    for run in range(2):
        ok(fastsync("sync", "--no-cache", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                    f"{seeded_registry.host}/samples/v2s2:latest", str(tmp_path / f"o{run}"),
                    "--report", str(tmp_path / f"r{run}.json")))
        totals = _report(tmp_path / f"r{run}.json")["totals"]
        assert totals["bytes_transferred"] == blob_bytes and totals["bytes_from_cache"] == 0


def test_warm_cache_push_to_a_registry_is_from_cache(seeded_registry: Registry, registry_factory: Callable,
                                                     tmp_path: Path) -> None:
    image = images.sample_set()["v2s2"]
    blob_bytes = sum(len(b) for b in image.all_blobs().values())
    base = ["sync", "--cache", str(tmp_path / "cache"), "--src", "docker", "--dest", "docker",
            "--src-tls-verify=false", "--dest-tls-verify=false", f"{seeded_registry.host}/samples/v2s2:latest"]
    ok(fastsync(*base, f"{registry_factory().host}/a", "--report", str(tmp_path / "a.json")))
    assert _report(tmp_path / "a.json")["totals"]["bytes_transferred"] == blob_bytes
    ok(fastsync(*base, f"{registry_factory().host}/b", "--report", str(tmp_path / "b.json")))
    totals = _report(tmp_path / "b.json")["totals"]
    assert totals["bytes_transferred"] == 0 and totals["bytes_from_cache"] == blob_bytes


def test_tally_keeps_cache_bytes_apart() -> None:
    from fastsync.progress import Event, Tally

    t = Tally()
    t(Event("plan-done", size=1, total=300))
    t(Event("bytes", digest="a", size=100))
    t(Event("bytes", digest="b", size=200, cached=True))
    assert t.bytes_moved == 100 and t.bytes_cached == 200 and t.bytes_done == 300


# ---- the parts behind it ----------------------------------------------------------------------------

def test_one_job_copying_into_dirs_one_after_another_writes_every_blob(tmp_path: Path) -> None:
    """A finished dir: destination's blob entries must never be taken for a later destination's
    (a namespace made from id() came back once the object was gone: later images got no blobs)."""
    import asyncio

    from fastsync.engine.job import Job
    from fastsync.session import Session
    from fastsync.transports.dir import DirImageReference

    image = images.sample_set()["v2s2"]
    images.write_dir(image, tmp_path / "src")

    async def go() -> None:
        async with Session() as session:
            job = Job(session)
            for i in range(12):
                res = await job.copy(DirImageReference(str(tmp_path / "src")),
                                     DirImageReference(str(tmp_path / f"o{i}")))
                assert res.blobs_copied == 3 and res.blobs_reused == 0, (i, res)
                assert_dir_holds(tmp_path / f"o{i}", image)
    asyncio.run(go())


def test_a_closed_dir_destination_refuses_writes_and_leaves_nothing(tmp_path: Path) -> None:
    import asyncio

    from fastsync.errors import FastsyncError
    from fastsync.model import Descriptor, Digest
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.dir import DirImageReference

    image = images.sample_set()["v2s2"]
    blob = image.layers[0]
    (tmp_path / "blob").write_bytes(blob.data)
    desc = Descriptor(blob.media_type, Digest.parse(blob.digest), len(blob.data))

    async def go() -> None:
        async with Session() as session:
            dst = await DirImageReference(str(tmp_path / "out" / "x")).open_destination(session, TransportOptions())
            assert _mode(Path(dst.stage.path)) == 0o755 & ~UMASK
            await dst.put_blob_file(desc, str(tmp_path / "blob"), link=True)
            await dst.close()
            assert entries(tmp_path / "out") == []
            with pytest.raises(FastsyncError, match="closed"):
                await dst.put_blob_file(desc, str(tmp_path / "blob"), link=True)
            assert entries(tmp_path / "out") == []
    asyncio.run(go())


def test_umask_is_read_without_changing_it() -> None:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("Umask:"))
    assert UMASK == int(line.split()[1], 8)
