"""Blob stages: small async generators chained between a source and a destination."""
from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Callable, Optional

from fastsync.core import native
from fastsync.errors import DigestMismatch
from fastsync.model import Descriptor

# a chunk at least this big is hashed in a worker thread (the native core drops the GIL); smaller ones
# (a registry's 256 KiB reads) are hashed in place: handing one to a thread and back costs more CPU
# (~65 us: two wake-ups) than hashing it (~150 us at 1.7 GB/s), and it keeps one more chunk alive
OFFLOAD = 2 << 20
TEE_LAG = 2 << 20      # how far a cache write may fall behind the stream it copies
TEE_BATCH = 512 << 10  # bytes of chunks a worker thread writes at once (one hand-off per batch)


async def verified(chunks: AsyncIterator[bytes], desc: Descriptor, what: str,
                   transient: bool = False) -> AsyncIterator[bytes]:
    """Pass chunks through while hashing; raise DigestMismatch before the stream ends cleanly if wrong
    (`transient`: the bytes were downloaded, so the mismatch is retryable, from the start). With a
    known size the digest is checked before the last chunk is passed on: a consumer that stops once
    it has `size` bytes (an HTTP body of that Content-Length) has had only verified bytes."""
    loop = asyncio.get_running_loop()
    digester = native.Digester()
    size = 0
    checked = False                            # (an empty blob may come as no chunk at all)
    async for chunk in chunks:
        size += len(chunk)
        if 0 <= desc.size < size:
            raise DigestMismatch(f"{what} (size)", f"{desc.size} bytes", f"at least {size} bytes", transient)
        if len(chunk) >= OFFLOAD:
            await loop.run_in_executor(None, digester.update, chunk)
        else:
            digester.update(chunk)
        if size == desc.size:                  # the last chunk of a known size: checked before it goes on
            _check(digester, desc, what, transient)
            checked = True
        yield chunk
    if not checked:
        _check(digester, desc, what, transient)


def _check(digester: "native.Digester", desc: Descriptor, what: str, transient: bool) -> None:
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


async def tee(chunks: AsyncIterator[bytes], sink: Callable[[list[bytes]], None], lag: int = TEE_LAG,
              batch: int = TEE_BATCH, size: int = -1) -> AsyncIterator[bytes]:
    """Hand every chunk to `sink` (e.g. a store writer's `write_many`) as it passes, without the
    stream waiting for the sink: the chunks are gathered into batches of about `batch` bytes, each
    written, in order, by one of the loop's worker threads while the stream flows on -- one batch in
    flight at a time, at most `lag` bytes behind (then the stream waits). The stream ends once every
    chunk is written; a sink error stops it. With a known `size`, every chunk is written before the
    last one is passed on, so a consumer that stops (or is cancelled) once it has `size` bytes -- an
    HTTP client whose request ended when the answer came -- leaves nothing unwritten. Once the stream
    is closed (ended, failed or cancelled), the batch being written has ended and none is written
    after: the writer may be aborted."""
    loop = asyncio.get_running_loop()
    gate = _Gate()
    pending: list[bytes] = []
    held = 0                                   # bytes in `pending`
    flight: Optional[asyncio.Future[None]] = None
    flying = 0                                 # bytes of the batch in flight
    seen = 0

    async def drain() -> None:                 # every chunk so far written, in order
        nonlocal flight, pending, held
        if flight is not None:
            await flight
            flight = None
        if pending:
            rest, pending, held = pending, [], 0
            await loop.run_in_executor(None, gate.write, sink, rest)

    try:
        async for chunk in chunks:
            pending.append(chunk)
            held += len(chunk)
            seen += len(chunk)
            if seen == size:                   # the last chunk: all of it is written before it goes on
                await drain()
            else:
                if flight is not None and (flight.done() or held + flying > lag):
                    await flight               # the sink's error, if it failed
                    flight = None
                if flight is None and held >= batch:
                    flight, flying = loop.run_in_executor(None, gate.write, sink, pending), held
                    pending, held = [], 0
            yield chunk
        await drain()
    finally:
        gate.close()


class _Gate:
    """A tee's writes, one batch at a time; `close` waits for the one being written and stops any
    queued one from writing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    def write(self, sink: Callable[[list[bytes]], None], chunks: list[bytes]) -> None:
        with self._lock:
            if not self._closed:
                sink(chunks)

    def close(self) -> None:
        with self._lock:
            self._closed = True


async def verify_file(path: str, desc: Descriptor, what: str) -> None:
    """Hash a local file (mmap, off the event loop) and compare with the descriptor."""
    result = await asyncio.get_running_loop().run_in_executor(None, native.sha256_file, path)
    if result.digest != str(desc.digest):
        raise DigestMismatch(what, str(desc.digest), result.digest)
    if desc.size >= 0 and result.size != desc.size:
        raise DigestMismatch(f"{what} (size)", f"{desc.size} bytes", f"{result.size} bytes")
