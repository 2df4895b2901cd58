"""A FaultProxy that answers every request `delay` seconds late and keeps a timeline, to count the
rounds of requests a client needs: a request is in round 1 + the highest round of the requests
answered before it arrived (at either proxy: the clocks are this process's)."""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterable

from aiohttp import web

from .faultproxy import FaultProxy


class RoundProxy(FaultProxy):
    _name = "fastsync-round-proxy"

    def __init__(self, target_url: str, delay: float = 0.2) -> None:
        super().__init__(target_url)
        self.delay = delay
        self.timeline: list[tuple[str, str, float, float]] = []    # (method, path, arrived, answered)

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self.timeline.clear()

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        inner = super()._handler()

        async def handle(request: web.Request) -> web.StreamResponse:
            arrived = time.monotonic()
            await asyncio.sleep(self.delay)
            resp = await inner(request)
            with self._lock:
                self.timeline.append((request.method, request.path_qs, arrived, time.monotonic()))
            return resp
        return handle


def rounds(*proxies: RoundProxy) -> list[tuple[int, str, str]]:
    """(round, method, path) of every request the proxies saw, in arrival order."""
    events = sorted((e for p in proxies for e in p.timeline), key=lambda e: e[2])
    out: list[tuple[int, str, str]] = []
    done: list[tuple[float, int]] = []
    for method, path, arrived, answered in events:
        depth = 1 + max((d for t, d in done if t <= arrived), default=0)
        out.append((depth, method, path))
        done.append((answered, depth))
    return out


def deepest(items: Iterable[tuple[int, str, str]]) -> int:
    return max((d for d, _, _ in items), default=0)
