"""Writing an image into a containers/storage store, as containers/image's storage_dest does.

Layers arrive as blobs (gzip, zstd or plain); each is decompressed on the way into a private
temporary directory, its diff_id computed as it flows. At commit, in manifest order, each layer is
created under its containers/image id (the chain of parent id and diff_id) unless the store has it
already; a layer whose blob was skipped because the store holds the same diff under another parent
is rebuilt from that layer's tar-split metadata. Then the image record (id = config digest) with
its data items under containers/image's keys (the config digest, `manifest-DIGEST`, `manifest`,
`signature-HEX`), its metadata, and the reference's name, which leaves any other image.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Optional

from fastsync import model as m
from fastsync.errors import FastsyncError, ManifestError, Unsupported
from fastsync.model import Descriptor, Digest
from fastsync.transports.archive.tar import Decoder
from fastsync.transports.base import Capabilities, ImageDestination
from fastsync.transports.localfs import _hold, in_thread, sweep_stale
from fastsync.transports.cstorage import layout as L
from fastsync.transports.cstorage.source import assemble_layer
from fastsync.transports.cstorage.store import Store

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.session import Session
    from fastsync.transports.cstorage import StorageReference

_CONFIG_TYPES = (m.DOCKER_CONFIG, m.OCI_CONFIG)
TMP_PREFIX = "fastsync-cstorage-"


@dataclass(frozen=True)
class Staged:
    """A layer blob decompressed into the destination's temporary directory."""

    path: str
    diff_id: str
    diff_size: int
    compression: Optional[str]
    blob: tuple[str, int]            # (digest, size) of the blob as it came


async def open_destination(ref: "StorageReference", session: "Session") -> "StorageDestination":
    if os.geteuid() != 0:
        raise Unsupported(f"{ref}: writing a containers-storage store needs root, to give files their owners "
                          "from the layers; as a user, run fastsync inside `podman unshare`")
    store = ref.store()
    await in_thread(store.check, True, str(ref))
    # uncompressed layers can be big: like containers/image, $TMPDIR when set, else /var/tmp (not a tmpfs)
    big = session.options.tmpdir or os.environ.get("TMPDIR") or ("/var/tmp" if os.path.isdir("/var/tmp") else None)
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=big)
    held = _hold(tmp)                 # while held, a later run's sweep leaves the directory alone
    sweep_stale(os.path.dirname(tmp), TMP_PREFIX)     # a killed run's
    return StorageDestination(ref, store, tmp, held)


class StorageDestination(ImageDestination):
    capabilities = Capabilities(manifest_types=frozenset({m.DOCKER_V2S2, m.OCI_MANIFEST}), supports_index=False)

    def __init__(self, ref: "StorageReference", store: Store, tmp: str, held: int) -> None:
        self.reference = ref
        self.store = store
        self.tmp = tmp
        self._held = held
        self.data: dict[Digest, bytes] = {}            # configs (and other non-layer blobs)
        self.staged: dict[Digest, Staged] = {}
        self.known: dict[Digest, tuple[str, int]] = {}  # blob digest -> (diff_id, size) of a stored layer
        self.man: Optional["Manifest"] = None
        # layers are created in order as soon as their blobs (and the config) are here, while later
        # blobs still download: `_pump` runs `_create_ready` in a thread whenever something arrives
        self.diff_ids: Optional[list[str]] = None
        self.by_diff: dict[str, Staged] = {}
        self.created = 0
        self._pump: Optional[asyncio.Future] = None
        self._again = False
        self.signatures: Optional[list[bytes]] = None

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        if desc.media_type in _CONFIG_TYPES:
            return False
        digest = str(desc.digest)
        hits = await in_thread(self.store.find_layers, lambda r: digest in (r.get("compressed-diff-digest"),
                                                                            r.get("diff-digest")))
        if not hits:
            return False
        self.known[desc.digest] = (hits[0]["diff-digest"], int(hits[0].get("diff-size", -1)))
        self._kick()
        return True

    async def manifest_digest(self) -> Optional[Digest]:
        try:
            _, images = await in_thread(self.store.snapshot)
            rec = self.reference.resolve(images)
        except FastsyncError:
            return None
        try:
            return Digest.parse(rec.get("digest", ""))
        except FastsyncError:
            return None

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        if desc.media_type in _CONFIG_TYPES or not _is_layer(desc.media_type):
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
            self.data[desc.digest] = bytes(buf)
            if desc.media_type in _CONFIG_TYPES:
                self.diff_ids = _diff_ids(self.data[desc.digest])
                self._kick()
            return
        path = os.path.join(self.tmp, f"{desc.digest.hex}.tar")
        decoder = Decoder(f"{self.reference}: layer {desc.digest}")
        size = 0
        with open(path + ".part", "wb") as f:
            def feed(chunk: bytes) -> None:
                out = decoder.feed(chunk)
                if out:
                    f.write(out)
            async for chunk in chunks:
                size += len(chunk)
                await in_thread(feed, chunk)
            tail = decoder.finish()
            f.write(tail)
            usize = f.tell()
        os.replace(path + ".part", path)
        staged = self.staged[desc.digest] = Staged(path, decoder.diff_id, usize, decoder.kind, (str(desc.digest), size))
        self.by_diff.setdefault(staged.diff_id, staged)
        self._kick()

    def _kick(self) -> None:
        if self._pump is None or self._pump.done():
            if self._pump is not None and not self._pump.cancelled() and self._pump.exception() is not None:
                return                      # a failed layer: commit reports it
            self._pump = asyncio.ensure_future(self._run_pump())
        else:
            self._again = True

    async def _run_pump(self) -> None:
        while True:
            self._again = False
            await in_thread(self._create_ready)
            if not self._again:
                return

    def _create_ready(self) -> None:
        """Create, in order, the layers whose content is here (before the manifest, as the blobs come)."""
        diff_ids = self.diff_ids
        if not diff_ids:
            return
        known = {d for d, _ in self.known.values()}
        ids = L.chain_ids(d.split(":", 1)[1] for d in diff_ids)
        while self.created < len(diff_ids):
            i = self.created
            diff_id = diff_ids[i]
            if diff_id not in self.by_diff and diff_id not in known:
                return
            self._layer(ids[i], ids[i - 1] if i else "", diff_id, str(self.reference))
            self.created += 1

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        if instance or man.media_type not in (m.DOCKER_V2S2, m.OCI_MANIFEST):
            raise Unsupported(f"{self.reference}: containers-storage stores one image per name, "
                              f"not a {man.media_type} manifest")
        self.man = man

    async def put_signatures(self, blobs: list[bytes], instance: Optional[Digest] = None) -> None:
        """Signatures (each as stored: fastsync.trust.formats) of the manifest put last. Stored as
        containers/image stores them: concatenated under `signature-HEX` with their sizes in the
        image's metadata (`signatures-sizes`), and for old readers also under `signatures`
        (`signature-sizes`)."""
        if instance is not None:
            raise Unsupported(f"{self.reference}: containers-storage stores one image per name, not "
                              f"signatures of index instance {instance}")
        self.signatures = list(blobs)

    async def commit(self) -> None:
        if self.man is None:
            raise FastsyncError(f"{self.reference}: nothing to commit (no manifest was written)")
        if self._pump is not None:
            await self._pump                 # the layers created so far (or why one failed)
        await in_thread(self._commit, self.man)

    def _commit(self, man: "Manifest") -> None:
        what = str(self.reference)
        assert man.config is not None
        config = self.data.get(man.config.digest)
        if config is None:
            raise FastsyncError(f"{what}: the config {man.config.digest} was not written")
        try:
            doc = json.loads(config)
            diff_ids = [str(Digest.parse(d)) for d in (doc.get("rootfs") or {}).get("diff_ids") or ()]
        except (ValueError, TypeError, AttributeError, FastsyncError) as exc:
            raise ManifestError(f"{what}: malformed image config: {exc}") from None
        self.diff_ids = diff_ids
        if len(diff_ids) != len(man.layers):
            raise ManifestError(f"{what}: the config lists {len(diff_ids)} layers, the manifest {len(man.layers)}")
        for i, (desc, diff_id) in enumerate(zip(man.layers, diff_ids)):
            got = self.staged[desc.digest].diff_id if desc.digest in self.staged else \
                self.known.get(desc.digest, ("",))[0]
            if not got:
                raise FastsyncError(f"{what}: layer {desc.digest} was not written")
            if got != diff_id:
                raise ManifestError(f"{what}: layer {i} (blob {desc.digest}) does not match the config's "
                                    f"diff_id {diff_id} (its content is {got})")
        self._create_ready()
        ids = L.chain_ids(d.split(":", 1)[1] for d in diff_ids)
        self._image(man, config, doc, ids[-1] if ids else "", what)

    def _layer(self, lid: str, parent: str, diff_id: str, what: str) -> None:
        if self.store.find_layers(lambda r: r["id"] == lid):
            return
        staged = self.by_diff.get(diff_id)
        if staged is not None:
            self.store.put_layer(lid, parent, staged.path, (diff_id, staged.diff_size), staged.blob,
                                 staged.compression, what)
            return
        # the store has this diff under another parent: rebuild its tar from that layer
        donors = self.store.find_layers(lambda r: r.get("diff-digest") == diff_id)
        if not donors:
            raise FastsyncError(f"{what}: layer {diff_id} vanished from the store")
        path = os.path.join(self.tmp, f"{lid}.tar")
        with open(path, "wb") as f:
            for chunk in assemble_layer(self.store.paths, donors[0]["id"]):
                f.write(chunk)
        size = os.path.getsize(path)
        self.store.put_layer(lid, parent, path, (diff_id, size), (diff_id, size), None, what)
        os.unlink(path)

    def _image(self, man: "Manifest", config: bytes, doc: dict, top: str, what: str) -> None:
        assert man.config is not None
        digest = str(man.digest)
        sigs = self.signatures or []
        blob = b"".join(sigs)
        items = [(str(man.config.digest), config, str(Digest.of(config))),
                 (L.MANIFEST_PREFIX + digest, man.raw, digest),
                 (L.MANIFEST_KEY, man.raw, digest)]
        meta: dict = {}
        if sigs:
            items.append((L.LEGACY_SIGNATURES, blob, str(Digest.of(blob))))
            meta["signature-sizes"] = [len(b) for b in sigs]
        items.append((L.SIGNATURE_PREFIX + man.digest.hex, blob, str(Digest.of(blob))))
        meta["signatures-sizes"] = {digest: [len(b) for b in sigs]}
        metadata = json.dumps(meta, separators=(",", ":"))
        created = L.go_time(doc["created"]) if isinstance(doc.get("created"), str) else None
        named = self.reference.named
        # an id in the reference (containers-storage:NAME@ID) is the id to create, as containers/image does
        self.store.put_image(self.reference.image_id or man.config.digest.hex, top, created, items, metadata,
                             [str(named)] if named is not None else [], what)

    async def close(self) -> None:
        if self._pump is not None:
            if not self._pump.done():
                self._pump.cancel()             # in_thread returns once the running layer is done
            await asyncio.wait([self._pump])
            if not self._pump.cancelled():
                self._pump.exception()          # retrieved: commit (or the copy's own error) reported it
        await in_thread(shutil.rmtree, self.tmp, True)
        if self._held >= 0:
            os.close(self._held)
            self._held = -1


def _diff_ids(config: bytes) -> Optional[list[str]]:
    try:
        doc = json.loads(config)
        return [str(Digest.parse(d)) for d in (doc.get("rootfs") or {}).get("diff_ids") or ()]
    except (ValueError, TypeError, AttributeError, FastsyncError):
        return None


def _is_layer(media_type: str) -> bool:
    return "layer" in media_type or "rootfs" in media_type or not media_type
