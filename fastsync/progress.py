"""Progress events. Library code emits them; only the CLI renders them (see render.py).

Kinds:
  plan-done      the plan is complete: size = images planned, total = bytes it may move, message = summary
  image-planned  dry run: the image would be copied
  image-start    an image begins copying (image = "SRC -> DST")
  image-done     an image was written (digest = its manifest digest, size = bytes read from the source)
  image-skipped  the destination already had it (digest), nothing moved
  image-failed   the image failed (message = the one-line error)
  list-start     an index is copied: digest = its digest, digests = its instances in order, size = how many
  list-written   the index was written (digest = the source index's)
  manifest-start one image manifest is copied (digest = the source manifest's,
                 digests = its layers in order, message = its config digest)
  manifest-written  that manifest was written, or found there already (digest and message as above)
  blob-start     a blob transfer begins (size = its size)
  blob-done      a blob finished (size = bytes moved; reused = already there/mounted/deduplicated;
                 cached = placed from the local cache, not read from the source)
  bytes          size bytes of a blob went through (cached: they came from the local cache, e.g. a
                 blob hardlinked or uploaded from it; else from the source)
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
    cached: bool = False         # blob-done/bytes: from the local cache, nothing read from the source
    message: str = ""
    total: int = 0               # plan-done: bytes the plan may move (blobs not known to be there)
    digests: tuple[str, ...] = ()  # list-start: instances; manifest-start: layers (in manifest order)


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
    bytes_moved: int = 0         # read from the source (network or a local source)
    bytes_cached: int = 0        # placed from the local cache
    bytes_planned: int = 0
    # counted once per digest, up to its size (the plan's total counts each blob once, however many
    # destinations it is placed in): what a progress bar against bytes_planned shows
    bytes_unique: int = 0
    bytes_unique_cached: int = 0
    started: float = field(default_factory=time.monotonic)
    _sizes: dict[str, int] = field(default_factory=dict, repr=False)
    _seen: dict[str, int] = field(default_factory=dict, repr=False)

    def __call__(self, ev: Event) -> None:
        if ev.kind == "plan-done":
            self.images_total = ev.size
            self.bytes_planned = ev.total
        elif ev.kind == "blob-start" and ev.size >= 0:
            self._sizes[ev.digest] = ev.size
        elif ev.kind == "bytes":
            if ev.cached:
                self.bytes_cached += ev.size
            else:
                self.bytes_moved += ev.size
            seen = self._seen.get(ev.digest, 0)
            cap = self._sizes.get(ev.digest)
            new = ev.size if cap is None else max(0, min(ev.size, cap - seen))
            self._seen[ev.digest] = seen + ev.size
            self.bytes_unique += new
            self.bytes_unique_cached += new if ev.cached else 0
        elif ev.kind in ("image-done", "image-skipped", "image-failed"):
            self.images_done += 1
            self.images_failed += ev.kind == "image-failed"
            self.images_skipped += ev.kind == "image-skipped"

    @property
    def bytes_done(self) -> int:
        """Bytes of the plan's blobs placed so far, each blob counted once (so never more than the
        plan's total, which counts each once): from the source or the cache."""
        done = self.bytes_unique
        return min(done, self.bytes_planned) if self.bytes_planned else done

    @property
    def rate(self) -> float:
        """Bytes read from the source per second since the start."""
        return self.bytes_moved / max(1e-6, time.monotonic() - self.started)
