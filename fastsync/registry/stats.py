"""Per-host traffic figures of one session, collected by aiohttp trace hooks (no work on the data path).

A `TrafficStats` is handed to the Session, which adds its `trace_config()` to the HTTP client; the
hooks count, per host (`host[:port]` as the URL names it): requests by method and answer status
("error": no answer, the connection failed), body bytes sent and received, connections opened and
reused, how long the host had at least one request in flight (from the request's start to the end
of its answer's body), the most requests in flight at once, and the time to first byte of each
answer (from the end of sending the request, headers and body, to the answer's headers). Retries
(`retried`) and the adaptive limiter's final and peak limits (`limit`) are told by the code that
decides them. `figures()` returns the frozen values; nothing here prints.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

NO_ANSWER = "error"
MB = 1_000_000


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank `p`th percentile of `values` (not empty)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Latency:
    """Percentiles of a set of durations, in seconds."""

    count: int
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: list[float]) -> Optional["Latency"]:
        if not values:
            return None
        return cls(len(values), percentile(values, 50), percentile(values, 90), percentile(values, 99))

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "p50": round(self.p50 * 1000, 3), "p90": round(self.p90 * 1000, 3),
                "p99": round(self.p99 * 1000, 3)}


@dataclass(frozen=True)
class HostFigures:
    """What one host was asked and answered during a session."""

    host: str
    requests: tuple[tuple[str, str, int], ...]     # (method, status or "error", count), sorted
    bytes_sent: int
    bytes_received: int
    seconds_active: float                          # time with at least one request in flight
    connections_opened: int
    connections_reused: int
    retries: int
    in_flight_peak: int
    limit_final: Optional[int]                     # the adaptive limiter's blob transfers (sync only)
    limit_peak: Optional[int]
    ttfb: Optional[Latency]

    @property
    def requests_total(self) -> int:
        return sum(n for _, _, n in self.requests)

    def rate(self, nbytes: int) -> float:
        """MB/s (10^6 bytes) over the time the host had requests in flight."""
        return nbytes / MB / self.seconds_active if self.seconds_active > 0 else 0.0

    def by_method(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for method, status, n in self.requests:
            out.setdefault(method, {})[status] = n
        return out

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "requests": self.requests_total, "requests_by_method": self.by_method(),
                "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                "seconds_active": round(self.seconds_active, 3),
                "mb_per_s_sent": round(self.rate(self.bytes_sent), 3),
                "mb_per_s_received": round(self.rate(self.bytes_received), 3),
                "retries": self.retries, "connections_opened": self.connections_opened,
                "connections_reused": self.connections_reused, "in_flight_peak": self.in_flight_peak,
                "limit_final": self.limit_final, "limit_peak": self.limit_peak,
                "ttfb_ms": self.ttfb.to_json() if self.ttfb else None}


class _Host:
    """The running counts of one host (mutable; read through `figures`)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.sent = self.received = self.opened = self.reused = self.retries = 0
        self.active = self.peak = 0
        self.busy = 0.0
        self.since = 0.0
        self.ttfb: list[float] = []
        self.limit: Optional[tuple[int, int]] = None

    def begin(self, now: float) -> None:
        if self.active == 0:
            self.since = now
        self.active += 1
        self.peak = max(self.peak, self.active)

    def end(self, now: float) -> None:
        self.active -= 1
        if self.active == 0:
            self.busy += now - self.since


class _Request:
    """One request's place in the figures, kept in aiohttp's per-request trace context."""

    __slots__ = ("host", "method", "sent_at", "open", "connections")

    def __init__(self, host: str, method: str, now: float) -> None:
        self.host, self.method, self.sent_at, self.open = host, method, now, True
        self.connections = 0          # connections this request (this hop of it) was sent on


def host_key(url: "URL") -> str:
    """`host[:port]` as the URL spells it (the registry name the client was given)."""
    return url.raw_authority.rpartition("@")[2]


class TrafficStats:
    """The per-host figures of one session. Pass it to `Session` (or `session.run`)."""

    def __init__(self) -> None:
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        h = self._hosts.get(host)
        if h is None:
            h = self._hosts[host] = _Host()
        return h

    # ---- told by the code that decides ---------------------------------------------------------

    def retried(self, host: str) -> None:
        """A request or blob transfer involving `host` is tried again after a transient failure."""
        self._host(host).retries += 1

    def limit(self, host: str, final: int, peak: int) -> None:
        """The adaptive limiter's blob transfers for `host`: where it ended, and the most it allowed."""
        self._host(host).limit = (final, peak)

    # ---- the trace hooks -----------------------------------------------------------------------

    def _start(self, host: str, method: str) -> _Request:
        now = time.monotonic()
        self._host(host).begin(now)
        return _Request(host, method, now)

    def _answered(self, req: _Request, status: str) -> None:
        h = self._host(req.host)
        h.requests[(req.method, status)] += 1
        if status != NO_ANSWER:
            h.ttfb.append(time.monotonic() - req.sent_at)

    def _connected(self, req: _Request, new: bool) -> None:
        """A connection for `req`. A second one means aiohttp sent it again by itself: an idempotent
        request whose kept-alive connection the server had closed (a request without answer, and a
        retry, as a proxy in between sees them)."""
        h = self._host(req.host)
        if new:
            h.opened += 1
        else:
            h.reused += 1
        req.connections += 1
        if req.connections > 1:
            h.requests[(req.method, NO_ANSWER)] += 1
            h.retries += 1

    def _finish(self, req: _Request, received: int) -> None:
        if req.open:
            req.open = False
            h = self._host(req.host)
            h.received += received
            h.end(time.monotonic())

    def trace_config(self) -> "aiohttp.TraceConfig":
        import aiohttp

        tc = aiohttp.TraceConfig()

        async def on_start(_: Any, ctx: Any, p: "aiohttp.TraceRequestStartParams") -> None:
            ctx.req = self._start(host_key(p.url), p.method)

        async def on_headers_sent(_: Any, ctx: Any, p: Any) -> None:
            ctx.req.sent_at = time.monotonic()

        async def on_chunk_sent(_: Any, ctx: Any, p: "aiohttp.TraceRequestChunkSentParams") -> None:
            self._host(ctx.req.host).sent += len(p.chunk)
            ctx.req.sent_at = time.monotonic()

        async def on_connection(_: Any, ctx: Any, p: Any) -> None:
            self._connected(ctx.req, new=True)

        async def on_reuse(_: Any, ctx: Any, p: Any) -> None:
            self._connected(ctx.req, new=False)

        async def on_redirect(_: Any, ctx: Any, p: "aiohttp.TraceRequestRedirectParams") -> None:
            resp, req = p.response, ctx.req
            self._answered(req, str(resp.status))
            self._finish(req, 0)
            method = "GET" if resp.status == 303 and req.method != "HEAD" else req.method
            ctx.req = self._start(host_key(resp.url.join(_url(resp.headers.get("Location", "")))), method)

        async def on_end(_: Any, ctx: Any, p: "aiohttp.TraceRequestEndParams") -> None:
            req, resp = ctx.req, p.response
            self._answered(req, str(resp.status))
            conn = resp.connection
            if conn is None:                       # the whole answer is already in
                self._finish(req, _received(resp))
            else:                                  # counted when its body ends (the connection is let go)
                conn.add_callback(lambda: self._finish(req, _received(resp)))

        async def on_exception(_: Any, ctx: Any, p: Any) -> None:
            req = ctx.req
            if req.open:
                self._answered(req, NO_ANSWER)
                self._finish(req, 0)

        tc.on_request_start.append(on_start)
        tc.on_request_headers_sent.append(on_headers_sent)
        tc.on_request_chunk_sent.append(on_chunk_sent)
        tc.on_connection_create_end.append(on_connection)
        tc.on_connection_reuseconn.append(on_reuse)
        tc.on_request_redirect.append(on_redirect)
        tc.on_request_end.append(on_end)
        tc.on_request_exception.append(on_exception)
        tc.freeze()
        return tc

    # ---- reading -------------------------------------------------------------------------------

    def figures(self) -> tuple[HostFigures, ...]:
        """Every host's figures so far, by host name."""
        now = time.monotonic()
        out = []
        for name in sorted(self._hosts):
            h = self._hosts[name]
            busy = h.busy + (now - h.since if h.active > 0 else 0.0)
            final, peak = h.limit if h.limit is not None else (None, None)
            out.append(HostFigures(name, tuple(sorted((m, s, n) for (m, s), n in h.requests.items())),
                                   h.sent, h.received, busy, h.opened, h.reused, h.retries, h.peak, final, peak,
                                   Latency.of(h.ttfb)))
        return tuple(out)


def _url(text: str) -> "URL":
    from yarl import URL

    return URL(text)


def _received(resp: "aiohttp.ClientResponse") -> int:
    return int(getattr(resp.content, "total_bytes", 0) or 0)
