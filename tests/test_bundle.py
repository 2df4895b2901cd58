"""Bundles: one tar (optionally zstd) of a storage tree, each blob stored once, restored by plain
`tar x` or `fastsync unbundle` into a tree an unmodified docker-registry serves."""
from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from support import images
from helpers import assert_one_line_error, fastsync, ok
from test_registry_storage import (NAMES, V2, fastsync_tree, gc_dry_run, sample_dirs, served_digest,  # noqa: F401
                                   tree_files)


def members(archive: Path) -> list[tarfile.TarInfo]:
    if archive.suffix == ".zst":
        raw = subprocess.run(["zstd", "-dc", str(archive)], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            return tf.getmembers()
    with tarfile.open(archive) as tf:
        return tf.getmembers()


def unique_blobs(names) -> set[str]:
    s = images.sample_set()
    return {d for n in names for d in [*s[n].all_blobs(), *s[n].manifests()]}


def test_tar_holds_each_blob_once_and_tar_x_restores_a_served_tree(fastsync_tree, registry_factory, run_skopeo,
                                                                    sample_images, tmp_path):
    archive = tmp_path / "release.tar"
    ok(fastsync("bundle", "-q", str(fastsync_tree), str(archive)))
    got = members(archive)
    data = [m.name for m in got if m.name.endswith("/data")]
    assert len(data) == len(set(data)) == len(unique_blobs(NAMES))
    assert all(m.isreg() or m.islnk() for m in got)
    assert not any("_uploads" in m.name for m in got)
    ranks = [0 if "/blobs/" in m.name else 2 if m.name.endswith("current/link") else 1 for m in got]
    assert ranks == sorted(ranks)                   # blobs first, tags' current links last
    restored = tmp_path / "restored"
    restored.mkdir()
    subprocess.run(["tar", "xf", str(archive), "-C", str(restored)], check=True)
    assert tree_files(restored) == tree_files(fastsync_tree)
    reg = registry_factory(root=restored)
    for name in NAMES:
        assert served_digest(run_skopeo, reg, name) == sample_images[name].digest
    reg.stop()
    assert gc_dry_run(reg)[1:] == (0, 0)


def test_zstd_bundle_of_selected_images_unbundles_and_plain_zstd_tar_agrees(fastsync_tree, tmp_path):
    archive = tmp_path / "two.tar.zst"
    ok(fastsync("bundle", "-q", str(fastsync_tree), str(archive), "samples/multiarch", "samples/list:latest"))
    data = [m.name for m in members(archive) if m.name.endswith("/data")]
    assert {f"sha256:{n.split('/')[-2]}" for n in data} == unique_blobs(["multiarch", "list"])
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ok(fastsync("unbundle", "-q", str(archive), str(ours)))
    theirs.mkdir()
    subprocess.run(f"zstd -dc {archive} | tar x -C {theirs}", shell=True, check=True)
    assert tree_files(ours) == tree_files(theirs)
    assert sorted(p for p in tree_files(ours) if p.endswith("current/link")) == [
        f"{V2}/repositories/samples/{n}/_manifests/tags/latest/current/link" for n in ("list", "multiarch")]


def test_hardlinked_files_become_tar_hardlinks_and_come_back_linked(fastsync_tree, tmp_path):
    tree = tmp_path / "tree"
    ok(fastsync("select", "-q", str(fastsync_tree), str(tree), "samples/v2s2"))
    tag = tree / V2 / "repositories/samples/v2s2/_manifests/tags/latest"
    current = tag / "current" / "link"
    index = next((tag / "index").rglob("link"))
    os.unlink(index)
    os.link(current, index)             # a tree whose identical files share an inode
    archive = tmp_path / "b.tar"
    ok(fastsync("bundle", "-q", str(tree), str(archive)))
    links = [m for m in members(archive) if m.islnk()]
    assert len(links) == 1
    for how in ("tar", "fastsync"):
        out = tmp_path / how
        if how == "tar":
            out.mkdir()
            subprocess.run(["tar", "xf", str(archive), "-C", str(out)], check=True)
        else:
            ok(fastsync("unbundle", "-q", str(archive), str(out)))
        rel_cur, rel_idx = current.relative_to(tree), index.relative_to(tree)
        assert os.path.samefile(out / rel_cur, out / rel_idx)
        assert (out / rel_cur).read_bytes() == current.read_bytes()


def test_unbundle_into_an_existing_tree_keeps_its_blobs(fastsync_tree, tmp_path):
    archive = tmp_path / "all.tar.zst"
    ok(fastsync("bundle", "-q", str(fastsync_tree), str(archive)))
    target = tmp_path / "target"
    ok(fastsync("select", "-q", str(fastsync_tree), str(target), "samples/v2s2"))
    blob = next((target / V2 / "blobs").rglob("data"))
    before = os.stat(blob).st_ino
    proc = ok(fastsync("unbundle", str(archive), str(target)))
    assert os.stat(blob).st_ino == before and os.path.samefile(blob, fastsync_tree / blob.relative_to(target))
    assert b"kept" in proc.stderr
    assert tree_files(target) == tree_files(fastsync_tree)


def test_tampered_blob_is_refused_before_any_tag_is_written(fastsync_tree, tmp_path):
    archive = tmp_path / "b.tar"
    ok(fastsync("bundle", "-q", str(fastsync_tree), str(archive), "samples/oci"))
    raw = bytearray(archive.read_bytes())
    layer = images.sample_set()["oci"].layers[0].data
    at = raw.find(layer[:64])
    raw[at + 10] ^= 0xFF
    archive.write_bytes(bytes(raw))
    out = tmp_path / "out"
    assert_one_line_error(fastsync("unbundle", str(archive), str(out)), "digest mismatch", code=1)
    assert not list(out.rglob("current")) and not list(out.rglob("*tmp*"))


@pytest.mark.parametrize("member", ["../evil", "/etc/evil", "docker/registry/v2/../../../evil", "other/file"])
def test_members_outside_the_tree_are_refused(member, tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        ti = tarfile.TarInfo(member)
        ti.size = 4
        tf.addfile(ti, io.BytesIO(b"evil"))
    assert_one_line_error(fastsync("unbundle", str(archive), str(tmp_path / "out")), "unexpected member", code=1)
    assert not (tmp_path / "evil").exists()


def test_bundle_errors_are_one_line(tmp_path):
    assert_one_line_error(fastsync("bundle", str(tmp_path), str(tmp_path / "x.tar")), "not a registry storage root",
                          code=1)
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    assert_one_line_error(fastsync("unbundle", str(tmp_path / "junk.tar"), str(tmp_path / "o")), "not a readable tar")
    assert_one_line_error(fastsync("unbundle", str(tmp_path / "none.tar"), str(tmp_path / "o")), "not found")
    assert_one_line_error(fastsync("select", str(tmp_path), str(tmp_path / "o")), "name the images", code=1)
