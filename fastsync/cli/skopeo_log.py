"""skopeo sync's log lines, as logrus's text formatter writes them when stderr is not a terminal:
`time="2026-12-02T06:16:21Z" level=info msg="Copying image ref 1/2" from="docker://…" to="dir:…"`,
`Would have copied image ref N/M` with --dry-run, and the closing `Synced N images from M sources`."""
from __future__ import annotations

import re
import time
from typing import Iterable, Optional, TextIO

from fastsync.progress import Event

_BARE = re.compile(r"^[A-Za-z0-9\-._/@^+]+$")     # logrus leaves these unquoted


def rfc3339(now: Optional[float] = None) -> str:
    """Local time as Go's time.RFC3339 (`Z` for UTC, else `+01:00`)."""
    t = time.localtime(now)
    off = t.tm_gmtoff
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + zone


def _value(text: str) -> str:
    if _BARE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def log_line(level: str, msg: str, **fields: str) -> str:
    """One logrus text line; `fields` in the order given (logrus sorts them; callers pass them sorted)."""
    parts = [f"time={_value(rfc3339())}", f"level={level}", f"msg={_value(msg)}"]
    parts += [f"{k}={_value(v)}" for k, v in fields.items()]
    return " ".join(parts)


def source_count(sources: Iterable[str]) -> int:
    """How many sources skopeo would count: distinct repositories (tags and digests dropped)."""
    repos = set()
    for s in sources:
        s = s.split("@", 1)[0]
        head, sep, tail = s.rpartition("/")
        repos.add(f"{head}{sep}{tail.split(':', 1)[0]}" if sep else s.rsplit(":", 1)[0])
    return len(repos)


class SkopeoSyncLog:
    """The event sink for `sync` when stderr is not a terminal: skopeo's per-image log lines,
    numbered in the plan's order (`Copying image ref N/M`)."""

    def __init__(self, out: TextIO, dry_run: bool = False) -> None:
        self.out = out
        self.dry_run = dry_run
        self.total = 0
        self.seen: set[str] = set()

    def start(self) -> None:
        if self.dry_run:
            self._line(log_line("warning", "Running in dry-run mode"))

    def __call__(self, ev: Event) -> None:
        if ev.kind == "plan-done":
            self.total = ev.size
        elif ev.kind in ("image-start", "image-planned", "image-skipped") and ev.image not in self.seen:
            self.seen.add(ev.image)
            src, _, dst = ev.image.partition(" -> ")
            verb = "Would have copied" if self.dry_run else "Copying"
            self._line(log_line("info", f"{verb} image ref {len(self.seen)}/{self.total}", **{"from": src, "to": dst}))
        elif ev.kind == "image-failed":
            src, _, _ = ev.image.partition(" -> ")
            self._line(log_line("error", f'Error copying ref "{src}": {ev.message}'))
        elif ev.kind == "warning":
            self._line(log_line("warning", ev.message))

    def finish(self, synced: int, sources: int) -> None:
        verb = "Would have synced" if self.dry_run else "Synced"
        self._line(log_line("info", f"{verb} {synced} images from {sources} sources"))

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()
