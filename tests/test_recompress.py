"""--dest-compress / --dest-decompress / --dest-compress-format: right media types, right digests,
images skopeo reads and decompresses back to the config's diff_ids, and a remembered result."""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from fastsync import api
from fastsync.options import CopyOptions
from fastsync.store.blobs import Store
from support import images
from helpers import assert_one_line_error, fastsync, ok


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_bytes())


def _config(path: Path) -> dict:
    return json.loads((path / _manifest(path)["config"]["digest"].split(":")[1]).read_bytes())


def _assert_layers_are_diff_ids(path: Path) -> None:
    """Every (uncompressed) layer in a skopeo dir hashes to the config's diff_id at its position."""
    man, conf = _manifest(path), _config(path)
    digests = ["sha256:" + hashlib.sha256((path / ly["digest"].split(":")[1]).read_bytes()).hexdigest()
               for ly in man["layers"]]
    assert digests == [ly["digest"] for ly in man["layers"]] == conf["rootfs"]["diff_ids"]


@pytest.mark.parametrize("backend", ["native", "python"])
def test_zstd_through_a_registry_is_read_back_by_skopeo(backend, sample_images, seeded_registry, registry,
                                                          run_skopeo, tmp_path):
    repo, tag = images.sample_repo("v2s2")
    dst = f"docker://{registry.host}/zstd/{uuid.uuid4().hex[:8]}:1"
    ok(fastsync("copy", "--dest-compress-format", "zstd", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{seeded_registry.host}/{repo}:{tag}", dst, backend=backend))
    raw = json.loads(run_skopeo("inspect", "--raw", "--tls-verify=false", dst).stdout)
    assert raw["mediaType"] == images.OCI_MANIFEST          # zstd forces OCI, as in skopeo
    assert {ly["mediaType"] for ly in raw["layers"]} == {images.OCI_LAYER_ZSTD}
    assert raw["config"]["digest"] == sample_images["v2s2"].config.digest
    run_skopeo("copy", "--src-tls-verify=false", "--dest-decompress", dst, f"dir:{tmp_path / 'plain'}")
    _assert_layers_are_diff_ids(tmp_path / "plain")


def test_decompress_then_compress_round_trips_to_the_same_diff_ids(sample_images, dir_of, tmp_path, run_skopeo):
    src = dir_of(sample_images["zstd"])
    ok(fastsync("copy", "--dest-decompress", f"dir:{src}", f"dir:{tmp_path / 'plain'}"))
    man = _manifest(tmp_path / "plain")
    assert {ly["mediaType"] for ly in man["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    _assert_layers_are_diff_ids(tmp_path / "plain")
    ok(fastsync("copy", "--dest-compress", f"dir:{tmp_path / 'plain'}", f"dir:{tmp_path / 'gz'}"))
    assert {ly["mediaType"] for ly in _manifest(tmp_path / "gz")["layers"]} == {images.OCI_LAYER_GZIP}
    run_skopeo("copy", "--dest-decompress", f"dir:{tmp_path / 'gz'}", f"dir:{tmp_path / 'check'}")
    _assert_layers_are_diff_ids(tmp_path / "check")


def test_dest_compress_alone_keeps_compressed_layers(sample_images, dir_of, tmp_path):
    src = dir_of(sample_images["zstd"])
    ok(fastsync("copy", "--dest-compress", f"dir:{src}", f"dir:{tmp_path / 'out'}"))
    assert (tmp_path / "out" / "manifest.json").read_bytes() == sample_images["zstd"].manifest


def test_docker_v2s2_decompressed_uses_the_docker_tar_type(sample_images, dir_of, tmp_path):
    ok(fastsync("copy", "--dest-decompress", f"dir:{dir_of(sample_images['v2s2'])}", f"dir:{tmp_path / 'out'}"))
    man = _manifest(tmp_path / "out")
    assert man["mediaType"] == images.DOCKER_V2S2
    assert {ly["mediaType"] for ly in man["layers"]} == {"application/vnd.docker.image.rootfs.diff.tar"}
    _assert_layers_are_diff_ids(tmp_path / "out")


def test_multiarch_list_to_zstd_becomes_an_oci_index(sample_images, seeded_registry, tmp_path):
    repo, tag = images.sample_repo("list")
    ok(fastsync("copy", "--all", "--dest-compress-format", "zstd", "--src-tls-verify=false",
                f"docker://{seeded_registry.host}/{repo}:{tag}", f"dir:{tmp_path / 'out'}"))
    index = _manifest(tmp_path / "out")
    assert index["mediaType"] == images.OCI_INDEX
    for entry in index["manifests"]:
        child = json.loads((tmp_path / "out" / f"{entry['digest'].split(':')[1]}.manifest.json").read_bytes())
        assert entry["mediaType"] == child["mediaType"] == images.OCI_MANIFEST
        assert {ly["mediaType"] for ly in child["layers"]} == {images.OCI_LAYER_ZSTD}


@pytest.mark.parametrize("args,fragment", [
    (["--dest-decompress", "--dest-compress"], "conflicts"),
    (["--dest-compress-format", "zstd", "--dest-compress-level", "30"], "out of range"),
    (["--format", "v2s2", "--dest-compress-format", "zstd"], "zstd layers cannot be stored"),
    (["--preserve-digests", "--dest-compress-format", "zstd"], "--preserve-digests"),
])
def test_conflicting_compression_flags(args, fragment, sample_images, dir_of, tmp_path):
    proc = fastsync("copy", "-q", *args, f"dir:{dir_of(sample_images['v2s2'])}", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "out").exists()


def test_recompressed_layer_is_remembered_by_the_store(sample_images, dir_of, tmp_path):
    """A second run takes the zstd layers from the store's memo: the source layers are not even read."""
    src = dir_of(sample_images["v2s2"])
    store = Store(str(tmp_path / "cache"))
    opts = CopyOptions(dest_compress_format="zstd")
    first = api.copy_image(f"dir:{src}", f"dir:{tmp_path / 'a'}", opts, store=store)
    for layer in sample_images["v2s2"].layers:           # make the source layers unreadable garbage
        (src / layer.hex).write_bytes(b"garbage")
    second = api.copy_image(f"dir:{src}", f"dir:{tmp_path / 'b'}", opts, store=store)
    assert first.digest == second.digest
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    layer = _manifest(tmp_path / "b")["layers"][0]["digest"].split(":")[1]
    assert (tmp_path / "b" / layer).stat().st_ino == (tmp_path / "cache" / "blobs" / "sha256" / layer).stat().st_ino


@pytest.mark.parametrize("fmt,seed", [("v2s2", 181), ("oci", 182)])
def test_destinations_that_want_compressed_layers_get_them_as_skopeo_gives_them(
        fmt, seed, dir_of, registry, run_skopeo, tmp_path):
    """containers/image's DesiredLayerCompression: a registry and an OCI layout get uncompressed
    layers gzipped (new digests, gzip media types); dir: keeps them as they are. The same copies
    through skopeo give the same media types and the same diff_ids. (Layers of their own: skopeo's
    blob-info cache, shared by every test's skopeo, would otherwise offer it other tests' zstd
    versions of the sample layers, which skopeo 1.9.3 then fails to substitute.)"""
    plain = tmp_path / "plain"
    image = images.make_image(seed, layers=2, fmt=fmt)
    ok(fastsync("copy", "-q", "--dest-decompress", f"dir:{dir_of(image)}", f"dir:{plain}"))
    ok(fastsync("copy", "-q", f"dir:{plain}", f"dir:{tmp_path / 'same'}"))
    assert _manifest(tmp_path / "same") == _manifest(plain)
    repo = f"docker://{registry.host}/wants-gzip/{uuid.uuid4().hex[:8]}"
    for who, tag in (("fastsync", "f"), ("skopeo", "s")):
        run = (lambda *a: ok(fastsync(*a))) if who == "fastsync" else (lambda *a: run_skopeo(*a))
        # --format v2s2: a loaded registry may refuse a first push, and skopeo then falls back to schema 1
        run("copy", "-q", "--format", "v2s2", "--dest-tls-verify=false", f"dir:{plain}", f"{repo}:{tag}")
        run("copy", "-q", f"dir:{plain}", f"oci:{tmp_path / 'layout'}:{tag}")
        run_skopeo("copy", "-q", "--src-tls-verify=false", f"{repo}:{tag}", f"dir:{tmp_path / ('reg-' + tag)}")
        run_skopeo("copy", "-q", f"oci:{tmp_path / 'layout'}:{tag}", f"dir:{tmp_path / ('oci-' + tag)}")
    for where in ("reg", "oci"):
        ours, theirs = _manifest(tmp_path / f"{where}-f"), _manifest(tmp_path / f"{where}-s")
        assert "layers" in ours and "layers" in theirs, (where, ours, theirs)
        assert [ly["mediaType"] for ly in ours["layers"]] == [ly["mediaType"] for ly in theirs["layers"]]
        assert all(ly["mediaType"].endswith("gzip") for ly in ours["layers"])
        for ly in ours["layers"]:
            assert (tmp_path / f"{where}-f" / ly["digest"].split(":")[1]).read_bytes()[:2] == b"\x1f\x8b"
        assert _config(tmp_path / f"{where}-f")["rootfs"] == _config(tmp_path / f"{where}-s")["rootfs"]
