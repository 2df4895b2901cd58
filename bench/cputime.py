"""CPU seconds of the parts around a timed run: the registry processes and the WAN proxies' threads.

The harness reads them just before and just after each timed command (``side_cpu``), so a table
can say how much of a 2-core machine the registries (hashing uploads) and the proxies took while
fastsync, skopeo or the floor ran. Linux /proc, clock-tick resolution (10 ms).
"""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from support.registry import Registry

_LIVE_REGISTRIES: set[Registry] = set()  # every registry the harness started and has not stopped
PROXY_THREAD = "fastsync-delayproxy"     # support.proxy's loop threads (in this process)
_TICK = os.sysconf("SC_CLK_TCK")


def track(reg: Registry, stack: contextlib.ExitStack) -> None:
    _LIVE_REGISTRIES.add(reg)
    stack.callback(_LIVE_REGISTRIES.discard, reg)


def _stat_cpu(path: str) -> float:
    """utime + stime of a /proc stat file, seconds (0 when the process or thread is gone)."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def side_cpu() -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of each live registry process and each proxy thread, by pid / tid."""
    regs = {pid: _stat_cpu(f"/proc/{pid}/stat") for pid in (r.pid for r in list(_LIVE_REGISTRIES)) if pid}
    proxies = {th.native_id: _stat_cpu(f"/proc/self/task/{th.native_id}/stat")
               for th in threading.enumerate() if th.name == PROXY_THREAD and th.native_id}
    return regs, proxies


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(k, 0.0) for k, v in after.items())
