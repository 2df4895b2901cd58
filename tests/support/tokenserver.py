"""A small Docker token-auth server (the protocol Docker Hub and Harbor speak), for tests.

It runs an aiohttp app in a background thread with its own event loop on a free
127.0.0.1 port. ``GET /token?service=S&scope=A&scope=B`` with optional basic auth
returns ``{"token", "access_token", "expires_in", "issued_at"}``: an RS256 JWT whose
header carries ``kid`` = the libtrust key ID of the signing key, which distribution
2.8 matches against the public keys of the certificates in ``rootcertbundle``.

Public API
----------
``TokenServer(users=None, service="fastsync-test-registry", issuer="fastsync-test-issuer",
              allow_anonymous=True, policy=None, expires_in=300, use_x5c=False)``
    ``users``: {username: password}. ``policy``: {username or "" for anonymous:
    callable(scope_type, name, actions) -> allowed actions} or {username: {repo: actions}};
    default grants everything asked (anonymous: pull only when allowed).
    ``start()``/``stop()``, context manager. ``realm`` (URL), ``service``, ``issuer``,
    ``rootcertbundle`` (path of the PEM cert to put in the registry config), ``requests``:
    list of ``TokenRequest(user, service, scopes, granted, status, headers)``
    in arrival order (thread-safe to read), ``clear()``.
``TokenServer.registry_config()`` -> the ``auth.token`` dict for a distribution config.
``decode_jwt(token)`` -> (header, claims) without verification, for assertions.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from multidict import CIMultiDict

from .certs import self_signed_rsa
from .images import libtrust_key_id

PolicyFn = Callable[[str, str, list], list]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_jwt(token: str) -> tuple[dict, dict]:
    def dec(s: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    header, claims, _sig = token.split(".")
    return dec(header), dec(claims)


@dataclass(frozen=True)
class TokenRequest:
    user: Optional[str]          # None: anonymous
    service: Optional[str]
    scopes: tuple[str, ...]      # as asked, in order
    granted: tuple[str, ...]     # "type:name:actions" actually granted
    status: int
    headers: CIMultiDict = field(default_factory=CIMultiDict, compare=False)


def parse_scope(scope: str) -> Optional[tuple[str, str, list]]:
    """"repository:name:pull,push" -> ("repository", "name", ["pull","push"]); names may hold ':' (ports)."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    return parts[0], ":".join(parts[1:-1]), [a for a in parts[-1].split(",") if a]


class TokenServer:
    def __init__(
        self,
        users: Optional[dict[str, str]] = None,
        service: str = "fastsync-test-registry",
        issuer: str = "fastsync-test-issuer",
        allow_anonymous: bool = True,
        policy: Optional[dict[str, Union[PolicyFn, dict[str, list]]]] = None,
        expires_in: int = 300,
        use_x5c: bool = False,
        workdir: Optional[str] = None,
    ) -> None:
        self.users = dict(users or {})
        self.service = service
        self.issuer = issuer
        self.allow_anonymous = allow_anonymous
        self.policy = dict(policy or {})
        self.expires_in = expires_in
        self.use_x5c = use_x5c
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._keypair = self_signed_rsa("fastsync token signer")
        self.kid = libtrust_key_id(self._keypair.key.public_key())  # type: ignore[attr-defined]
        self._own_tmp = tempfile.TemporaryDirectory(prefix="fastsync-tokens-") if workdir is None else None
        self.workdir = Path(workdir or self._own_tmp.name)  # type: ignore[union-attr]
        self.rootcertbundle = str(self.workdir / "token-signer.crt")
        Path(self.rootcertbundle).write_bytes(self._keypair.cert_pem)
        self.port = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None

    # ---- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def registry_config(self) -> dict:
        return {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                "rootcertbundle": self.rootcertbundle}

    def start(self) -> "TokenServer":
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_app())
            except BaseException as e:  # noqa: BLE001 - reported to start()
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="fastsync-tokenserver", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise RuntimeError(f"token server failed to start: {errors[0]!r}")
        return self

    async def _start_app(self) -> None:
        app = web.Application()
        app.router.add_get("/token", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> "TokenServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def snapshot(self) -> list[TokenRequest]:
        with self._lock:
            return list(self.requests)

    # ---- token logic
    def _grant(self, user: Optional[str], scope: str) -> Optional[str]:
        parsed = parse_scope(scope)
        if parsed is None:
            return None
        typ, name, actions = parsed
        if user is None:
            if not self.allow_anonymous:
                return None
            actions = [a for a in actions if a == "pull"]
        rule = self.policy.get(user if user is not None else "")
        if callable(rule):
            actions = [a for a in rule(typ, name, actions) if a in actions]
        elif isinstance(rule, dict):
            allowed = rule.get(name, rule.get("*", []))
            actions = [a for a in actions if a in allowed or "*" in allowed]
        if not actions:
            return None
        return f"{typ}:{name}:{','.join(actions)}"

    def make_token(self, user: Optional[str], granted: list[str]) -> tuple[str, int]:
        now = int(time.time())
        access = []
        for g in granted:
            typ, name, actions = parse_scope(g)  # type: ignore[misc]
            access.append({"type": typ, "name": name, "actions": actions})
        header: dict = {"typ": "JWT", "alg": "RS256"}
        if self.use_x5c:
            der = self._keypair.cert.public_bytes(serialization.Encoding.DER)
            header["x5c"] = [base64.b64encode(der).decode()]
        else:
            header["kid"] = self.kid
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + self.expires_in, "nbf": now - 10, "iat": now,
                  "jti": secrets.token_hex(16), "access": access}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = self._keypair.key.sign(signing_input.encode(), padding.PKCS1v15(),  # type: ignore[attr-defined]
                                     hashes.SHA256())
        return signing_input + "." + _b64url(sig), now

    async def _handle(self, request: web.Request) -> web.Response:
        service = request.query.get("service")
        scopes = tuple(request.query.getall("scope", []))
        # Some clients send several scopes space-separated in one parameter.
        flat = [s for sc in scopes for s in sc.split(" ") if s]
        user: Optional[str] = None
        auth = request.headers.get("Authorization", "")
        status = 200
        granted: list[str] = []
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", None  # type: ignore[assignment]
            if self.users.get(user) != password or user not in self.users:
                status = 401
        elif not self.allow_anonymous:
            status = 401
        if status == 200 and service is not None and service != self.service:
            status = 400
        if status == 200:
            for sc in flat:
                g = self._grant(user, sc)
                if g is not None:
                    granted.append(g)
        with self._lock:
            self.requests.append(TokenRequest(user=user, service=service, scopes=tuple(flat),
                                              granted=tuple(granted), status=status,
                                              headers=CIMultiDict(request.headers)))
        if status == 401:
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status=401, headers={"WWW-Authenticate": 'Basic realm="fastsync-token"'})
        if status == 400:
            return web.json_response({"errors": [{"code": "DENIED", "message": "unknown service"}]},
                                     status=400)
        token, now = self.make_token(user, granted)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return web.json_response({"token": token, "access_token": token,
                                  "expires_in": self.expires_in, "issued_at": issued})
