"""Progress events. Library code emits them; only the CLI renders them (see render.py).

Kinds:
  plan-done      the plan is complete: size = images planned, total = bytes it may move, message = summary
  image-planned  dry run: the image would be copied
  image-start    an image begins copying (image = "SRC -> DST")
  image-done     an image was written (digest = its manifest digest, size = bytes moved)
  image-skipped  the destination already had it (digest), nothing moved
  image-failed   the image failed (message = the one-line error)
  blob-start     a blob transfer begins (size = its size)
  blob-done      a blob finished (size = bytes moved; reused = already there/mounted/linked)
  bytes          size bytes of a blob went through
  retry          a retryable failure; message says what and when the next attempt starts
  warning        something was skipped (e.g. a repository whose tags could not be listed, --keep-going)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class Event:
    kind: str
    image: str = ""              # "SRC -> DST"
    digest: str = ""
    size: int = 0                # bytes moved (blob-done/bytes) or blob size (blob-start), images (plan-done)
    reused: bool = False         # blob-done: already at the destination, mounted, or deduplicated
    message: str = ""
    total: int = 0               # plan-done: bytes the plan may move (blobs not known to be there)


EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    return None


def emitter(sink: Optional[EventSink]) -> EventSink:
    return sink or ignore


def fan_out(*sinks: Optional[EventSink]) -> EventSink:
    """One sink that hands each event to every given sink."""
    live = [s for s in sinks if s is not None]

    def emit(ev: Event) -> None:
        for s in live:
            s(ev)
    return emit


@dataclass
class Tally:
    """Running totals of a job, fed by events (what a progress display shows)."""

    images_total: int = 0
    images_done: int = 0
    images_failed: int = 0
    images_skipped: int = 0
    bytes_moved: int = 0
    bytes_planned: int = 0
    started: float = field(default_factory=time.monotonic)

    def __call__(self, ev: Event) -> None:
        if ev.kind == "plan-done":
            self.images_total = ev.size
            self.bytes_planned = ev.total
        elif ev.kind == "bytes":
            self.bytes_moved += ev.size
        elif ev.kind in ("image-done", "image-skipped", "image-failed"):
            self.images_done += 1
            self.images_failed += ev.kind == "image-failed"
            self.images_skipped += ev.kind == "image-skipped"

    @property
    def rate(self) -> float:
        """Bytes per second since the start."""
        return self.bytes_moved / max(1e-6, time.monotonic() - self.started)
