"""Manifest parsing, digests, platform choice and format conversion (no I/O)."""
from __future__ import annotations

import json

import pytest

from fastsync import manifest as mf
from fastsync import model as m
from fastsync.errors import ManifestError, PlatformNotFound, Unsupported
from fastsync.model import Digest, Platform


def test_parse_keeps_bytes_and_derives_fields(sample_images):
    img = sample_images["v2s2"]
    man = mf.parse_manifest(img.manifest)
    assert man.raw == img.manifest and man.media_type == m.DOCKER_V2S2
    assert str(man.digest) == img.digest
    assert [str(d.digest) for d in man.blobs()] == [img.config.digest] + [b.digest for b in img.layers]


def test_schema1_digest_strips_the_signature(sample_images):
    img = sample_images["schema1"]
    man = mf.parse_manifest(img.manifest)
    assert man.media_type == m.DOCKER_V2S1_SIGNED
    assert str(mf.manifest_digest(img.manifest)) == img.digest != str(Digest.of(img.manifest))
    assert len(man.layers) == len(json.loads(img.manifest)["fsLayers"])


def test_media_type_is_guessed_when_missing():
    raw = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "0" * 64, "size": 2},
                      "layers": []}).encode()
    assert mf.parse_manifest(raw).media_type == m.OCI_MANIFEST
    assert mf.parse_manifest(b'{"schemaVersion":2,"manifests":[]}').media_type == m.OCI_INDEX


@pytest.mark.parametrize("raw,fragment", [
    (b"not json", "not valid JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"schemaVersion":2,"mediaType":"application/x-nope"}', "unsupported manifest type"),
    (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}', "missing"),
])
def test_bad_manifests_raise_manifest_error(raw, fragment):
    with pytest.raises(ManifestError, match=fragment):
        mf.parse_manifest(raw)


def test_platform_choice_prefers_exact_variant(sample_images):
    index = mf.parse_manifest(sample_images["multiarch"].manifest)
    amd = mf.choose_instance(index, Platform("linux", "amd64"))
    arm = mf.choose_instance(index, Platform("linux", "arm64", "v8"))
    assert [str(amd.digest), str(arm.digest)] == [c.digest for c in sample_images["multiarch"].children]
    assert mf.choose_instance(index, Platform("linux", "arm64")).digest == arm.digest
    lst = mf.parse_manifest(sample_images["list"].manifest)
    assert mf.choose_instance(lst, Platform("linux", "arm", "v7")).platform.variant == "v7"
    with pytest.raises(PlatformNotFound, match="architecture s390x"):
        mf.choose_instance(lst, Platform("linux", "s390x"))
    with pytest.raises(PlatformNotFound):
        mf.choose_instance(lst, Platform("linux", "arm", "v6"))   # a v7 image does not run on v6


def test_host_platform_honours_overrides():
    p = mf.host_platform("linux", "arm64", "v8")
    assert (p.os, p.architecture, p.variant) == ("linux", "arm64", "v8")
    assert mf.host_platform().os == "linux"


def test_docker_to_oci_conversion_keeps_blobs_and_round_trips(sample_images):
    man = mf.parse_manifest(sample_images["v2s2"].manifest)
    oci = mf.rewrite_image(man, m.OCI_MANIFEST)
    assert oci.media_type == m.OCI_MANIFEST and oci.config.media_type == m.OCI_CONFIG
    assert [d.digest for d in oci.layers] == [d.digest for d in man.layers]
    assert {d.media_type for d in oci.layers} == {m.OCI_LAYER_GZIP}
    back = mf.rewrite_image(oci, m.DOCKER_V2S2)
    assert json.loads(back.raw) == json.loads(man.raw)


def test_zstd_layers_cannot_become_v2s2(sample_images):
    man = mf.parse_manifest(sample_images["zstd"].manifest)
    with pytest.raises(Unsupported, match="cannot be stored in a Docker v2s2"):
        mf.rewrite_image(man, m.DOCKER_V2S2)


def test_index_rewrite_points_at_new_children(sample_images):
    lst = mf.parse_manifest(sample_images["list"].manifest)
    new = {d.digest: m.Descriptor(m.OCI_MANIFEST, Digest.of(b"x" + bytes([i])), 10 + i)
           for i, d in enumerate(lst.manifests)}
    out = mf.rewrite_index(lst, new, m.OCI_INDEX)
    assert out.media_type == m.OCI_INDEX
    assert [d.digest for d in out.manifests] == [new[d.digest].digest for d in lst.manifests]
    assert [d.platform for d in out.manifests] == [d.platform for d in lst.manifests]
