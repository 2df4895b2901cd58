"""Network helpers that sit between a client and a real registry, each in a background thread.

Public API
----------
``DelayProxy(target_host, target_port, delay_ms, bandwidth_bps=None, listen_host="127.0.0.1",
per_connection_bps=None)``
    TCP proxy adding a one-way delay to each direction (a request/response round trip
    gains 2*delay_ms); data keeps flowing while earlier chunks are "in flight", so a
    connection is not serialised. ``bandwidth_bps`` (bytes/s) caps each direction,
    shared by all connections like one WAN link; ``per_connection_bps`` caps each
    direction of each TCP connection on its own (a long-haul link, where one connection's
    window limits it). ``start()``/``stop()``/context manager;
    ``host`` ("127.0.0.1:PORT"), ``port``, ``url`` ("http://127.0.0.1:PORT"),
    ``stats`` (connections, bytes_up, bytes_down).
``TamperProxy(target_url, ssl_context=None)``
    HTTP reverse proxy (aiohttp) forwarding everything, preserving headers (Host,
    Location, WWW-Authenticate, Docker-Content-Digest...). Switches (set any time):
    ``corrupt_blobs(digest=None, offset=0)`` flips one byte of blob GET bodies
    (``/v2/<name>/blobs/sha256:...``; only that digest if given), ``truncate_blobs(n)``
    cuts blob bodies to n bytes (connection closed early), ``corrupt_manifests(mode="flip"|"append")``
    serves manifest GET bodies that no longer match their Docker-Content-Digest,
    ``ignore_ranges()`` forwards requests without their Range header (a registry
    without Range support), ``redirect_blobs(capture)`` answers blob GETs with a 307 to a ``RedirectCapture``
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
import time
from dataclasses import dataclass
from typing import Optional

from .httpproxy import CapturedRequest, ProxiedRequest, RedirectCapture, TamperProxy
from .loopthread import CHUNK, LoopThread, bind_listen

__all__ = ["CapturedRequest", "DelayProxy", "ProxiedRequest", "ProxyStats", "RedirectCapture", "TamperProxy",
           "measure_round_trip"]


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

    def deliver_at(self, now: float, nbytes: int, conn: Optional["_Link"] = None) -> float:
        """When `nbytes` handed over at `now` arrive; `conn`: the connection's own capped link, which
        the bytes cross first."""
        if conn is not None:
            now = conn.deliver_at(now, nbytes) - conn.delay
        if not self.bandwidth:
            return now + self.delay
        start = max(now, self.free_at)
        self.free_at = start + nbytes / self.bandwidth
        return self.free_at + self.delay


class DelayProxy:
    def __init__(self, target_host: str, target_port: int, delay_ms: float,
                 bandwidth_bps: Optional[float] = None, listen_host: str = "127.0.0.1",
                 per_connection_bps: Optional[float] = None) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.delay = delay_ms / 1000.0
        self.bandwidth_bps = bandwidth_bps
        self.per_connection_bps = per_connection_bps
        self.listen_host = listen_host
        self.port = 0
        self.stats = ProxyStats()
        self._up = _Link(self.delay, bandwidth_bps)
        self._down = _Link(self.delay, bandwidth_bps)
        self._lt: Optional[LoopThread] = None
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
        self._lt = LoopThread("fastsync-delayproxy")
        sock = bind_listen(self.listen_host)
        self.port = sock.getsockname()[1]

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, sock=sock, limit=CHUNK * 4)
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
            treader, twriter = await asyncio.open_connection(self.target_host, self.target_port, limit=CHUNK * 4)
        except OSError:
            cwriter.close()
            self._tasks.discard(task)
            return
        for w in (cwriter, twriter):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            per = self.per_connection_bps
            await asyncio.gather(self._pump(creader, twriter, self._up, "bytes_up", _Link(0.0, per) if per else None),
                                 self._pump(treader, cwriter, self._down, "bytes_down",
                                            _Link(0.0, per) if per else None))
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            for w in (cwriter, twriter):
                w.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, counter: str, conn: Optional[_Link] = None) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=256)

        async def read() -> None:
            try:
                while True:
                    data = await reader.read(CHUNK)
                    if not data:
                        break
                    setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
                    await queue.put((link.deliver_at(loop.time(), len(data), conn), data))
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


def measure_round_trip(host: str, port: int, payload: bytes = b"GET /v2/ HTTP/1.0\r\n\r\n") -> float:
    """Seconds from sending ``payload`` to the first response byte (a helper for tests)."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        s.sendall(payload)
        s.recv(1)
        return time.monotonic() - t0
