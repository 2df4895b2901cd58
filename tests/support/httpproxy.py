"""HTTP-level test servers: ``TamperProxy`` and ``RedirectCapture`` (documented in ``support.proxy``)."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from multidict import CIMultiDict
from yarl import URL

from .loopthread import CHUNK, LoopThread, bind_listen


@dataclass(frozen=True)
class CapturedRequest:
    method: str
    path: str            # path with query string
    headers: CIMultiDict  # case-insensitive, repeated headers kept (.getall)


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    headers: CIMultiDict
    status: int
    at: float = 0.0      # time.monotonic() when the answer was decided


class _HTTPServer(ABC):
    """An aiohttp app on its own loop thread."""

    _name = "fastsync-http"

    def __init__(self, listen_host: str = "127.0.0.1") -> None:
        self.listen_host = listen_host
        self.port = 0
        self._lt: Optional[LoopThread] = None
        self._runner: Optional[web.AppRunner] = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"{self.listen_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @abstractmethod
    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The aiohttp handler answering every request."""

    async def _on_start(self) -> None:
        pass

    async def _on_stop(self) -> None:
        pass

    def _socket(self) -> socket.socket:
        return bind_listen(self.listen_host)

    def start(self) -> Any:
        if self._lt is not None:
            return self
        self._lt = LoopThread(self._name)
        sock = self._socket()
        self.listen_host, self.port = sock.getsockname()[:2]

        async def serve() -> None:
            app = web.Application(client_max_size=1024 ** 3)
            app.router.add_route("*", "/{tail:.*}", self._handler())
            self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            await self._on_start()
        self._lt.call(serve())
        return self

    def stop(self) -> None:
        if self._lt is None:
            return

        async def shutdown() -> None:
            await self._on_stop()
            if self._runner is not None:
                await self._runner.cleanup()
        try:
            self._lt.call(shutdown())
        finally:
            self._lt.close()
            self._lt = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedirectCapture(_HTTPServer):
    _name = "fastsync-redirect-capture"

    def __init__(self, body: bytes = b"", status: int = 200,
                 content_type: str = "application/octet-stream") -> None:
        super().__init__("127.0.0.2")
        self.body = body
        self.status = status
        self.content_type = content_type
        self.bodies: dict[str, bytes] = {}
        self.requests: list[CapturedRequest] = []

    def _socket(self) -> socket.socket:
        try:
            return bind_listen("127.0.0.2")
        except OSError:
            return bind_listen("127.0.0.1")

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            await request.read()
            with self._lock:
                self.requests.append(CapturedRequest(request.method, request.path_qs, CIMultiDict(request.headers)))
            body = self.bodies.get(request.path, self.body)
            return web.Response(body=body, status=self.status, content_type=self.content_type)
        return handle


_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "content-length"}


def _is_blob_get(method: str, path: str) -> Optional[str]:
    if method != "GET" or "/blobs/" not in path or "/blobs/uploads" in path:
        return None
    tail = path.rsplit("/blobs/", 1)[1]
    return tail if tail.startswith("sha256:") else None


def _is_manifest_get(method: str, path: str) -> bool:
    return method == "GET" and path.startswith("/v2/") and "/manifests/" in path


class TamperProxy(_HTTPServer):
    _name = "fastsync-tamper-proxy"

    def __init__(self, target_url: str, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        super().__init__("127.0.0.1")
        self.target_url = target_url.rstrip("/")
        self.ssl_context = ssl_context
        self.requests: list[ProxiedRequest] = []
        self.tampered: list[str] = []
        self._session: Optional[ClientSession] = None
        self.reset()

    # ---- switches
    def reset(self) -> None:
        self._blob_corrupt: Optional[tuple[Optional[str], int]] = None
        self._blob_truncate: Optional[int] = None
        self._manifest_mode: Optional[str] = None
        self._redirect: Optional[RedirectCapture] = None
        self._throttle: Optional[list] = None
        self._no_ranges = False

    def throttle(self, what: str, count: int, retry_after: str) -> None:
        """Answer the next `count` requests of a kind ("blob-get": GET of a blob, "upload": POST
        starting a blob upload, "tags": GET of a tag list) with 429 Too Many Requests and this
        Retry-After header."""
        if what not in ("blob-get", "upload", "tags"):
            raise ValueError("what must be 'blob-get', 'upload' or 'tags'")
        self._throttle = [what, count, retry_after]

    def corrupt_blobs(self, digest: Optional[str] = None, offset: int = 0) -> None:
        self._blob_corrupt = (digest, offset)

    def truncate_blobs(self, nbytes: int) -> None:
        self._blob_truncate = nbytes

    def corrupt_manifests(self, mode: str = "flip") -> None:
        if mode not in ("flip", "append"):
            raise ValueError("mode must be 'flip' or 'append'")
        self._manifest_mode = mode

    def ignore_ranges(self) -> None:
        """Forward requests without their Range header: a registry that answers every blob GET with
        the whole blob (200)."""
        self._no_ranges = True

    def redirect_blobs(self, capture: RedirectCapture) -> None:
        self._redirect = capture

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.tampered.clear()

    # ---- server
    async def _on_start(self) -> None:
        self._session = ClientSession(connector=TCPConnector(ssl=self.ssl_context if self.ssl_context else False),
                                      auto_decompress=False, timeout=ClientTimeout(total=300))

    async def _on_stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _rewrite_location(self, location: str) -> str:
        """A Location pointing at the upstream (or at us with the upstream's https scheme,
        as a TLS registry builds it from our Host header) is made to point at this proxy."""
        parts = urlsplit(location)
        if parts.scheme and parts.netloc in (urlsplit(self.target_url).netloc, self.host):
            return self.url + location[len(f"{parts.scheme}://{parts.netloc}"):]
        return location

    def _record(self, request: web.Request, status: int) -> None:
        with self._lock:
            self.requests.append(ProxiedRequest(request.method, request.path_qs, CIMultiDict(request.headers),
                                                status, time.monotonic()))

    def _throttled(self, request: web.Request) -> Optional[web.Response]:
        t = self._throttle
        if t is None or t[1] <= 0:
            return None
        kind = "blob-get" if _is_blob_get(request.method, request.path) else \
            "upload" if request.method == "POST" and request.path.endswith("/blobs/uploads/") else \
            "tags" if request.method == "GET" and request.path.endswith("/tags/list") else None
        if kind != t[0]:
            return None
        t[1] -= 1
        self._record(request, 429)
        return web.Response(status=429, headers={"Retry-After": t[2], "Content-Type": "application/json"},
                            body=b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            assert self._session is not None
            body = await request.read()
            throttled = self._throttled(request)
            if throttled is not None:
                return throttled
            # a CIMultiDict keeps repeated headers (skopeo sends one Accept line per type)
            headers = CIMultiDict((k, v) for k, v in request.headers.items()
                                  if k.lower() not in _HOP and not (self._no_ranges and k.lower() == "range"))
            async with self._session.request(request.method, URL(self.target_url + request.raw_path, encoded=True),
                                             headers=headers, data=body if body else None,
                                             allow_redirects=False) as up:
                resp_headers = [(k, self._rewrite_location(v) if k.lower() == "location" else v)
                                for k, v in up.headers.items() if k.lower() not in _HOP]
                path = request.path
                blob = _is_blob_get(request.method, path)
                if up.status == 200 and blob and self._redirect is not None:
                    data = await up.read()
                    self._redirect.bodies[path] = data
                    self._record(request, 307)
                    with self._lock:
                        self.tampered.append(path)
                    return web.Response(status=307, headers={"Location": self._redirect.url + path})
                tamper_blob = up.status == 200 and blob and (
                    (self._blob_corrupt is not None and self._blob_corrupt[0] in (None, blob))
                    or self._blob_truncate is not None)
                tamper_manifest = up.status == 200 and _is_manifest_get(request.method, path) \
                    and self._manifest_mode is not None
                self._record(request, up.status)
                if tamper_blob or tamper_manifest:
                    data = bytearray(await up.read())
                    length = len(data)
                    if tamper_blob and self._blob_truncate is not None:
                        data = data[: self._blob_truncate]
                    elif tamper_blob and data:
                        off = self._blob_corrupt[1] % len(data)  # type: ignore[index]
                        data[off] ^= 0xFF
                        length = len(data)
                    elif tamper_manifest and self._manifest_mode == "append":
                        data += b"\n"
                        length = len(data)
                    elif tamper_manifest and data:
                        i = data.find(b"sha256:")  # change one hex digit: same length, still JSON
                        i = i + 7 if i >= 0 else 0
                        data[i] = ord("0") if data[i] != ord("0") else ord("1")
                        length = len(data)
                    with self._lock:
                        self.tampered.append(path)
                    resp = web.StreamResponse(status=up.status, headers=resp_headers)
                    resp.content_length = length
                    await resp.prepare(request)
                    await resp.write(bytes(data))
                    if len(data) < length:  # truncated: cut the connection mid-body
                        if request.transport is not None:
                            request.transport.close()
                        return resp
                    await resp.write_eof()
                    return resp
                resp = web.StreamResponse(status=up.status, headers=resp_headers)
                if up.content_length is not None:
                    resp.content_length = up.content_length
                await resp.prepare(request)
                if request.method != "HEAD":
                    async for chunk in up.content.iter_chunked(CHUNK):
                        await resp.write(chunk)
                await resp.write_eof()
                return resp
        return handle
