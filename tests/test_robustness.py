"""Malformed answers from broken servers become one-line errors, token responses are read leniently
(and their expiry honoured), and the native build honours FASTSYNC_REQUIRE_NATIVE.

The tiny aiohttp servers below model *broken* servers (HTML where JSON belongs, odd token
answers); registry behaviour itself is always a real docker-registry elsewhere in the suite.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Awaitable, Callable, Union
from urllib.parse import unquote

import pytest
from aiohttp import web

from fastsync.registry.auth import Authenticator, Challenge, parse_challenge, parse_token_response
from fastsync.errors import Unauthorized
from support.httpproxy import _HTTPServer
from support.tokenserver import TokenServer
from helpers import ROOT, assert_one_line_error, fastsync, ok

Answer = tuple[int, Union[bytes, str], dict]


class BrokenServer(_HTTPServer):
    """A plain-HTTP server answering each path with a fixed (status, body, headers), or with a
    handler(request) -> Answer; records (method, path_qs, Authorization) of every request."""

    _name = "fastsync-broken-server"

    def __init__(self, routes: dict[str, Union[Answer, Callable[[web.Request], Answer]]]) -> None:
        super().__init__("127.0.0.1")
        self.routes = routes
        self.requests: list[tuple[str, str, str]] = []

    def _handler(self) -> Callable[[web.Request], Awaitable[web.Response]]:
        return self._handle

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        with self._lock:
            self.requests.append((request.method, request.path_qs, request.headers.get("Authorization", "")))
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404, body=b'{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}',
                                content_type="application/json")
        status, body, headers = route(request) if callable(route) else route
        headers = dict(headers)
        ctype = headers.pop("Content-Type", "application/json")
        return web.Response(status=status, body=body.encode() if isinstance(body, str) else body,
                            headers={"Content-Type": ctype, **headers})


HTML = (200, "<html><body><h1>Welcome</h1></body></html>\n", {"Content-Type": "text/html"})
PING = (200, "{}", {})
TAGS = (200, '{"name":"a/b","tags":["1","2"]}', {})


# ---- 1. malformed tag lists and error bodies ---------------------------------------------------

def test_list_tags_from_html_is_one_line_error():
    with BrokenServer({"/v2/": PING, "/v2/a/b/tags/list": HTML}) as srv:
        proc = fastsync("list-tags", "--tls-verify=false", f"docker://{srv.host}/a/b")
    line = assert_one_line_error(proc, f"listing tags of {srv.host}/a/b", "not a tag list", "not JSON", code=1)
    assert "<html>" in line and "text/html" in line


def test_sync_src_docker_from_html_tag_list_is_one_line_error(tmp_path):
    with BrokenServer({"/v2/": PING, "/v2/a/b/tags/list": HTML}) as srv:
        proc = fastsync("sync", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                        f"{srv.host}/a/b", str(tmp_path / "out"), env={"XDG_CACHE_HOME": str(tmp_path / "c")})
    assert_one_line_error(proc, f"listing tags of {srv.host}/a/b", "not a tag list", code=1)


@pytest.mark.parametrize("body,why", [
    ("", "not JSON: empty body"),
    ("[1, 2]", "a JSON list"),
    ('"tags"', "a JSON str"),
    ('{"tags": "latest"}', '"tags" is not a list of strings'),
    ('{"tags": [1, 2]}', '"tags" is not a list of strings'),
    ('{"tags": {"a": 1}}', '"tags" is not a list of strings'),
])
def test_malformed_tag_lists_are_one_line_errors(body, why):
    with BrokenServer({"/v2/": PING, "/v2/a/b/tags/list": (200, body, {})}) as srv:
        proc = fastsync("list-tags", "--tls-verify=false", f"docker://{srv.host}/a/b")
    assert_one_line_error(proc, f"listing tags of {srv.host}/a/b", why, code=1)


def test_tag_list_with_null_tags_is_empty_and_a_good_one_is_read():
    with BrokenServer({"/v2/": PING, "/v2/a/b/tags/list": (200, '{"name":"a/b","tags":null}', {}),
                       "/v2/c/d/tags/list": TAGS}) as srv:
        empty = ok(fastsync("list-tags", "--tls-verify=false", f"docker://{srv.host}/a/b"))
        full = ok(fastsync("list-tags", "--tls-verify=false", f"docker://{srv.host}/c/d"))
    assert json.loads(empty.stdout)["Tags"] == []
    assert json.loads(full.stdout)["Tags"] == ["1", "2"]


@pytest.mark.parametrize("body,fragment", [
    ('{"errors": {"code": "X"}}', '{"errors": {"code": "X"}}'),
    ('{"errors": 5}', '{"errors": 5}'),
    ('{"errors": [1]}', '{"errors": [1]}'),
    ('{"errors": [{"code": 7, "message": ["m"]}]}', '{"errors"'),
    ('{"errors": [{"code": "DENIED", "message": "go\\naway"}]}', "go away"),
    ("<html>\n<h1>502 Bad Gateway</h1>\n</html>", "<html>"),
    ("", "HTTP status 500"),
])
def test_malformed_error_bodies_are_one_line_errors(body, fragment):
    with BrokenServer({"/v2/": PING, "/v2/a/b/tags/list": (500, body, {})}) as srv:
        proc = fastsync("list-tags", "--tls-verify=false", f"docker://{srv.host}/a/b")
    assert_one_line_error(proc, f"listing tags of {srv.host}/a/b", fragment, "(HTTP 500)", code=1)


# ---- 2. token responses --------------------------------------------------------------------------

def test_parse_challenge_keeps_commas_inside_quoted_values():
    ch = parse_challenge('Bearer realm="https://a/token",service="reg,1",scope="repository:a/b:pull,push"')
    assert ch is not None and ch.scheme == "bearer"
    assert ch.params == {"realm": "https://a/token", "service": "reg,1", "scope": "repository:a/b:pull,push"}
    ch = parse_challenge('Bearer realm="https://a/t", error="insufficient_scope", scope="repository:x:pull,push"')
    assert ch is not None and ch.params["scope"] == "repository:x:pull,push" and ch.params["error"] == \
        "insufficient_scope"


def token_registry(token_answer: Answer) -> BrokenServer:
    """/v2/ challenges for a bearer token from /token; tags/list needs `Bearer x`."""
    srv = BrokenServer({})

    def challenge() -> dict:
        return {"WWW-Authenticate": f'Bearer realm="{srv.url}/token",service="reg,1"'}

    def ping(request: web.Request) -> Answer:
        return (200, "{}", {}) if request.headers.get("Authorization") == "Bearer x" else \
            (401, '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', challenge())

    def tags(request: web.Request) -> Answer:
        return TAGS if request.headers.get("Authorization") == "Bearer x" else ping(request)

    srv.routes.update({"/v2/": ping, "/v2/a/b/tags/list": tags, "/token": token_answer})
    return srv


@pytest.mark.parametrize("answer", [
    '{"token": "x", "expires_in": "soon"}',
    '{"token": "x", "expires_in": "300"}',
    '{"token": "x", "expires_in": 12.5}',
    '{"token": "x", "expires_in": null}',
    '{"token": "x", "expires_in": [1]}',
    '{"token": "x"}',
    '{"access_token": "x"}',
    '{"token": "", "access_token": "x"}',
])
def test_lenient_token_answers_are_used(answer):
    with token_registry((200, answer, {})) as srv:
        proc = ok(fastsync("list-tags", "--tls-verify=false", f"docker://{srv.host}/a/b"))
        token_gets = [r for r in srv.requests if r[1].startswith("/token")]
    assert json.loads(proc.stdout)["Tags"] == ["1", "2"]
    assert len(token_gets) == 1 and "service=reg,1&" in unquote(token_gets[0][1]), token_gets


@pytest.mark.parametrize("answer,fragment", [
    ('{"expires_in": 60}', 'neither "token" nor "access_token"'),
    ('{"token": 5}', 'neither "token" nor "access_token"'),
    ('{"token": null, "access_token": ""}', 'neither "token" nor "access_token"'),
    ("<html>token service</html>", "not JSON"),
    ("", "not JSON: an empty body"),
    ('["x"]', "a JSON list"),
])
def test_token_answers_without_a_token_are_one_line_errors(answer, fragment):
    with token_registry((200, answer, {"Content-Type": "text/plain"})) as srv:
        proc = fastsync("list-tags", "--tls-verify=false", f"docker://{srv.host}/a/b")
    assert_one_line_error(proc, f"authenticating to {srv.host}", "sent no token", fragment, code=1)


def test_parse_token_response_reads_numbers_and_numeric_strings():
    assert parse_token_response(b'{"token":"t","expires_in":"90"}', "w") == ("t", 90.0)
    assert parse_token_response(b'{"access_token":"a","expires_in":7}', "w") == ("a", 7.0)
    assert parse_token_response(b'{"token":"t","access_token":"a"}', "w") == ("t", 60.0)
    for bad in ('"soon"', '"-5"', "0", "true", '"nan"', '"inf"', "{}"):
        assert parse_token_response(b'{"token":"t","expires_in":%s}' % bad.encode(), "w")[1] == 60.0, bad
    with pytest.raises(Unauthorized, match="^w sent no token"):
        parse_token_response(b"{}", "w")


def test_token_expiry_is_honoured():
    """A token is reused while it lives and fetched again once expires_in has passed."""
    import aiohttp

    async def go(realm: str, service: str) -> list[str]:
        async with aiohttp.ClientSession() as http:
            auth = Authenticator(http, "reg.example", None)
            auth.challenge = Challenge("bearer", {"realm": realm, "service": service})
            scopes = ("repository:a/b:pull",)
            first = await auth.header(scopes)
            again = await auth.header(scopes)
            await asyncio.sleep(1.2)
            later = await auth.header(scopes)
            return [first, again, later]

    with TokenServer(expires_in=1) as ts:
        first, again, later = asyncio.run(go(ts.realm, ts.service))
        fetched = len(ts.snapshot())
    assert first == again and fetched == 2 and later != first
    with TokenServer(expires_in=300) as ts:
        first, again, later = asyncio.run(go(ts.realm, ts.service))
        fetched = len(ts.snapshot())
    assert first == again == later and fetched == 1


# ---- 4. FASTSYNC_REQUIRE_NATIVE=1 -------------------------------------------------------------------

@pytest.fixture
def build_tree(tmp_path) -> Path:
    """A copy of what `setup.py build_ext` reads, with Cython made unimportable (a shadowing package)
    so the Cython-missing branch runs whether or not this machine has Cython."""
    tree = tmp_path / "src"
    (tree / "ext").mkdir(parents=True)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    for src in (ROOT / "ext").iterdir():
        if src.suffix in (".pyx", ".pxd", ".h"):
            shutil.copy2(src, tree / "ext" / src.name)
    (tree / "fastsync").mkdir()
    shadow = tmp_path / "no-cython" / "Cython"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named Cython (hidden by the test)')\n")
    return tree


def build(tree: Path, require: bool, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(tree.parent / "no-cython"), **env}
    e.pop("FASTSYNC_NO_EXT", None)
    if require:
        e["FASTSYNC_REQUIRE_NATIVE"] = "1"
    else:
        e.pop("FASTSYNC_REQUIRE_NATIVE", None)
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, env=e,
                          capture_output=True, text=True, timeout=300)


def reason_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The build failed with exit 1, no traceback, and one `native core NOT built` line, printed last."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "native core NOT built" in ln]
    assert len(lines) == 1 and proc.stderr.strip().splitlines()[-1] == lines[0], proc.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def test_required_native_build_without_cython_fails_with_one_line(build_tree):
    reason_line(build(build_tree, require=True), "Cython is missing", "FASTSYNC_REQUIRE_NATIVE=1")
    plain = build(build_tree, require=False)        # without the flag: the pure-Python fallback, exit 0
    assert plain.returncode == 0 and "using the pure-Python backend" in plain.stderr, plain.stderr
    assert not list((build_tree / "fastsync").glob("_native*"))


def test_required_native_build_with_a_failing_compiler_fails_with_one_line(build_tree):
    c = build_tree / "ext" / "_native.c"            # an up-to-date generated C file: compiled without Cython
    c.write_text("#error this compile must fail\n")
    reason_line(build(build_tree, require=True), "native core NOT built", "FASTSYNC_REQUIRE_NATIVE=1")
    plain = build(build_tree, require=False)
    assert plain.returncode == 0 and "using the pure-Python backend" in plain.stderr, plain.stderr
    assert not list((build_tree / "fastsync").glob("_native*"))
