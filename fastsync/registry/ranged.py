"""Streams that do not wait: a blob fetched in parallel Range parts, and a stream asked for its first
chunk ahead of time.

Over a long-haul link each TCP connection is capped (window / round trip, or a per-connection
shaper), so a big blob in one GET takes size / cap. `parallel_chunks` asks for the first part alone
and times it: a source that answers 206 slower than `FAST` gets the next parts asked for over further
connections, at most `WIDTH` parts in flight; a fast one (a LAN, loopback) sends the rest in one more
GET, so nothing is held in memory. The parts are handed on in order, so the digest check and the
upload downstream see one ordinary stream, and memory stays under WIDTH x PART. A part that fails is
fetched again alone (the retry policy, with Range resume inside it); a source that answers 200 to a
Range request (no Range support) is read in one GET, as any small blob.
"""
from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from fastsync.errors import NetworkError
from fastsync.model import Descriptor
from fastsync.registry.limits import MiB

if TYPE_CHECKING:
    from fastsync.registry.client import RegistryClient

RANGE_MIN = 64 * MiB      # blobs at least this big are fetched in parts
PART = 4 * MiB            # bytes per Range request
WIDTH = 4                 # parts in flight (the one being handed on included)
FAST = 64e6               # bytes/s: a first part this fast says one connection is enough


def wanted(desc: Descriptor) -> bool:
    """Whether `desc` is big enough to be fetched in parts."""
    return desc.size >= RANGE_MIN


async def parallel_chunks(client: "RegistryClient", repo: str, desc: Descriptor) -> AsyncIterator[bytes]:
    """`desc`'s bytes in order, fetched as parallel Range parts when the source takes Range."""
    part, width = PART, WIDTH
    bounds = [(s, min(s + part, desc.size)) for s in range(0, desc.size, part)]
    statuses: list[int] = []

    async def open_first() -> tuple[AsyncIterator[bytes], bytes]:
        statuses.clear()
        gen = client.blob_range(repo, desc, 0, bounds[0][1], answered=statuses.append)
        try:
            return gen, await gen.__anext__()
        except StopAsyncIteration:
            return gen, b""
        except BaseException:
            await gen.aclose()           # type: ignore[attr-defined]
            raise
    first, head = await client.retried(open_first)      # the first part's request, retried alone too
    ahead: collections.deque[asyncio.Future[list[bytes]]] = collections.deque()
    try:
        if statuses[:1] != [206]:       # Range ignored: the whole blob in one GET
            await first.aclose()         # type: ignore[attr-defined]
            async for chunk in client.blob_range(repo, desc):
                yield chunk
            return
        following = iter(bounds[1:])

        def launch() -> None:
            while len(ahead) < width - 1:
                nxt = next(following, None)
                if nxt is None:
                    return
                ahead.append(asyncio.ensure_future(_part(client, repo, desc, *nxt)))
        loop = asyncio.get_running_loop()
        began, got, part0 = loop.time(), len(head), [head]
        async for chunk in first:            # timed alone: the download, not what consumes it
            got += len(chunk)
            part0.append(chunk)
        _check_length(desc, 0, bounds[0][1], got)
        fast = got >= FAST * max(1e-6, loop.time() - began)
        if not fast:
            launch()
        for chunk in part0:
            yield chunk
        del part0
        if len(bounds) > 1 and fast:
            async for chunk in client.blob_range(repo, desc, bounds[1][0]):   # one connection is enough
                yield chunk
            return
        while ahead:
            chunks = await ahead[0]
            ahead.popleft()
            launch()
            for chunk in chunks:
                yield chunk
            del chunks
    finally:
        await first.aclose()             # type: ignore[attr-defined]
        await _cancel(ahead)


async def _part(client: "RegistryClient", repo: str, desc: Descriptor, start: int, end: int) -> list[bytes]:
    """Bytes [start, end) of the blob, held in memory (one part); retried alone when it fails."""
    async def once() -> list[bytes]:
        chunks: list[bytes] = []
        got = 0
        gen = client.blob_range(repo, desc, start, end)
        try:
            async for chunk in gen:
                chunks.append(chunk)
                got += len(chunk)
        finally:
            await gen.aclose()
        _check_length(desc, start, end, got)
        return chunks
    return await client.retried(once)


def _check_length(desc: Descriptor, start: int, end: int, got: int) -> None:
    if got != end - start:
        raise NetworkError(f"reading blob {desc.digest}: bytes {start}-{end - 1} ended after {got} bytes")


async def _cancel(tasks: "collections.deque[asyncio.Future[Any]]") -> None:
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(list(tasks))
        for t in tasks:
            if not t.cancelled():
                t.exception()           # retrieved: the error that stopped the stream is what counts


class Primed:
    """An async iterator whose first item is asked for at once, in a task of its own: the source GET
    of a blob goes out while its upload session is being opened. `stop` ends that task when the
    stream is not read after all."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._first: Optional[asyncio.Future[bytes]] = asyncio.ensure_future(_next(chunks))

    def __aiter__(self) -> "Primed":
        return self

    async def __anext__(self) -> bytes:
        first, self._first = self._first, None
        if first is not None:
            return await first
        return await self._chunks.__anext__()

    async def stop(self) -> None:
        first, self._first = self._first, None
        if first is None:
            return
        if not first.done():
            first.cancel()
            await asyncio.wait([first])
        if not first.cancelled():
            first.exception()


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()
