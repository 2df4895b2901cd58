"""Signed schema 1 -> Docker v2s2, as containers/image 5.23 (skopeo 1.9.3) converts it.

For destinations that store only v2s2 (docker-archive:, docker-daemon:). The schema 1 manifest is
validated and its repeated history entries dropped as manifest.Schema1FromManifest does
(fixManifestLayers); the config is built from the top history entry's v1Compatibility as
ToSchema2Config builds it (its raw fields -- or, for Docker before 1.8.3, its Go structure re-encoded,
see gojson -- minus the v1 ids and sizes, plus `rootfs` and `history`, marshalled with sorted keys as
Go marshals a map); the manifest lists the non-throwaway layers, which these destinations receive
decompressed (their diff_ids are then their digests), so the config and manifest bytes are skopeo's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from fastsync import model as m
from fastsync.errors import ManifestError, Unsupported
from fastsync.manifest import Manifest, dumps, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.engine.gojson import V1IMAGE, Field, Obj, decode, encode_fields, go_string, load_object
from fastsync.transports.archive.docker import raw_fields

if TYPE_CHECKING:
    from fastsync.options import CopyOptions
    from fastsync.transports.base import ImageDestination

_DROPPED = ("id", "parent", "parent_id", "layer_id", "throwaway", "Size")
_HEX64 = re.compile(r"[a-f0-9]{64}\Z")
_ATOI = re.compile(r"[+-]?[0-9]+\Z")
# Go's Schema1V1Compatibility: what containers/image reads of every history entry
V1_COMPAT: tuple[Field, ...] = (
    ("id", "str", True), ("parent", "str", True), ("comment", "str", True), ("created", "time", False),
    ("container_config", ("struct", (("Cmd", "strings", False),)), True), ("author", "str", True),
    ("throwaway", "bool", True))


@dataclass(frozen=True)
class V1Entry:
    """The fields of one v1Compatibility that the conversion reads (Go's Schema1V1Compatibility)."""

    id: str
    parent: str
    comment: str
    created: str          # as Go's time.Time marshals it again (RFC 3339, trailing zeros dropped)
    created_by: str
    author: str
    throwaway: bool


@dataclass(frozen=True)
class Schema1:
    """A validated schema 1 manifest; `entries` and `blob_sums` are aligned, newest first."""

    manifest: Manifest
    entries: tuple[V1Entry, ...]
    blob_sums: tuple[Digest, ...]
    top_v1: str           # history[0].v1Compatibility, the source of the config

    def layers(self) -> tuple[Descriptor, ...]:
        """Every layer blob to copy (throwaway ones too, as skopeo copies them), bottom-up, unique."""
        seen: list[Digest] = []
        for d in reversed(self.blob_sums):
            if d not in seen:
                seen.append(d)
        return tuple(Descriptor(m.DOCKER_LAYER_GZIP, d, -1) for d in seen)


def _pairs(text: str, what: str) -> Obj:
    return load_object(text, f"parsing v2s1 history entry {what}")


def _entry(text: str, index: int) -> V1Entry:
    e = decode(V1_COMPAT, _pairs(text, str(index)), f"parsing v2s1 history entry {index}")
    return V1Entry(e["id"], e["parent"], e["comment"], e["created"], " ".join(e["container_config"]["Cmd"] or ()),
                   e["author"], e["throwaway"])


def parse_schema1(man: Manifest) -> Schema1:
    """Validate `man` and drop repeated history entries, as containers/image reads schema 1."""
    doc = man.doc
    fs_layers = doc.get("fsLayers") or []
    history = doc.get("history") or []
    if not isinstance(fs_layers, list) or not isinstance(history, list):
        raise ManifestError("schema 1 manifest: fsLayers and history must be lists")
    if len(fs_layers) != len(history):
        raise ManifestError("length of history not equal to number of layers")
    if not fs_layers:
        raise ManifestError("no FSLayers in manifest")
    try:
        sums = [Digest.parse(f["blobSum"]) for f in fs_layers]
        texts = [h["v1Compatibility"] for h in history]
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"malformed schema 1 manifest: {exc}") from None
    if not all(isinstance(t, str) for t in texts):
        raise ManifestError("malformed schema 1 manifest: v1Compatibility must be a string")
    entries = [_entry(t, i) for i, t in enumerate(texts)]
    for e in entries:
        if not _HEX64.match(e.id):
            raise ManifestError(f"image ID {e.id!r} is invalid")
    if entries[-1].parent:
        raise ManifestError("Invalid parent ID in the base layer of the image")
    seen: set[str] = set()
    last = ""
    for e in entries:
        if e.id != last and e.id in seen:
            raise ManifestError(f"ID {e.id} appears multiple times in manifest")
        last = e.id
        seen.add(e.id)
    for i in range(len(entries) - 2, -1, -1):
        if entries[i].id == entries[i + 1].id:       # a repeated entry: the older one goes
            del entries[i], sums[i], texts[i]
        elif entries[i].parent != entries[i + 1].id:
            raise ManifestError(f"Invalid parent ID. Expected {entries[i + 1].id}, got {entries[i].parent}")
    decode(V1IMAGE, _pairs(texts[0], "0"), "decoding configuration")   # the config's fields must have Go's types (checked before layers move)
    return Schema1(man, tuple(entries), tuple(sums), texts[0])


def _version_less(a: str, b: str) -> bool:
    """docker's versions.LessThan: dot-separated numbers (strconv.Atoi: signed, clamped to int64; what
    does not parse counts as 0) compared in order."""
    def parts(v: str) -> list[int]:
        return [max(-(1 << 63), min((1 << 63) - 1, int(p))) if _ATOI.match(p) else 0 for p in v.split(".")]
    pa, pb = parts(a), parts(b)
    n = max(len(pa), len(pb))
    return pa + [0] * (n - len(pa)) < pb + [0] * (n - len(pb))


def _history_item(e: V1Entry) -> str:
    out = [f'"created":{go_string(e.created)}']
    if e.author:
        out.append(f'"author":{go_string(e.author)}')
    if e.created_by:
        out.append(f'"created_by":{go_string(e.created_by)}')
    if e.comment:
        out.append(f'"comment":{go_string(e.comment)}')
    if e.throwaway:
        out.append('"empty_layer":true')
    return "{" + ",".join(out) + "}"


def schema2_config(s1: Schema1, diff_ids: list[Digest]) -> bytes:
    """ToSchema2Config: the v2s2 config for these diff_ids (those of the non-throwaway layers). The top
    v1Compatibility is decoded into Go's Schema2V1Image (which checks its types); its raw fields are
    kept, except for images made by Docker before 1.8.3, whose config is that structure re-encoded."""
    image = decode(V1IMAGE, _pairs(s1.top_v1, "0"), "decoding configuration")
    version = image["docker_version"]
    raw = encode_fields(image) if version and _version_less(version, "1.8.3") else raw_fields(s1.top_v1.encode())
    for key in _DROPPED:
        raw.pop(key, None)
    rootfs = '{"type":"layers"' + (',"diff_ids":[' + ",".join(f'"{d}"' for d in diff_ids) + "]"
                                   if diff_ids else "") + "}"
    raw["rootfs"] = rootfs
    raw["history"] = "[" + ",".join(_history_item(e) for e in reversed(s1.entries)) + "]"
    return ("{" + ",".join(f"{go_string(k)}:{v}" for k, v in sorted(raw.items())) + "}").encode()


def to_schema2(s1: Schema1, uncompressed: Mapping[Digest, Descriptor]) -> tuple[bytes, Manifest]:
    """The v2s2 config and manifest for `s1` once its layers were stored decompressed
    (`uncompressed`: blobSum -> the decompressed layer's descriptor)."""
    layers: list[Descriptor] = []
    for entry, blob_sum in zip(reversed(s1.entries), reversed(s1.blob_sums)):
        if not entry.throwaway:
            d = uncompressed[blob_sum]
            layers.append(Descriptor(m.DOCKER_LAYER, d.digest, d.size))
    config = schema2_config(s1, [d.digest for d in layers])
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": m.DOCKER_V2S2,
        "config": {"mediaType": m.DOCKER_CONFIG, "size": len(config), "digest": str(Digest.of(config))},
        "layers": [{"mediaType": d.media_type, "size": d.size, "digest": str(d.digest)} for d in layers]}
    return config, parse_manifest(dumps(doc), m.DOCKER_V2S2)


def converts_for(dst: "ImageDestination", options: "CopyOptions") -> bool:
    """Whether a schema 1 image is converted for `dst`: it stores v2s2 and no schema 1 (docker-archive:,
    docker-daemon:), and --format asks for nothing else."""
    accepted = dst.capabilities.manifest_types
    return accepted is not None and m.DOCKER_V2S2 in accepted and not accepted & m.SCHEMA1_TYPES \
        and options.format in (None, "v2s2")


def check_allowed(options: "CopyOptions", signed: bool) -> None:
    """Refuse the conversion where skopeo cannot modify the manifest (it then writes the schema 1
    manifest as is, which these destinations reject with this message), before any blob moves."""
    reason = ("--preserve-digests forbids it" if options.preserve_digests
              else "it would invalidate the image's signatures" if signed else None)
    if reason is not None:
        raise Unsupported("writing manifest: Unsupported manifest type, need a Docker schema 2 manifest "
                          f"(the schema 1 image must be converted, but {reason})")
    if options.dest_compress or options.dest_compress_format:
        raise Unsupported("changing the layer compression of a schema 1 image is not supported")
