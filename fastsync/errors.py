"""One error hierarchy. Each error carries its exit code and renders as one line."""
from __future__ import annotations

import errno


class FastsyncError(Exception):
    """Base of every error fastsync raises on purpose; `str(err)` is the one-line message."""

    exit_code = 1
    retryable = False                     # transient: the same request may well succeed if repeated
    retry_after: "float | None" = None    # seconds the server asked us to wait (Retry-After)
    exhausted = False                     # a retry loop already gave up on it: outer loops do not retry
    host: "str | None" = None             # the registry whose answer (or connection) failed, when known

    def __str__(self) -> str:
        msg = super().__str__()
        return " ".join(msg.split()) if msg else type(self).__name__


class UsageError(FastsyncError):
    """The user's input is malformed (bad image name, conflicting flags). Exit status 1, as skopeo's
    (every skopeo failure exits 1)."""

    exit_code = 1


class InvalidReference(UsageError):
    """An image name or docker reference does not parse."""


class ManifestError(FastsyncError):
    """A manifest or index is malformed or of an unsupported type."""


class DigestMismatch(FastsyncError):
    """Content did not hash to the digest (or size) that described it. `transient`: the bytes were
    downloaded (a proxy or CDN may have damaged them), so fetching them again from the start may
    well succeed; a local file or a registry's own verification is not transient."""

    def __init__(self, what: str, expected: str, actual: str, transient: bool = False) -> None:
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual
        self.retryable = transient


class NotFound(FastsyncError):
    """A manifest, blob, tag or repository does not exist."""


class RegistryError(FastsyncError):
    """A registry answered with an error; `status` is the HTTP status, `code` the OCI error code."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.status in (408, 425, 429) or self.status >= 500


class Unauthorized(RegistryError):
    """Authentication failed or was required and missing."""


class NetworkError(FastsyncError):
    """The connection failed (refused, reset, DNS, TLS)."""

    retryable = True


class TooLarge(FastsyncError):
    """A manifest, config, signature or token answer bigger than its cap (a registry, or someone
    between, could make the client buffer anything)."""


class UnsafeInput(FastsyncError):
    """A local layout holds something fastsync refuses to read as a blob or manifest: a symlink
    leaving the layout, a device, a FIFO, a socket."""


class DiskFull(FastsyncError):
    """ENOSPC/EDQUOT while writing: says the path and whether it is the cache or the destination."""


def no_space(exc: BaseException) -> bool:
    """A write failed because the file system (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: OSError, where: str, path: "str | None" = None) -> DiskFull:
    """The DiskFull for `exc`: `where` is "the cache ROOT" or "the destination NAME"."""
    path = path or exc.filename
    return DiskFull(f"{where} is full: {exc.strerror or 'no space left on device'}"
                    + (f" (writing {path})" if path else ""))


class PlatformNotFound(FastsyncError):
    """No instance of an index matches the wanted platform."""


class Unsupported(FastsyncError):
    """A valid request that this transport or destination cannot do."""


def body_snippet(body: bytes, limit: int = 40, empty: str = "empty body") -> str:
    """The start of a server's answer, for a one-line error message: printable, quoted, cut at
    `limit` characters (`empty` when there is nothing to show)."""
    text = " ".join(body[:limit * 4].decode("utf-8", "replace").split())
    if not text:
        return empty
    return repr(text[:limit] + ("..." if len(text) > limit or len(body) > limit * 4 else ""))
