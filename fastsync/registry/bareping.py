"""The ping without aiohttp: GET /v2/ on a connection of its own (asyncio streams, HTTP/1.1,
`Connection: close`), so a session's pings are on the wire while aiohttp is still being imported
(~55 ms of a run's start-up; on a WAN the ping's round trips hide it).

Only a clean answer counts: the scheme it came on (https first; http as well with --tls-verify=false,
as the full ping goes) and its challenge. Anything else -- no connection, a TLS failure on both
schemes, an answer the full ping would report (5xx, 404, 408, 425, 429), a malformed or slow
answer, a timeout -- gives None, and the full ping (RegistryClient.ping, through aiohttp) runs as
before and reports in its own words. Its waits are capped at CAP seconds so an unreachable
registry costs little more than it did.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

from fastsync.options import NetworkOptions
from fastsync.registry.auth import parse_challenge
from fastsync.registry.pings import FAILING_STATUSES, PingResult

from fastsync.registry.stats import NO_ANSWER

if TYPE_CHECKING:
    from fastsync.registry.stats import TrafficStats

log = logging.getLogger("fastsync")
CAP = 3.0                  # seconds, at most, for the connection and for the answer's head
MAX_HEAD = 64 << 10        # bytes of status line and headers


async def bare_ping(host: str, insecure: bool, ctx: ssl.SSLContext, user_agent: str,
                    net: NetworkOptions = NetworkOptions(),
                    traffic: Optional["TrafficStats"] = None) -> Optional[PingResult]:
    """`host`'s scheme and challenge, or None when the full ping must find them (see the module)."""
    for scheme in (("https", "http") if insecure else ("https",)):
        try:
            status, challenge = await _get_v2(host, scheme, ctx if scheme == "https" else None, user_agent, net,
                                              traffic)
        except asyncio.TimeoutError:
            return None                        # the full ping waits as long as the user asked
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError):
            continue                           # refused, reset, not TLS, not HTTP: the next scheme
        log.debug("GET %s://%s/v2/ -> %d", scheme, host, status)
        if status >= 500 or status in FAILING_STATUSES:
            return None
        return PingResult(f"{scheme}://{host}", parse_challenge(challenge) if status == 401 else None)
    return None


async def _get_v2(host: str, scheme: str, ctx: Optional[ssl.SSLContext], user_agent: str, net: NetworkOptions,
                  traffic: Optional["TrafficStats"]) -> tuple[int, str]:
    """(status, WWW-Authenticate) of GET /v2/, counted in `traffic` as the aiohttp requests are."""
    parts = urlsplit(f"//{host}")
    hostname, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    if not hostname:
        raise ValueError(f"no host name in {host!r}")
    req = traffic._start(host, "GET") if traffic is not None else None
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(hostname, port, ssl=ctx, limit=MAX_HEAD),
                                                min(net.connect_timeout, CAP))
        if traffic is not None and req is not None:
            traffic._connected(req, True)
        writer.write(f"GET /v2/ HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n"
                     f"Connection: close\r\n\r\n".encode("latin-1"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), min(net.read_idle_timeout, CAP))
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise ValueError("not an HTTP/1 answer")
        status = int(rest[:3])
    except BaseException:
        if traffic is not None and req is not None:
            traffic._answered(req, NO_ANSWER)
            traffic._finish(req, 0)
        raise
    finally:
        if writer is not None:
            writer.close()
    challenge = next((value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
                      if name.strip().lower() == "www-authenticate"), "")
    if traffic is not None and req is not None:
        traffic._answered(req, str(status))
        traffic._finish(req, 0)            # no body read (the aiohttp ping reads two bytes: "{}")
    return status, challenge
