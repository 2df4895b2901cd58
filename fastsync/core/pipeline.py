"""Blob stages: small async generators chained between a source and a destination."""
from __future__ import annotations

import asyncio
import collections
from typing import AsyncIterator, Callable

from fastsync.core import native
from fastsync.errors import DigestMismatch
from fastsync.model import Descriptor

OFFLOAD = 256 * 1024   # chunks at least this big are hashed in a worker thread (the native core drops the GIL)
TEE_LAG = 2 << 20      # how far a cache write may fall behind the stream it copies


async def verified(chunks: AsyncIterator[bytes], desc: Descriptor, what: str,
                   transient: bool = False) -> AsyncIterator[bytes]:
    """Pass chunks through while hashing; raise DigestMismatch before the stream ends cleanly if wrong
    (`transient`: the bytes were downloaded, so the mismatch is retryable, from the start)."""
    loop = asyncio.get_running_loop()
    digester = native.Digester()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if 0 <= desc.size < size:
            raise DigestMismatch(f"{what} (size)", f"{desc.size} bytes", f"at least {size} bytes", transient)
        if len(chunk) >= OFFLOAD:
            await loop.run_in_executor(None, digester.update, chunk)
        else:
            digester.update(chunk)
        yield chunk
    result = digester.result()
    if result.digest != str(desc.digest):
        raise DigestMismatch(what, str(desc.digest), result.digest, transient)
    if desc.size >= 0 and result.size != desc.size:
        raise DigestMismatch(f"{what} (size)", f"{desc.size} bytes", f"{result.size} bytes", transient)


async def counted(chunks: AsyncIterator[bytes], on_bytes: Callable[[int], None]) -> AsyncIterator[bytes]:
    """Report each chunk's size (progress)."""
    async for chunk in chunks:
        on_bytes(len(chunk))
        yield chunk


async def tee(chunks: AsyncIterator[bytes], sink: Callable[[bytes], None], lag: int = TEE_LAG) -> AsyncIterator[bytes]:
    """Hand every chunk to `sink` (e.g. a store writer) as it passes, without the stream waiting for
    the sink: chunks are written in order by a thread of the stage's own while they flow on, at most
    `lag` bytes behind (then the stream waits). The stream ends once every chunk is written; a sink
    error stops it."""
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1, thread_name_prefix="fastsync-tee")
    behind: collections.deque[tuple[asyncio.Future[None], int]] = collections.deque()
    queued = 0
    try:
        async for chunk in chunks:
            behind.append((loop.run_in_executor(pool, sink, chunk), len(chunk)))
            queued += len(chunk)
            while behind and (behind[0][0].done() or queued > lag):
                fut, n = behind.popleft()
                queued -= n
                await fut
            yield chunk
        while behind:
            await behind.popleft()[0]
    finally:
        for fut, _ in behind:
            fut.cancel()                 # not started yet: never runs
        pool.shutdown(wait=True)         # the one running (a chunk's write) ends before the writer is aborted


async def verify_file(path: str, desc: Descriptor, what: str) -> None:
    """Hash a local file (mmap, off the event loop) and compare with the descriptor."""
    result = await asyncio.get_running_loop().run_in_executor(None, native.sha256_file, path)
    if result.digest != str(desc.digest):
        raise DigestMismatch(what, str(desc.digest), result.digest)
    if desc.size >= 0 and result.size != desc.size:
        raise DigestMismatch(f"{what} (size)", f"{desc.size} bytes", f"{result.size} bytes")
