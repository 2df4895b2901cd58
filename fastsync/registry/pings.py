"""What each registry answered to its ping (scheme and auth challenge): shared by a session's clients,
and remembered for a few minutes across runs in the cache directory.

A Session holds one PingMemo; every RegistryClient it makes for the same host and the same TLS
settings (the same SSL context: same --tls-verify, same certificate directory) then pings once:
with --tls-verify=false the https attempt on a plain-HTTP port, and the GET /v2/ after it, are paid
by the first client only. Failed pings are not remembered.

With a `path` (the cache directory's pings.json), a successful ping is also written there (atomic
replace) and the next run within `TTL` seconds skips the ping: it starts with the remembered scheme
and challenge (`remembered`). Such an answer is only a guess: the client falls back to the full
ping (skopeo's order) when a request made on it fails as a wrong guess would, and forgets it. An
http:// answer is only ever used with --tls-verify=false, as only then would the ping fall back to
plain HTTP. An unreadable, corrupt or stale file is ignored (and replaced at the next ping).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from fastsync.registry.auth import Challenge

TTL = 600.0                            # seconds a ping's answer on disk is used for
# a ping answered with one of these (or 5xx) fails; the full ping and bareping's both go by it
FAILING_STATUSES = (404, 408, 425, 429)
VERSION = 1


@dataclass(frozen=True)
class PingResult:
    base: str                          # "https://HOST" or "http://HOST"
    challenge: Optional[Challenge]     # the 401's WWW-Authenticate, None when /v2/ answered without one
    remembered: bool = False           # read from the cache directory, not yet confirmed by this run

    def same_answer(self, other: "PingResult") -> bool:
        return self.base == other.base and self.challenge == other.challenge


def _key(host: str, insecure: bool) -> str:
    return f"{host} {'insecure' if insecure else 'verify'}"


class PingMemo:
    """(host, SSL context) -> PingResult for the life of one Session; with `path`, across runs too."""

    def __init__(self, path: Optional[str] = None, ttl: float = TTL, clock: Callable[[], float] = time.time) -> None:
        self._known: dict[tuple[str, Any], PingResult] = {}
        self.path = path
        self.ttl = ttl
        self._clock = clock
        self._disk: Optional[dict[str, dict[str, Any]]] = None    # pings.json's entries, read once
        self._early: dict[tuple[str, Any], "asyncio.Future[Optional[PingResult]]"] = {}

    def early(self, host: str, ssl: Any, fut: "asyncio.Future[Optional[PingResult]]") -> None:
        """A ping already under way for `host` (bareping, sent before the HTTP client was ready)."""
        self._early.setdefault((host, ssl), fut)

    def take_early(self, host: str, ssl: Any) -> Optional["asyncio.Future[Optional[PingResult]]"]:
        return self._early.pop((host, ssl), None)

    async def drop_early(self) -> None:
        """Cancel the early pings no client took (the session is closing)."""
        left, self._early = list(self._early.values()), {}
        for fut in left:
            fut.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def get(self, host: str, ssl: Any) -> Optional[PingResult]:
        return self._known.get((host, ssl))

    def put(self, host: str, ssl: Any, result: PingResult, insecure: bool = False) -> None:
        """Remember a ping's answer for this session, and (with a path) on disk for the next runs."""
        self._known[(host, ssl)] = result
        if self.path is None or result.remembered:
            return
        entries = self._entries()
        entry = {"base": result.base, "at": self._clock(),
                 "challenge": None if result.challenge is None else
                 {"scheme": result.challenge.scheme, "params": dict(result.challenge.params)}}
        old = entries.get(_key(host, insecure))
        if old is not None and self._parse(host, insecure, old) is not None and \
                {k: v for k, v in old.items() if k != "at"} == {k: v for k, v in entry.items() if k != "at"}:
            return                         # the same answer, still fresh: no write
        entries[_key(host, insecure)] = entry
        self._write(entries)

    def recall(self, host: str, insecure: bool) -> Optional[PingResult]:
        """The answer a recent run got from `host` with these TLS settings, if any (remembered=True)."""
        if self.path is None:
            return None
        entry = self._entries().get(_key(host, insecure))
        return self._parse(host, insecure, entry) if entry is not None else None

    def forget(self, host: str, ssl: Any, insecure: bool) -> None:
        """Drop an answer that turned out wrong, here and on disk."""
        self._known.pop((host, ssl), None)
        if self.path is not None and self._entries().pop(_key(host, insecure), None) is not None:
            self._write(self._entries())

    # ---- the file -----------------------------------------------------------------------------

    def _parse(self, host: str, insecure: bool, entry: Any) -> Optional[PingResult]:
        """A usable entry: fresh, a base for this very host (http:// only when insecure), a well-formed
        challenge; None for anything else."""
        try:
            at, base, ch = entry["at"], entry["base"], entry["challenge"]
            if not isinstance(at, (int, float)) or not 0 <= self._clock() - at < self.ttl:
                return None
            if base != f"https://{host}" and not (insecure and base == f"http://{host}"):
                return None
            if ch is None:
                return PingResult(base, None, remembered=True)
            scheme, params = ch["scheme"], ch["params"]
            if not isinstance(scheme, str) or not isinstance(params, dict) or \
                    not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
                return None
            return PingResult(base, Challenge(scheme, dict(params)), remembered=True)
        except (KeyError, TypeError):
            return None

    def _entries(self) -> dict[str, dict[str, Any]]:
        if self._disk is None:
            self._disk = {}
            try:
                with open(self.path, "rb") as f:          # type: ignore[arg-type]
                    doc = json.loads(f.read())
                if isinstance(doc, dict) and doc.get("version") == VERSION and isinstance(doc.get("entries"), dict):
                    self._disk = {k: v for k, v in doc["entries"].items() if isinstance(v, dict)}
            except (OSError, ValueError):
                pass                       # none yet, unreadable or corrupt: as if empty
        return self._disk

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        """Replace the file atomically; entries past their TTL are dropped. A failed write only
        costs the next run its ping."""
        assert self.path is not None
        now = self._clock()
        keep = {k: v for k, v in entries.items()
                if isinstance(v.get("at"), (int, float)) and 0 <= now - v["at"] < self.ttl}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps({"version": VERSION, "entries": keep}, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
