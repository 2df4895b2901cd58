"""The blob pipeline: one blob (or one recompressed layer) to one destination.

Each step is a line: reuse what is already there (or mount it), place it from the cache, or stream
it from the source -- verify, count, tee into the cache -- into the destination. A local source file
or a cached blob is linked where the destination takes files. Returns how many bytes were placed
and where they came from (SOURCE, CACHE or THERE).
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator, Optional, TypeVar

from fastsync.core.pipeline import counted, tee, verified, verify_file
from fastsync.core.recompress import LayerEdit, recompress_to_file, scratch_dir
from fastsync.model import Descriptor
from fastsync.progress import Event, EventSink
from fastsync.reference import DockerReference
from fastsync.session import Session
from fastsync.store.memo import memo_get, memo_put
from fastsync.transports.base import ImageDestination, ImageSource, file_chunks
from fastsync.transports.localfs import in_thread

T = TypeVar("T")
SOURCE = "source"     # read from the image's source (downloaded, or read from a local source)
CACHE = "cache"       # the local blob store (hardlinked, copied or uploaded from it)
THERE = "there"       # already at the destination (or mounted there): nothing written
Moved = tuple[int, str]   # (bytes written to the destination, SOURCE | CACHE | THERE)


class BlobMover:
    def __init__(self, session: Session, emit: EventSink) -> None:
        self.session = session
        self.store = session.store
        self.emit = emit

    async def move(self, src: ImageSource, dst: ImageDestination, desc: Descriptor,
                   mount_from: Optional[DockerReference]) -> Moved:
        """Move one blob; THERE with 0 bytes when the destination had it (or mounted it)."""
        what = f"blob {desc.digest}"
        size = max(desc.size, 0)
        self.emit(Event("blob-start", digest=str(desc.digest), size=desc.size))
        if await dst.try_reuse_blob(desc, mount_from):
            self.emit(Event("blob-done", digest=str(desc.digest), size=size, reused=True))
            return 0, THERE
        store = self.store
        cached = store.lookup(desc) if store else None
        local = _existing(src.blob_path(desc))
        if cached:
            await self._put_file(dst, desc, cached, link=True, count=CACHE)
            self.emit(Event("blob-done", digest=str(desc.digest), size=size, cached=True))
            return size, CACHE
        if local and not store:
            await verify_file(local, desc, what)
            await self._put_file(dst, desc, local, link=False, count=SOURCE)
        elif store and dst.capabilities.accepts_files:
            await dst.put_blob_file(desc, await self._fill_store(src, desc, local, what), link=True)
        else:
            await self._stream(src, dst, desc, what)
        self.emit(Event("blob-done", digest=str(desc.digest), size=size))
        return size, SOURCE

    async def _stream(self, src: ImageSource, dst: ImageDestination, desc: Descriptor, what: str) -> None:
        """Source -> verify -> count -> (tee into the store) -> destination, as one stream."""
        chain = _Chain()
        chunks = chain(src.blob_chunks(desc))
        chunks = chain(verified(chunks, desc, what, transient=src.downloads))
        chunks = chain(self._progress(chunks, desc))
        writer = self.store.writer(desc, verified=True) if self.store else None
        try:
            if writer is not None:       # the upload does not wait for the disk
                chunks = chain(tee(chunks, writer.write_many, size=desc.size))
            await dst.put_blob(desc, chunks)
            if writer is not None:
                await in_thread(writer.commit)      # fsync and rename off the event loop
        except BaseException:
            await chain.close()                     # the tee's batch under way ends first
            if writer is not None:
                writer.abort()
            raise
        finally:
            await chain.close()

    async def _fill_store(self, src: ImageSource, desc: Descriptor, local: Optional[str], what: str) -> str:
        """Stream the blob into the store (verified, temp name, rename); returns its store path."""
        assert self.store is not None
        chain = _Chain()
        chunks = chain(file_chunks(local) if local else src.blob_chunks(desc))
        chunks = chain(verified(chunks, desc, what, transient=src.downloads and not local))
        chunks = chain(self._progress(chunks, desc))
        writer = self.store.writer(desc, verified=True)
        try:
            async for _ in chain(tee(chunks, writer.write_many, size=desc.size)):
                pass
            return await in_thread(writer.commit)
        except BaseException:
            await chain.close()
            writer.abort()
            raise

    async def edit(self, src: ImageSource, dst: ImageDestination, desc: Descriptor,
                   edit: LayerEdit) -> tuple[Descriptor, str]:
        """Recompress one layer (or take the store's remembered result); returns (new layer, where it
        came from)."""
        store = self.store
        new = memo_get(store, desc, edit) if store else None
        if new is not None:
            assert store is not None
            if await dst.try_reuse_blob(new):
                return new, THERE
            await self._put_file(dst, new, store.path(new.digest), link=True, count=CACHE)
            self.emit(Event("blob-done", digest=str(new.digest), size=new.size, cached=True))
            return new, CACHE
        local = _existing(src.blob_path(desc))
        chunks = self._progress(file_chunks(local) if local else src.blob_chunks(desc), desc)
        new, path = await recompress_to_file(chunks, desc, edit, scratch_dir(store, self.session.options.tmpdir),
                                             src.layer_compression(desc), transient=src.downloads and not local)
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

    def _progress(self, chunks: AsyncIterator[bytes], desc: Descriptor, cached: bool = False) -> AsyncIterator[bytes]:
        digest = str(desc.digest)
        return counted(chunks, lambda n: self.emit(Event("bytes", digest=digest, size=n, cached=cached)))


def _existing(path: Optional[str]) -> Optional[str]:
    return path if path and os.path.exists(path) else None


class _Chain:
    """The async generators of one blob's pipeline. A stage that stops with an exception (a
    cancellation in its own await) leaves the stages it reads from suspended; `close` closes each one,
    outermost first, while the loop runs (left to the garbage collector, they are closed later and in
    no particular order: a response would be released after its connection pool is gone)."""

    def __init__(self) -> None:
        self.stages: list[Any] = []

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
