"""Per-host concurrency limits for blob transfers: fixed (--jobs) or adaptive (AIMD)."""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Optional

from fastsync.model import Descriptor
from fastsync.retry import overloaded
from fastsync.transports.base import ImageDestination, ImageReference, ImageSource


class HostLimit:
    """A concurrency limit for one host. Fixed, or AIMD: after each window of `limit` completions,
    grow by one while throughput keeps up; halve on 429/5xx/connection failures."""

    def __init__(self, initial: int, maximum: int, fixed: bool = False) -> None:
        self.limit = float(initial)
        self.maximum = maximum
        self.fixed = fixed
        self.peak = initial                  # the most it ever allowed (for the --stats figures)
        self.active = 0
        self._cond = asyncio.Condition()
        self._window_done = 0
        self._window_bytes = 0
        self._window_start = time.monotonic()
        self._best_rate = 0.0

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < int(self.limit))
            self.active += 1

    async def release(self, nbytes: int, overloaded: bool) -> None:
        async with self._cond:
            self.active -= 1
            if not self.fixed:
                self._adapt(nbytes, overloaded)
            self._cond.notify_all()

    def _adapt(self, nbytes: int, overloaded: bool) -> None:
        if overloaded:
            self.limit = max(1.0, self.limit / 2)
            self._reset_window()
            return
        self._window_done += 1
        self._window_bytes += nbytes
        if self._window_done < int(self.limit):
            return
        rate = self._window_bytes / max(1e-3, time.monotonic() - self._window_start)
        if rate >= self._best_rate * 0.9:
            self.limit = min(float(self.maximum), self.limit + 1)
            self.peak = max(self.peak, int(self.limit))
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
            initial = self.jobs or (8 if key == "local" else 6)
            lim = self._hosts[key] = HostLimit(initial, self.jobs or self.maximum, fixed=bool(self.jobs) or key == "local")
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
