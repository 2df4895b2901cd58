"""A scripted Docker Engine API server for the cases a real engine will not produce on demand: an error
in the load's JSON message stream, a connection cut mid-load, a save stream in the OCI layout newer
Docker engines write, old or new API versions, TLS with client certificates.

`FakeEngine(socket_path=...)` listens on a unix socket; `FakeEngine(tls=(server_pair, ca_pem))` on
127.0.0.1 over TLS requiring a client certificate the CA signed. Set `.saves[name] = tar bytes` to
serve `GET /images/get?names=name`; `.load_reply` is "ok", "error" (200 and an errorDetail message,
as Docker answers a bad tar), "early" (the same after `hangup_after` body bytes, then the connection
is closed), "status" (a 500 with podman's error JSON) or "hangup" (the connection is closed after
`hangup_after` body bytes, no answer). Every request is recorded in `.requests` (method, path);
the bodies of loads in `.loaded`.
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import tempfile
from typing import Optional

from aiohttp import web

from support.loopthread import LoopThread, bind_listen


class FakeEngine:
    def __init__(self, socket_path: Optional[str] = None, tls: Optional[tuple] = None, api_version: str = "1.41") -> None:
        self.socket_path = socket_path
        self.tls = tls
        self.api_version = api_version
        self.saves: dict[str, bytes] = {}
        self.load_reply = "ok"
        self.error_message = "the fake engine refuses this image"
        self.hangup_after = 4096
        self.requests: list[tuple[str, str]] = []
        self.loaded: list[bytes] = []
        self.port = 0
        self._lt: Optional[LoopThread] = None
        self._runner: Optional[web.AppRunner] = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}" if self.socket_path else f"tcp://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if request.path == "/_ping":
            return web.Response(text="OK", headers={"API-Version": self.api_version})
        path = request.path.split("/", 2)[-1] if request.path.startswith("/v") else request.path.lstrip("/")
        if path == "images/get" and request.method == "GET":
            name = request.query.get("names", "")
            if name not in self.saves:
                return web.json_response({"message": f"No such image: {name}"}, status=404)
            resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
            await resp.prepare(request)
            data = self.saves[name]
            for i in range(0, len(data), 65536):
                await resp.write(data[i:i + 65536])
            await resp.write_eof()
            return resp
        if path == "images/load" and request.method == "POST":
            return await self._load(request)
        return web.json_response({"message": f"page not found: {request.path}"}, status=404)

    async def _load(self, request: web.Request) -> web.StreamResponse:
        body = bytearray()
        if self.load_reply == "early":       # an error after the first bytes, the rest never read
            body += await request.content.read(self.hangup_after)
            self.loaded.append(bytes(body))
            msg = {"errorDetail": {"message": self.error_message}, "error": self.error_message}
            resp = web.StreamResponse(headers={"Content-Type": "application/json", "Connection": "close"})
            await resp.prepare(request)
            await resp.write(json.dumps(msg).encode() + b"\r\n")
            await resp.write_eof()
            assert request.transport is not None
            request.transport.close()
            return resp
        if self.load_reply == "hangup":
            while len(body) < self.hangup_after:
                chunk = await request.content.read(4096)
                if not chunk:
                    break
                body += chunk
            self.loaded.append(bytes(body))
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)       # never delivered: the connection is gone
        body += await request.read()
        self.loaded.append(bytes(body))
        if self.load_reply == "status":
            return web.json_response({"cause": "bad", "message": self.error_message, "response": 500}, status=500)
        if self.load_reply == "error":
            msg = {"errorDetail": {"message": self.error_message}, "error": self.error_message}
            return web.Response(text=json.dumps(msg) + "\r\n", content_type="application/json")
        return web.Response(text=json.dumps({"stream": "Loaded image: x\n"}) + "\r\n", content_type="application/json")

    def start(self) -> "FakeEngine":
        self._lt = LoopThread("fake-engine")
        if self.socket_path:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(self.socket_path)
            sock.listen(16)
            sock.setblocking(False)
            ctx = None
        else:
            sock = bind_listen("127.0.0.1")
            self.port = sock.getsockname()[1]
            server, ca_pem = self.tls  # type: ignore[misc]
            self._tmp = tempfile.TemporaryDirectory()
            cert, key, ca = (os.path.join(self._tmp.name, n) for n in ("s.pem", "s.key", "ca.pem"))
            server.write(cert, key)
            with open(ca, "wb") as f:
                f.write(ca_pem)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
            ctx.load_cert_chain(cert, key)
            ctx.verify_mode = ssl.CERT_REQUIRED

        async def serve() -> None:
            app = web.Application(client_max_size=1024 ** 3)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, sock, ssl_context=ctx).start()
        self._lt.call(serve())
        return self

    def stop(self) -> None:
        if self._lt is None:
            return
        if self._runner is not None:
            self._lt.call(self._runner.cleanup())
        self._lt.close()
        self._lt = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "FakeEngine":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
