"""Deterministic, small but real container images for tests, benchmarks and demos.

Every function here is pure: the same arguments give byte-identical images on every
run and every machine (layer tars have fixed metadata and sorted entries, gzip has
mtime=0 and no file name, zstd has a fixed level, JSON is serialised with a fixed
key order, the schema-1 signature uses a key derived from the seed and RFC 6979
deterministic ECDSA).

Import everything from here; the code lives in ``imagemodel`` (model, layer content),
``schema1`` (signed schema 1) and ``layouts`` (dir:/oci: writers, skopeo seeding).

Public API
----------
``Blob(digest, data, media_type)``
    One blob (config or layer).
``SampleImage(manifest, media_type, digest, blobs, children=(), platform=None, diff_ids=())``
    ``blobs`` is (config, *layers) for a v2s2/OCI image, the layers for schema 1, and
    empty for an index (the blobs live in ``children``). ``platform`` is
    ``(os, architecture, variant)``; ``diff_ids`` are the uncompressed layer digests.
    ``all_blobs()`` -> {digest: bytes} including the children's; ``config`` and
    ``layers`` properties; ``manifests()`` -> {digest: manifest bytes} of self and children.
``make_image(seed, layers=2, layer_size=64*1024, fmt="v2s2"|"oci", compression="gzip"|"zstd",
             arch="amd64", os="linux", variant=None, labels=None, base_seed=None, base_layers=0)``
    ``base_seed``/``base_layers``: the first ``base_layers`` layers are the ones
    ``make_image(base_seed, layer_size=...)`` would produce, so images can share layers.
``make_index(children, fmt="oci"|"v2s2")``
    OCI image index or Docker manifest list with platform fields.
``make_schema1(seed, name, tag, arch="amd64")``
    Signed schema 1 (libtrust JWS, ECDSA P-256) that distribution verifies and accepts
    on PUT. Note distribution stores only the signed payload and re-signs it with its own
    key on every GET: compare schema 1 by ``manifest_digest``, never by bytes, after a registry.
``sample_set()`` -> dict of the standard images: v2s2, oci, zstd, multiarch, list,
    schema1 (name ``SCHEMA1_NAME``, tag ``SCHEMA1_TAG``), empty, shared.
``sample_repo(name)`` -> (repository, tag) where the sample set is pushed by the fixtures
    (``samples/<name>``, ``latest``; schema1: ``SCHEMA1_NAME``, ``SCHEMA1_TAG``).
``write_dir(image, path)``
    skopeo's ``dir:`` layout as skopeo 1.9 writes it (see the function).
``write_oci(image, layout, ref=None, allow_docker=False)``
    OCI image layout; adds/replaces the index.json entry for ``ref`` (written atomically).
``push_with_skopeo(image_or_dir, dest, creds=None, tls_verify=False, cert_dir=None)``
    Seed a registry with ``skopeo copy --all --preserve-digests``.
``manifest_digest(manifest_bytes)``
    Digest as registries compute it (schema 1 signed: signatures stripped).
"""
from __future__ import annotations

import functools
import json
from typing import Optional, Sequence

from .imagemodel import (
    CREATED,
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LIST,
    DOCKER_V2S1_SIGNED,
    DOCKER_V2S2,
    EMPTY_GZIP_LAYER,
    MTIME,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    SCHEMA1_NAME,
    SCHEMA1_TAG,
    Blob,
    SampleImage,
    canonical_json,
    layer_seed,
    make_layer,
    sha256_digest,
)
from .layouts import push_with_skopeo, skopeo_path, write_dir, write_oci
from .schema1 import libtrust_key_id, make_schema1, manifest_digest

__all__ = [
    "CREATED", "DOCKER_CONFIG", "DOCKER_LAYER_GZIP", "DOCKER_LIST", "DOCKER_V2S1_SIGNED", "DOCKER_V2S2",
    "EMPTY_GZIP_LAYER", "MTIME", "OCI_CONFIG", "OCI_INDEX", "OCI_LAYER_GZIP", "OCI_LAYER_ZSTD", "OCI_MANIFEST",
    "SCHEMA1_NAME", "SCHEMA1_TAG", "Blob", "SampleImage", "libtrust_key_id", "make_image", "make_index",
    "make_layer", "make_schema1", "manifest_digest", "push_with_skopeo", "sample_repo", "sample_set",
    "sha256_digest", "skopeo_path", "write_dir", "write_oci",
]


def make_image(
    seed: int,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    fmt: str = "v2s2",
    compression: str = "gzip",
    arch: str = "amd64",
    os: str = "linux",
    variant: Optional[str] = None,
    labels: Optional[dict[str, str]] = None,
    base_seed: Optional[int] = None,
    base_layers: int = 0,
) -> SampleImage:
    if fmt not in ("v2s2", "oci"):
        raise ValueError(f"fmt must be 'v2s2' or 'oci', not {fmt!r}")
    if fmt == "v2s2" and compression != "gzip":
        raise ValueError("Docker v2s2 layers must be gzip")
    layer_mt = {("v2s2", "gzip"): DOCKER_LAYER_GZIP, ("oci", "gzip"): OCI_LAYER_GZIP,
                ("oci", "zstd"): OCI_LAYER_ZSTD}[(fmt, compression)]
    layer_blobs: list[Blob] = []
    diff_ids: list[str] = []
    history: list[dict] = []
    for i in range(layers):
        src_seed = base_seed if (base_seed is not None and i < base_layers) else seed
        raw, comp = make_layer(layer_seed(src_seed, i), layer_size, compression)
        layer_blobs.append(Blob(sha256_digest(comp), comp, layer_mt))
        diff_ids.append(sha256_digest(raw))
        history.append({"created": CREATED,
                        "created_by": f"/bin/sh -c #(nop) ADD file:layer-{src_seed}-{i} in / "})
    cmd = ["/bin/sh", "-c", f"echo fastsync sample {seed}"]
    if not layers:
        history.append({"created": CREATED, "created_by": f'/bin/sh -c #(nop)  CMD {json.dumps(cmd)}',
                        "empty_layer": True})
    config: dict = {"architecture": arch, "os": os}
    if variant:
        config["variant"] = variant
    config["created"] = CREATED
    config["config"] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"FASTSYNC_SAMPLE={seed}"],
        "Cmd": cmd,
        "Labels": dict(sorted((labels or {"org.fastsync.sample": str(seed)}).items())),
    }
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = history
    config_bytes = canonical_json(config)
    config_mt = DOCKER_CONFIG if fmt == "v2s2" else OCI_CONFIG
    config_blob = Blob(sha256_digest(config_bytes), config_bytes, config_mt)

    def desc(b: Blob) -> dict:
        return {"mediaType": b.media_type, "size": b.size, "digest": b.digest}

    if fmt == "v2s2":
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_V2S2, "config": desc(config_blob),
                    "layers": [desc(b) for b in layer_blobs]}
        data, mt = canonical_json(manifest, indent=3), DOCKER_V2S2
    else:
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(config_blob),
                    "layers": [desc(b) for b in layer_blobs]}
        data, mt = canonical_json(manifest), OCI_MANIFEST
    return SampleImage(manifest=data, media_type=mt, digest=sha256_digest(data),
                       blobs=(config_blob, *layer_blobs), platform=(os, arch, variant),
                       diff_ids=tuple(diff_ids))


def make_index(children: Sequence[SampleImage], fmt: str = "oci") -> SampleImage:
    if fmt not in ("oci", "v2s2"):
        raise ValueError(f"fmt must be 'oci' or 'v2s2', not {fmt!r}")
    entries = []
    for child in children:
        if child.platform is None:
            raise ValueError("index children must be single-platform images")
        os_, arch, variant = child.platform
        platform: dict = {"architecture": arch, "os": os_}
        if variant:
            platform["variant"] = variant
        entries.append({"mediaType": child.media_type, "size": len(child.manifest),
                        "digest": child.digest, "platform": platform})
    if fmt == "oci":
        data, mt = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}), OCI_INDEX
    else:
        data = canonical_json({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}, indent=3)
        mt = DOCKER_LIST
    return SampleImage(manifest=data, media_type=mt, digest=sha256_digest(data), blobs=(),
                       children=tuple(children))


def sample_set() -> dict[str, SampleImage]:
    """The standard test images (built once per process; the images are immutable)."""
    return dict(_build_sample_set())


@functools.lru_cache(maxsize=1)
def _build_sample_set() -> dict[str, SampleImage]:
    return {
        "v2s2": make_image(1, layers=2, fmt="v2s2"),
        "oci": make_image(2, layers=3, fmt="oci"),
        "zstd": make_image(3, layers=2, fmt="oci", compression="zstd"),
        "multiarch": make_index([
            make_image(4, layers=2, fmt="oci", arch="amd64"),
            make_image(5, layers=2, fmt="oci", arch="arm64", variant="v8"),
        ], fmt="oci"),
        "list": make_index([
            make_image(6, layers=1, fmt="v2s2", arch="amd64"),
            make_image(7, layers=1, fmt="v2s2", arch="arm", variant="v7"),
        ], fmt="v2s2"),
        "schema1": make_schema1(8, SCHEMA1_NAME, SCHEMA1_TAG),
        "empty": make_image(9, layers=0, fmt="v2s2"),
        "shared": make_image(10, layers=2, fmt="v2s2", base_seed=1, base_layers=1),
    }


def sample_repo(name: str) -> tuple[str, str]:
    if name == "schema1":
        return SCHEMA1_NAME, SCHEMA1_TAG
    return f"samples/{name}", "latest"
