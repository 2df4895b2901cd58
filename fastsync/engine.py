"""The copy engine: one image (or index) from an ImageSource to an ImageDestination.

A `Job` holds what is shared between images: the session (connections, store), the options and a
table of blob transfers keyed by (destination namespace, digest), so a blob needed by many images of
one job is moved once. `sync` runs many `Job.copy` calls concurrently on one Job.
"""
from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Awaitable, Callable, Optional, TypeVar

from . import manifest as mf
from . import model as m
from .errors import DigestMismatch, FastsyncError, NetworkError, RegistryError, Unsupported
from .manifest import Manifest, parse_manifest
from .model import Descriptor, Digest
from .options import CopyOptions, TransportOptions
from .pipeline import counted, tee, verified, verify_file
from .progress import Event, EventSink, emitter
from .recompress import LayerEdit, adopt_into_store, layer_edits, memo_get, memo_put, recompress_to_file, scratch_dir
from .session import Session
from .transports.base import ImageDestination, ImageReference, ImageSource, file_chunks


T = TypeVar("T")
# (source, destination, blob) -> a context held around each attempt of a blob transfer: the
# scheduler's per-host concurrency limits; it sees the attempt's exception, if any.
BlobGate = Callable[[ImageSource, ImageDestination, Descriptor], AbstractAsyncContextManager]
MAX_RETRY_AFTER = 120.0


def _no_gate(src: ImageSource, dst: ImageDestination, desc: Descriptor) -> AbstractAsyncContextManager:
    return nullcontext()


@dataclass
class ImageResult:
    source: str
    destination: str
    digest: Optional[Digest] = None       # of the manifest written (the top one)
    media_type: str = ""
    blobs_copied: int = 0
    blobs_reused: int = 0
    bytes_copied: int = 0
    bytes_reused: int = 0
    up_to_date: bool = False              # the destination already had this exact manifest
    seconds: float = 0.0
    error: str = ""


class Job:
    def __init__(self, session: Session, options: Optional[CopyOptions] = None,
                 on_event: Optional[EventSink] = None, gate: Optional[BlobGate] = None) -> None:
        self.session = session
        self.options = options or CopyOptions()
        self.emit = emitter(on_event)
        self.gate = gate or _no_gate
        self._blobs: dict[tuple[str, Digest], asyncio.Future[int]] = {}
        # the first transfer of each digest in this job (any destination), and the registry
        # repositories that hold it since: later destinations mount from those or read the store
        self._leaders: dict[Digest, asyncio.Future[int]] = {}
        self._placed: dict[Digest, list] = {}
        self._edits: dict[tuple[str, Digest, LayerEdit], asyncio.Future[tuple[Descriptor, bool]]] = {}

    async def copy(self, src_ref: ImageReference, dst_ref: ImageReference,
                   src_opts: TransportOptions = TransportOptions(),
                   dst_opts: TransportOptions = TransportOptions()) -> ImageResult:
        res = ImageResult(str(src_ref), str(dst_ref))
        t0 = time.monotonic()
        name = f"{src_ref} -> {dst_ref}"
        self.emit(Event("image-start", name))
        src = await src_ref.open_source(self.session, src_opts)
        try:
            dst = await dst_ref.open_destination(self.session, dst_opts)
            try:
                final = await self._copy_top(src, dst, res, name)
                if not res.up_to_date:
                    await dst.commit()
                res.digest, res.media_type = final.digest, final.media_type
            finally:
                await dst.close()
        finally:
            await src.close()
        res.seconds = time.monotonic() - t0
        self.emit(Event("image-skipped" if res.up_to_date else "image-done", name, str(res.digest),
                        res.bytes_copied))
        return res

    # ---- manifests ----------------------------------------------------------------------------

    async def _copy_top(self, src: ImageSource, dst: ImageDestination, res: ImageResult, name: str) -> Manifest:
        raw, mt = await src.get_manifest()
        top = parse_manifest(raw, mt)
        mode = self.options.multi_arch
        if top.is_index and mode == "system":
            want = self.options.platform or mf.host_platform()
            top = await self._instance(src, mf.choose_instance(top, want))
        if not top.is_index:
            return await self._copy_single(src, dst, top, res, instance=False)
        target = self._target_type(top, dst)
        if mode == "index-only":
            if target != top.media_type:
                raise Unsupported("--multi-arch index-only cannot convert the index format")
            await dst.put_manifest(top)
            return top
        if not dst.capabilities.supports_index:
            raise Unsupported(f"{dst.reference}: this destination cannot store a multi-image index; "
                              "omit --all to copy one platform")
        if target == top.media_type and await self._up_to_date(dst, top):
            res.up_to_date = True
            return top
        children = await asyncio.gather(*(self._copy_child(src, dst, d, res) for d in top.manifests))
        if target == m.DOCKER_LIST and any(c.media_type == m.OCI_MANIFEST for c in children):
            target = m.OCI_INDEX      # an instance became OCI (zstd layers): the list follows
        final = mf.rewrite_index(top, {d.digest: c.descriptor() for d, c in zip(top.manifests, children)}, target)
        self._check_preserved(top, final)
        await dst.put_manifest(final)
        return final

    async def _copy_child(self, src: ImageSource, dst: ImageDestination, d: Descriptor,
                          res: ImageResult) -> Manifest:
        child = await self._instance(src, d)
        if child.is_index:
            raise Unsupported(f"nested index {d.digest} is not supported")
        return await self._copy_single(src, dst, child, res, instance=True)

    async def _instance(self, src: ImageSource, d: Descriptor) -> Manifest:
        return await fetch_instance(src, d)

    def _target_type(self, man: Manifest, dst: ImageDestination, zstd: bool = False) -> str:
        wanted = mf.target_type_for(man.media_type, self.options.format) or man.media_type
        if zstd and wanted in (m.DOCKER_V2S2, m.DOCKER_LIST):
            if self.options.format == "v2s2":
                raise Unsupported("zstd layers cannot be stored in a Docker v2s2 manifest; use --format oci")
            wanted = m.OCI_MANIFEST   # as skopeo does: zstd forces the OCI format
        accepted = dst.capabilities.manifest_types
        if accepted is not None and wanted not in accepted:
            for fmt in ("oci", "v2s2"):
                alt = mf.target_type_for(man.media_type, fmt)
                if alt in accepted:
                    return alt
            raise Unsupported(f"{dst.reference} cannot store a {man.media_type} manifest")
        return wanted

    def _check_preserved(self, before: Manifest, after: Manifest) -> None:
        if self.options.preserve_digests and before.digest != after.digest:
            raise Unsupported(f"--preserve-digests: the copy would change manifest {before.digest} "
                              f"into {after.digest}")

    async def _up_to_date(self, dst: ImageDestination, man: Manifest) -> bool:
        return await dst.manifest_digest() == man.digest

    async def _copy_single(self, src: ImageSource, dst: ImageDestination, man: Manifest, res: ImageResult,
                           instance: bool) -> Manifest:
        edits = layer_edits(man, self.options)
        if edits and man.is_schema1:
            raise Unsupported("changing the layer compression of a schema 1 image is not supported")
        if edits and self.options.preserve_digests:
            raise Unsupported("--preserve-digests: changing layer compression would change the image's digests")
        target = self._target_type(man, dst, zstd=any(e.format == "zstd" for e in edits.values()))
        if not edits:
            final = mf.rewrite_image(man, target) if target != man.media_type else man
            self._check_preserved(man, final)
            if not instance and await self._up_to_date(dst, final):
                res.up_to_date = True
                return final
        sem = asyncio.Semaphore(max(1, self.options.blob_concurrency))

        async def one(desc: Descriptor) -> None:
            async with sem:
                await self._blob(src, dst, desc, res)

        async def edited(desc: Descriptor) -> tuple[Digest, Descriptor]:
            async with sem:
                edit = edits[desc.digest]
                new = await self._edited(src, dst, desc, edit, res)
                return desc.digest, Descriptor(mf.layer_media_type(target, edit.format), new.digest, new.size,
                                               annotations=desc.annotations)

        plain = [one(d) for d in man.blobs() if d.digest not in edits]
        changed = [edited(d) for d in man.blobs() if d.digest in edits]
        done = await asyncio.gather(*plain, *changed)
        if edits:
            final = mf.rewrite_image(man, target, dict(done[len(plain):]))
        await dst.put_manifest(final, instance=instance)
        return final

    # ---- blobs --------------------------------------------------------------------------------

    async def _blob(self, src: ImageSource, dst: ImageDestination, desc: Descriptor, res: ImageResult) -> None:
        key = (dst.blob_namespace, desc.digest)
        fut = self._blobs.get(key)
        owner = fut is None
        if fut is None:
            fut = self._blobs[key] = asyncio.ensure_future(self._move(src, dst, desc))
        try:
            moved = await asyncio.shield(fut)
        except BaseException:
            if owner and fut.done():
                self._blobs.pop(key, None)   # a later image may try again
            raise
        size = max(desc.size, 0)
        if owner and moved:
            res.blobs_copied += 1
            res.bytes_copied += moved
        else:
            res.blobs_reused += 1
            res.bytes_reused += size

    async def _move(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> int:
        """One blob to one destination namespace. When another destination is already fetching the
        same digest, wait for it first: then this one mounts from there or reads the store."""
        leader = self._leaders.get(desc.digest)
        if leader is None:
            self._leaders[desc.digest] = asyncio.ensure_future(self._attempts(src, dst, desc))
            return await asyncio.shield(self._leaders[desc.digest])
        if dst.capabilities.can_mount or self.session.store is not None:
            await asyncio.wait([leader])
        return await self._attempts(src, dst, desc)

    async def _attempts(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> int:
        async def once() -> int:
            async with self.gate(src, dst, desc):
                return await self._transfer(src, dst, desc)
        moved = await self._retrying(once, f"blob {desc.digest}")
        ref = dst.reference.docker_reference
        if ref is not None:
            self._placed.setdefault(desc.digest, []).append(ref)
        return moved

    def _mount_source(self, src: ImageSource, dst: ImageDestination, desc: Descriptor):
        """Where a registry destination could mount `desc` from: a repository of the same registry
        that received it in this job, else the source repository."""
        mine = dst.reference.docker_reference
        for ref in self._placed.get(desc.digest, ()):
            if mine is not None and ref.registry == mine.registry and ref.path != mine.path:
                return ref
        return src.reference.docker_reference

    async def _edited(self, src: ImageSource, dst: ImageDestination, desc: Descriptor, edit: LayerEdit,
                      res: ImageResult) -> Descriptor:
        """A layer with its compression changed: shared across the job like plain blobs."""
        key = (dst.blob_namespace, desc.digest, edit)
        fut = self._edits.get(key)
        owner = fut is None
        if fut is None:
            fut = self._edits[key] = asyncio.ensure_future(
                self._retrying(lambda: self._edit_transfer(src, dst, desc, edit), f"layer {desc.digest}"))
        try:
            new, moved = await asyncio.shield(fut)
        except BaseException:
            if owner and fut.done():
                self._edits.pop(key, None)
            raise
        if owner and moved:
            res.blobs_copied += 1
            res.bytes_copied += new.size
        else:
            res.blobs_reused += 1
            res.bytes_reused += new.size
        return new

    async def _edit_transfer(self, src: ImageSource, dst: ImageDestination, desc: Descriptor,
                             edit: LayerEdit) -> tuple[Descriptor, bool]:
        """Recompress one layer (or take the remembered result); returns (new layer, whether it moved)."""
        store = self.session.store
        new = memo_get(store, desc, edit) if store else None
        if new is not None:
            assert store is not None
            if await dst.try_reuse_blob(new):
                return new, False
            await self._put_file(dst, new, store.path(new.digest), link=True)
            return new, True
        local = src.blob_path(desc)
        chunks = file_chunks(local) if local and os.path.exists(local) else src.blob_chunks(desc)
        new, path = await recompress_to_file(self._progress(chunks, desc), desc, edit,
                                             scratch_dir(store, self.session.options.tmpdir))
        try:
            if store:
                path = adopt_into_store(store, path, new)
                memo_put(store, desc, edit, new)
            if await dst.try_reuse_blob(new):
                return new, False
            await self._put_file(dst, new, path, link=store is not None)
        finally:
            if store is None and os.path.exists(path):
                os.unlink(path)
        self.emit(Event("blob-done", digest=str(new.digest), size=new.size))
        return new, True

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]], what: str = "") -> T:
        """Run one blob operation, retrying retryable failures with backoff and jitter (or the
        server's Retry-After, when the error carries one)."""
        attempts = max(0, self.options.retry_times) + 1
        for attempt in range(attempts):
            try:
                return await attempt_once()
            except (NetworkError, RegistryError) as exc:
                if attempt + 1 >= attempts or not getattr(exc, "retryable", False):
                    raise
                delay = retry_delay(attempt, getattr(exc, "retry_after", None))
                self.emit(Event("retry", message=f"{what}: {exc}; retrying in {delay:.1f}s"))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _transfer(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> int:
        """Move one blob; returns the bytes transferred (0 when it was already there)."""
        what = f"blob {desc.digest}"
        self.emit(Event("blob-start", digest=str(desc.digest), size=desc.size))
        if await dst.try_reuse_blob(desc, self._mount_source(src, dst, desc)):
            self.emit(Event("blob-done", digest=str(desc.digest), size=max(desc.size, 0), reused=True))
            return 0
        store = self.session.store
        files = dst.capabilities.accepts_files
        cached = store.lookup(desc) if store else None
        local = src.blob_path(desc)
        local = local if local and os.path.exists(local) else None
        moved = max(desc.size, 0)
        if cached:
            await self._put_file(dst, desc, cached, link=True)
        elif local and not store:
            await verify_file(local, desc, what)
            await self._put_file(dst, desc, local, link=False)
        elif store and files:
            path = await self._fill_store(src, desc, local, what)
            await dst.put_blob_file(desc, path, link=True)
        else:
            chunks = self._progress(verified(src.blob_chunks(desc), desc, what), desc)
            if store:
                writer = store.writer(desc, verified=True)
                try:
                    await dst.put_blob(desc, tee(chunks, writer.write))
                    writer.commit()
                except BaseException:
                    writer.abort()
                    raise
            else:
                await dst.put_blob(desc, chunks)
        self.emit(Event("blob-done", digest=str(desc.digest), size=moved))
        return moved

    async def _put_file(self, dst: ImageDestination, desc: Descriptor, path: str, link: bool) -> None:
        if dst.capabilities.accepts_files:
            await dst.put_blob_file(desc, path, link=link)
        else:
            await dst.put_blob(desc, self._progress(file_chunks(path), desc))

    async def _fill_store(self, src: ImageSource, desc: Descriptor, local: Optional[str], what: str) -> str:
        """Stream the blob into the store (verified, temp name, rename); returns its store path."""
        store = self.session.store
        assert store is not None
        chunks = file_chunks(local) if local else src.blob_chunks(desc)
        writer = store.writer(desc, verified=True)
        try:
            async for _ in tee(self._progress(verified(chunks, desc, what), desc), writer.write):
                pass
            return await asyncio.get_running_loop().run_in_executor(None, writer.commit)
        except BaseException:
            writer.abort()
            raise

    def _progress(self, chunks, desc: Descriptor):
        digest = str(desc.digest)
        return counted(chunks, lambda n: self.emit(Event("bytes", digest=digest, size=n)))


def retry_delay(attempt: int, retry_after: Optional[float] = None) -> float:
    """Seconds before retry number `attempt + 1`: the server's Retry-After when given (capped),
    else exponential backoff (0.5 s doubling, at most 30 s) with full jitter in [0.5x, 1.5x)."""
    if retry_after is not None and retry_after >= 0:
        return min(MAX_RETRY_AFTER, float(retry_after)) + random.random() * 0.1
    return min(30.0, 0.5 * 2 ** attempt) * (0.5 + random.random())


async def fetch_instance(src: ImageSource, d: Descriptor) -> Manifest:
    """Instance `d` of an index, checked against its digest."""
    raw, mt = await src.get_manifest(d.digest)
    man = parse_manifest(raw, mt or d.media_type)
    if man.digest != d.digest:
        raise DigestMismatch(f"manifest {d.digest}", str(d.digest), str(man.digest))
    return man


async def copy_image_async(session: Session, src: ImageReference, dst: ImageReference,
                           options: Optional[CopyOptions] = None,
                           src_opts: TransportOptions = TransportOptions(),
                           dst_opts: TransportOptions = TransportOptions(),
                           on_event: Optional[EventSink] = None) -> ImageResult:
    """Copy one image (see `Job.copy`)."""
    return await Job(session, options, on_event).copy(src, dst, src_opts, dst_opts)


__all__ = ["Job", "ImageResult", "copy_image_async", "FastsyncError"]
