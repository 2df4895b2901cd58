"""The on-disk shape of a containers/storage store (pure: paths, names, records; no I/O).

As containers/storage (layers.go, images.go, drivers/vfs, drivers/overlay) keeps it:

    GRAPHROOT/storage.lock                       the store's lock ("graph lock")
    GRAPHROOT/DRIVER-layers/layers.json, layers.lock, ID.tar-split.gz
    GRAPHROOT/DRIVER-images/images.json, images.lock, ID/<big-data file>
    GRAPHROOT/vfs/dir/ID/                        vfs: each layer a full snapshot
    GRAPHROOT/overlay/ID/{diff,link,lower,work}  overlay: each layer's own changes
    GRAPHROOT/overlay/l/SHORT -> ../ID/diff      overlay: short names for the mount options

Layer ids follow containers/image (storage_dest.go): the bottom layer's id is its diff_id's hex,
each later one sha256("PARENTID+DIFFIDHEX"). The image id is the config digest's hex. Records are
kept as dicts in containers/storage's field order, so fields fastsync does not know survive a
rewrite untouched.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

# containers/storage's archive.Compression values (the layer record's "compression")
COMPRESSION_CODES = {None: 0, "gzip": 2, "zstd": 4}
INCOMPLETE = "incomplete"
MANIFEST_KEY = "manifest"                     # storage.ImageDigestBigDataKey
MANIFEST_PREFIX = "manifest-"                 # storage.ImageDigestManifestBigDataNamePrefix
SIGNATURE_PREFIX = "signature-"              # + the manifest digest's hex
LEGACY_SIGNATURES = "signatures"               # the image's own signatures, for older readers
ID_RE = re.compile(r"^[0-9a-f]{64}$")
DRIVERS = ("vfs", "overlay")
LINK_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LINK_LEN = 26                                  # overlay's idLength for the l/ short names


@dataclass(frozen=True)
class StorePaths:
    """Where each piece of one store lives."""

    driver: str
    graphroot: str
    runroot: str

    @property
    def storage_lock(self) -> str:
        return os.path.join(self.graphroot, "storage.lock")

    @property
    def layers_dir(self) -> str:
        return os.path.join(self.graphroot, f"{self.driver}-layers")

    @property
    def images_dir(self) -> str:
        return os.path.join(self.graphroot, f"{self.driver}-images")

    @property
    def layers_json(self) -> str:
        return os.path.join(self.layers_dir, "layers.json")

    @property
    def layers_lock(self) -> str:
        return os.path.join(self.layers_dir, "layers.lock")

    @property
    def images_json(self) -> str:
        return os.path.join(self.images_dir, "images.json")

    @property
    def images_lock(self) -> str:
        return os.path.join(self.images_dir, "images.lock")

    @property
    def driver_dir(self) -> str:
        return os.path.join(self.graphroot, self.driver)

    def tar_split(self, layer_id: str) -> str:
        return os.path.join(self.layers_dir, f"{layer_id}.tar-split.gz")

    def layer_home(self, layer_id: str) -> str:
        """The directory containers/storage's driver removes to delete the layer."""
        if self.driver == "vfs":
            return os.path.join(self.graphroot, "vfs", "dir", layer_id)
        return os.path.join(self.graphroot, "overlay", layer_id)

    def layer_root(self, layer_id: str) -> str:
        """The directory holding the layer's files (vfs: the whole tree; overlay: its diff)."""
        if self.driver == "vfs":
            return self.layer_home(layer_id)
        return os.path.join(self.layer_home(layer_id), "diff")

    def image_dir(self, image_id: str) -> str:
        return os.path.join(self.images_dir, image_id)

    def big_data(self, image_id: str, key: str) -> str:
        return os.path.join(self.image_dir(image_id), big_data_name(key))


def big_data_name(key: str) -> str:
    """containers/storage's makeBigDataBaseName: keys of [.0-9a-z] are used as they are, others are
    "=" + base64(key)."""
    if key and all(c == "." or "0" <= c <= "9" or "a" <= c <= "z" for c in key):
        return key
    return "=" + base64.b64encode(key.encode()).decode()


def layer_id(parent_id: str, diff_id_hex: str) -> str:
    """The id containers/image gives a layer: diff_id for the bottom one, else sha256(parent+diff)."""
    if not parent_id:
        return diff_id_hex
    return hashlib.sha256(f"{parent_id}+{diff_id_hex}".encode()).hexdigest()


def chain_ids(diff_id_hexes: Iterable[str]) -> list[str]:
    out: list[str] = []
    for d in diff_id_hexes:
        out.append(layer_id(out[-1] if out else "", d))
    return out


def go_now() -> str:
    """Now, as Go's time.Time marshals a UTC time (RFC 3339, nanoseconds, trailing zeros dropped)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    frac = f"{now.microsecond:06d}000".rstrip("0")
    return now.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def go_time(value: str) -> str:
    """An RFC 3339 timestamp as Go's time.Time marshals it again (trailing zeros of the fraction
    dropped); anything else unchanged."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return value
    frac = (m.group(2) or "").rstrip("0")
    return m.group(1) + (f".{frac}" if frac else "") + m.group(3)


def go_json(obj: Any) -> bytes:
    """Compact JSON with Go's HTML escaping (what containers/storage writes)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def load_records(data: bytes, what: str) -> list[dict[str, Any]]:
    """layers.json / images.json: a JSON array of objects (empty file: none)."""
    if not data.strip():
        return []
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in doc):
        raise ValueError(f"{what} is not a list of records with ids")
    return doc


def layer_record(lid: str, parent: str, compressed: Optional[tuple[str, int]], diff: tuple[str, int],
                 compression: Optional[str], uids: Iterable[int], gids: Iterable[int],
                 incomplete: bool) -> dict[str, Any]:
    """A layers.json entry, fields in containers/storage's order (empty ones omitted as it does)."""
    rec: dict[str, Any] = {"id": lid}
    if parent:
        rec["parent"] = parent
    rec["created"] = go_now()
    if compressed:
        rec["compressed-diff-digest"], rec["compressed-size"] = compressed
    rec["diff-digest"], rec["diff-size"] = diff
    if COMPRESSION_CODES.get(compression):
        rec["compression"] = COMPRESSION_CODES[compression]
    set_ids(rec, uids, gids)
    if incomplete:
        rec["flags"] = {INCOMPLETE: True}
    return rec


def set_ids(rec: dict[str, Any], uids: Iterable[int], gids: Iterable[int]) -> None:
    for key, ids in (("uidset", sorted(set(uids))), ("gidset", sorted(set(gids)))):
        if ids:
            rec[key] = ids
        else:
            rec.pop(key, None)


def is_incomplete(rec: dict[str, Any]) -> bool:
    flags = rec.get("flags")
    return isinstance(flags, dict) and flags.get(INCOMPLETE) is True


def mark_complete(rec: dict[str, Any]) -> None:
    flags = rec.get("flags")
    if isinstance(flags, dict):
        flags.pop(INCOMPLETE, None)
        if not flags:
            del rec["flags"]


def image_record(iid: str, top_layer: str, created: Optional[str]) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": iid}
    if top_layer:
        rec["layer"] = top_layer
    if created:
        rec["created"] = created
    return rec


_IMAGE_ORDER = ("id", "digest", "names", "names-history", "layer", "mapped-layers", "metadata",
                "big-data-names", "big-data-sizes", "big-data-digests", "created", "flags")


def ordered_image(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's fields in containers/storage's Image struct order (unknown ones last)."""
    out = {k: rec[k] for k in _IMAGE_ORDER if k in rec and rec[k] not in (None, "", [], {})}
    for k in ("big-data-sizes", "big-data-digests"):
        if k in out:
            out[k] = dict(sorted(out[k].items()))            # Go marshals maps with sorted keys
    out.update({k: v for k, v in rec.items() if k not in out and k not in _IMAGE_ORDER})
    return out


def set_big_data(rec: dict[str, Any], key: str, size: int, digest: str) -> None:
    """Record a big-data item as containers/storage's setBigData does ("manifest" also sets the
    image's digest)."""
    names = rec.setdefault("big-data-names", [])
    if key not in names:
        names.append(key)
    rec.setdefault("big-data-sizes", {})[key] = size
    rec.setdefault("big-data-digests", {})[key] = digest
    if key == MANIFEST_KEY:
        rec["digest"] = digest


def add_names(images: list[dict[str, Any]], target: dict[str, Any], names: Iterable[str]) -> None:
    """containers/storage's AddNames: the names join `target` (and its names-history, newest first)
    and leave every other image."""
    new = list(target.get("names") or [])
    for n in names:
        if n not in new:
            new.append(n)
    for other in images:
        if other is not target and other.get("names"):
            other["names"] = [n for n in other["names"] if n not in new]
            if not other["names"]:
                del other["names"]
    history = list(target.get("names-history") or [])
    for n in new:
        history = [n] + [h for h in history if h != n]
    target["names"] = new
    target["names-history"] = history


def image_digests(rec: dict[str, Any]) -> list[str]:
    """The manifest digests an image answers to (its "digest" and every manifest-* item's)."""
    out = []
    if rec.get("digest"):
        out.append(rec["digest"])
    for key, dig in (rec.get("big-data-digests") or {}).items():
        if key.startswith(MANIFEST_PREFIX) and dig not in out:
            out.append(dig)
    return out
