"""Network helpers that sit between a client and a real registry, each in a background thread.

Public API
----------
``DelayProxy(target_host, target_port, delay_ms, bandwidth_bps=None, listen_host="127.0.0.1")``
    TCP proxy adding a one-way delay to each direction (a request/response round trip
    gains 2*delay_ms); data keeps flowing while earlier chunks are "in flight", so a
    connection is not serialised. ``bandwidth_bps`` (bytes/s) caps each direction,
    shared by all connections like one WAN link. ``start()``/``stop()``/context manager;
    ``host`` ("127.0.0.1:PORT"), ``port``, ``url`` ("http://127.0.0.1:PORT"),
    ``stats`` (connections, bytes_up, bytes_down).
``TamperProxy(target_url, ssl_context=None)``
    HTTP reverse proxy (aiohttp) forwarding everything, preserving headers (Host,
    Location, WWW-Authenticate, Docker-Content-Digest...). Switches (set any time):
    ``corrupt_blobs(digest=None, offset=0)`` flips one byte of blob GET bodies
    (``/v2/<name>/blobs/sha256:...``; only that digest if given), ``truncate_blobs(n)``
    cuts blob bodies to n bytes (connection closed early), ``corrupt_manifests(mode="flip"|"append")``
    serves manifest GET bodies that no longer match their Docker-Content-Digest,
    ``redirect_blobs(capture)`` answers blob GETs with a 307 to a ``RedirectCapture``
    that serves the real bytes, ``reset()``. Records ``requests``
    (``ProxiedRequest(method, path, headers, status)``) and ``tampered`` (paths changed).
    ``host``, ``port``, ``url``.
``RedirectCapture(body=b"", status=200, content_type="application/octet-stream")``
    Tiny HTTP server on 127.0.0.2 (or another port on 127.0.0.1 if that address cannot
    be bound) recording every request (``requests``: ``CapturedRequest(method, path,
    headers)``) and serving ``bodies[path]`` or ``body``. ``host``, ``port``, ``url``.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Any, Awaitable, Callable, Optional

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from multidict import CIMultiDict
from yarl import URL

_CHUNK = 256 * 1024


class _LoopThread:
    """An asyncio loop in a daemon thread; ``call(coro)`` runs a coroutine there and waits."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def call(self, coro: Awaitable[Any], timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def _bind(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


# ---------------------------------------------------------------------------- DelayProxy
@dataclass
class ProxyStats:
    connections: int = 0
    bytes_up: int = 0      # client -> target
    bytes_down: int = 0    # target -> client


class _Link:
    """One direction of the simulated WAN link: delay plus an optional shared rate."""

    def __init__(self, delay: float, bandwidth_bps: Optional[float]) -> None:
        self.delay = delay
        self.bandwidth = bandwidth_bps
        self.free_at = 0.0

    def deliver_at(self, now: float, nbytes: int) -> float:
        if not self.bandwidth:
            return now + self.delay
        start = max(now, self.free_at)
        self.free_at = start + nbytes / self.bandwidth
        return self.free_at + self.delay


class DelayProxy:
    def __init__(self, target_host: str, target_port: int, delay_ms: float,
                 bandwidth_bps: Optional[float] = None, listen_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.delay = delay_ms / 1000.0
        self.bandwidth_bps = bandwidth_bps
        self.listen_host = listen_host
        self.port = 0
        self.stats = ProxyStats()
        self._up = _Link(self.delay, bandwidth_bps)
        self._down = _Link(self.delay, bandwidth_bps)
        self._lt: Optional[_LoopThread] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def host(self) -> str:
        return f"{self.listen_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> "DelayProxy":
        if self._lt is not None:
            return self
        self._lt = _LoopThread("fastsync-delayproxy")
        sock = _bind(self.listen_host)
        self.port = sock.getsockname()[1]

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, sock=sock, limit=_CHUNK * 4)
        self._lt.call(serve())
        return self

    def stop(self) -> None:
        if self._lt is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            self._lt.call(shutdown())
        finally:
            self._lt.close()
            self._lt = None

    def __enter__(self) -> "DelayProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            treader, twriter = await asyncio.open_connection(self.target_host, self.target_port, limit=_CHUNK * 4)
        except OSError:
            cwriter.close()
            self._tasks.discard(task)
            return
        for w in (cwriter, twriter):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(self._pump(creader, twriter, self._up, "bytes_up"),
                                 self._pump(treader, cwriter, self._down, "bytes_down"))
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            for w in (cwriter, twriter):
                w.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, counter: str) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=256)

        async def read() -> None:
            try:
                while True:
                    data = await reader.read(_CHUNK)
                    if not data:
                        break
                    setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
                    await queue.put((link.deliver_at(loop.time(), len(data)), data))
            except OSError:
                pass
            finally:
                await queue.put((loop.time() + link.delay, None))

        async def write() -> None:
            while True:
                when, data = await queue.get()
                wait = when - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        try:
                            writer.write_eof()
                        except OSError:
                            pass
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(read(), write())


# ---------------------------------------------------------------------------- HTTP servers
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


class _HTTPServer:
    """An aiohttp app on its own loop thread."""

    _name = "fastsync-http"

    def __init__(self, listen_host: str = "127.0.0.1") -> None:
        self.listen_host = listen_host
        self.port = 0
        self._lt: Optional[_LoopThread] = None
        self._runner: Optional[web.AppRunner] = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"{self.listen_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        raise NotImplementedError

    async def _on_start(self) -> None:
        pass

    async def _on_stop(self) -> None:
        pass

    def _socket(self) -> socket.socket:
        return _bind(self.listen_host)

    def start(self) -> Any:
        if self._lt is not None:
            return self
        self._lt = _LoopThread(self._name)
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
            return _bind("127.0.0.2")
        except OSError:
            return _bind("127.0.0.1")

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

    def corrupt_blobs(self, digest: Optional[str] = None, offset: int = 0) -> None:
        self._blob_corrupt = (digest, offset)

    def truncate_blobs(self, nbytes: int) -> None:
        self._blob_truncate = nbytes

    def corrupt_manifests(self, mode: str = "flip") -> None:
        if mode not in ("flip", "append"):
            raise ValueError("mode must be 'flip' or 'append'")
        self._manifest_mode = mode

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
            self.requests.append(ProxiedRequest(request.method, request.path_qs, CIMultiDict(request.headers), status))

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            assert self._session is not None
            body = await request.read()
            # a CIMultiDict keeps repeated headers (skopeo sends one Accept line per type)
            headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
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
                    async for chunk in up.content.iter_chunked(_CHUNK):
                        await resp.write(chunk)
                await resp.write_eof()
                return resp
        return handle


def measure_round_trip(host: str, port: int, payload: bytes = b"GET /v2/ HTTP/1.0\r\n\r\n") -> float:
    """Seconds from sending ``payload`` to the first response byte (a helper for tests)."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        s.sendall(payload)
        s.recv(1)
        return time.monotonic() - t0
