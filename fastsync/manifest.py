"""Parse manifests and indexes byte-exactly; digests, platform selection and format conversions."""
from __future__ import annotations

import base64
import json
import platform as _platform
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from fastsync import model as m
from fastsync.errors import ManifestError, PlatformNotFound, Unsupported
from fastsync.model import Descriptor, Digest, Platform


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest or index. `raw` is kept byte-exact; everything else is derived from it."""

    raw: bytes
    media_type: str
    digest: Digest
    config: Optional[Descriptor]
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    doc: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in m.INDEX_TYPES

    @property
    def is_schema1(self) -> bool:
        return self.media_type in m.SCHEMA1_TYPES

    def blobs(self) -> tuple[Descriptor, ...]:
        """Config (if any) followed by the unique layers, in manifest order."""
        seen: set[Digest] = set()
        out = []
        for d in ((self.config,) if self.config else ()) + self.layers:
            if d.digest not in seen:
                seen.add(d.digest)
                out.append(d)
        return tuple(out)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


def _b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def schema1_payload(raw: bytes, doc: Mapping[str, Any]) -> bytes:
    """The signed payload of a schema-1 manifest (what its digest is computed over)."""
    sigs = doc.get("signatures")
    if not sigs:
        return raw
    try:
        protected = json.loads(_b64url(sigs[0]["protected"]))
        length = int(protected["formatLength"])
        tail = _b64url(protected["formatTail"])
    except (KeyError, ValueError, TypeError, IndexError, AttributeError):
        raise ManifestError("malformed schema 1 signature: signatures[0].protected must be base64url JSON "
                            "holding formatLength and formatTail") from None
    return raw[:length] + tail


def guess_media_type(doc: Mapping[str, Any]) -> str:
    if doc.get("schemaVersion") == 1:
        return m.DOCKER_V2S1_SIGNED if doc.get("signatures") else m.DOCKER_V2S1
    mt = doc.get("mediaType")
    if mt:
        return mt
    if "manifests" in doc:
        return m.OCI_INDEX
    if "config" in doc:
        return m.OCI_MANIFEST
    raise ManifestError("cannot tell the manifest type: no mediaType, config or manifests field")


def _load(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    return doc


def manifest_digest(raw: bytes) -> Digest:
    """The digest a registry gives these manifest bytes (schema 1: signatures stripped)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Digest.of(raw)
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1 and doc.get("signatures"):
        return Digest.of(schema1_payload(raw, doc))
    return Digest.of(raw)


def parse_manifest(raw: bytes, media_type: str = "") -> Manifest:
    doc = _load(raw)
    guessed = guess_media_type(doc)
    mt = guessed if not media_type or media_type in ("text/plain", "application/json", "application/octet-stream") \
        else media_type
    if mt in m.SCHEMA1_TYPES or guessed in m.SCHEMA1_TYPES:
        mt = guessed
    if mt not in m.ALL_MANIFEST_TYPES:
        raise ManifestError(f"unsupported manifest type {mt!r}")
    try:
        if mt in m.INDEX_TYPES:
            children = tuple(Descriptor.from_json(d) for d in doc.get("manifests") or ())
            return Manifest(raw, mt, Digest.of(raw), None, (), children, doc)
        if mt in m.SCHEMA1_TYPES:
            layers = tuple(Descriptor(m.DOCKER_LAYER_GZIP, Digest.parse(fs["blobSum"]), -1)
                           for fs in reversed(doc.get("fsLayers") or ()))
            return Manifest(raw, mt, manifest_digest(raw), None, layers, (), doc)
        config = Descriptor.from_json(doc["config"], m.OCI_CONFIG if mt == m.OCI_MANIFEST else m.DOCKER_CONFIG)
        layers = tuple(Descriptor.from_json(d) for d in doc.get("layers") or ())
        return Manifest(raw, mt, Digest.of(raw), config, layers, (), doc)
    except (KeyError, TypeError) as exc:
        raise ManifestError(f"malformed {mt} manifest: missing {exc}") from None


# ---- platforms -------------------------------------------------------------------------------

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
         "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "armv7l": "arm",
         "armv6l": "arm", "mips64": "mips64"}


def host_platform(os_: str = "", arch: str = "", variant: str = "") -> Platform:
    """The platform to select from an index: the host's, with skopeo's --override-* applied."""
    machine = _platform.machine().lower()
    host_arch = _ARCH.get(machine, machine)
    host_variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine, "")
    host_os = "linux" if sys.platform.startswith("linux") else sys.platform
    if arch and arch != host_arch:
        host_variant = ""
    return Platform(os_ or host_os, arch or host_arch, variant or host_variant)


def _compatible_variants(p: Platform) -> list[str]:
    if p.architecture == "arm64":
        return [p.variant] if p.variant and p.variant != "v8" else ["v8", ""]
    if p.architecture == "arm":
        start = int(p.variant[1:]) if p.variant[1:].isdigit() else 7
        return [f"v{n}" for n in range(start, 4, -1)] + [""]
    if p.architecture == "amd64" and p.variant:
        return [p.variant, ""]
    return [p.variant] if p.variant else [""]


def choose_instance(index: Manifest, want: Platform) -> Descriptor:
    """Pick the instance of `index` for `want`, preferring exact variants as containers/image does."""
    variants = _compatible_variants(want)
    best: Optional[tuple[int, Descriptor]] = None
    for d in index.manifests:
        p = d.platform
        if p is None or p.os != want.os or p.architecture != want.architecture:
            continue
        if p.variant in variants:
            rank = variants.index(p.variant)
        elif not want.variant or want.architecture == "amd64":
            rank = len(variants)
        else:
            continue
        if best is None or rank < best[0]:
            best = (rank, d)
    if best is None:
        kind = "image index" if index.media_type == m.OCI_INDEX else "manifest list"
        raise PlatformNotFound(f"choosing image instance: no image found in {kind} for architecture "
                               f'{want.architecture}, variant "{want.variant}", OS {want.os}')
    return best[1]


# ---- serialisation and conversion -----------------------------------------------------------

def descriptor_json(d: Descriptor, docker: bool = False) -> dict[str, Any]:
    """A descriptor as a manifest or index lists it (Docker's key order and fields with `docker`)."""
    out: dict[str, Any] = {"mediaType": d.media_type}
    if docker:
        out.update(size=d.size, digest=str(d.digest))
    else:
        out.update(digest=str(d.digest), size=d.size)
    if d.urls:
        out["urls"] = list(d.urls)
    if d.annotations and not docker:
        out["annotations"] = dict(d.annotations)
    if d.platform:
        p: dict[str, Any] = {"architecture": d.platform.architecture, "os": d.platform.os}
        if d.platform.os_version:
            p["os.version"] = d.platform.os_version
        if d.platform.variant:
            p["variant"] = d.platform.variant
        out["platform"] = p
    return out


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON as Go's encoding/json writes it (what containers/image produces on edits)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


_TO_OCI = {m.DOCKER_CONFIG: m.OCI_CONFIG, m.DOCKER_LAYER_GZIP: m.OCI_LAYER_GZIP, m.DOCKER_LAYER: m.OCI_LAYER,
           m.DOCKER_LAYER_FOREIGN: m.OCI_LAYER_NONDIST_GZIP, m.DOCKER_V2S2: m.OCI_MANIFEST,
           m.DOCKER_LIST: m.OCI_INDEX}
_TO_DOCKER = {v: k for k, v in _TO_OCI.items()}
FORMATS = {"oci": (m.OCI_MANIFEST, m.OCI_INDEX), "v2s2": (m.DOCKER_V2S2, m.DOCKER_LIST)}


def layer_media_type(manifest_type: str, compression: Optional[str], foreign: bool = False) -> str:
    """The layer media type for `compression` ('gzip', 'zstd' or None) in a manifest of `manifest_type`."""
    if manifest_type in (m.DOCKER_V2S2, m.DOCKER_LIST):
        if compression == "zstd":
            raise Unsupported("zstd layers cannot be stored in a Docker v2s2 manifest; use --format oci")
        if compression is None:
            return m.DOCKER_LAYER
        return m.DOCKER_LAYER_FOREIGN if foreign else m.DOCKER_LAYER_GZIP
    suffix = {"gzip": "+gzip", "zstd": "+zstd", None: ""}[compression]
    return (m.OCI_LAYER_NONDIST if foreign else m.OCI_LAYER) + suffix


def rewrite_image(man: Manifest, target_type: Optional[str] = None,
                  layers: Optional[Mapping[Digest, Descriptor]] = None) -> Manifest:
    """Re-serialise an image manifest: convert to `target_type` and/or replace layer descriptors."""
    target = target_type or man.media_type
    if man.is_schema1:
        raise Unsupported("converting a schema 1 manifest is not supported; copy it without --format "
                          "or recompression")
    if target == man.media_type and not layers:
        return man
    docker = target == m.DOCKER_V2S2
    table = _TO_DOCKER if docker else _TO_OCI
    conf = man.config
    assert conf is not None
    conf = Descriptor(table.get(conf.media_type, conf.media_type), conf.digest, conf.size,
                      annotations=conf.annotations)
    new_layers = []
    for d in man.layers:
        d = (layers or {}).get(d.digest, d)
        mt = table.get(d.media_type, d.media_type)
        if docker and mt not in (m.DOCKER_LAYER_GZIP, m.DOCKER_LAYER_FOREIGN, m.DOCKER_LAYER):
            raise Unsupported(f"layer {d.digest} of type {d.media_type} cannot be stored in a Docker v2s2 "
                              "manifest")
        new_layers.append(Descriptor(mt, d.digest, d.size, urls=d.urls, annotations=d.annotations))
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": target, "config": descriptor_json(conf, docker),
                           "layers": [descriptor_json(d, docker) for d in new_layers]}
    for key in ("subject", "annotations") if not docker else ():
        if key in man.doc:
            doc[key] = man.doc[key]
    return parse_manifest(dumps(doc), target)


def rewrite_index(index: Manifest, children: Mapping[Digest, Descriptor],
                  target_type: Optional[str] = None) -> Manifest:
    """Re-serialise an index whose instances changed (`children`: old digest -> new descriptor)."""
    target = target_type or index.media_type
    def same(d: Descriptor) -> bool:
        new = children.get(d.digest, d)
        return (new.media_type, new.digest, new.size) == (d.media_type, d.digest, d.size)

    if target == index.media_type and all(same(d) for d in index.manifests):
        return index
    docker = target == m.DOCKER_LIST
    entries = []
    for d in index.manifests:
        new = children.get(d.digest, d)
        entries.append(descriptor_json(Descriptor(new.media_type, new.digest, new.size, d.platform, d.urls,
                                             d.annotations), docker))
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": target, "manifests": entries}
    if not docker and "annotations" in index.doc:
        doc["annotations"] = index.doc["annotations"]
    return parse_manifest(dumps(doc), target)


def target_type_for(current: str, fmt: Optional[str]) -> Optional[str]:
    """The manifest type that `--format fmt` asks for, given the current type (None: keep)."""
    if not fmt:
        return None
    if fmt not in FORMATS:
        raise Unsupported(f"unknown manifest format {fmt!r} (valid: oci, v2s2)")
    image_t, index_t = FORMATS[fmt]
    return index_t if current in m.INDEX_TYPES else image_t
