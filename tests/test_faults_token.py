"""Token fetches go through the retry policy and are read with a cap; the retry flags exist on every
command that talks to registries and are checked."""
from __future__ import annotations

from typing import Awaitable, Callable

import pytest
from aiohttp import web

from helpers import assert_one_line_error, fastsync, ok
from support import images
from support.httpproxy import _HTTPServer

IMAGE = images.make_image(951, layers=1, layer_size=10_000)


class TokenServer(_HTTPServer):
    """Answers the first `failures` token requests with `status`, then `answer`."""

    def __init__(self, failures: int = 0, status: int = 503, answer: bytes = b'{"token": "t0k3n"}') -> None:
        super().__init__("127.0.0.1")
        self.failures, self.status, self.answer, self.seen = failures, status, answer, 0

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.seen += 1
            if self.seen <= self.failures:
                return web.Response(status=self.status, headers={"Retry-After": "0"})
            return web.Response(body=self.answer, content_type="application/json")
        return handle


class BearerRegistry(_HTTPServer):
    """Serves IMAGE's manifest to `Bearer t0k3n`, and a bearer challenge to anyone else."""

    def __init__(self, realm: str) -> None:
        super().__init__("127.0.0.1")
        self.realm = realm

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Authorization") != "Bearer t0k3n":
                return web.Response(status=401, headers={
                    "WWW-Authenticate": f'Bearer realm="{self.realm}",service="fake",scope="repository:a/b:pull"'})
            if request.path == "/v2/":
                return web.json_response({})
            return web.Response(body=IMAGE.manifest, headers={"Content-Type": IMAGE.media_type,
                                                              "Docker-Content-Digest": IMAGE.digest})
        return handle


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_token_server_failing_once_is_retried(status: int) -> None:
    with TokenServer(failures=1, status=status) as tokens, BearerRegistry(tokens.url + "/token") as reg:
        out = ok(fastsync("inspect", "--raw", "--retry-times", "2", "--tls-verify=false",
                          f"docker://{reg.host}/a/b:1"))
    assert out.stdout == IMAGE.manifest
    assert tokens.seen == 2


def test_a_token_answer_over_1_mib_is_refused() -> None:
    answer = b'{"token": "' + b"x" * (2 << 20) + b'"}'
    with TokenServer(answer=answer) as tokens, BearerRegistry(tokens.url + "/token") as reg:
        proc = fastsync("inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/a/b:1")
    assert_one_line_error(proc, "token server", "1 MiB allowed", code=1)


@pytest.mark.parametrize("command", [["copy", "dir:/nonexistent", "dir:/tmp/x"],
                                     ["sync", "--src", "dir", "--dest", "docker", "/nonexistent", "h/x"],
                                     ["inspect", "docker://h/x"], ["list-tags", "docker://h/x"],
                                     ["delete", "docker://h/x"]])
@pytest.mark.parametrize("flag", ["--read-idle-timeout", "--connect-timeout", "--retry-deadline"])
def test_the_network_flags_exist_and_are_checked(command: list[str], flag: str) -> None:
    proc = fastsync(*command[:1], flag, "0", *command[1:])
    assert_one_line_error(proc, flag, code=1)


def test_a_connection_that_is_never_accepted_gives_up_after_the_connect_timeout() -> None:
    """A listener whose backlog is full drops further SYNs: the connect hangs until --connect-timeout."""
    import socket
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(c)
        t0 = time.monotonic()
        proc = fastsync("inspect", "--connect-timeout", "1", "--tls-verify=false", f"docker://127.0.0.1:{port}/a/b:1")
        took = time.monotonic() - t0
    finally:
        for c in fillers:
            c.close()
        server.close()
    assert_one_line_error(proc, "no connection within 1s (--connect-timeout)", code=1)
    assert took < 10, took
