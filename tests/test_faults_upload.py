"""A registry that stops taking an upload mid-body is given up on after --read-idle-timeout (the
sending side of the idle timeout), and the error is retryable, so the engine sends the blob again."""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Awaitable, Callable

import aiohttp
from aiohttp import web

from fastsync.errors import NetworkError
from fastsync.model import Descriptor, Digest
from fastsync.options import NetworkOptions, TransportOptions
from fastsync.registry.client import RegistryClient
from support.httpproxy import _HTTPServer
from support.loopthread import bind_listen

BODY = 64 << 20           # far more than the socket buffers on the way can hold


class NeverReads(_HTTPServer):
    """Opens upload sessions, then never reads a PUT's body (and never answers it)."""

    def _socket(self) -> socket.socket:
        sock = bind_listen(self.listen_host)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)   # no autotuning: backpressure soon
        return sock

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.method == "POST":
                return web.Response(status=202, headers={"Location": "/v2/a/b/blobs/uploads/1"})
            if request.method == "PUT":       # (reading paused, it may never see the client go: bounded)
                for _ in range(60):
                    if request.transport is None or request.transport.is_closing():
                        break
                    await asyncio.sleep(0.05)
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            return web.json_response({})
        return handle


async def _zeros(n: int) -> "object":
    piece = bytes(1 << 20)
    for _ in range(n // len(piece)):
        yield piece


def test_an_upload_the_registry_stops_taking_is_abandoned_within_the_idle_timeout() -> None:
    with NeverReads() as server:
        async def go() -> NetworkError:
            async with aiohttp.ClientSession() as http:
                client = RegistryClient(http, server.host, TransportOptions(tls_verify=False),
                                        NetworkOptions(read_idle_timeout=0.5))
                desc = Descriptor("application/octet-stream", Digest.parse("sha256:" + "0" * 64), BODY)
                try:
                    await client.upload_blob("a/b", desc, _zeros(BODY))
                except NetworkError as exc:
                    return exc
                raise AssertionError("the upload did not fail")
        t0 = time.monotonic()
        exc = asyncio.run(go())
    assert time.monotonic() - t0 < 10
    assert "took nothing for 0.5s (--read-idle-timeout)" in str(exc)
    assert exc.retryable
