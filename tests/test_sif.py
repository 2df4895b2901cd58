"""`sif:` (read): fastsync converts a SIF file as skopeo 1.9.3 (containers/image's sif transport) does.

The SIF files are built here (tests/support/sif.py: mksquashfs + the SIF header and descriptors).
Config and manifest must equal skopeo's byte for byte once the layer digest is set aside (skopeo's
own layer digest changes from run to run: GNU tar records ctimes); the layers must hold the same
entries with the same metadata and content, and fastsync's layer is reproducible.
"""
from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from helpers import assert_one_line_error, fastsync, ok
from support.sif import FS_RAW, PART_DATA, make_squashfs, write_sif

DEFFILE = (b"Bootstrap: docker\nFrom: alpine\n%environment\n  export A=1\n  # a comment\n\n  export B=\"x y\"\n"
           b"%runscript\n  echo run \"$@\"\n\n  exit 0\n%labels\n  maintainer me\n")


@pytest.fixture(scope="module")
def squashfs(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("sif")
    tree = root / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "etc" / "empty").mkdir(parents=True)
    (tree / "home" / "user").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("hello from a SIF\n")
    os.setxattr(tree / "etc" / "motd", "user.origin", b"sif test")
    (tree / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n" + bytes(range(256)) * 40)
    (tree / "bin" / "tool").chmod(0o4755)
    os.link(tree / "bin" / "tool", tree / "bin" / "tool-link")
    (tree / "bin" / "sh-link").symlink_to("tool")
    (tree / "home" / "user" / "notes").write_text("private\n")
    os.chown(tree / "home" / "user", 1000, 1000)
    os.chown(tree / "home" / "user" / "notes", 1000, 100)
    (tree / "home" / "user" / "notes").chmod(0o600)
    os.mknod(tree / "etc" / "null", 0o20666, os.makedev(1, 3))
    return make_squashfs(tree, root / "rootfs.sqfs")


def _copy_both(sif: Path, tmp: Path, run_skopeo) -> tuple[Path, Path]:
    theirs, ours = tmp / "skopeo", tmp / "fastsync"
    run_skopeo("copy", "-q", f"sif:{sif}", f"dir:{theirs}")
    ok(fastsync("copy", "-q", f"sif:{sif}", f"dir:{ours}"))
    return theirs, ours


def _image(path: Path) -> tuple[dict, bytes, bytes, str]:
    manifest_raw = (path / "manifest.json").read_bytes()
    manifest = json.loads(manifest_raw)
    config = (path / manifest["config"]["digest"].split(":")[1]).read_bytes()
    layer = manifest["layers"][0]["digest"]
    return manifest, manifest_raw, config, layer


def _entries(path: Path) -> dict[str, tuple]:
    """Every tar entry's metadata and content (GNU tar's atime/ctime records left out). Entry order
    differs (GNU tar walks in readdir order), so of hard-linked names, which one holds the data and
    which links to it differs too: both appear as the file they name."""
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        data = {m.name: tar.extractfile(m).read() for m in members if m.isreg()}
        out = {}
        for m in members:
            body = data.get(m.linkname if m.islnk() else m.name, b"")
            kind = tarfile.REGTYPE if m.islnk() else m.type
            xattrs = {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            out[m.name.rstrip("/") or "."] = (kind, m.mode, m.uid, m.gid, m.uname, m.gname, len(body), m.mtime,
                                             "" if m.islnk() else m.linkname, m.devmajor, m.devminor, body, xattrs)
        return out


def _assert_same_image(theirs: Path, ours: Path) -> None:
    t_man, t_raw, t_conf, t_layer = _image(theirs)
    o_man, o_raw, o_conf, o_layer = _image(ours)
    # the config is skopeo's byte for byte, but for the layer digest (diff_ids and the ADD history line)
    assert o_conf.replace(o_layer.split(":")[1].encode(), b"L") == t_conf.replace(t_layer.split(":")[1].encode(), b"L")
    # the manifest too, but for the config digest and the layer's digest and size
    for man in (t_man, o_man):
        man["config"]["digest"] = man["layers"][0]["digest"] = "D"
        man["layers"][0]["size"] = 0
    assert o_man == t_man
    assert o_raw.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",')
    assert _entries(ours / o_layer.split(":")[1]) == _entries(theirs / t_layer.split(":")[1])


def test_sif_copy_matches_skopeo(squashfs: bytes, tmp_path: Path, run_skopeo) -> None:
    sif = tmp_path / "plain.sif"
    write_sif(sif, squashfs, arch="arm64", modified=1700000000, uuid=bytes.fromhex("0f" * 16))
    theirs, ours = _copy_both(sif, tmp_path, run_skopeo)
    _assert_same_image(theirs, ours)
    config = json.loads(_image(ours)[2])
    assert config["config"] == {"Cmd": ["bash"]} and config["architecture"] == "arm64"
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["history"][0]["comment"] == "imported from SIF, uuid: 0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f0f"


def test_sif_definition_file_becomes_podman_runscript_as_in_skopeo(squashfs: bytes, tmp_path: Path,
                                                                    run_skopeo) -> None:
    sif = tmp_path / "def.sif"
    write_sif(sif, squashfs, deffile=DEFFILE)
    theirs, ours = _copy_both(sif, tmp_path, run_skopeo)
    t_entries = _entries(theirs / _image(theirs)[3].split(":")[1])
    o_entries = _entries(ours / _image(ours)[3].split(":")[1])
    script = b'#!/bin/bash\nexport A=1\nexport B="x y"\necho run "$@"\n\nexit 0\n'
    assert o_entries["./podman/runscript"][11] == t_entries["./podman/runscript"][11] == script
    # skopeo stamps /podman and its script with the time of the copy; fastsync with the SIF's time
    for name in ("./podman", "./podman/runscript"):
        t_entries.pop(name), o_entries.pop(name)
    assert o_entries == t_entries
    assert json.loads(_image(ours)[2])["config"] == {"Cmd": ["/podman/runscript"]}


def test_sif_layer_is_reproducible(squashfs: bytes, tmp_path: Path) -> None:
    sif = tmp_path / "r.sif"
    write_sif(sif, squashfs, deffile=DEFFILE)
    digests = set()
    for name in ("a", "b"):
        ok(fastsync("copy", "-q", f"sif:{sif}", f"dir:{tmp_path / name}"))
        digests.add((tmp_path / name / "manifest.json").read_bytes())
    assert len(digests) == 1


def test_sif_inspect_matches_skopeo(squashfs: bytes, tmp_path: Path, run_skopeo) -> None:
    sif = tmp_path / "i.sif"
    write_sif(sif, squashfs)
    theirs = json.loads(run_skopeo("inspect", f"sif:{sif}").stdout)
    ours = json.loads(ok(fastsync("inspect", f"sif:{sif}")).stdout)
    for out in (theirs, ours):
        out["Digest"], out["Layers"] = "D", ["L"]
    assert {k: ours[k] for k in theirs} == theirs
    assert ok(fastsync("inspect", "--format", "{{.Os}}/{{.Architecture}} {{.Created}}", f"sif:{sif}")).stdout == \
        run_skopeo("inspect", "--format", "{{.Os}}/{{.Architecture}} {{.Created}}", f"sif:{sif}").stdout


@pytest.mark.parametrize("case,fragment", [
    ("garbage", "loading SIF file: reading global header: unexpected EOF"),
    ("magic", "loading SIF file: invalid SIF magic"),
    ("version", "loading SIF file: incompatible SIF version"),
    ("missing", "loading SIF file: open {path}: no such file or directory"),
    ("data-partition-only", "converting rootfs from SquashFS to Tarball: looking up rootfs from SIF file: "
                            "object not found"),
    ("two-system-partitions", "looking up rootfs from SIF file: multiple objects found"),
    ("not-squashfs", "converting rootfs from SquashFS to Tarball: converting image: exit status 1"),
])
def test_bad_sif_files_fail_as_in_skopeo(case: str, fragment: str, squashfs: bytes, tmp_path: Path,
                                         run_skopeo) -> None:
    sif = tmp_path / f"{case}.sif"
    if case == "garbage":
        sif.write_bytes(b"not a sif\n")
    elif case == "magic":
        write_sif(sif, squashfs, magic=b"NOT_MAGIC\0")
    elif case == "version":
        write_sif(sif, squashfs, version=b"02\0")
    elif case == "data-partition-only":
        write_sif(sif, squashfs, part_type=PART_DATA)
    elif case == "two-system-partitions":
        write_sif(sif, squashfs, extra_partitions=[(2, 1, squashfs)])
    elif case == "not-squashfs":
        write_sif(sif, b"\0" * 8192, fs_type=FS_RAW)
    fragment = fragment.format(path=sif)
    theirs = run_skopeo("copy", f"sif:{sif}", f"dir:{tmp_path / 'theirs'}", check=False)
    ours = fastsync("copy", f"sif:{sif}", f"dir:{tmp_path / 'ours'}")
    assert theirs.returncode == ours.returncode == 1
    assert fragment in theirs.stderr.decode()
    assert_one_line_error(ours, fragment)
    assert not (tmp_path / "ours").exists()


def test_sif_is_read_only_as_in_skopeo(squashfs: bytes, tmp_path: Path, run_skopeo, dir_of, sample_images) -> None:
    src = dir_of(sample_images["oci"])
    theirs = run_skopeo("copy", f"dir:{src}", f"sif:{tmp_path / 'x.sif'}", check=False)
    ours = fastsync("copy", f"dir:{src}", f"sif:{tmp_path / 'x.sif'}")
    assert theirs.returncode == ours.returncode == 1
    assert_one_line_error(ours, '"sif:" locations can only be read from, not written to')
    sif = tmp_path / "d.sif"
    write_sif(sif, squashfs)
    assert run_skopeo("delete", f"sif:{sif}", check=False).returncode == 1
    assert_one_line_error(fastsync("delete", f"sif:{sif}"), "Deleting images not implemented for sif: images",
                          code=1)


def test_sif_work_directory_goes_under_tmpdir_and_is_removed(squashfs: bytes, tmp_path: Path) -> None:
    sif, scratch = tmp_path / "t.sif", tmp_path / "scratch"
    scratch.mkdir()
    write_sif(sif, squashfs)
    ok(fastsync("--tmpdir", str(scratch), "copy", "-q", f"sif:{sif}", f"dir:{tmp_path / 'out'}"))
    assert list(scratch.iterdir()) == []
    write_sif(sif, b"\0" * 8192, fs_type=FS_RAW)
    assert fastsync("--tmpdir", str(scratch), "copy", f"sif:{sif}", f"dir:{tmp_path / 'out2'}").returncode == 1
    assert list(scratch.iterdir()) == []


def test_sif_without_root_uses_fakeroots_record_of_owners_and_devices(squashfs: bytes, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """As a non-root user: unsquashfs runs under `fakeroot -s`, and the tar takes owners, modes and
    device numbers from fakeroot's saved state, not from the files (which fakeroot only pretends).
    fakeroot does not save the xattrs it pretends to set, so those are lost on this path."""
    import shutil as _shutil

    from fastsync.transports import sif_layer
    from fastsync.transports.sif import SifImageReference, convert

    if _shutil.which("fakeroot") is None:
        pytest.skip("fakeroot is not installed (apt-get install fakeroot)")
    sif = tmp_path / "nr.sif"
    write_sif(sif, squashfs)
    as_root = convert(SifImageReference(str(sif)), str(tmp_path))
    monkeypatch.setattr(sif_layer.os, "geteuid", lambda: 1000)
    as_user = convert(SifImageReference(str(sif)), str(tmp_path))
    try:
        def without_xattrs(path: str) -> dict:
            return {name: entry[:-1] for name, entry in _entries(Path(path)).items()}
        assert without_xattrs(as_user.layer_path) == without_xattrs(as_root.layer_path)
        assert _entries(Path(as_root.layer_path))["./etc/motd"][-1] == {"SCHILY.xattr.user.origin": "sif test"}
    finally:
        for src in (as_root, as_user):
            _shutil.rmtree(src.work)
