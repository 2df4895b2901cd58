"""Reading an image from a containers/storage store, as containers/image's storage_src does.

The manifest is the image's `manifest` data item (`manifest-DIGEST` when the name carries a
digest); the config is the data item named by its digest. The store keeps layers unpacked, not
their blobs, so layers are served as containers/image serves them: each rebuilt byte-for-byte from
its tar-split metadata and the layer's files, uncompressed, under its diff_id. When the stored
manifest names other (compressed) blobs, the manifest served says so: its layers become
uncompressed ones (`rootfs.diff.tar` / `layer.v1.tar`) with the diff_ids and sizes; otherwise the
stored manifest is served byte-exact. `inspect` shows the stored manifest (`inspect_manifest`), as
skopeo does.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, AsyncIterator, Iterator, Optional

from fastsync import manifest as mf
from fastsync import model as m
from fastsync.errors import FastsyncError, ManifestError, NotFound, Unsupported
from fastsync.manifest import Manifest, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.transports.base import ImageSource
from fastsync.transports.localfs import in_thread
from fastsync.transports.cstorage import layout as L
from fastsync.transports.cstorage.apply import _components, resolve
from fastsync.transports.cstorage.store import Store
from fastsync.transports.cstorage.tarsplit import assemble

if TYPE_CHECKING:
    from fastsync.session import Session
    from fastsync.transports.cstorage import StorageReference

BATCH = 1 << 20


async def open_source(ref: "StorageReference", session: "Session") -> "StorageSource":
    store = ref.store()

    def load() -> "StorageSource":
        store.check(create=False, what=str(ref))
        layers, images = store.snapshot()
        rec = ref.resolve(images)
        return StorageSource(ref, store, rec, layers)
    return await in_thread(load)


def _chain(layers: list[dict], top: str, what: str) -> list[dict]:
    by_id = {r["id"]: r for r in layers}
    out: list[dict] = []
    lid = top
    while lid:
        rec = by_id.get(lid)
        if rec is None or L.is_incomplete(rec):
            raise NotFound(f"{what}: layer {lid} of the image is missing from the store")
        out.append(rec)
        lid = rec.get("parent", "")
        if len(out) > len(layers):
            raise FastsyncError(f"{what}: the store's layers form a cycle")
    return out[::-1]


class StorageSource(ImageSource):
    def __init__(self, ref: "StorageReference", store: Store, image: dict, layers: list[dict]) -> None:
        self.reference = ref
        self.store = store
        self.image = image
        what = str(ref)
        key = L.MANIFEST_KEY
        named = ref.named
        if named is not None and named.digest is not None:
            key = L.MANIFEST_PREFIX + str(named.digest)
        try:
            raw = store.big_data(image["id"], key)
        except NotFound:
            if key != L.MANIFEST_KEY or not image.get("digest"):
                raise NotFound(f"{what}: the image has no manifest {key[len(L.MANIFEST_PREFIX):]}") from None
            raw = store.big_data(image["id"], L.MANIFEST_PREFIX + image["digest"])
        stored = parse_manifest(raw)
        if stored.is_index or stored.is_schema1:
            raise Unsupported(f"{what}: reading a {stored.media_type} manifest from containers-storage "
                              "is not supported")
        self.chain = _chain(layers, image.get("layer", ""), what)
        if len(self.chain) != len(stored.layers):
            raise ManifestError(f"{what}: the manifest lists {len(stored.layers)} layers, the store "
                                f"{len(self.chain)}")
        self.by_diff = {r["diff-digest"]: r for r in self.chain}
        self.stored = stored
        self.manifest = self._served(stored)

    def _served(self, stored: Manifest) -> Manifest:
        if all(str(d.digest) == r.get("diff-digest") and d.size == r.get("diff-size")
               for d, r in zip(stored.layers, self.chain)):
            return stored
        media = m.DOCKER_LAYER if stored.media_type == m.DOCKER_V2S2 else m.OCI_LAYER
        doc_layers = []
        for rec in self.chain:
            doc_layers.append({"mediaType": media, "size": int(rec["diff-size"]), "digest": rec["diff-digest"]})
        doc = dict(stored.doc)
        assert stored.config is not None
        if stored.media_type == m.DOCKER_V2S2:
            doc = {"schemaVersion": 2, "mediaType": m.DOCKER_V2S2, "config": stored.doc["config"],
                   "layers": doc_layers}
        else:
            doc["layers"] = [{"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"]}
                             for d in doc_layers]
        return parse_manifest(mf.dumps(doc), stored.media_type)

    async def inspect_manifest(self) -> tuple[bytes, str]:
        """The manifest as stored (what `skopeo inspect` shows: its digest, its compressed layers)."""
        return self.stored.raw, self.stored.media_type

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        if digest is not None and digest != self.manifest.digest:
            raise NotFound(f"{self.reference}: manifest {digest} not found")
        return self.manifest.raw, self.manifest.media_type

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        config = self.manifest.config
        if config is not None and desc.digest == config.digest:
            return _one(self.store.big_data(self.image["id"], str(desc.digest)))
        rec = self.by_diff.get(str(desc.digest))
        if rec is None:
            raise NotFound(f"{self.reference}: blob {desc.digest} not found")
        return _threaded(assemble_layer(self.store.paths, rec["id"]))

    def layer_compression(self, desc: Descriptor) -> Optional[str]:
        """Layers are served uncompressed (rebuilt tars), whatever the stored manifest said."""
        return None

    async def list_tags(self) -> list[str]:
        return []

    async def get_signatures(self, instance: Optional[Digest] = None) -> list[bytes]:
        """The signatures stored with the image (each as stored: fastsync.trust.formats), read as
        containers/image reads them: the `signature-HEX` item of the stored manifest's digest with
        `signatures-sizes` from the image's metadata, else the legacy `signatures` item."""
        if instance is not None and instance != self.stored.digest:
            raise NotFound(f"{self.reference}: no signatures of instance {instance} (one image per name)")
        try:
            meta = json.loads(self.image.get("metadata") or "{}")
        except ValueError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        sizes = (meta.get("signatures-sizes") or {}).get(str(self.stored.digest))
        key = L.SIGNATURE_PREFIX + self.stored.digest.hex
        if not sizes:
            sizes, key = meta.get("signature-sizes"), L.LEGACY_SIGNATURES
        if not sizes:
            return []
        data = await in_thread(self.store.big_data, self.image["id"], key)
        out, offset = [], 0
        for size in sizes:
            if not isinstance(size, int) or size < 0 or offset + size > len(data):
                raise FastsyncError(f"{self.reference}: signature data {key!r} is shorter than its sizes say")
            out.append(data[offset:offset + size])
            offset += size
        if offset != len(data):
            raise FastsyncError(f"{self.reference}: signature data {key!r} has {len(data) - offset} extra bytes")
        return out


def assemble_layer(paths: L.StorePaths, lid: str) -> Iterator[bytes]:
    """Layer `lid`'s tar, rebuilt from its tar-split metadata, in chunks of about BATCH bytes."""
    root = paths.layer_root(lid)
    what = f"layer {lid}"

    def open_member(name: bytes) -> int:
        parts = _components(name.decode("utf-8", "surrogateescape"), what)
        path = resolve(root, parts[:-1], what)
        try:
            return os.open(os.path.join(path, parts[-1]), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise FastsyncError(f"{what}: cannot read {name.decode(errors='replace')!r}: {exc.strerror}") from None

    buf = bytearray()
    for piece in assemble(paths.tar_split(lid), open_member):
        buf += piece
        if len(buf) >= BATCH:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _threaded(gen: Iterator[bytes]) -> AsyncIterator[bytes]:
    try:
        while True:
            chunk = await in_thread(next, gen, None)
            if chunk is None:
                return
            yield chunk
    finally:
        gen.close()
