"""Per-host concurrency limits for blob transfers: fixed (--jobs) or adaptive.

The adaptive limit starts in slow start: it doubles after each window of `limit` completions while
throughput keeps up (a latency-bound phase -- many small blobs, each a few round trips -- gains from
every added operation), and grows by one per window once a window did not keep up or the host was
overloaded (AIMD). Overload (429/5xx/connection failures) halves it. A release wakes one waiter,
never all of them: each free slot goes to the longest waiting acquirer.
"""
from __future__ import annotations

import asyncio
import collections
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Optional

from fastsync.model import Descriptor
from fastsync.retry import overloaded
from fastsync.transports.base import ImageDestination, ImageReference, ImageSource

REGISTRY_START = 16     # adaptive limit's first value for a registry host
LOCAL_LIMIT = 8         # local transports share one fixed limit


class HostLimit:
    """A concurrency limit for one host. Fixed, or adaptive: after each window of `limit` completions,
    grow (doubling in slow start, else by one) while throughput keeps up; halve on overload."""

    def __init__(self, initial: int, maximum: int, fixed: bool = False, slow_start: bool = False) -> None:
        self.limit = float(initial)
        self.maximum = maximum
        self.fixed = fixed
        self.peak = initial                  # the most it ever allowed (for the --stats figures)
        self.slow_start = slow_start and not fixed
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._window_done = 0
        self._window_bytes = 0
        self._window_start = time.monotonic()
        self._best_rate = 0.0

    async def acquire(self) -> None:
        if self.active < int(self.limit) and not self._waiters:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut          # the releaser counted this acquirer in `active` already
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.active -= 1          # granted, then cancelled before it ran: hand the slot on
                self._wake()
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    async def release(self, nbytes: int, overloaded: bool) -> None:
        self.active -= 1
        if not self.fixed:
            self._adapt(nbytes, overloaded)
        self._wake()

    def _wake(self) -> None:
        """Grant free slots to the longest waiters, one each (no thundering herd)."""
        while self._waiters and self.active < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)

    def _adapt(self, nbytes: int, overloaded: bool) -> None:
        if overloaded:
            self.limit = max(1.0, self.limit / 2)
            self.slow_start = False
            self._reset_window()
            return
        self._window_done += 1
        self._window_bytes += nbytes
        if self._window_done < int(self.limit):
            return
        rate = self._window_bytes / max(1e-3, time.monotonic() - self._window_start)
        if rate >= self._best_rate * 0.9:
            self.limit = min(float(self.maximum), self.limit * 2 if self.slow_start else self.limit + 1)
            self.peak = max(self.peak, int(self.limit))
        else:
            self.slow_start = False
        self._best_rate = max(self._best_rate * 0.95, rate)
        self._reset_window()

    def _reset_window(self) -> None:
        self._window_done = self._window_bytes = 0
        self._window_start = time.monotonic()


class Limits:
    """One HostLimit per registry host (local transports share one)."""

    def __init__(self, jobs: Optional[int], maximum: int) -> None:
        self.jobs = jobs
        self.maximum = maximum
        self._hosts: dict[str, HostLimit] = {}

    def host(self, ref: ImageReference) -> HostLimit:
        key = ref.remote_host or "local"
        lim = self._hosts.get(key)
        if lim is None:
            local = key == "local"
            initial = self.jobs or (LOCAL_LIMIT if local else min(REGISTRY_START, self.maximum))
            lim = self._hosts[key] = HostLimit(initial, self.jobs or self.maximum,
                                               fixed=bool(self.jobs) or local, slow_start=True)
        return lim

    def settled(self) -> dict[str, tuple[int, int]]:
        """Registry host -> (the limit it ended at, the most it allowed)."""
        return {key: (int(h.limit), h.peak) for key, h in self._hosts.items() if key != "local"}

    @asynccontextmanager
    async def gate(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> AsyncIterator[None]:
        hosts = sorted({id(h): h for h in (self.host(src.reference), self.host(dst.reference))}.values(),
                       key=id)
        for h in hosts:
            await h.acquire()
        error: Optional[BaseException] = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            for h in hosts:
                await h.release(0 if error else max(desc.size, 0), overloaded(error))
