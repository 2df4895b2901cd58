"""One round-trip suite, run over every transport pair: copy with the real CLI, read the result back
with skopeo (an independent reader) and compare manifests and blob bytes with the generated image."""
from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path

import pytest

from support import images
from helpers import assert_dir_holds, assert_one_line_error, fastsync, ok

SOURCES = ["dir", "oci", "docker"]
DESTS = ["dir", "oci", "docker"]
IMAGES = ["v2s2", "oci", "zstd", "multiarch", "list", "empty", "schema1", "shared"]
DOCKER_TYPES = {images.DOCKER_V2S2, images.DOCKER_LIST}


def _cases():
    for src, dst, name in itertools.product(SOURCES, DESTS, IMAGES):
        if name == "schema1" and "oci" in (src, dst):
            continue  # schema 1 cannot live in an OCI layout (see test_schema1_to_oci_is_refused)
        backends = ["native", "python"] if name in ("v2s2", "multiarch") else ["native"]
        for backend in backends:
            yield pytest.param(src, dst, name, backend, id=f"{src}-{dst}-{name}-{backend}")


def make_source(kind: str, name: str, image: images.SampleImage, tmp: Path, seeded) -> tuple[str, list[str]]:
    if kind == "dir":
        images.write_dir(image, tmp / "src")
        return f"dir:{tmp / 'src'}", []
    if kind == "oci":
        images.write_oci(image, tmp / "srclayout", "img", allow_docker=True)
        return f"oci:{tmp / 'srclayout'}:img", []
    repo, tag = images.sample_repo(name)
    return f"docker://{seeded.host}/{repo}:{tag}", ["--src-tls-verify=false"]


def make_dest(kind: str, tmp: Path, registry) -> tuple[str, list[str]]:
    if kind == "dir":
        return f"dir:{tmp / 'out'}", []
    if kind == "oci":
        return f"oci:{tmp / 'layout'}:out", []
    return f"docker://{registry.host}/roundtrip/{uuid.uuid4().hex[:12]}:t", ["--dest-tls-verify=false"]


@pytest.mark.parametrize("src_kind,dst_kind,name,backend", list(_cases()))
def test_round_trip(src_kind, dst_kind, name, backend, sample_images, seeded_registry, registry, run_skopeo,
                    tmp_path):
    image = sample_images[name]
    src, src_flags = make_source(src_kind, name, image, tmp_path, seeded_registry)
    dst, dst_flags = make_dest(dst_kind, tmp_path, registry)
    ok(fastsync("copy", "--all", *src_flags, *dst_flags, src, dst, backend=backend))

    converted = dst_kind == "oci" and image.media_type in DOCKER_TYPES
    if dst_kind == "dir":
        check = tmp_path / "out"
    else:  # read it back with skopeo, keeping bytes as they are
        check = tmp_path / "check"
        flags = ["--src-tls-verify=false"] if dst_kind == "docker" else []
        run_skopeo("copy", "--all", "--preserve-digests", *flags, dst, f"dir:{check}")
    if name == "schema1" and "docker" in (src_kind, dst_kind):
        # a registry re-signs schema 1 manifests; the digest (of the signed payload) must survive
        digest = run_skopeo("manifest-digest", str(check / "manifest.json")).stdout.decode().strip()
        assert digest == image.digest
        for d, data in image.all_blobs().items():
            assert (check / d.split(":", 1)[1]).read_bytes() == data
        return
    assert_dir_holds(check, image, converted=converted)


def test_system_platform_copies_only_the_hosts_instance(sample_images, seeded_registry, tmp_path):
    repo, tag = images.sample_repo("multiarch")
    ok(fastsync("copy", "--src-tls-verify=false", f"docker://{seeded_registry.host}/{repo}:{tag}",
                f"dir:{tmp_path / 'one'}"))
    amd64 = sample_images["multiarch"].children[0]
    assert_dir_holds(tmp_path / "one", amd64)
    assert not list((tmp_path / "one").glob("*.manifest.json"))


def test_override_arch_selects_another_instance(sample_images, seeded_registry, tmp_path):
    repo, tag = images.sample_repo("list")
    ok(fastsync("--override-arch", "arm", "--override-variant", "v7", "copy", "--src-tls-verify=false",
                f"docker://{seeded_registry.host}/{repo}:{tag}", f"dir:{tmp_path / 'arm'}"))
    assert_dir_holds(tmp_path / "arm", sample_images["list"].children[1])


def test_format_v2s2_converts_an_oci_image(sample_images, tmp_path, dir_of):
    src = dir_of(sample_images["oci"])
    ok(fastsync("copy", "--format", "v2s2", f"dir:{src}", f"dir:{tmp_path / 'out'}"))
    doc = json.loads((tmp_path / "out" / "manifest.json").read_bytes())
    assert doc["mediaType"] == images.DOCKER_V2S2
    assert [ly["digest"] for ly in doc["layers"]] == [b.digest for b in sample_images["oci"].layers]


def test_preserve_digests_refuses_a_conversion(sample_images, tmp_path, dir_of):
    src = dir_of(sample_images["v2s2"])
    proc = fastsync("copy", "--preserve-digests", f"dir:{src}", f"oci:{tmp_path / 'l'}:x")
    assert_one_line_error(proc, "--preserve-digests", code=1)
    assert not (tmp_path / "l" / "index.json").exists()


def test_schema1_to_oci_is_refused(sample_images, tmp_path, dir_of):
    src = dir_of(sample_images["schema1"])
    proc = fastsync("copy", f"dir:{src}", f"oci:{tmp_path / 'l'}:x")
    assert_one_line_error(proc, "schema 1", code=1)
    assert not (tmp_path / "l" / "index.json").exists()


def test_oci_layout_keeps_other_refs_when_adding_one(sample_images, tmp_path, dir_of, run_skopeo):
    layout = tmp_path / "layout"
    ok(fastsync("copy", f"dir:{dir_of(sample_images['oci'])}", f"oci:{layout}:first"))
    ok(fastsync("copy", f"dir:{dir_of(sample_images['zstd'])}", f"oci:{layout}:second"))
    ok(fastsync("copy", f"dir:{dir_of(sample_images['zstd'])}", f"oci:{layout}:first"))  # retag first
    index = json.loads((layout / "index.json").read_bytes())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert refs == {"first": sample_images["zstd"].digest, "second": sample_images["zstd"].digest}
    raw = run_skopeo("inspect", "--raw", f"oci:{layout}:second").stdout
    assert raw == sample_images["zstd"].manifest


def test_dir_destination_replaces_an_earlier_image(sample_images, tmp_path, dir_of):
    out = tmp_path / "out"
    ok(fastsync("copy", f"dir:{dir_of(sample_images['v2s2'])}", f"dir:{out}"))
    ok(fastsync("copy", f"dir:{dir_of(sample_images['oci'])}", f"dir:{out}"))
    assert_dir_holds(out, sample_images["oci"])
    stale = set(sample_images["v2s2"].all_blobs()) - set(sample_images["oci"].all_blobs())
    assert not any((out / d.split(":", 1)[1]).exists() for d in stale)


def test_dir_destination_refuses_a_non_image_directory(sample_images, tmp_path, dir_of):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    proc = fastsync("copy", f"dir:{dir_of(sample_images['v2s2'])}", f"dir:{precious}")
    assert_one_line_error(proc, "not a containers image directory", code=1)
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]


def test_shared_layers_are_mounted_within_one_registry(sample_images, seeded_registry, tmp_path):
    """Copying between repositories of one registry mounts blobs instead of re-uploading them."""
    repo, tag = images.sample_repo("v2s2")
    dst = f"docker://{seeded_registry.host}/mounted/{uuid.uuid4().hex[:8]}:t"
    proc = ok(fastsync("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                       f"docker://{seeded_registry.host}/{repo}:{tag}", dst))
    assert proc.stdout.decode().count("Copying blob") == 2
    repo_path = dst.split("/", 3)[3].rsplit(":", 1)[0]
    uploads = [ln for ln in Path(seeded_registry.log_path).read_text().splitlines()
               if f'uri="/v2/{repo_path}/blobs/uploads/' in ln and ("method=PUT" in ln or "method=PATCH" in ln)]
    assert uploads == []          # every blob mounted or found there: no upload
