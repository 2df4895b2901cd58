"""What each registry answered to its ping (scheme and auth challenge), shared by a session's clients.

A Session holds one PingMemo; every RegistryClient it makes for the same host and the same TLS
settings (the same SSL context: same --tls-verify, same certificate directory) then pings once:
with --tls-verify=false the https attempt on a plain-HTTP port, and the GET /v2/ after it, are paid
by the first client only. Failed pings are not remembered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from fastsync.registry.auth import Challenge


@dataclass(frozen=True)
class PingResult:
    base: str                          # "https://HOST" or "http://HOST"
    challenge: Optional[Challenge]     # the 401's WWW-Authenticate, None when /v2/ answered without one


class PingMemo:
    """(host, SSL context) -> PingResult, for the life of one Session."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, Any], PingResult] = {}

    def get(self, host: str, ssl: Any) -> Optional[PingResult]:
        return self._known.get((host, ssl))

    def put(self, host: str, ssl: Any, result: PingResult) -> None:
        self._known[(host, ssl)] = result
