"""Registry authentication: WWW-Authenticate challenges, basic auth and the Docker token flow."""
from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

import orjson

from fastsync.errors import NetworkError, Unauthorized, body_snippet
from fastsync.options import Credentials, TransportOptions
from fastsync.registry.limits import MAX_TOKEN, read_capped, read_start

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("fastsync")

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str                       # "basic" | "bearer" (lower case)
    params: dict[str, str] = field(default_factory=dict, hash=False)


def parse_challenge(header: str) -> Optional[Challenge]:
    """Parse the first challenge of a WWW-Authenticate header (quoted values may hold commas)."""
    header = (header or "").strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)


def basic_header(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Authorization for one registry host and one set of credentials.

    Tokens are cached per scope set; concurrent requests for the same scopes share one fetch.
    """

    def __init__(self, http: "aiohttp.ClientSession", host: str, creds: Optional[Credentials],
                 ssl: object = None, registry_token: Optional[str] = None) -> None:
        self.http = http
        self.host = host
        self.creds = creds
        self.ssl = ssl
        self.registry_token = registry_token
        self.challenge: Optional[Challenge] = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._pending: dict[tuple[str, ...], asyncio.Future[str]] = {}

    async def header(self, scopes: tuple[str, ...]) -> Optional[str]:
        """The Authorization header for a request needing `scopes`, or None when none is known needed."""
        if self.registry_token:
            return f"Bearer {self.registry_token}"
        ch = self.challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return basic_header(self.creds) if self.creds else None
        if ch.scheme != "bearer":
            return None
        key = tuple(sorted(scopes))
        tok = self._tokens.get(key) or self._covering(key)
        if tok and tok.expires > time.monotonic():
            return f"Bearer {tok.value}"
        fut = self._pending.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._pending[key] = fut
            try:
                value = await self._fetch_token(ch, key)
                fut.set_result(value)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved; waiters re-raise it
                raise
            finally:
                self._pending.pop(key, None)
        return f"Bearer {await asyncio.shield(fut)}"

    def _covering(self, scopes: tuple[str, ...]) -> Optional[_Token]:
        """A live cached token granted for at least `scopes` (a pull,push token serves a pull)."""
        want = _actions(scopes)
        now = time.monotonic()
        return next((tok for key, tok in self._tokens.items()
                     if tok.expires > now and _covers(_actions(key), want)), None)

    def on_challenge(self, header: str, scopes: tuple[str, ...]) -> bool:
        """Record a 401's challenge; True when retrying with fresh authorization may help."""
        ch = parse_challenge(header)
        if ch is None or ch.scheme not in ("basic", "bearer"):
            return False
        if ch.scheme == "basic" and not self.creds:
            return False
        had = self.challenge
        self.challenge = ch
        want = _actions(scopes)   # forget the token that was refused (whichever cached one served)
        for k in [k for k in self._tokens if _covers(_actions(k), want)]:
            del self._tokens[k]
        return had is None or had.scheme != ch.scheme or ch.scheme == "bearer"

    async def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> str:
        import aiohttp

        realm = ch.params.get("realm")
        if not realm:
            raise Unauthorized(f"registry {self.host} sent a malformed WWW-Authenticate header: a bearer challenge "
                               "without a realm", 401)
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Unauthorized(f"registry {self.host} sent a malformed WWW-Authenticate header: the realm "
                               f"{body_snippet(realm.encode())} is not an http(s) URL", 401)
        params = [("service", ch.params["service"])] if ch.params.get("service") else []
        params += [("scope", s) for s in scopes]
        headers = {}
        if self.creds and self.creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": self.creds.identity_token,
                    "service": ch.params.get("service", ""), "client_id": "fastsync", "scope": " ".join(scopes)}
            req = self.http.post(realm, data=form, ssl=self.ssl)
        else:
            if self.creds:
                headers["Authorization"] = basic_header(self.creds)
            req = self.http.get(realm, params=params, headers=headers, ssl=self.ssl)
        where = realm.split("?", 1)[0]
        what = f"authenticating to {self.host}: the token server at {where}"
        try:
            async with req as resp:
                body = await (read_capped(resp, MAX_TOKEN, what, str) if resp.status == 200 else read_start(resp))
                log.debug("token for %s from %s (%s) -> %d", " ".join(scopes) or "(no scope)", where,
                          "with credentials" if self.creds else "anonymous",
                          resp.status)
                if resp.status in (401, 403):
                    raise Unauthorized(f"authenticating to {self.host}: unable to retrieve auth token: invalid "
                                       f"username/password: unauthorized (token server answered {resp.status})",
                                       resp.status)
                if resp.status != 200:
                    raise Unauthorized(f"authenticating to {self.host}: token server answered {resp.status}",
                                       resp.status)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            if isinstance(exc, aiohttp.InvalidURL):
                raise Unauthorized(f"registry {self.host} sent a malformed WWW-Authenticate header: the realm "
                                   f"{body_snippet(realm.encode())} is not a usable URL", 401) from None
            reason = " ".join(str(exc).split()) or ("timed out" if isinstance(exc, asyncio.TimeoutError)
                                                      else type(exc).__name__)
            raise NetworkError(f"authenticating to {self.host}: cannot reach the token server: {reason}") from None
        value, ttl = parse_token_response(body, what)
        # Renew a little before the server's expiry (10 s, or a tenth of a short lifetime).
        self._tokens[scopes] = _Token(value, time.monotonic() + ttl - min(10.0, ttl / 10))
        return value


DEFAULT_TOKEN_SECONDS = 60.0


def parse_token_response(body: bytes, what: str) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token server's JSON answer: `token`, else `access_token`;
    `expires_in` as a number or numeric string (else 60 s, the protocol's default). Anything else is
    a one-line Unauthorized starting with `what`."""
    try:
        doc = orjson.loads(body)
    except ValueError:
        shown = body_snippet(body, empty="an empty body")
        raise Unauthorized(f"{what} sent no token (its answer is not JSON: {shown})", 401) from None
    if not isinstance(doc, dict):
        raise Unauthorized(f"{what} sent no token (its answer is a JSON {type(doc).__name__}, not an object)", 401)
    value = next((v for v in (doc.get("token"), doc.get("access_token")) if isinstance(v, str) and v.strip()), None)
    if value is None:
        raise Unauthorized(f"{what} sent no token (neither \"token\" nor \"access_token\" in its answer)", 401)
    return value.strip(), _lifetime(doc.get("expires_in"))


def _lifetime(raw: object) -> float:
    """`expires_in` in seconds: a positive finite number or numeric string; otherwise the 60 s default."""
    if isinstance(raw, bool):
        return DEFAULT_TOKEN_SECONDS
    if isinstance(raw, str):
        try:
            raw = float(raw.strip())
        except ValueError:
            return DEFAULT_TOKEN_SECONDS
    if isinstance(raw, (int, float)) and 0 < raw < float("inf"):
        return float(raw)
    return DEFAULT_TOKEN_SECONDS


def _actions(scopes: tuple[str, ...]) -> dict[str, set[str]]:
    """{"repository:NAME": {"pull", "push"}} from `type:name:actions` scope strings."""
    out: dict[str, set[str]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        out.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    return out


def _covers(have: dict[str, set[str]], want: dict[str, set[str]]) -> bool:
    return all(acts <= have.get(res, set()) for res, acts in want.items())


def credentials_for(host: str, repo: Optional[str], opts: "TransportOptions") -> Optional[Credentials]:
    """Credentials for `repo` on `host`, in skopeo's order: --no-creds (anonymous), --creds, then the
    auth files and credential helpers (see authfile.lookup_credentials; namespace keys need `repo`).

    May run a credential helper (a subprocess): call it off the event loop.
    """
    if opts.no_creds:
        return None
    if opts.creds:
        return opts.creds
    from fastsync.registry.authfile import credentials_key, lookup_credentials

    return lookup_credentials(credentials_key(host, repo), opts.authfile)


def registry_credentials(host: str, opts: "TransportOptions") -> tuple[bool, Optional[Credentials]]:
    """(whether credentials may differ per repository on `host`, the registry's own credentials).

    One look at the auth files for the whole registry: unless one of them has a key naming a
    namespace on `host` (``host/org``, ``host/org/repo``), every repository gets the registry's
    credentials (what `credentials_for` would find for each). May run a credential helper."""
    if opts.no_creds or opts.creds:
        return False, credentials_for(host, None, opts)
    from fastsync.registry.authfile import credentials_key, has_namespaced_keys, lookup_credentials

    key = credentials_key(host)
    if has_namespaced_keys(key, opts.authfile):
        return True, None
    return False, lookup_credentials(key, opts.authfile)
