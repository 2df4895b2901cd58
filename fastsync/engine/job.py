"""The copy engine: one image (or index) from an ImageSource to an ImageDestination.

A `Job` holds what is shared between images: the session (connections, store), the options, and the
job-wide blob transfers keyed by (destination namespace, digest), so a blob needed by many images of
one job is moved once. `sync` runs many `Job.copy` calls concurrently on one Job. Manifests are
written after all their blobs, an index after all its instances, and the destination commits last.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Optional

from fastsync import manifest as mf
from fastsync import model as m
from fastsync.attachments.model import applying
from fastsync.core.recompress import LayerEdit, layer_edits
from fastsync.engine.blob import CACHE, SOURCE, THERE, BlobMover, Moved
from fastsync.engine.formats import check_preserved, index_target, target_type
from fastsync.engine.transfers import SharedTransfers, Transfer, gather_or_cancel
from fastsync.errors import Unsupported, disk_full, no_space
from fastsync.manifest import Manifest, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.options import CopyOptions, TransportOptions
from fastsync.progress import Event, EventSink, emitter
from fastsync.retry import retrying
from fastsync.session import Session
from fastsync.transports.base import ImageDestination, ImageReference, ImageSource

# (source, destination, blob) -> a context held around each attempt of a blob transfer: the
# scheduler's per-host concurrency limits; it sees the attempt's exception, if any.
BlobGate = Callable[[ImageSource, ImageDestination, Descriptor], AbstractAsyncContextManager]


def _schema1() -> Any:
    """engine/schema1.py (and the docker-archive code it uses), imported for schema 1 images only."""
    from fastsync.engine import schema1

    return schema1


def _no_gate(src: ImageSource, dst: ImageDestination, desc: Descriptor) -> AbstractAsyncContextManager:
    return nullcontext()


@dataclass(frozen=True)
class Probed:
    """What the destination's tag pointed at when the caller (the sync planner) asked: the copy does
    not ask again."""
    digest: Optional[Digest]


@dataclass
class ImageResult:
    source: str
    destination: str
    digest: Optional[Digest] = None       # of the manifest written (the top one)
    media_type: str = ""
    blobs_copied: int = 0                 # read from the source (network or a local source) and written
    blobs_reused: int = 0                 # already there, mounted, or moved by another image of the job
    bytes_copied: int = 0
    bytes_reused: int = 0
    blobs_cached: int = 0                 # written from the local cache: nothing read from the source
    bytes_cached: int = 0
    up_to_date: bool = False              # the destination already had this exact manifest
    seconds: float = 0.0
    error: str = ""
    attachments: tuple[tuple[str, str], ...] = ()   # (kind, digest) of each attachment carried

    def count(self, nbytes: int, how: str) -> None:
        if how == SOURCE:
            self.blobs_copied += 1
            self.bytes_copied += nbytes
        elif how == CACHE:
            self.blobs_cached += 1
            self.bytes_cached += nbytes
        else:
            self.blobs_reused += 1
            self.bytes_reused += nbytes


class _Image:
    """One image being copied: its endpoints, result and the job-wide transfers it joined."""

    def __init__(self, src: ImageSource, dst: ImageDestination, res: ImageResult, signed: bool = False,
                 probed: Optional[Probed] = None) -> None:
        self.src, self.dst, self.res = src, dst, res
        self.signed = signed           # signatures travel with it: its manifests are never rewritten
        self.probed = probed
        self.transfers: set[Transfer[Any]] = set()
        self.written: dict[Digest, Digest] = {}      # source manifest -> its digest at the destination

    async def dst_digest(self) -> Optional[Digest]:
        """The digest the destination's tag points at (as probed before the copy, when it was)."""
        return self.probed.digest if self.probed is not None else await self.dst.manifest_digest()


class Job:
    def __init__(self, session: Session, options: Optional[CopyOptions] = None,
                 on_event: Optional[EventSink] = None, gate: Optional[BlobGate] = None) -> None:
        self.session = session
        self.options = options or CopyOptions()
        self.emit = emitter(on_event)
        self.gate = gate or _no_gate
        self.mover = BlobMover(session, self.emit)
        self.transfers = SharedTransfers()
        # the first transfer of each digest in this job (any destination), and the registry
        # repositories that hold it since: later destinations mount from those or read the store
        self._leaders: dict[Digest, asyncio.Future[Moved]] = {}
        self._placed: dict[Digest, list] = {}
        self._carrier: Any = None

    async def copy(self, src_ref: ImageReference, dst_ref: ImageReference,
                   src_opts: TransportOptions = TransportOptions(),
                   dst_opts: TransportOptions = TransportOptions(), probed: Optional[Probed] = None,
                   attachments: Any = None) -> ImageResult:
        """Copy one image; `probed`: the destination's tag as the caller just read it; `attachments`
        (AttachmentOptions) overrides the options' for this image."""
        res = ImageResult(str(src_ref), str(dst_ref))
        attachments = applying(attachments, self.options.attachments)
        t0 = time.monotonic()
        name = f"{src_ref} -> {dst_ref}"
        self.emit(Event("image-start", name))
        try:
            await self._copy(src_ref, dst_ref, src_opts, dst_opts, res, probed, attachments)
        except OSError as exc:
            if not no_space(exc):
                raise
            # the cache says so itself (DiskFull): a full disk here is the destination's
            raise disk_full(exc, f"the destination {dst_ref}") from None
        res.seconds = time.monotonic() - t0
        self.emit(Event("image-skipped" if res.up_to_date else "image-done", name, str(res.digest),
                        res.bytes_copied))
        return res

    async def _copy(self, src_ref: ImageReference, dst_ref: ImageReference, src_opts: TransportOptions,
                    dst_opts: TransportOptions, res: ImageResult, probed: Optional[Probed],
                    attachments: Any) -> None:
        src = await src_ref.open_source(self.session, src_opts)
        if attachments is not None:
            self._attachments().prefetch(src_ref, src, src_opts)     # under the manifests' round trips
        try:
            trust = self.options.trust      # fastsync.trust.copying.Trust: policy and signatures
            carried = await trust.check(self.session, src_ref, src, dst_ref, self.options) if trust else None
            src = await trust.layers(self.session, src, self.options, carried) if trust else src
            dst = await dst_ref.open_destination(self.session, dst_opts)
            img = _Image(src, dst, res, signed=bool(trust and trust.carries_signatures(carried)), probed=probed)
            try:
                final = await self._copy_top(img)
                if attachments is not None:
                    atts = await self._attachments().carry(attachments, src_ref, src, src_opts, dst_ref, dst,
                                                           dst_opts, img.written, lambda d: self._blob(img, d))
                    res.attachments = tuple((a.kind, str(a.digest)) for a in atts)
                if trust:
                    await trust.put_signatures(self.session, dst_ref, dst, final, carried)
                if not res.up_to_date:
                    await dst.commit()
                res.digest, res.media_type = final.digest, final.media_type
            except BaseException:
                # nothing of this image may still write into dst when it is closed (a dir: staging
                # directory is removed then): its blob transfers end first
                await self.transfers.settle(img.transfers)
                raise
            finally:
                await dst.close()
        finally:
            await src.close()

    def _attachments(self) -> Any:
        """The job's attachment carrier (fastsync.attachments), made when a copy first carries them."""
        if self._carrier is None:
            from fastsync.attachments.carry import Carrier

            self._carrier = Carrier(self.session, lambda msg: self.emit(Event("warning", message=msg)))
        return self._carrier

    # ---- manifests ----------------------------------------------------------------------------

    async def _copy_top(self, img: _Image) -> Manifest:
        raw, mt = await img.src.get_manifest()
        top = parse_manifest(raw, mt)
        mode = self.options.multi_arch
        if top.is_index and mode == "system":
            top = await img.src.get_instance(mf.choose_instance(top, self.options.platform or mf.host_platform()))
        if not top.is_index:
            return await self._copy_single(img, top, instance=False)
        target = target_type(top, img.dst, self.options)
        if mode == "index-only":
            if target != top.media_type:
                raise Unsupported("--multi-arch index-only cannot convert the index format")
            await img.dst.put_manifest(top)
            img.written[top.digest] = top.digest
            return top
        if not img.dst.capabilities.supports_index:
            raise Unsupported(f"{img.dst.reference}: this destination cannot store a multi-image index; "
                              "omit --all to copy one platform")
        if target == top.media_type and await img.dst_digest() == top.digest:
            img.res.up_to_date = True
            img.written.update({d.digest: d.digest for d in (top, *top.manifests)})
            return top
        self.emit(Event("list-start", f"{img.res.source} -> {img.res.destination}", str(top.digest), len(top.manifests),
                        digests=tuple(str(d.digest) for d in top.manifests)))
        children = await gather_or_cancel(self._copy_child(img, d) for d in top.manifests)
        final = mf.rewrite_index(top, {d.digest: c.descriptor() for d, c in zip(top.manifests, children)},
                                 index_target(target, children))
        check_preserved(top, final, self.options)
        await img.dst.put_manifest(final)
        img.written[top.digest] = final.digest
        self.emit(Event("list-written", f"{img.res.source} -> {img.res.destination}", str(top.digest)))
        return final

    async def _copy_child(self, img: _Image, d: Descriptor) -> Manifest:
        child = await img.src.get_instance(d)
        if child.is_index:
            raise Unsupported(f"nested index {d.digest} is not supported")
        return await self._copy_single(img, child, instance=True)

    async def _copy_single(self, img: _Image, man: Manifest, instance: bool) -> Manifest:
        config = str(man.config.digest) if man.config is not None else ""
        self.emit(Event("manifest-start", f"{img.res.source} -> {img.res.destination}", str(man.digest), message=config,
                        digests=tuple(str(d.digest) for d in man.layers)))
        final = await self._copy_manifest(img, man, instance)
        img.written[man.digest] = final.digest
        self.emit(Event("manifest-written", f"{img.res.source} -> {img.res.destination}", str(man.digest), message=config))
        return final

    async def _copy_manifest(self, img: _Image, man: Manifest, instance: bool) -> Manifest:
        if man.is_schema1 and _schema1().converts_for(img.dst, self.options):
            return await self._copy_schema1(img, man, instance)
        edits = layer_edits(man, self.options, img.src.layer_compression,
                            img.dst.capabilities.compress_layers and not img.signed)
        if edits and man.is_schema1:
            raise Unsupported("changing the layer compression of a schema 1 image is not supported")
        if edits and self.options.preserve_digests:
            raise Unsupported("--preserve-digests: changing layer compression would change the image's digests")
        target = target_type(man, img.dst, self.options, zstd=any(e.format == "zstd" for e in edits.values()))
        if not edits:
            final = mf.rewrite_image(man, target) if target != man.media_type else man
            check_preserved(man, final, self.options)
            if not instance and await img.dst_digest() == final.digest:
                img.res.up_to_date = True
                return final
        sem = asyncio.Semaphore(max(1, self.options.blob_concurrency))

        async def one(desc: Descriptor) -> Optional[tuple[Digest, Descriptor]]:
            async with sem:
                if desc.digest not in edits:
                    return await self._blob(img, desc)
                new = await self._edited(img, desc, edits[desc.digest])
                return desc.digest, Descriptor(mf.layer_media_type(target, edits[desc.digest].format),
                                               new.digest, new.size, annotations=desc.annotations)

        done = await gather_or_cancel(one(d) for d in man.blobs())
        if edits:
            final = mf.rewrite_image(man, target, dict(r for r in done if r is not None))
        await img.dst.put_manifest(final, instance=instance)
        return final

    async def _copy_schema1(self, img: _Image, man: Manifest, instance: bool) -> Manifest:
        """A schema 1 image to a destination storing only v2s2, converted as skopeo converts it: every
        layer decompressed (its digest is then the diff_id the config needs), then the config and
        manifest built from the schema 1 history."""
        schema1 = _schema1()
        s1 = schema1.parse_schema1(man)
        schema1.check_allowed(self.options, img.signed)
        sem = asyncio.Semaphore(max(1, self.options.blob_concurrency))

        async def one(desc: Descriptor) -> tuple[Digest, Descriptor]:
            async with sem:
                return desc.digest, await self._edited(img, desc, LayerEdit(None))

        layers = dict(await gather_or_cancel(one(d) for d in s1.layers()))
        config, final = schema1.to_schema2(s1, layers)
        assert final.config is not None
        await img.dst.put_blob(Descriptor(m.DOCKER_CONFIG, final.config.digest, len(config)), _chunk(config))
        img.res.count(len(config), SOURCE)
        await img.dst.put_manifest(final, instance=instance)
        return final

    # ---- blobs --------------------------------------------------------------------------------

    async def _blob(self, img: _Image, desc: Descriptor) -> None:
        (moved, how), owner = await self.transfers.join(
            (img.dst.blob_namespace, desc.digest), lambda: self._move(img.src, img.dst, desc), img.transfers)
        how = how if owner else THERE                # another image of the job placed it
        img.res.count(moved if how != THERE else max(desc.size, 0), how)

    async def _edited(self, img: _Image, desc: Descriptor, edit: LayerEdit) -> Descriptor:
        """A layer with its compression changed: shared across the job like plain blobs."""
        src, dst = img.src, img.dst
        (new, how), owner = await self.transfers.join(
            (dst.blob_namespace, desc.digest, edit),
            lambda: retrying(lambda: self.mover.edit(src, dst, desc, edit), self.options.retry_times,
                             self._on_retry(f"layer {desc.digest}", src), self._deadline), img.transfers)
        img.res.count(new.size, how if owner else THERE)
        return new

    async def _move(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> Moved:
        """One blob to one destination namespace. When another destination is already fetching the
        same digest, wait for it first: then this one mounts from there or reads the store."""
        leader = self._leaders.get(desc.digest)
        if leader is None:
            leader = self._leaders[desc.digest] = asyncio.ensure_future(self._attempts(src, dst, desc))
            # not shielded: cancelling this transfer stops the leader's work for this destination
            # (other destinations waiting on it then do their own)
            return await leader
        if dst.capabilities.can_mount or self.session.store is not None:
            await asyncio.wait([leader])
        return await self._attempts(src, dst, desc)

    async def _attempts(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> Moved:
        async def once() -> Moved:
            async with self.gate(src, dst, desc):
                return await self.mover.move(src, dst, desc, self._mount_source(src, dst, desc))
        moved = await retrying(once, self.options.retry_times, self._on_retry(f"blob {desc.digest}", src),
                               self._deadline)
        ref = dst.reference.docker_reference
        if ref is not None:
            self._placed.setdefault(desc.digest, []).append(ref)
        return moved

    def _mount_source(self, src: ImageSource, dst: ImageDestination, desc: Descriptor):  # noqa: ANN202
        """Where a registry destination could mount `desc` from: a repository of the same registry
        that received it in this job, else the source repository."""
        mine = dst.reference.docker_reference
        for ref in self._placed.get(desc.digest, ()):
            if mine is not None and ref.registry == mine.registry and ref.path != mine.path:
                return ref
        return src.reference.docker_reference

    @property
    def _deadline(self) -> float:
        return self.session.options.network.retry_deadline

    def _on_retry(self, what: str, src: ImageSource) -> Callable[[BaseException, float], None]:
        def retry(exc: BaseException, delay: float) -> None:
            self.session.note_retry(exc, src.reference.remote_host)     # a download that missed its digest
            self.emit(Event("retry", message=f"{what}: {exc}; retrying in {delay:.1f}s"))
        return retry


async def _chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


__all__ = ["Job", "ImageResult", "Probed"]
