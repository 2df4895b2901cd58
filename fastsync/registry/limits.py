"""Caps on what the client buffers from a registry, and reading a body within one.

The caps follow containers/image (pkg/iolimits): a registry, or anyone between it and us, could
otherwise make the client hold anything in memory. A body is refused as soon as it passes its cap,
whether or not the server sent a Content-Length.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

from fastsync.errors import NetworkError, TooLarge

if TYPE_CHECKING:
    import aiohttp

MiB = 1 << 20
MAX_MANIFEST = 4 * MiB        # a manifest or index
MAX_CONFIG = 4 * MiB          # an image config read for inspect
MAX_TOKEN = 1 * MiB           # a token server's answer
MAX_ERROR = 1 * MiB           # an error answer (only its start is shown)
MAX_TAG_LIST = 16 * MiB       # one page of a tag list (hundreds of thousands of tags)
PIECE = 64 * 1024


def size_text(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


async def read_capped(resp: "aiohttp.ClientResponse", limit: int, what: str,
                      describe: Callable[[BaseException], str]) -> bytes:
    """The whole body of `resp`, refused (TooLarge) beyond `limit` bytes; a connection that breaks
    or goes idle while it is read is a (retryable) NetworkError described by `describe`."""
    import aiohttp

    declared = resp.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"{what}: the answer is {declared} bytes, more than the {size_text(limit)} allowed")
    buf = bytearray()
    try:
        async for piece in resp.content.iter_chunked(PIECE):
            buf += piece
            if len(buf) > limit:
                raise TooLarge(f"{what}: the answer is more than the {size_text(limit)} allowed")
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise NetworkError(f"{what}: {describe(exc)}") from None
    return bytes(buf)


async def read_start(resp: "aiohttp.ClientResponse", limit: int = MAX_ERROR) -> bytes:
    """At most the first `limit` bytes of a body we only show (an error answer); a body that cannot
    be read is empty."""
    import aiohttp

    buf = bytearray()
    try:
        async for piece in resp.content.iter_chunked(PIECE):
            buf += piece
            if len(buf) >= limit:
                return bytes(buf[:limit])
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
        pass
    return bytes(buf)
