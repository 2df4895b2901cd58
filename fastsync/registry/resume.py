"""Blob downloads from a registry that survive broken connections: resume with `Range`.

`resumable_chunks` yields a blob's bytes as one continuous stream. When the connection breaks after
some bytes arrived, it asks again for the rest (`Range: bytes=N-`); a server that ignores Range
answers 200 and the first N bytes are skipped. Failures without progress are raised (the engine's
per-blob retry takes over); 429/503 errors carry the server's Retry-After as `exc.retry_after`.
The HTTP side (Range, redirects, skipping what a Range-ignoring server resends) is
`RegistryClient.blob_chunks(repo, desc, offset)`.
The downstream digest check sees the whole stream, so a resumed blob is verified like any other.
"""
from __future__ import annotations

import email.utils
import logging
import time
from typing import TYPE_CHECKING, AsyncIterator, Optional

from fastsync.errors import NetworkError, RegistryError
from fastsync.model import Descriptor

if TYPE_CHECKING:
    from fastsync.registry.client import RegistryClient

MAX_RESUMES = 20
log = logging.getLogger("fastsync")


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


async def resumable_chunks(client: "RegistryClient", repo: str, desc: Descriptor) -> AsyncIterator[bytes]:
    offset = 0
    resumes = 0
    what = f"reading blob {desc.digest} from {client.host}/{repo}"
    while True:
        start = offset
        chunks = client.blob_chunks(repo, desc, offset)
        try:
            async for chunk in chunks:
                offset += len(chunk)
                yield chunk
            return
        except (NetworkError, RegistryError) as exc:
            progressed = offset > start
            if not progressed or resumes >= MAX_RESUMES or not getattr(exc, "retryable", False):
                raise
            resumes += 1
            log.debug("%s: broken after %d bytes (%s); resuming with Range", what, offset, exc)
        finally:
            await chunks.aclose()
