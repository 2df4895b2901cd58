"""Blob downloads from a registry that survive broken connections: resume with `Range`.

`resumable_chunks` yields a blob's bytes as one continuous stream. When the connection breaks after
some bytes arrived, it asks again for the rest (`Range: bytes=N-`); a server that ignores Range
answers 200 and the first N bytes are skipped. Failures without progress are raised (the engine's
per-blob retry takes over); 429/503 errors carry the server's Retry-After as `exc.retry_after`.
The downstream digest check sees the whole stream, so a resumed blob is verified like any other.
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import TYPE_CHECKING, AsyncIterator, Optional
from urllib.parse import urljoin, urlsplit

from .errors import NetworkError, RegistryError
from .model import Descriptor

if TYPE_CHECKING:
    import aiohttp

    from .transports.registry_client import RegistryClient

CHUNK = 1 << 20
MAX_RESUMES = 20
REDIRECTS = (301, 302, 303, 307, 308)
SEEN = (200, 206, 408, 425, 429, 500, 502, 503, 504) + REDIRECTS   # statuses read here, not raised
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


def _status_error(status: int, headers: "aiohttp.typedefs.LooseHeaders", what: str) -> RegistryError:
    exc = RegistryError(f"{what}: HTTP {status}", status)
    exc.retry_after = parse_retry_after(dict(headers).get("Retry-After"))  # type: ignore[attr-defined]
    return exc


async def resumable_chunks(client: "RegistryClient", repo: str, desc: Descriptor) -> AsyncIterator[bytes]:
    offset = 0
    resumes = 0
    what = f"reading blob {desc.digest} from {client.host}/{repo}"
    while True:
        start = offset
        try:
            async for chunk in _get_from(client, repo, desc, offset, what):
                offset += len(chunk)
                yield chunk
            return
        except (NetworkError, RegistryError) as exc:
            progressed = offset > start
            if not progressed or resumes >= MAX_RESUMES or not getattr(exc, "retryable", False):
                raise
            resumes += 1
            log.debug("%s: broken after %d bytes (%s); resuming with Range", what, offset, exc)


async def _get_from(client: "RegistryClient", repo: str, desc: Descriptor, offset: int,
                    what: str) -> AsyncIterator[bytes]:
    import aiohttp

    headers = {"Range": f"bytes={offset}-"} if offset else {}
    path = f"/v2/{repo}/blobs/{desc.digest}"
    async with client.request("GET", path, (f"repository:{repo}:pull",), headers=headers, ok=SEEN,
                              what=what, allow_redirects=False) as resp:
        if resp.status not in REDIRECTS:
            async for chunk in _body(resp, offset, what):
                yield chunk
            return
        location = urljoin(str(resp.url), resp.headers.get("Location", ""))
    origin = _origin(client.base or "")
    for _ in range(10):
        hdrs = dict(headers)
        if _origin(location) == origin:
            auth = await (await client.authenticator(repo)).header((f"repository:{repo}:pull",))
            if auth:
                hdrs["Authorization"] = auth
        try:
            async with client.session.http.get(location, headers=hdrs, allow_redirects=False,
                                               ssl=client.ssl if location.startswith("https:") else None) as r:
                if r.status in REDIRECTS:
                    location = urljoin(location, r.headers.get("Location", ""))
                    continue
                async for chunk in _body(r, offset, what):
                    yield chunk
                return
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise NetworkError(f"{what}: {type(exc).__name__}: {exc}") from None
    raise RegistryError(f"{what}: too many redirects")


async def _body(resp: "aiohttp.ClientResponse", offset: int, what: str) -> AsyncIterator[bytes]:
    """The blob bytes from `offset` on, whether the server honoured Range (206) or not (200)."""
    import aiohttp

    if resp.status not in (200, 206):
        raise _status_error(resp.status, resp.headers, what)
    skip = offset if resp.status == 200 else 0
    if resp.status == 206 and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
        raise RegistryError(f"{what}: unexpected Content-Range {resp.headers.get('Content-Range')!r}")
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            yield chunk
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise NetworkError(f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")) from None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc
