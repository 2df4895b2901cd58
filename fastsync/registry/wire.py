"""The wire details of the distribution API: scopes, error bodies, tag lists, Link headers, URLs fit
for logs, and one-line descriptions of connection failures."""
from __future__ import annotations

import asyncio
from typing import Optional
from urllib.parse import parse_qsl, urljoin, urlsplit

import orjson

from fastsync.errors import FastsyncError, RegistryError, body_snippet


def pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


REDIRECTS = (301, 302, 303, 307, 308)


def error_text(status: int, body: bytes) -> tuple[str, str]:
    """(code, message) from an OCI error body, falling back to the HTTP status."""
    try:
        doc = orjson.loads(body) if body.lstrip()[:1] == b"{" else None
    except ValueError:
        doc = None
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errs, list) and errs and isinstance(errs[0], dict):
        e = errs[0]
        code = e.get("code")
        code = code if isinstance(code, str) else ""
        msg = e.get("message")
        msg = msg if isinstance(msg, str) and msg.strip() else code.lower().replace("_", " ")
        if msg:
            return code, " ".join(msg.split())[:200]
    text = body.decode("utf-8", "replace").strip().splitlines()
    line = " ".join(text[0].split())[:200] if text else ""
    return "", line or f"HTTP status {status}"


def parse_tag_list(body: bytes, what: str, content_type: str = "") -> list[str]:
    """The `tags` of a tags/list answer (`{"name": ..., "tags": [...]}`, `tags` may be null); anything
    else is a one-line RegistryError naming what was read."""
    def bad(why: str) -> RegistryError:
        ctype = content_type.split(";")[0].strip()
        return RegistryError(f"{what}: the registry's answer is not a tag list ({why}"
                             + (f", Content-Type {ctype}" if ctype else "") + ")")
    try:
        doc = orjson.loads(body)
    except ValueError:
        raise bad(f"not JSON: {body_snippet(body)}") from None
    if not isinstance(doc, dict):
        raise bad(f"a JSON {type(doc).__name__}, not an object")
    tags = doc.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad('"tags" is not a list of strings')
    return tags


def repo_of(scopes: tuple[str, ...]) -> Optional[str]:
    """The repository whose credentials a request uses: the first scope's (`repository:NAME:actions`)."""
    if not scopes or not scopes[0].startswith("repository:"):
        return None
    return scopes[0][len("repository:"):].rpartition(":")[0] or None


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


_LOGGED_QUERY = {"digest", "mount", "from", "n", "last"}


def loggable(url: str) -> str:
    """`url` fit for logs: no userinfo, and only harmless query parameters (no upload state, signatures)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    query = [f"{k}={v}" if k in _LOGGED_QUERY else f"{k}=..." for k, v in parse_qsl(parts.query, True)]
    return f"{parts.scheme}://{host}{parts.path}" + ("?" + "&".join(query) if query else "")


def next_link(header: str, base: str) -> Optional[str]:
    """The absolute URL of a `Link: <url>; rel="next"` header, or None."""
    for part in header.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return urljoin(base, target.strip().strip("<>"))
    return None


def body_error(exc: BaseException) -> Optional[FastsyncError]:
    """The FastsyncError raised by a request's streamed body, which aiohttp wraps in a send
    failure: the source's own error (a 429 with its Retry-After, a digest mismatch) is what counts."""
    seen = 0
    e: Optional[BaseException] = exc
    while e is not None and seen < 8:
        if isinstance(e, FastsyncError):
            return e
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def describe(exc: Optional[BaseException]) -> str:
    """A short, secret-free description of a connection-level failure."""
    import aiohttp

    if exc is None:
        return "unknown error"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate of {exc.host} not trusted ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_err = exc.os_error
        if isinstance(os_err, ConnectionRefusedError):
            return f"cannot connect to {exc.host}:{exc.port}: connection refused"
        reason = getattr(os_err, "strerror", None) or getattr(os_err, "reason", None) or str(os_err)
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
