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
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from typing import Any, Awaitable, Callable, Iterable, Iterator, Optional, TypeVar

from fastsync import manifest as mf
from fastsync import model as m
from fastsync.errors import DigestMismatch, FastsyncError, NetworkError, RegistryError, Unsupported
from fastsync.manifest import Manifest, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.options import CopyOptions, TransportOptions
from fastsync.core.pipeline import counted, tee, verified, verify_file
from fastsync.progress import Event, EventSink, emitter
from fastsync.core.recompress import LayerEdit, layer_edits, recompress_to_file, scratch_dir
from fastsync.store.memo import memo_get, memo_put
from fastsync.session import Session
from fastsync.transports.base import ImageDestination, ImageReference, ImageSource, file_chunks
from fastsync.transports.localfs import in_thread


T = TypeVar("T")
# (source, destination, blob) -> a context held around each attempt of a blob transfer: the
# scheduler's per-host concurrency limits; it sees the attempt's exception, if any.
BlobGate = Callable[[ImageSource, ImageDestination, Descriptor], AbstractAsyncContextManager]
MAX_RETRY_AFTER = 120.0
# where a blob placed at a destination came from
SOURCE = "source"     # read from the image's source (downloaded, or read from a local source)
CACHE = "cache"       # the local blob store (hardlinked, copied or uploaded from it)
THERE = "there"       # already at the destination (or mounted there): nothing written
Moved = tuple[int, str]   # (bytes written to the destination, SOURCE | CACHE | THERE)
SETTLE_POLL = 0.2


def _no_gate(src: ImageSource, dst: ImageDestination, desc: Descriptor) -> AbstractAsyncContextManager:
    return nullcontext()


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


class _Work:
    """The shared blob transfers one image has started or waits for (see `Job._settle`)."""

    def __init__(self) -> None:
        self.futures: dict[asyncio.Future, tuple[dict, Any]] = {}   # future -> (its table, its key)

    def add(self, fut: asyncio.Future, table: dict, key: Any) -> None:
        self.futures.setdefault(fut, (table, key))


async def _all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Like asyncio.gather, but the first failure (or a cancellation) cancels the others and waits
    for them before it propagates: nothing of the caller keeps running behind its back."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        await _stop(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        await _stop(tasks)
        raise failed.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]


async def _stop(tasks: list[asyncio.Future]) -> None:
    for t in tasks:
        t.cancel()
    try:
        await asyncio.wait(tasks)
    finally:
        for t in tasks:                     # retrieved, so none is logged as "never retrieved"
            if t.done() and not t.cancelled():
                t.exception()


class Job:
    def __init__(self, session: Session, options: Optional[CopyOptions] = None,
                 on_event: Optional[EventSink] = None, gate: Optional[BlobGate] = None) -> None:
        self.session = session
        self.options = options or CopyOptions()
        self.emit = emitter(on_event)
        self.gate = gate or _no_gate
        self._blobs: dict[tuple[str, Digest], asyncio.Future[Moved]] = {}
        # the first transfer of each digest in this job (any destination), and the registry
        # repositories that hold it since: later destinations mount from those or read the store
        self._leaders: dict[Digest, asyncio.Future[Moved]] = {}
        self._led: dict[asyncio.Future, asyncio.Future] = {}      # a _blobs future -> the leader it runs
        self._placed: dict[Digest, list] = {}
        self._edits: dict[tuple[str, Digest, LayerEdit], asyncio.Future[tuple[Descriptor, str]]] = {}
        self._waiters: dict[asyncio.Future, int] = {}             # images (or destinations) awaiting it

    async def copy(self, src_ref: ImageReference, dst_ref: ImageReference,
                   src_opts: TransportOptions = TransportOptions(),
                   dst_opts: TransportOptions = TransportOptions()) -> ImageResult:
        res = ImageResult(str(src_ref), str(dst_ref))
        t0 = time.monotonic()
        name = f"{src_ref} -> {dst_ref}"
        self.emit(Event("image-start", name))
        work = _Work()
        src = await src_ref.open_source(self.session, src_opts)
        try:
            dst = await dst_ref.open_destination(self.session, dst_opts)
            try:
                final = await self._copy_top(src, dst, res, name, work)
                if not res.up_to_date:
                    await dst.commit()
                res.digest, res.media_type = final.digest, final.media_type
            except BaseException:
                # nothing of this image may still write into dst when it is closed (a dir: staging
                # directory is removed then): stop or await its blob transfers first
                await self._settle(work)
                raise
            finally:
                await dst.close()
        finally:
            await src.close()
        res.seconds = time.monotonic() - t0
        self.emit(Event("image-skipped" if res.up_to_date else "image-done", name, str(res.digest),
                        res.bytes_copied))
        return res

    # ---- manifests ----------------------------------------------------------------------------

    async def _settle(self, work: _Work) -> None:
        """Cancel the image's blob transfers that no other image (or destination) waits for, await the
        rest, and forget the failed ones (a later image may try again). Returns when all are done."""
        futures = work.futures
        cancelled = False
        pending = [f for f in futures if not f.done()]
        while pending:
            for fut in pending:
                leader = self._led.get(fut)
                if not self._waiters.get(fut) and not (leader is not None and self._waiters.get(leader)):
                    fut.cancel()
            try:
                await asyncio.wait(pending, timeout=SETTLE_POLL)   # waiters may go away meanwhile
            except asyncio.CancelledError:
                cancelled = True
            pending = [f for f in pending if not f.done()]
        for fut, (table, key) in futures.items():
            if fut.cancelled() or fut.exception() is not None:
                if table.get(key) is fut:
                    table.pop(key, None)
        if cancelled:
            raise asyncio.CancelledError

    @contextmanager
    def _waiting(self, fut: asyncio.Future) -> Iterator[None]:
        self._waiters[fut] = self._waiters.get(fut, 0) + 1
        try:
            yield
        finally:
            left = self._waiters[fut] - 1
            if left:
                self._waiters[fut] = left
            else:
                del self._waiters[fut]

    async def _copy_top(self, src: ImageSource, dst: ImageDestination, res: ImageResult, name: str,
                        work: _Work) -> Manifest:
        raw, mt = await src.get_manifest()
        top = parse_manifest(raw, mt)
        mode = self.options.multi_arch
        if top.is_index and mode == "system":
            want = self.options.platform or mf.host_platform()
            top = await self._instance(src, mf.choose_instance(top, want))
        if not top.is_index:
            return await self._copy_single(src, dst, top, res, work, instance=False)
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
        children = await _all(self._copy_child(src, dst, d, res, work) for d in top.manifests)
        if target == m.DOCKER_LIST and any(c.media_type == m.OCI_MANIFEST for c in children):
            target = m.OCI_INDEX      # an instance became OCI (zstd layers): the list follows
        final = mf.rewrite_index(top, {d.digest: c.descriptor() for d, c in zip(top.manifests, children)}, target)
        self._check_preserved(top, final)
        await dst.put_manifest(final)
        return final

    async def _copy_child(self, src: ImageSource, dst: ImageDestination, d: Descriptor,
                          res: ImageResult, work: _Work) -> Manifest:
        child = await self._instance(src, d)
        if child.is_index:
            raise Unsupported(f"nested index {d.digest} is not supported")
        return await self._copy_single(src, dst, child, res, work, instance=True)

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
                           work: _Work, instance: bool) -> Manifest:
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
                await self._blob(src, dst, desc, res, work)

        async def edited(desc: Descriptor) -> tuple[Digest, Descriptor]:
            async with sem:
                edit = edits[desc.digest]
                new = await self._edited(src, dst, desc, edit, res, work)
                return desc.digest, Descriptor(mf.layer_media_type(target, edit.format), new.digest, new.size,
                                               annotations=desc.annotations)

        plain = [one(d) for d in man.blobs() if d.digest not in edits]
        changed = [edited(d) for d in man.blobs() if d.digest in edits]
        done = await _all([*plain, *changed])
        if edits:
            final = mf.rewrite_image(man, target, dict(done[len(plain):]))
        await dst.put_manifest(final, instance=instance)
        return final

    # ---- blobs --------------------------------------------------------------------------------

    async def _blob(self, src: ImageSource, dst: ImageDestination, desc: Descriptor, res: ImageResult,
                    work: _Work) -> None:
        (moved, how), owner = await self._shared(self._blobs, (dst.blob_namespace, desc.digest),
                                                 lambda: self._move(src, dst, desc), work)
        how = how if owner else THERE                # another image of the job placed it
        _count(res, moved if how != THERE else max(desc.size, 0), how)

    async def _shared(self, table: dict, key: Any, start: Callable[[], Awaitable[T]], work: _Work) -> tuple[T, bool]:
        """Join the job-wide transfer `table[key]`, starting it (`start()`) when this image is the
        first to need it; returns (its result, whether this image started it). A failed transfer is
        forgotten by the image that started it, so a later image may try again."""
        fut = table.get(key)
        owner = fut is None
        if fut is None:
            fut = table[key] = asyncio.ensure_future(start())
        work.add(fut, table, key)
        with self._waiting(fut):
            try:
                return await asyncio.shield(fut), owner
            except BaseException:
                if owner and fut.done():
                    table.pop(key, None)
                raise

    async def _move(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> Moved:
        """One blob to one destination namespace. When another destination is already fetching the
        same digest, wait for it first: then this one mounts from there or reads the store."""
        leader = self._leaders.get(desc.digest)
        if leader is None:
            leader = self._leaders[desc.digest] = asyncio.ensure_future(self._attempts(src, dst, desc))
            me = asyncio.current_task()
            if me is not None:
                self._led[me] = leader
            try:
                # not shielded: cancelling this transfer stops the leader's work for this destination
                # and returns once it has stopped (other destinations waiting on it then do their own)
                return await leader
            finally:
                if me is not None:
                    self._led.pop(me, None)
        if dst.capabilities.can_mount or self.session.store is not None:
            with self._waiting(leader):
                await asyncio.wait([leader])
        return await self._attempts(src, dst, desc)

    async def _attempts(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> Moved:
        async def once() -> Moved:
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
                      res: ImageResult, work: _Work) -> Descriptor:
        """A layer with its compression changed: shared across the job like plain blobs."""
        (new, how), owner = await self._shared(
            self._edits, (dst.blob_namespace, desc.digest, edit),
            lambda: self._retrying(lambda: self._edit_transfer(src, dst, desc, edit), f"layer {desc.digest}"), work)
        _count(res, new.size, how if owner else THERE)
        return new

    async def _edit_transfer(self, src: ImageSource, dst: ImageDestination, desc: Descriptor,
                             edit: LayerEdit) -> tuple[Descriptor, str]:
        """Recompress one layer (or take the remembered result); returns (new layer, where it came from)."""
        store = self.session.store
        new = memo_get(store, desc, edit) if store else None
        if new is not None:
            assert store is not None
            if await dst.try_reuse_blob(new):
                return new, THERE
            await self._put_file(dst, new, store.path(new.digest), link=True, count=CACHE)
            self.emit(Event("blob-done", digest=str(new.digest), size=new.size, cached=True))
            return new, CACHE
        local = src.blob_path(desc)
        chunks = file_chunks(local) if local and os.path.exists(local) else src.blob_chunks(desc)
        new, path = await recompress_to_file(self._progress(chunks, desc), desc, edit,
                                             scratch_dir(store, self.session.options.tmpdir))
        try:
            if store:
                path = store.adopt(path, new)
                memo_put(store, desc, edit, new)
            if await dst.try_reuse_blob(new):
                return new, THERE
            # its source bytes were counted as they were read (recompressing)
            await self._put_file(dst, new, path, link=store is not None, count=None)
        finally:
            if store is None and os.path.exists(path):
                os.unlink(path)
        self.emit(Event("blob-done", digest=str(new.digest), size=new.size))
        return new, SOURCE

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

    async def _transfer(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> Moved:
        """Move one blob; returns the bytes written to the destination and where they came from
        (SOURCE, CACHE, or THERE with 0 bytes when it was already there)."""
        what = f"blob {desc.digest}"
        self.emit(Event("blob-start", digest=str(desc.digest), size=desc.size))
        if await dst.try_reuse_blob(desc, self._mount_source(src, dst, desc)):
            self.emit(Event("blob-done", digest=str(desc.digest), size=max(desc.size, 0), reused=True))
            return 0, THERE
        store = self.session.store
        files = dst.capabilities.accepts_files
        cached = store.lookup(desc) if store else None
        local = src.blob_path(desc)
        local = local if local and os.path.exists(local) else None
        moved = max(desc.size, 0)
        if cached:
            await self._put_file(dst, desc, cached, link=True, count=CACHE)
            self.emit(Event("blob-done", digest=str(desc.digest), size=moved, cached=True))
            return moved, CACHE
        if local and not store:
            await verify_file(local, desc, what)
            await self._put_file(dst, desc, local, link=False, count=SOURCE)
        elif store and files:
            path = await self._fill_store(src, desc, local, what)
            await dst.put_blob_file(desc, path, link=True)
        else:
            chain = _Chain()
            chunks = chain(self._progress(chain(verified(chain(src.blob_chunks(desc)), desc, what)), desc))
            try:
                if store:
                    writer = store.writer(desc, verified=True)
                    try:
                        await dst.put_blob(desc, chain(tee(chunks, writer.write)))
                        writer.commit()
                    except BaseException:
                        writer.abort()
                        raise
                else:
                    await dst.put_blob(desc, chunks)
            finally:
                await chain.close()
        self.emit(Event("blob-done", digest=str(desc.digest), size=moved))
        return moved, SOURCE

    async def _put_file(self, dst: ImageDestination, desc: Descriptor, path: str, link: bool,
                        count: Optional[str]) -> None:
        """Place a local file at the destination; `count`: report its bytes as read from the SOURCE
        or the CACHE (None: they were counted already)."""
        cached = count == CACHE
        if dst.capabilities.accepts_files:
            await dst.put_blob_file(desc, path, link=link)
            if count is not None:
                self.emit(Event("bytes", digest=str(desc.digest), size=max(desc.size, 0), cached=cached))
        elif count is not None:
            await dst.put_blob(desc, self._progress(file_chunks(path), desc, cached=cached))
        else:
            await dst.put_blob(desc, file_chunks(path))

    async def _fill_store(self, src: ImageSource, desc: Descriptor, local: Optional[str], what: str) -> str:
        """Stream the blob into the store (verified, temp name, rename); returns its store path."""
        store = self.session.store
        assert store is not None
        chain = _Chain()
        chunks = chain(file_chunks(local) if local else src.blob_chunks(desc))
        writer = store.writer(desc, verified=True)
        try:
            async for _ in chain(tee(chain(self._progress(chain(verified(chunks, desc, what)), desc)), writer.write)):
                pass
            return await in_thread(writer.commit)
        except BaseException:
            await chain.close()
            writer.abort()
            raise

    def _progress(self, chunks, desc: Descriptor, cached: bool = False):
        digest = str(desc.digest)
        return counted(chunks, lambda n: self.emit(Event("bytes", digest=digest, size=n, cached=cached)))


class _Chain:
    """The async generators of one blob's pipeline. A stage that stops with an exception (a
    cancellation in its own await) leaves the stages it reads from suspended; `close` closes each one,
    outermost first, while the loop runs (left to the garbage collector, they are closed later and in
    no particular order: a response would be released after its connection pool is gone)."""

    def __init__(self) -> None:
        self.stages: list = []

    def __call__(self, gen: T) -> T:
        self.stages.append(gen)
        return gen

    async def close(self) -> None:
        cancelled = False
        for gen in reversed(self.stages):
            aclose = getattr(gen, "aclose", None)
            if aclose is None:
                continue
            try:
                await aclose()
            except asyncio.CancelledError:
                cancelled = True
            except Exception:
                pass              # a stage failing as it closes: the error that stopped the blob wins
        if cancelled:
            raise asyncio.CancelledError


def _count(res: ImageResult, nbytes: int, how: str) -> None:
    if how == SOURCE:
        res.blobs_copied += 1
        res.bytes_copied += nbytes
    elif how == CACHE:
        res.blobs_cached += 1
        res.bytes_cached += nbytes
    else:
        res.blobs_reused += 1
        res.bytes_reused += nbytes


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
