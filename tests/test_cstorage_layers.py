"""containers-storage: layer contents (odd tars, whiteouts, ownership, hostile names), tar-split
fidelity, overlay, and crash safety under kill -9 and concurrent podman."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers import ROOT, assert_one_line_error, fastsync, ok
from support.fixtures_cstorage import *  # noqa: F401,F403
from support.layer_tars import Member, layer_tar, write_image_dir
from support.podman_store import PodmanStore

LONG = "deep/" + "/".join(["d" * 40] * 4) + "/file-with-a-long-name.txt"


def _odd_layers() -> list[bytes]:
    base = layer_tar([
        Member("etc/", "dir", mode=0o755),
        Member("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
        Member("etc/shadow", data=b"secret\n", mode=0o600, gid=42),
        Member("srv/", "dir", mode=0o2775, uid=1000, gid=1000),
        Member("srv/app.bin", data=os.urandom(70000), mode=0o4755, uid=1000, gid=1000),
        Member("srv/hard", "hardlink", link="srv/app.bin", mode=0o4755, uid=1000, gid=1000),
        Member("srv/soft", "symlink", link="../etc/passwd"),
        Member("srv/pipe", "fifo"),
        Member("srv/tagged", data=b"x", xattrs={"user.fastsync": "yes"}),
        Member(LONG, data=b"long\n"),
        Member("srv/ünïcode-name", data=b"u\n"),
        Member("gone/", "dir"), Member("gone/a", data=b"a"), Member("opaque/", "dir"),
        Member("opaque/old", data=b"old"),
    ])
    top = layer_tar([
        Member("gone/.wh.a", data=b""),
        Member("opaque/", "dir"), Member("opaque/.wh..wh..opq"), Member("opaque/new", data=b"new"),
        Member("etc/passwd", data=b"root:x:0:0::/root:/bin/bash\n"),
    ], fmt=tarfile.GNU_FORMAT)
    return [base, top]


def _saved_digests(store: PodmanStore, name: str, tmp: Path) -> list[str]:
    out = tmp / f"saved-{time.monotonic_ns()}.tar"
    store.podman("save", "-o", str(out), name)
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        return ["sha256:" + hashlib.sha256(tf.extractfile(p).read()).hexdigest() for p in manifest[0]["Layers"]]


def _check_files(root: Path, top: bool) -> None:
    st = (root / "srv/app.bin").lstat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o4755)
    assert st.st_nlink == 2 and (root / "srv/hard").stat().st_ino == st.st_ino
    assert os.readlink(root / "srv/soft") == "../etc/passwd"
    assert (root / "etc/shadow").lstat().st_gid == 42
    assert ((root / "srv").lstat().st_mode & 0o7777) == 0o2775
    assert (root / LONG).read_bytes() == b"long\n"
    assert (root / "srv/ünïcode-name").exists()
    assert int((root / "etc/passwd").lstat().st_mtime) == 1672531200
    try:
        assert os.getxattr(root / "srv/tagged", "user.fastsync") == b"yes"
    except OSError:
        pass                                   # the file system has no user xattrs
    if top:
        assert not (root / "gone/a").exists()
        assert sorted(os.listdir(root / "opaque")) == ["new"]
        assert b"bash" in (root / "etc/passwd").read_bytes()


@pytest.mark.parametrize("backend", [None, "python"])
def test_odd_tars_extract_and_reproduce_byte_for_byte(store, tmp_path, run_skopeo, backend):
    _, config, diff_ids = write_image_dir(tmp_path / "src", _odd_layers())
    ok(fastsync("copy", f"dir:{tmp_path / 'src'}", store.name("localhost/cs/odd:1"), backend=backend))
    layers = store.layers()
    top_id = next(r["id"] for r in layers if r.get("parent"))
    base_id = next(r["id"] for r in layers if not r.get("parent"))
    assert sorted(next(r for r in layers if r["id"] == base_id)["uidset"]) == [0, 1000]
    _check_files(store.graphroot / "vfs" / "dir" / base_id, top=False)
    _check_files(store.graphroot / "vfs" / "dir" / top_id, top=True)
    assert _saved_digests(store, "localhost/cs/odd:1", tmp_path) == diff_ids
    ok(fastsync("copy", store.name("localhost/cs/odd:1"), f"dir:{tmp_path / 'back'}", backend=backend))
    for d in diff_ids:
        blob = tmp_path / "back" / d.split(":", 1)[1]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == d
    run_skopeo("copy", store.name("localhost/cs/odd:1"), f"dir:{tmp_path / 'skopeo'}")
    assert sorted(p.name for p in (tmp_path / "skopeo").iterdir()) == \
        sorted(p.name for p in (tmp_path / "back").iterdir())


def test_overlay_store_podman_and_skopeo_agree(overlay_store, tmp_path, run_skopeo):
    _, config, diff_ids = write_image_dir(tmp_path / "src", _odd_layers())
    ok(fastsync("copy", f"dir:{tmp_path / 'src'}", overlay_store.name("localhost/cs/ov:1")))
    layers = {r["id"]: r for r in overlay_store.layers()}
    top = next(r for r in layers.values() if r.get("parent"))
    home = overlay_store.graphroot / "overlay" / top["id"]
    short = (home / "link").read_text()
    assert os.readlink(overlay_store.graphroot / "overlay" / "l" / short) == f"../{top['id']}/diff"
    parent_short = (overlay_store.graphroot / "overlay" / top["parent"] / "link").read_text()
    assert (home / "lower").read_text() == f"l/{parent_short}"
    wh = (home / "diff" / "gone" / "a").lstat()
    assert os.major(wh.st_rdev) == 0 and os.minor(wh.st_rdev) == 0          # overlay's whiteout
    assert os.getxattr(home / "diff" / "opaque", "trusted.overlay.opaque") == b"y"
    assert _saved_digests(overlay_store, "localhost/cs/ov:1", tmp_path) == diff_ids
    run_skopeo("copy", overlay_store.name("localhost/cs/ov:1"), f"dir:{tmp_path / 'skopeo'}")
    ok(fastsync("copy", overlay_store.name("localhost/cs/ov:1"), f"dir:{tmp_path / 'back'}"))
    for d in diff_ids:
        assert (tmp_path / "back" / d.split(":", 1)[1]).read_bytes() == \
            (tmp_path / "skopeo" / d.split(":", 1)[1]).read_bytes()


@pytest.mark.parametrize("name,fragment", [("../escape", "leaves the layer"), ("/abs/file", "absolute path"),
                                           ("a/../../b", "leaves the layer")])
def test_hostile_names_are_refused_and_leave_nothing(store, tmp_path, name, fragment):
    good = layer_tar([Member("ok", data=b"fine")])
    bad = layer_tar([Member("x", data=b"1"), Member(name, data=b"evil")])
    write_image_dir(tmp_path / "src", [good, bad])
    proc = fastsync("copy", "-q", f"dir:{tmp_path / 'src'}", store.name("localhost/cs/evil:1"))
    assert_one_line_error(proc, fragment)
    assert store.images() == []
    assert not any(r.get("flags") for r in store.layers())
    assert len(store.layers()) <= 1                                   # the good bottom layer may stay
    assert not (tmp_path / "escape").exists() and not Path("/abs/file").exists()
    store.podman("images")


def test_a_layer_that_does_not_match_the_config_is_refused(store, tmp_path):
    write_image_dir(tmp_path / "src", [layer_tar([Member("a", data=b"a")])])
    conf = next(p for p in (tmp_path / "src").iterdir() if p.name not in ("manifest.json", "version")
                and p.stat().st_size < 1000 and p.read_bytes().startswith(b"{"))
    doc = json.loads(conf.read_bytes())
    doc["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    new = json.dumps(doc, separators=(",", ":")).encode()
    new_digest = hashlib.sha256(new).hexdigest()
    (tmp_path / "src" / new_digest).write_bytes(new)
    man = json.loads((tmp_path / "src" / "manifest.json").read_bytes())
    man["config"].update(digest="sha256:" + new_digest, size=len(new))
    (tmp_path / "src" / "manifest.json").write_bytes(json.dumps(man).encode())
    proc = fastsync("copy", "-q", f"dir:{tmp_path / 'src'}", store.name("localhost/cs/mismatch:1"))
    assert_one_line_error(proc, "does not match the config's diff_id")
    assert store.images() == [] and store.layers() == []


def _many_files_layer(n: int, seed: int) -> bytes:
    return layer_tar([Member("many/", "dir")] + [Member(f"many/f{seed}-{i:05d}", data=b"%d" % i) for i in range(n)])


def test_kill_9_mid_write_then_podman_works_and_a_rerun_completes(store, tmp_path):
    layers = [_many_files_layer(4000, s) for s in range(3)]
    _, config, diff_ids = write_image_dir(tmp_path / "src", layers)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "fastsync", "copy", "-q", f"dir:{tmp_path / 'src'}",
                             store.name("localhost/cs/killed:1")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if any(r.get("flags", {}).get("incomplete") for r in _safe_layers(store)):
                break
            time.sleep(0.01)
        else:
            pytest.fail("the copy never showed an incomplete layer")
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert store.images() == []
    listed = json.loads(store.podman("images", "--format", "json").stdout or "[]")
    assert listed == []
    ok(fastsync("copy", "-q", f"dir:{tmp_path / 'src'}", store.name("localhost/cs/killed:1")))
    assert not any(r.get("flags") for r in store.layers())
    assert len(store.layers()) == 3
    assert _saved_digests(store, "localhost/cs/killed:1", tmp_path) == diff_ids


def _safe_layers(store: PodmanStore) -> list[dict]:
    try:
        return store.layers()
    except (ValueError, OSError):
        return []


def test_concurrent_podman_while_fastsync_writes(store, tmp_path, dir_image):
    from support import images
    first = images.make_image(80, layers=1)
    store.podman("pull", "-q", f"dir:{dir_image(first)}")
    layers = [_many_files_layer(3000, s) for s in range(3)]
    _, config, diff_ids = write_image_dir(tmp_path / "src", layers)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-m", "fastsync", "copy", "-q", f"dir:{tmp_path / 'src'}",
                               store.name("localhost/cs/busy:1")], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    second = images.make_image(81, layers=2)
    puller = subprocess.Popen(["podman", "--root", str(store.graphroot), "--runroot", str(store.runroot),
                               "--storage-driver", "vfs", "--tmpdir", str(store.tmp), "--cgroup-manager", "cgroupfs",
                               "--events-backend", "file", "pull", "-q", f"dir:{dir_image(second)}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rounds = 0
    while writer.poll() is None and rounds < 50:
        store.podman("images", "--format", "json")
        rounds += 1
    assert writer.wait(timeout=120) == 0, writer.stderr.read()
    assert puller.wait(timeout=120) == 0, puller.stderr.read()
    ids = {i["Id"] for i in json.loads(store.podman("images", "--format", "json").stdout)}
    assert ids == {first.config.digest.split(":")[1], second.config.digest.split(":")[1], config.split(":")[1]}
    assert _saved_digests(store, "localhost/cs/busy:1", tmp_path) == diff_ids


def test_empty_and_repeated_layers(store, tmp_path):
    one = layer_tar([Member("a", data=b"a")])
    _, config, diff_ids = write_image_dir(tmp_path / "src", [b"", one, b"", one])
    ok(fastsync("copy", "-q", f"dir:{tmp_path / 'src'}", store.name("localhost/cs/empty-layers:1")))
    assert len(store.layers()) == 4                       # one record per position: the ids chain
    assert _saved_digests(store, "localhost/cs/empty-layers:1", tmp_path) == diff_ids
    ok(fastsync("copy", "-q", store.name("localhost/cs/empty-layers:1"), f"dir:{tmp_path / 'back'}"))
    assert (tmp_path / "back" / diff_ids[0].split(":")[1]).read_bytes() == b""


def test_skopeo_and_fastsync_share_one_store(store, tmp_path, run_skopeo):
    from support import images
    base = images.make_image(120, layers=2)
    child = images.make_image(121, layers=3, base_seed=120, base_layers=2)
    images.write_dir(base, str(tmp_path / "base"))
    images.write_dir(child, str(tmp_path / "child"))
    run_skopeo("copy", f"dir:{tmp_path / 'base'}", store.name("localhost/cs/base:1"))
    proc = ok(fastsync("copy", f"dir:{tmp_path / 'child'}", store.name("localhost/cs/child:1")))
    assert proc.stdout.decode().count("skipped: already exists") == 2        # skopeo's layers are reused
    run_skopeo("copy", store.name("localhost/cs/child:1"), f"dir:{tmp_path / 'out'}")
    for d in child.diff_ids:
        blob = tmp_path / "out" / d.split(":")[1]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == d
    ok(fastsync("delete", store.name("localhost/cs/child:1")))
    run_skopeo("copy", store.name("localhost/cs/base:1"), f"dir:{tmp_path / 'base-out'}")   # intact
    run_skopeo("delete", store.name("localhost/cs/base:1"))
    assert store.images() == [] and store.layers() == []


def test_two_fastsync_processes_write_one_store(store, tmp_path):
    base = [_many_files_layer(1500, 900)]
    srcs = []
    for n in range(2):
        _, _, diff_ids = write_image_dir(tmp_path / f"src{n}", base + [_many_files_layer(800, n)])
        srcs.append(diff_ids)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "fastsync", "copy", "-q", f"dir:{tmp_path / f'src{n}'}",
                               store.name(f"localhost/cs/par:{n}")], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert len(store.layers()) == 3                          # the shared bottom layer once
    for n, diff_ids in enumerate(srcs):
        assert _saved_digests(store, f"localhost/cs/par:{n}", tmp_path) == diff_ids


def test_overlay_layers_mount_as_one_tree(overlay_store, tmp_path):
    write_image_dir(tmp_path / "src", _odd_layers())
    ok(fastsync("copy", "-q", f"dir:{tmp_path / 'src'}", overlay_store.name("localhost/cs/mnt:1")))
    proc = overlay_store.podman("image", "mount", "localhost/cs/mnt:1", check=False)
    if proc.returncode:
        pytest.skip(f"podman cannot mount overlay here: {proc.stderr.strip()}")
    merged = Path(proc.stdout.strip())
    try:
        assert not (merged / "gone" / "a").exists()                         # the whiteout hides it
        assert sorted(os.listdir(merged / "opaque")) == ["new"]              # the opaque dir hides "old"
        assert b"bash" in (merged / "etc" / "passwd").read_bytes()
        assert (merged / "srv" / "app.bin").stat().st_mode & 0o7777 == 0o4755
        assert (merged / LONG).read_bytes() == b"long\n"
    finally:
        overlay_store.podman("image", "unmount", "localhost/cs/mnt:1", check=False)
