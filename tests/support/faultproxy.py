"""A loopback HTTP reverse proxy that injects faults into chosen registry requests.

Public API
----------
``Fault(kind, on, times=1, status=503, retry_after="0", digest=None, stall=60.0, rate=65536)``
    ``kind``: "reset" (the connection is dropped without an answer, after the request body was
    read), "truncate" (headers and half the body, then the connection is dropped), "corrupt" (one
    byte of the body flipped; blob and manifest GETs only), "stall" (headers and half the body, then nothing for
    ``stall`` seconds; a PUT, PATCH or POST: never answered), "slow" (the whole body at ``rate`` bytes/s, in small pieces: a live but
    slow link), "status" (an error answer with ``status``, and ``Retry-After: retry_after`` on a
    429 or 503; not forwarded).
    ``on``: the kind of request, see ``request_kind``: "ping" (GET /v2/), "blob-get", "blob-head", "upload-start"
    (POST /blobs/uploads/, mounts included), "upload-put" (the PUT or PATCH carrying a blob),
    "manifest-get", "manifest-head", "manifest-put", "tags", or "any".
    ``times``: how often each distinct request (method, path; an upload by its digest) is
    faulted, from its first attempt on; -1: every attempt. ``digest``: only requests for it.
``FaultProxy(target_url)``
    ``add(fault)`` / ``clear()``; ``start()``/``stop()``/context manager; ``host``, ``url``.
    ``hits``: [(kind of fault, method, path)] of every fault injected; ``requests``:
    [(method, path, status)] of every request seen (status 0: dropped).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional
from urllib.parse import parse_qs, urlsplit

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from multidict import CIMultiDict
from yarl import URL

from .httpproxy import _HOP, _HTTPServer

KINDS = ("reset", "truncate", "corrupt", "stall", "slow", "status")
ON = ("ping", "blob-get", "blob-head", "upload-start", "upload-put", "manifest-get", "manifest-head", "manifest-put",
      "tags", "any")


@dataclass(frozen=True)
class Fault:
    kind: str
    on: str
    times: int = 1
    status: int = 503
    retry_after: str = "0"
    digest: Optional[str] = None
    stall: float = 60.0
    rate: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.on not in ON:
            raise ValueError(f"unknown fault {self.kind!r} on {self.on!r}")


def request_kind(method: str, path: str) -> Optional[str]:
    if path == "/v2/" and method == "GET":
        return "ping"
    if not path.startswith("/v2/"):
        return None
    if "/blobs/uploads" in path:
        return "upload-start" if method == "POST" else "upload-put" if method in ("PUT", "PATCH") else None
    if "/blobs/" in path:
        return {"GET": "blob-get", "HEAD": "blob-head"}.get(method)
    if "/manifests/" in path:
        return {"GET": "manifest-get", "HEAD": "manifest-head", "PUT": "manifest-put"}.get(method)
    if path.endswith("/tags/list"):
        return "tags" if method == "GET" else None
    return None


def _target_digest(path_qs: str) -> str:
    """The digest a request is about: in its path, or an upload's ?digest=."""
    parts = urlsplit(path_qs)
    found = parse_qs(parts.query).get("digest")
    if found:
        return found[0]
    tail = parts.path.rsplit("/", 1)[-1]
    return tail if ":" in tail else ""


class FaultProxy(_HTTPServer):
    _name = "fastsync-fault-proxy"

    def __init__(self, target_url: str) -> None:
        super().__init__("127.0.0.1")
        self.target_url = target_url.rstrip("/")
        self.faults: list[Fault] = []
        self.hits: list[tuple[str, str, str]] = []
        self.requests: list[tuple[str, str, int]] = []
        self._seen: dict[tuple[int, str, str], int] = {}
        self._session: Optional[ClientSession] = None

    def add(self, fault: Fault) -> "FaultProxy":
        with self._lock:
            self.faults.append(fault)
        return self

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.hits.clear()
            self.requests.clear()
            self._seen.clear()

    async def _on_start(self) -> None:
        self._session = ClientSession(connector=TCPConnector(ssl=False), auto_decompress=False,
                                      timeout=ClientTimeout(total=300))

    async def _on_stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _fault_for(self, method: str, path_qs: str) -> Optional[Fault]:
        kind = request_kind(method, urlsplit(path_qs).path)
        if kind is None:
            return None
        digest = _target_digest(path_qs)
        key = digest if kind == "upload-put" else urlsplit(path_qs).path   # an upload's URL changes per attempt
        with self._lock:
            for i, f in enumerate(self.faults):
                if f.on not in (kind, "any") or (f.digest and f.digest != digest):
                    continue
                if f.kind == "corrupt" and kind not in ("blob-get", "manifest-get"):
                    continue                 # only content with a digest can be told damaged
                n = self._seen.get((i, method, key), 0)
                if f.times >= 0 and n >= f.times:
                    continue
                self._seen[(i, method, key)] = n + 1
                self.hits.append((f.kind, method, path_qs))
                return f
        return None

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def _rewrite_location(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme and parts.netloc == urlsplit(self.target_url).netloc:
            return self.url + value[len(f"{parts.scheme}://{parts.netloc}"):]
        return value

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            assert self._session is not None
            body = await request.read()
            fault = self._fault_for(request.method, request.path_qs)
            if fault is not None and fault.kind == "stall" and request.method in ("PUT", "PATCH", "POST"):
                self._record(request.method, request.path_qs, 0)
                await self._hold(request, fault.stall)       # never answered (nor forwarded)
                return web.Response(status=500)
            if fault is not None and fault.kind == "reset":
                self._record(request.method, request.path_qs, 0)
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if fault is not None and fault.kind == "status":
                self._record(request.method, request.path_qs, fault.status)
                headers = {"Content-Type": "application/json"}
                if fault.status in (429, 503):
                    headers["Retry-After"] = fault.retry_after
                return web.Response(status=fault.status, headers=headers,
                                    body=b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}')
            headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
            async with self._session.request(request.method, URL(self.target_url + request.raw_path, encoded=True),
                                             headers=headers, data=body if body else None,
                                             allow_redirects=False) as up:
                self._record(request.method, request.path_qs, up.status)
                resp_headers = [(k, self._rewrite_location(v) if k.lower() == "location" else v)
                                for k, v in up.headers.items() if k.lower() not in _HOP]
                data = await up.read()
                if fault is None or up.status not in (200, 206) or request.method == "HEAD" or not data:
                    return await self._send(request, up.status, resp_headers, data, data)
                return await self._faulty(request, fault, up.status, resp_headers, data)
        return handle

    async def _send(self, request: web.Request, status: int, headers: list, data: bytes, full: bytes,
                    rate: int = 0) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(full)
        await resp.prepare(request)
        if request.method == "HEAD":
            await resp.write_eof()
            return resp
        step = max(1, rate // 20) if rate else len(data) or 1
        for i in range(0, len(data), step):
            await resp.write(data[i:i + step])
            if rate:
                await asyncio.sleep(step / rate)
        if len(data) < len(full):           # cut short: drop the connection mid-body
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write_eof()
        return resp

    @staticmethod
    async def _hold(request: web.Request, seconds: float) -> None:
        """Send nothing more until the client gives up (or `seconds` pass), then drop the connection."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        try:
            while loop.time() < until and request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.05)
        finally:
            if request.transport is not None:
                request.transport.abort()

    async def _faulty(self, request: web.Request, fault: Fault, status: int, headers: list,
                      data: bytes) -> web.StreamResponse:
        half = data[: len(data) // 2]
        if fault.kind == "truncate":
            return await self._send(request, status, headers, half, data)
        if fault.kind == "corrupt" and data:
            bad = bytearray(data)
            bad[len(bad) // 2] ^= 0xFF
            return await self._send(request, status, headers, bytes(bad), bytes(bad))
        if fault.kind == "slow":
            return await self._send(request, status, headers, data, data, rate=fault.rate)
        if fault.kind == "stall":
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(half)
            await self._hold(request, fault.stall)
            return resp
        return await self._send(request, status, headers, data, data)
