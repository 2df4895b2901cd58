"""oci-archive: and docker-archive: as sources and destinations, checked against skopeo both ways."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest

from fastsync.errors import InvalidReference
from fastsync.transports import parse_image_name
from support import images
from helpers import assert_dir_holds, assert_one_line_error, fastsync, ok


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {ti.name: ti for ti in tar}


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def uncompressed(image: images.SampleImage) -> dict[str, bytes]:
    """diff_id -> layer tar, the way a docker archive stores the image's layers."""
    return {sha(gzip.decompress(b.data)): gzip.decompress(b.data) for b in image.layers}


def no_leftovers(directory: Path) -> None:
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]


# ---- image names --------------------------------------------------------------------------------

def test_archive_names_parse_as_skopeo_does(tmp_path):
    d = parse_image_name(f"docker-archive:{tmp_path}/a.tar:app")
    assert str(d.docker_reference) == "docker.io/library/app:latest" and d.path == f"{tmp_path}/a.tar"
    assert parse_image_name(f"docker-archive:{tmp_path}/a.tar:@2").index == 2
    assert parse_image_name(f"docker-archive:{tmp_path}/a.tar").docker_reference is None
    o = parse_image_name(f"oci-archive:{tmp_path}/o.tar:v1.0")
    assert (o.path, o.ref, o.docker_reference) == (f"{tmp_path}/o.tar", "v1.0", None)
    for bad in ("docker-archive:", f"docker-archive:{tmp_path}/a.tar:@x",
                f"docker-archive:{tmp_path}/a.tar:app@sha256:{'ab' * 32}", "oci-archive::r",
                f"oci-archive:{tmp_path}/o.tar:bad ref"):
        with pytest.raises(InvalidReference):
            parse_image_name(bad)


# ---- docker-archive ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,backend", [("v2s2", "native"), ("v2s2", "python"), ("oci", "native"),
                                          ("empty", "native")])
def test_dir_to_docker_archive_to_dir(name, backend, sample_images, dir_of, tmp_path, run_skopeo):
    image = sample_images[name]
    archive = tmp_path / "img.tar"
    ok(fastsync("copy", f"dir:{dir_of(image)}", f"docker-archive:{archive}:example.com/team/app:1.0",
                backend=backend))
    no_leftovers(tmp_path)
    # the archive is what containers/image writes: decompressed layers named by diff_id, the config
    # as it was (an OCI image's config too), manifest.json and repositories naming the tag
    entry, = json.loads(read_member(archive, "manifest.json"))
    layers = uncompressed(image)
    assert entry["RepoTags"] == ["example.com/team/app:1.0"]
    assert entry["Config"] == image.config.digest.split(":", 1)[1] + ".json"
    assert entry["Layers"] == [d.split(":", 1)[1] + ".tar" for d in image.diff_ids]
    assert read_member(archive, entry["Config"]) == image.config.data
    for path, diff_id in zip(entry["Layers"], image.diff_ids):
        assert read_member(archive, path) == layers[diff_id]
    repositories = json.loads(read_member(archive, "repositories"))
    assert list(repositories) == (["example.com/team/app"] if image.layers else [])

    out = tmp_path / "out"
    ok(fastsync("copy", f"docker-archive:{archive}:example.com/team/app:1.0", f"dir:{out}", backend=backend))
    raw = (out / "manifest.json").read_bytes()
    doc = json.loads(raw)
    assert doc["config"]["digest"] == image.config.digest
    assert [ly["digest"] for ly in doc["layers"]] == list(image.diff_ids)
    assert (out / image.config.digest.split(":", 1)[1]).read_bytes() == image.config.data
    for diff_id, data in layers.items():
        assert (out / diff_id.split(":", 1)[1]).read_bytes() == data
    # the manifest fastsync makes for the archive is skopeo's, byte for byte: the uncompressed layers
    # are labelled gzip, as containers/image labels them, and dir: keeps them as they are
    theirs = run_skopeo("inspect", "--raw", f"docker-archive:{archive}").stdout
    assert raw == theirs
    assert all(ly["mediaType"] == images.DOCKER_LAYER_GZIP for ly in doc["layers"])


def test_layers_from_a_docker_archive_can_be_compressed_again(sample_images, dir_of, tmp_path):
    image = sample_images["v2s2"]
    archive = tmp_path / "a.tar"
    ok(fastsync("copy", f"dir:{dir_of(image)}", f"docker-archive:{archive}"))
    ok(fastsync("copy", "-q", "--dest-compress", f"docker-archive:{archive}", f"dir:{tmp_path / 'gz'}"))
    doc = json.loads((tmp_path / "gz" / "manifest.json").read_bytes())
    assert [ly["mediaType"] for ly in doc["layers"]] == [images.DOCKER_LAYER_GZIP] * len(image.layers)
    got = [sha(gzip.decompress((tmp_path / "gz" / ly["digest"].split(":", 1)[1]).read_bytes())) for ly in doc["layers"]]
    assert got == list(image.diff_ids)


def test_skopeo_reads_fastsync_docker_archive(sample_images, seeded_registry, tmp_path, run_skopeo):
    image = sample_images["multiarch"]
    repo, tag = images.sample_repo("multiarch")
    archive = tmp_path / "m.tar"
    ok(fastsync("copy", "--src-tls-verify=false", f"docker://{seeded_registry.host}/{repo}:{tag}",
                f"docker-archive:{archive}:mirror/app:2"))          # the host's (amd64) instance
    amd64 = image.children[0]
    theirs = json.loads(run_skopeo("inspect", f"docker-archive:{archive}").stdout)
    ours = json.loads(ok(fastsync("inspect", f"docker-archive:{archive}:mirror/app:2")).stdout)
    assert theirs["Layers"] == ours["Layers"] == list(amd64.diff_ids)
    assert {k: ours.get(k) for k in theirs if k != "Digest"} == {k: v for k, v in theirs.items() if k != "Digest"}
    assert ours["Name"] == "docker.io/mirror/app" and theirs["Architecture"] == "amd64"
    run_skopeo("copy", f"docker-archive:{archive}:mirror/app:2", f"dir:{tmp_path / 'check'}")
    for diff_id, data in uncompressed(amd64).items():
        assert (tmp_path / "check" / diff_id.split(":", 1)[1]).read_bytes() == data
    legacy = [n for n in members(archive) if n.endswith("/json")]
    assert len(legacy) == len(amd64.layers)


def test_fastsync_reads_skopeo_docker_archive(sample_images, dir_of, tmp_path, run_skopeo):
    archive = tmp_path / "s.tar"
    run_skopeo("copy", f"dir:{dir_of(sample_images['oci'])}", f"docker-archive:{archive}:made/by:skopeo")
    ok(fastsync("copy", f"docker-archive:{archive}:made/by:skopeo", f"dir:{tmp_path / 'ours'}"))
    run_skopeo("copy", f"docker-archive:{archive}:made/by:skopeo", f"dir:{tmp_path / 'theirs'}")
    ours = {p.name: p.read_bytes() for p in (tmp_path / "ours").iterdir()}
    theirs = {p.name: p.read_bytes() for p in (tmp_path / "theirs").iterdir()}
    ours["manifest.json"] = ours["manifest.json"].replace(b".diff.tar\"", b".diff.tar.gzip\"")  # see above
    assert ours == theirs and len(ours) == 6


def test_docker_save_style_archive_with_compressed_layers(sample_images, tmp_path):
    """`docker save` of older daemons and other tools store `<id>/layer.tar` files, some gzip'd;
    a whole archive may be gzip'd too. Layers come out decompressed, under their diff_ids."""
    image = sample_images["shared"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        paths = []
        for i, layer in enumerate(image.layers):
            paths.append(f"layer{i}/layer.tar")
            add(paths[-1], layer.data if i == 0 else gzip.decompress(layer.data))   # gzip'd and plain
        add("config.json", image.config.data)
        add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["old/style:1", "old/style:2"],
                                          "Layers": paths}]).encode())
    archive = tmp_path / "saved.tar.gz"
    archive.write_bytes(gzip.compress(buf.getvalue()))
    ok(fastsync("copy", f"docker-archive:{archive}:old/style:2", f"dir:{tmp_path / 'out'}"))
    for diff_id, data in uncompressed(image).items():
        assert (tmp_path / "out" / diff_id.split(":", 1)[1]).read_bytes() == data
    assert (tmp_path / "out" / image.config.digest.split(":", 1)[1]).read_bytes() == image.config.data


def test_docker_archive_refuses_an_index_and_an_existing_archive(sample_images, dir_of, tmp_path):
    archive = tmp_path / "a.tar"
    proc = fastsync("copy", "--all", f"dir:{dir_of(sample_images['multiarch'])}", f"docker-archive:{archive}")
    assert_one_line_error(proc, "docker-archive", code=1)
    assert not archive.exists()
    no_leftovers(tmp_path)
    ok(fastsync("copy", f"dir:{dir_of(sample_images['v2s2'])}", f"docker-archive:{archive}"))
    before = archive.read_bytes()
    proc = fastsync("copy", f"dir:{dir_of(sample_images['oci'])}", f"docker-archive:{archive}")
    assert_one_line_error(proc, "doesn't support modifying existing images", code=1)
    assert archive.read_bytes() == before


def test_a_bad_blob_leaves_no_archive(sample_images, dir_of, tmp_path):
    src = dir_of(sample_images["v2s2"])
    layer = src / sample_images["v2s2"].layers[1].digest.split(":", 1)[1]
    data = bytearray(layer.read_bytes())
    data[100] ^= 0xFF
    layer.write_bytes(bytes(data))
    for dest in (f"docker-archive:{tmp_path / 'd.tar'}", f"oci-archive:{tmp_path / 'o.tar'}:x"):
        proc = fastsync("copy", "-q", f"dir:{src}", dest)
        assert_one_line_error(proc, code=1)
    assert not (tmp_path / "d.tar").exists() and not (tmp_path / "o.tar").exists()
    no_leftovers(tmp_path)


def test_a_blob_corrupted_in_flight_leaves_no_archive(registry, tamper_proxy, sample_images, dir_of, tmp_path):
    """The layer fails verification while it streams into the archive: the copy fails with the
    digests and neither the archive nor a temp file remains."""
    repo = f"tamper/{uuid.uuid4().hex[:8]}"
    ok(fastsync("copy", "-q", "--dest-tls-verify=false", f"dir:{dir_of(sample_images['v2s2'])}",
                f"docker://{registry.host}/{repo}:1"))
    layer = sample_images["v2s2"].layers[1].digest
    tamper_proxy.corrupt_blobs(layer, offset=100)
    for dest in (f"docker-archive:{tmp_path / 'd.tar'}", f"oci-archive:{tmp_path / 'o.tar'}"):
        proc = fastsync("copy", "-q", "--retry-times", "0", "--src-tls-verify=false",
                        f"docker://{tamper_proxy.host}/{repo}:1", dest)
        assert_one_line_error(proc, "digest mismatch", layer, code=1)
    assert tamper_proxy.tampered
    assert not (tmp_path / "d.tar").exists() and not (tmp_path / "o.tar").exists()
    no_leftovers(tmp_path)


# ---- oci-archive ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["multiarch", "oci"])
def test_registry_to_oci_archive_to_registry(name, sample_images, seeded_registry, registry, tmp_path, run_skopeo):
    image = sample_images[name]
    repo, tag = images.sample_repo(name)
    archive = tmp_path / "o.tar"
    ok(fastsync("copy", "--all", "--src-tls-verify=false", f"docker://{seeded_registry.host}/{repo}:{tag}",
                f"oci-archive:{archive}:release-1"))
    no_leftovers(tmp_path)
    names = members(archive)
    assert {"oci-layout", "index.json"} <= set(names)
    index = json.loads(read_member(archive, "index.json"))
    assert index["manifests"][0]["digest"] == image.digest
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "release-1"}
    dest = f"docker://{registry.host}/archived/{uuid.uuid4().hex[:8]}:t"
    ok(fastsync("copy", "--all", "--dest-tls-verify=false", f"oci-archive:{archive}:release-1", dest))
    run_skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", dest, f"dir:{tmp_path / 'check'}")
    assert_dir_holds(tmp_path / "check", image)


def test_skopeo_reads_fastsync_oci_archive(sample_images, dir_of, tmp_path, run_skopeo):
    archive = tmp_path / "o.tar"
    ok(fastsync("copy", "--all", f"dir:{dir_of(sample_images['multiarch'])}", f"oci-archive:{archive}:m"))
    run_skopeo("copy", "--all", "--preserve-digests", f"oci-archive:{archive}:m", f"dir:{tmp_path / 'check'}")
    assert_dir_holds(tmp_path / "check", sample_images["multiarch"])
    # a Docker image is converted for the archive, as for oci: (config and layers kept)
    ok(fastsync("copy", f"dir:{dir_of(sample_images['v2s2'])}", f"oci-archive:{tmp_path / 'v.tar'}"))
    run_skopeo("copy", "--preserve-digests", f"oci-archive:{tmp_path / 'v.tar'}", f"dir:{tmp_path / 'v'}")
    assert_dir_holds(tmp_path / "v", sample_images["v2s2"], converted=True)


def test_fastsync_reads_skopeo_oci_archive(sample_images, dir_of, tmp_path, run_skopeo):
    archive = tmp_path / "s.tar"
    run_skopeo("copy", "--all", "--preserve-digests", f"dir:{dir_of(sample_images['multiarch'])}",
               f"oci-archive:{archive}:m")
    ok(fastsync("copy", "--all", f"oci-archive:{archive}:m", f"dir:{tmp_path / 'out'}"))
    assert_dir_holds(tmp_path / "out", sample_images["multiarch"])
    ours = json.loads(ok(fastsync("inspect", f"oci-archive:{archive}")).stdout)
    theirs = json.loads(run_skopeo("inspect", f"oci-archive:{archive}").stdout)
    assert {k: ours.get(k) for k in theirs} == theirs and ours["Digest"] == sample_images["multiarch"].digest


# ---- bad input -----------------------------------------------------------------------------------

def test_bad_archives_give_one_line_errors(sample_images, dir_of, tmp_path):
    (tmp_path / "text.tar").write_text("not a tar archive\n")
    (tmp_path / "empty.tar").write_bytes(b"")
    docker = tmp_path / "d.tar"
    oci = tmp_path / "o.tar"
    ok(fastsync("copy", f"dir:{dir_of(sample_images['v2s2'])}", f"docker-archive:{docker}:app:1"))
    ok(fastsync("copy", f"dir:{dir_of(sample_images['oci'])}", f"oci-archive:{oci}:one"))
    cases = [
        (f"docker-archive:{tmp_path / 'missing.tar'}", "no such file", 1),
        (f"oci-archive:{tmp_path / 'missing.tar'}", "no such file", 1),
        (f"docker-archive:{tmp_path / 'text.tar'}", "not a valid tar archive", 1),
        (f"oci-archive:{tmp_path / 'empty.tar'}", "not a valid tar archive", 1),
        (f"docker-archive:{docker}:app:2", 'Tag "docker.io/library/app:2" not found', 1),
        (f"docker-archive:{docker}:@1", "Invalid source index @1", 1),
        (f"oci-archive:{oci}:two", "no image named 'two'", 1),
        (f"oci-archive:{docker}", "not an OCI archive", 1),
        (f"docker-archive:{oci}", "not a docker archive", 1),
        (f"docker-archive:{docker}:App:1", "lowercase", 1),
    ]
    for name, fragment, code in cases:
        assert_one_line_error(fastsync("inspect", name), fragment, code=code)
    assert_one_line_error(fastsync("copy", f"dir:{dir_of(sample_images['v2s2'])}", f"docker-archive:{docker}:@0"),
                          "cannot name a manifest index", code=1)
