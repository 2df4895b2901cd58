"""registry-storage: trees fastsync writes are served by an unmodified docker-registry (checked with
skopeo and the registry's own garbage collector); trees the registry wrote are read by fastsync;
select builds a new tree out of a pool's inodes."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fastsync.api import copy_image
from fastsync.model import Digest
from fastsync.options import CopyOptions
from fastsync.store.blobs import Store
from support import images
from helpers import assert_dir_holds, assert_one_line_error, fastsync, ok

NAMES = list(images.sample_set())          # v2s2 oci zstd multiarch list schema1 empty shared
V2 = Path("docker/registry/v2")


def storage(root: Path, name: str) -> str:
    repo, tag = images.sample_repo(name)
    return f"registry-storage:{root}:{repo}:{tag}"


def write_samples(root: Path, src_dirs: Path, names=NAMES) -> None:
    for name in names:
        ok(fastsync("copy", "-q", "--all", f"dir:{src_dirs / name}", storage(root, name)))


def served_digest(run_skopeo, reg, name: str) -> str:
    repo, tag = images.sample_repo(name)
    raw = run_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/{repo}:{tag}").stdout
    return images.manifest_digest(raw)


def assert_served(run_skopeo, reg, image: images.SampleImage, name: str, tmp: Path) -> None:
    """The registry serves `image` with its digests (children too) and every blob (read by skopeo)."""
    assert served_digest(run_skopeo, reg, name) == image.digest
    repo, tag = images.sample_repo(name)
    out = tmp / f"served-{name}"
    run_skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false",
               f"docker://{reg.host}/{repo}:{tag}", f"dir:{out}")
    if name == "schema1":     # the registry re-signs schema 1: compare the digest, then the blobs
        assert images.manifest_digest((out / "manifest.json").read_bytes()) == image.digest
        for d, data in image.all_blobs().items():
            assert (out / d.split(":", 1)[1]).read_bytes() == data
    else:
        assert_dir_holds(out, image)


def gc_dry_run(reg) -> tuple[int, int, int]:
    """(blobs marked, blobs eligible for deletion, manifests eligible) from the registry's own GC."""
    proc = subprocess.run(["docker-registry", "garbage-collect", "--dry-run", str(reg.config_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion", proc.stdout)
    assert m, proc.stdout[-2000:]
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file of a storage tree (paths relative to ROOT), `_uploads` left out."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "_uploads" not in p.parts}


@pytest.fixture(scope="module")
def sample_dirs(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sample-dirs")
    for name, image in images.sample_set().items():
        images.write_dir(image, base / name)
    return base


@pytest.fixture(scope="module")
def fastsync_tree(tmp_path_factory, sample_dirs) -> Path:
    """Every sample image written by `fastsync copy --all dir:... registry-storage:...` (read-only for tests)."""
    root = tmp_path_factory.mktemp("fastsync-tree") / "root"
    write_samples(root, sample_dirs)
    return root


def test_registry_serves_every_image_fastsync_wrote_and_gc_finds_nothing(fastsync_tree, sample_images,
                                                                          registry_factory, run_skopeo, tmp_path):
    reg = registry_factory(root=fastsync_tree)
    for name in NAMES:
        assert_served(run_skopeo, reg, sample_images[name], name, tmp_path)
    reg.stop()
    marked, blobs, manifests = gc_dry_run(reg)
    assert (blobs, manifests) == (0, 0)
    assert marked == len({d for img in sample_images.values() for d in [*img.all_blobs(), *img.manifests()]})


def test_tree_is_byte_identical_to_what_the_registry_writes_for_the_same_pushes(fastsync_tree, seeded_registry):
    ours = tree_files(fastsync_tree)
    theirs = tree_files(seeded_registry.root)
    repos = tuple(str(V2 / "repositories" / images.sample_repo(n)[0]) + "/" for n in NAMES)
    assert {p for p in theirs if p.startswith(repos)} == {p for p in ours if p.startswith(repos)}
    assert {p: theirs.get(p) for p in ours} == ours      # link files: bare digest, no newline
    assert not list(fastsync_tree.rglob("_uploads")) and not list(fastsync_tree.rglob("*tmp*"))


def test_blobs_are_hardlinks_of_the_store_and_a_rerun_is_up_to_date(sample_dirs, sample_images, tmp_path):
    store = Store(str(tmp_path / "cache"))
    root = tmp_path / "root"
    image = sample_images["multiarch"]
    dst = storage(root, "multiarch")
    copy_image(f"dir:{sample_dirs / 'multiarch'}", dst, CopyOptions(multi_arch="all"), store=store)
    for digest in image.all_blobs():
        d = Digest.parse(digest)
        assert os.path.samefile(root / V2 / "blobs/sha256" / d.hex[:2] / d.hex / "data", store.path(d))
    again = copy_image(f"dir:{sample_dirs / 'multiarch'}", dst, CopyOptions(multi_arch="all"), store=store)
    assert again.up_to_date


def test_registry_tree_pushed_by_skopeo_is_read_as_a_source(fresh_registry, sample_images, sample_dirs,
                                                            run_skopeo, tmp_path):
    for name in NAMES:
        repo, tag = images.sample_repo(name)
        run_skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", f"dir:{sample_dirs / name}",
                   f"docker://{fresh_registry.host}/{repo}:{tag}")
    root = fresh_registry.root
    for name in NAMES:
        out = tmp_path / name
        ok(fastsync("copy", "-q", "--all", storage(root, name), f"dir:{out}"))
        digest = run_skopeo("manifest-digest", str(out / "manifest.json")).stdout.decode().strip()
        assert digest == sample_images[name].digest
        if name != "schema1":    # schema 1 is kept unsigned and signed on read: same digest, other bytes
            assert_dir_holds(out, sample_images[name])
    # and straight back into a registry from the tree (the offline install step), read with skopeo;
    # schema 1 is accepted because the source signs it as the registry would
    for name in ("multiarch", "schema1"):
        ok(fastsync("copy", "-q", "--all", "--dest-tls-verify=false", storage(root, name),
                    f"docker://{fresh_registry.host}/installed/{name}:1"))
        raw = run_skopeo("inspect", "--raw", "--tls-verify=false",
                         f"docker://{fresh_registry.host}/installed/{name}:1").stdout
        assert images.manifest_digest(raw) == sample_images[name].digest
    tags = ok(fastsync("list-tags", f"registry-storage:{root}:samples/v2s2")).stdout
    assert b'"latest"' in tags


def test_select_from_a_pool_links_the_pools_inodes_and_is_served(fastsync_tree, sample_images,
                                                                 registry_factory, run_skopeo, tmp_path):
    out = tmp_path / "release"
    lst = tmp_path / "images.list"
    lst.write_text("# release 1\nsamples/multiarch:latest\n\nharbor.local/samples/v2s2   # host is dropped\n")
    ok(fastsync("select", "-q", "--list", str(lst), str(fastsync_tree), str(out), "fastsync/schema1:v1"))
    chosen = ["multiarch", "v2s2", "schema1"]
    data = [p for p in (out / V2 / "blobs").rglob("data")]
    want = {d for n in chosen for d in [*sample_images[n].all_blobs(), *sample_images[n].manifests()]}
    assert {f"sha256:{p.parent.name}" for p in data} == want
    for p in data:
        assert os.path.samefile(p, fastsync_tree / p.relative_to(out))
    reg = registry_factory(root=out)
    for name in chosen:
        assert served_digest(run_skopeo, reg, name) == sample_images[name].digest
    reg.stop()
    assert gc_dry_run(reg)[1:] == (0, 0)


def test_failed_copy_leaves_no_tag_and_no_temp_files(sample_dirs, tmp_path):
    src = tmp_path / "broken"
    shutil.copytree(sample_dirs / "oci", src)
    layer = images.sample_set()["oci"].layers[1].digest.split(":", 1)[1]
    (src / layer).write_bytes(b"not the layer")
    root = tmp_path / "root"
    proc = fastsync("copy", "-q", f"dir:{src}", f"registry-storage:{root}:app:1")
    assert_one_line_error(proc, "digest mismatch")
    assert not list(root.rglob("current")) and not list(root.rglob("*tmp*")) and not list(root.rglob("_uploads"))


@pytest.mark.parametrize("name,fragments,code", [
    ("registry-storage:", ["a storage root directory is required"], 1),
    ("registry-storage:{root}:Bad/Name", ["bad repository name"], 1),
    ("registry-storage:{root}:app:bad tag", ["bad tag"], 1),
    ("registry-storage:{root}:app@sha256:12", ["bad digest"], 1),
    ("registry-storage:{root}", ["name the image to write"], 1),
    ("registry-storage:{root}/docker/registry:app:1", ["is inside the storage root", "NAME[:TAG]"], 1),
    ("registry-storage:{plain}:app:1", ["not a registry storage root; refusing"], 1),
])
def test_bad_destinations_fail_with_one_line(name, fragments, code, sample_dirs, fastsync_tree, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    dest = name.format(root=fastsync_tree, plain=plain)
    proc = fastsync("copy", "-q", f"dir:{sample_dirs / 'v2s2'}", dest)
    assert_one_line_error(proc, *fragments, code=code)


@pytest.mark.parametrize("name,fragments", [
    ("registry-storage:{root}:samples/nope", ["repository not found"]),
    ("registry-storage:{root}:samples/v2s2:nope", ["tag not found"]),
    ("registry-storage:{missing}:app", ["is not a registry storage root"]),
])
def test_missing_sources_fail_with_one_line(name, fragments, fastsync_tree, tmp_path):
    proc = fastsync("copy", "-q", name.format(root=fastsync_tree, missing=tmp_path / "none"), f"dir:{tmp_path}/o")
    assert_one_line_error(proc, *fragments, code=1)


def test_sync_installs_a_whole_tree_into_a_registry_and_mirrors_back_into_a_tree(
        fastsync_tree, sample_images, fresh_registry, registry_factory, run_skopeo, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    host = fresh_registry.host
    ok(fastsync("sync", "-q", "--all", "--src", "registry-storage", "--dest", "docker", "--dest-tls-verify=false",
                str(fastsync_tree), f"{host}/inst", env=env))
    for name in NAMES:      # every image, its repository path kept, schema 1 included
        repo, tag = images.sample_repo(name)
        raw = run_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/inst/{repo}:{tag}").stdout
        assert images.manifest_digest(raw) == sample_images[name].digest
    out = tmp_path / "mirror"
    lst = tmp_path / "images.list"
    lst.write_text("inst/samples/multiarch:latest\ninst/samples/v2s2:latest\n")
    ok(fastsync("sync", "-q", "--all", "--src", "list", "--dest", "registry-storage", "--src-registry", host,
                "--src-tls-verify=false", str(lst), f"{out}:", env=env))
    store_blobs = tmp_path / "cache" / "fastsync" / "blobs" / "sha256"
    linked = [p for p in (out / V2 / "blobs").rglob("data") if f"sha256:{p.parent.name}" in
              sample_images["v2s2"].all_blobs()]
    assert len(linked) == len(sample_images["v2s2"].all_blobs())
    for p in linked:        # layers and configs come from the cache, by hardlink
        assert os.path.samefile(p, store_blobs / p.parent.name)
    reg = registry_factory(root=out)
    for name in ("multiarch", "v2s2"):
        raw = run_skopeo("inspect", "--raw", "--tls-verify=false",
                         f"docker://{reg.host}/inst/samples/{name}:latest").stdout
        assert images.manifest_digest(raw) == sample_images[name].digest
    reg.stop()
    assert gc_dry_run(reg)[1:] == (0, 0)
    bare = tmp_path / "bare"     # DESTINATION without the colon: the root itself
    ok(fastsync("sync", "-q", "--all", "--src", "list", "--dest", "registry-storage", "--src-registry", host,
                "--src-tls-verify=false", str(lst), str(bare), env=env))
    assert sorted(p.parent.parent.parent.parent.name for p in
                  bare.glob(f"{V2}/repositories/inst/samples/*/_manifests/tags/latest/current")) == \
        ["multiarch", "v2s2"]


def test_images_named_by_digest_are_written_untagged_and_read_back(sample_dirs, sample_images, tmp_path):
    image = sample_images["v2s2"]
    root = tmp_path / "root"
    ok(fastsync("copy", "-q", f"dir:{sample_dirs / 'v2s2'}", f"registry-storage:{root}:app@{image.digest}"))
    assert not (root / V2 / "repositories/app/_manifests/tags").exists()
    ok(fastsync("copy", "-q", f"registry-storage:{root}:app@{image.digest}", f"dir:{tmp_path / 'back'}"))
    assert_dir_holds(tmp_path / "back", image)
    other = sample_images["oci"].digest
    proc = fastsync("copy", "-q", f"dir:{sample_dirs / 'v2s2'}", f"registry-storage:{root}:app@{other}")
    assert_one_line_error(proc, "names digest", code=1)


def test_concurrent_tag_commits_share_syncfs_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Group commit: 40 images committing at once cost a few syncfs calls, and every caller returns
    only after a syncfs that started after it asked."""
    import threading
    import time as _time

    from fastsync.transports.storage import destination as storage_dest

    starts: list[float] = []

    def slow_syncfs(root: str) -> None:
        starts.append(_time.monotonic())
        _time.sleep(0.05)
    monkeypatch.setattr(storage_dest, "_syncfs_now", slow_syncfs)
    monkeypatch.setattr(storage_dest, "_GROUPS", {})
    asked: list[tuple[float, float]] = []
    barrier = threading.Barrier(40)

    def commit() -> None:
        barrier.wait()
        t0 = _time.monotonic()
        storage_dest.flush_tree(str(tmp_path))
        asked.append((t0, _time.monotonic()))
    threads = [threading.Thread(target=commit) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(asked) == 40 and 1 <= len(starts) <= 10      # one each would be 40
    for t0, t1 in asked:
        assert any(t0 <= s and s + 0.05 <= t1 for s in starts)
