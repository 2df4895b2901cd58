"""Noticing a peer that stops taking a request body: the idle timeout of the sending side.

aiohttp's read timeout watches answers only; a registry (or a proxy) that stops reading an upload
leaves the body's writer waiting forever for the socket to drain. `Offered` records when the chunk
handed to the connection was offered; `guarded` abandons the request when one has waited longer
than the idle timeout.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Optional, TypeVar

from fastsync.options import NetworkOptions

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")
UPLOAD_ANSWER_IDLE = 10     # a registry may take long to answer a big blob's final PUT: 10x the idle timeout


def upload_timeout(net: NetworkOptions) -> "aiohttp.ClientTimeout":
    """The session's timeouts, but a longer wait (10 x --read-idle-timeout) for the answer once a
    blob's body is sent: the registry hashes and stores it first."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=net.connect_timeout,
                                 sock_read=net.read_idle_timeout * UPLOAD_ANSWER_IDLE)


class Offered:
    """Wraps a body: `since` is when the chunk now being written was handed over (None between)."""

    def __init__(self) -> None:
        self.since: Optional[float] = None

    async def wrap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        async for chunk in chunks:
            self.since = loop.time()
            yield chunk               # resumed only once the connection took it
            self.since = None


async def guarded(work: Awaitable[T], watch: Offered, idle: float, on_idle: Callable[[], BaseException]) -> T:
    """Await `work`; when a chunk of its body has waited more than `idle` seconds to be taken, cancel
    it and raise `on_idle()`."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    tick = max(0.05, idle / 4)
    try:
        while True:
            done, _ = await asyncio.wait([task], timeout=tick)
            if done:
                return task.result()
            since = watch.since
            if since is not None and loop.time() - since > idle:
                raise on_idle()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled():
                task.exception()      # retrieved: the idle error is what the caller sees
