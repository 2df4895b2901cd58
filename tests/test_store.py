"""The content-addressed store: verified writes, locks shared with other runs, gc, verify, remembered refs."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastsync.errors import DigestMismatch
from fastsync.model import Descriptor, Digest
from fastsync.store.blobs import CacheBusy, Store

from helpers import fastsync, ok


def desc_of(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.parse("sha256:" + hashlib.sha256(data).hexdigest()), len(data))


def put(store: Store, data: bytes) -> Descriptor:
    d = desc_of(data)
    w = store.writer(d)
    w.write(data)
    w.commit()
    return d


def test_commit_verifies_and_publishes_read_only(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    d = put(store, b"hello blob")
    path = store.lookup(d)
    assert path and Path(path).read_bytes() == b"hello blob"
    assert os.stat(path).st_mode & 0o222 == 0
    bad = store.writer(desc_of(b"expected"))
    bad.write(b"something else")
    with pytest.raises(DigestMismatch):
        bad.commit()
    assert store.lookup(desc_of(b"expected")) is None
    assert os.listdir(store.tmp) == []


def test_sweep_removes_dead_writers_files_but_not_live_ones(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    live = store.writer(desc_of(b"x" * 10))
    live.write(b"xxxxx")
    dead = Path(store.tmp) / "w-0123456789abcdef-dead"
    dead.write_bytes(b"partial")            # what a kill -9 leaves: nobody holds its lock
    young_scratch = Path(store.tmp) / "layer-young"
    young_scratch.write_bytes(b"a recompression in progress elsewhere")
    assert store.sweep_tmp() == 1
    assert not dead.exists() and Path(live.tmp_path).exists() and young_scratch.exists()
    live.abort()


def test_gc_needs_the_store_alone(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    put(store, b"a")
    other = Store(str(tmp_path)).open_run()     # another run (its own lock file description)
    try:
        with pytest.raises(CacheBusy):
            store.gc(max_age=0)
    finally:
        other.close_run()
    assert store.gc(max_age=0).removed == 1


def test_every_job_given_the_store_holds_its_run_lock(tmp_path: Path) -> None:
    """copy_image and sync_images both run through session.run: while a job uses the store, a
    concurrent gc is refused; afterwards it proceeds."""
    from fastsync.session import run

    store = Store(str(tmp_path))
    put(store, b"a")

    async def job(session: object) -> str:
        with pytest.raises(CacheBusy):
            Store(str(tmp_path)).gc(max_age=0)
        return "done"

    assert run(job, store=store) == "done"
    assert Store(str(tmp_path)).gc(max_age=0).removed == 1


def test_gc_by_age_and_by_size_least_recently_used_first(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    descs = []
    for i in range(4):
        descs.append(put(store, bytes([i]) * 1000))
        time.sleep(0.02)
    assert store.gc(max_age=3600).removed == 0
    dry = store.gc(max_size=2000, dry_run=True)
    assert (dry.removed, dry.freed) == (2, 2000) and all(store.lookup(d) for d in descs)
    res = store.gc(max_size=2000)
    assert (res.removed, res.kept, res.kept_bytes) == (2, 2, 2000)
    assert [bool(store.lookup(d)) for d in descs] == [False, False, True, True]
    assert store.usage() == (2, 2000)


def test_verify_finds_corruption_by_sidecar_and_by_sha256(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    good, bad = put(store, b"good" * 1000), put(store, b"bad" * 1000)
    path = store.path(bad.digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"X")
    fast = store.verify()
    assert (fast.checked, fast.fast, fast.bad) == (2, 2, [str(bad.digest)])
    os.unlink(os.path.join(store.root, "blake3", good.digest.hex))
    full = store.verify(full=True, repair=True)
    assert full.fast == 0 and full.bad == [str(bad.digest)]
    assert store.lookup(bad) is None and store.lookup(good)
    assert os.path.exists(os.path.join(store.root, "blake3", good.digest.hex))   # re-created


def test_manifests_and_remembered_refs(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    raw = b'{"schemaVersion":2}'
    digest = Digest.of(raw)
    store.put_manifest(digest, raw)
    assert store.manifest(digest) == raw
    assert store.manifest(Digest.of(b"other")) is None
    store.remember("docker://r/x:1", digest, "application/vnd.oci.image.manifest.v1+json")
    e = store.recall("docker://r/x:1")
    assert e is not None and e.digest == digest and time.time() - e.checked < 5
    assert store.recall("docker://r/x:2") is None
    assert [s for s, _ in store.refs()] == ["docker://r/x:1"]


def test_cache_cli(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "c"))
    d = put(store, b"z" * 5000)
    out = ok(fastsync("cache", "ls", "--cache", str(tmp_path / "c"))).stdout.decode()
    assert out.startswith(f"{d.digest} 5000 ")
    assert "1 blobs, 5000 bytes" in ok(fastsync("cache", "du", "--cache", str(tmp_path / "c"))).stdout.decode()
    assert "0 corrupt" in ok(fastsync("cache", "verify", "--cache", str(tmp_path / "c"))).stdout.decode()
    proc = fastsync("cache", "gc", "--cache", str(tmp_path / "c"), "--max-size", "1k")
    assert "removed 1 blobs" in ok(proc).stdout.decode()
    bad = fastsync("cache", "gc", "--cache", str(tmp_path / "c"), "--max-age", "soon")
    assert bad.returncode == 1 and bad.stderr.decode().count("\n") == 1 and "invalid age" in bad.stderr.decode()


def test_concurrent_runs_share_the_store(tmp_path: Path) -> None:
    """Two processes writing the same blobs at once: both succeed, the store ends consistent."""
    code = ("import sys, hashlib; sys.path.insert(0, %r)\n"
            "from fastsync.store.blobs import Store\nfrom fastsync.model import Descriptor, Digest\n"
            "s = Store(%r).open_run()\n"
            "for i in range(40):\n"
            "    data = bytes([i]) * 200000\n"
            "    d = Descriptor('x', Digest.parse('sha256:' + hashlib.sha256(data).hexdigest()), len(data))\n"
            "    w = s.writer(d)\n    w.write(data)\n    w.commit()\n"
            "s.close_run()\n") % (str(Path(__file__).resolve().parent.parent), str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    store = Store(str(tmp_path))
    res = store.verify(full=True)
    assert res.checked == 40 and res.bad == [] and os.listdir(store.tmp) == []


def test_an_abort_waits_for_the_write_under_way_in_a_thread(tmp_path, monkeypatch):
    """The tee writes a blob's batches in worker threads while the loop may abort the writer: the
    abort waits for the batch being written, so no thread writes to a closed (or reused) descriptor,
    and nothing of the blob is left behind."""
    import threading

    import fastsync.store.blobs as blobs

    store = Store(str(tmp_path / "cache"))
    data = b"x" * 4096
    desc = Descriptor("application/octet-stream", Digest.of(data), len(data))
    writer = store.writer(desc, verified=True)
    real_writev = os.writev
    entered = threading.Event()

    def slow_writev(fd, buffers):
        entered.set()
        time.sleep(0.3)
        return real_writev(fd, buffers)

    monkeypatch.setattr(blobs.os, "writev", slow_writev)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer.write_many([data])
        except BaseException as exc:   # noqa: BLE001 - the test reports it
            errors.append(exc)

    t = threading.Thread(target=write)
    t.start()
    assert entered.wait(5)
    writer.abort()                     # while the write sleeps inside writev
    t.join()
    assert errors == []
    assert os.listdir(store.tmp) == [] and store.lookup(desc) is None
    with pytest.raises(Exception, match="after its writer was closed"):
        writer.write_many([data])
