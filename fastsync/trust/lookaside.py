"""Where signatures live, per transport. dir: keeps them beside the image (`signature-N`, and
`HEX.signature-N` for the instances of an index: the transport's get_signatures/put_signatures);
a registry image's live in its lookaside storage named by registries.d: read over file:, http: or
https: (the first missing one ends the list), written to file: only, then any stale higher-numbered
ones removed. Other transports hold none."""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from fastsync.errors import FastsyncError, NetworkError, Unsupported
from fastsync.model import Digest
from fastsync.trust.registries_d import RegistriesD, signature_url

MAX_SIGNATURES = 128
MAX_SIGNATURE_SIZE = 4 << 20


class LookasideError(FastsyncError):
    """A lookaside signature could not be read or written."""


def _file_path(url: str) -> Optional[str]:
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" else None


async def _read_one(session: Any, url: str) -> Optional[bytes]:
    parts = urlsplit(url)
    if parts.scheme == "file":
        try:
            with open(unquote(parts.path), "rb") as f:
                return f.read(MAX_SIGNATURE_SIZE + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LookasideError(f"reading signature from {url}: {exc.strerror}") from None
    if parts.scheme not in ("http", "https"):
        raise LookasideError(f"Unsupported scheme when reading signature from {url}")
    import aiohttp

    try:
        async with session.http.get(url) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise LookasideError(f"reading signature from {url}: status {resp.status} ({resp.reason})")
            return await resp.content.read(MAX_SIGNATURE_SIZE + 1)
    except aiohttp.ClientError as exc:
        raise NetworkError(f"reading signature from {url}: {exc}") from None


async def read_lookaside(session: Any, config: RegistriesD, ref: Any, identity: str, namespaces: tuple[str, ...],
                         digest: Digest) -> list[bytes]:
    base = config.base_url(ref, identity, namespaces, write=False)
    out: list[bytes] = []
    for i in range(MAX_SIGNATURES):
        url = signature_url(base, digest, i)
        blob = await _read_one(session, url)
        if blob is None:
            break
        if len(blob) > MAX_SIGNATURE_SIZE:
            raise LookasideError(f"signature {url} is larger than {MAX_SIGNATURE_SIZE} bytes")
        out.append(blob)
    return out


def write_lookaside(config: RegistriesD, ref: Any, identity: str, namespaces: tuple[str, ...], digest: Digest,
                    blobs: list[bytes]) -> None:
    """Write `blobs` as signature-1..N of `digest` (each through a temporary name), then remove the
    stale signature-N+1... left by an earlier write."""
    base = config.base_url(ref, identity, namespaces, write=True)
    for i, blob in enumerate(blobs):
        url = signature_url(base, digest, i)
        path = _file_path(url)
        if path is None:
            raise LookasideError(f"Unsupported scheme when writing signature to {url}")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".signature-", dir=os.path.dirname(path))
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise LookasideError(f"writing signature to {url}: {exc.strerror}") from None
    for i in range(len(blobs), len(blobs) + MAX_SIGNATURES):
        path = _file_path(signature_url(base, digest, i))
        if path is None or not os.path.exists(path):
            break
        os.unlink(path)


def delete_lookaside(config: RegistriesD, ref: Any, identity: str, namespaces: tuple[str, ...],
                     digest: Digest) -> None:
    """Remove signature-1, signature-2, ... of `digest` up to the first missing one."""
    base = config.base_url(ref, identity, namespaces, write=True)
    for i in range(MAX_SIGNATURES):
        url = signature_url(base, digest, i)
        path = _file_path(url)
        if path is None:
            raise LookasideError(f"Unsupported scheme when deleting signature from {url}")
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LookasideError(f"deleting signature {url}: {exc.strerror}") from None


UNSUPPORTED = {
    "oci": "Pushing signatures for OCI images is not supported",
    "oci-archive": "Pushing signatures for OCI images is not supported",
    "docker-archive": "Storing signatures for docker tar files is not supported",
}


def unsupported(transport: str) -> Unsupported:
    return Unsupported(UNSUPPORTED.get(transport, f"storing signatures is not supported by the {transport}: transport"))
