"""Renders progress events for people (stderr) and results as a JSON report. Only the CLI uses it."""
from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Any, Optional, TextIO

import orjson

from fastsync.progress import Event, Tally

if TYPE_CHECKING:
    from fastsync.registry.stats import HostFigures
    from fastsync.sync.run import SyncResult


class CopyPrinter:
    """skopeo copy's report lines, as containers/image writes them when its output is not a terminal:
    `Getting image source signatures`, `Copying blob DIGEST` per layer (its source digest, in manifest
    order), `Copying config DIGEST`, `Writing manifest to image destination`, `Storing signatures`;
    for a list, `Copying N of M images in list` and each image's block in index order."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.order: list[str] = []              # a list's instances, in index order
        self.blocks: dict[str, list[str]] = {}  # instance -> its lines so far
        self.layers: dict[str, tuple[str, ...]] = {}   # manifest -> its layers, until it is written
        self.reused: set[str] = set()           # blobs the destination had: "skipped: already exists"
        self.complete: set[str] = set()
        self.flushed = 0

    def __call__(self, ev: Event) -> None:
        if ev.kind == "list-start":
            self.order = list(ev.digests)
            self._write(["Getting image list signatures", f"Copying {len(ev.digests)} of {ev.size} images in list"])
        elif ev.kind == "blob-done" and ev.reused:
            self.reused.add(ev.digest)
        elif ev.kind == "manifest-start":
            # a layer's line waits until the copy knows whether the destination had it
            self.layers[ev.digest] = tuple(ev.digests)
        elif ev.kind == "manifest-written":
            lines = ["Getting image source signatures"] + [
                f"Copying blob {d} skipped: already exists" if d in self.reused else f"Copying blob {d}"
                for d in self.layers.pop(ev.digest, ())]
            lines += ([f"Copying config {ev.message}"] if ev.message else []) + \
                ["Writing manifest to image destination", "Storing signatures"]
            if ev.digest not in self.order:
                self._write(lines)
                return
            n = self.order.index(ev.digest)
            self.blocks[ev.digest] = [f"Copying image {ev.digest} ({n + 1}/{len(self.order)})"] + lines
            self.complete.add(ev.digest)
            while self.flushed < len(self.order) and self.order[self.flushed] in self.complete:
                self._write(self.blocks.pop(self.order[self.flushed], []))
                self.flushed += 1
        elif ev.kind == "list-written":
            self._write(["Writing manifest list to image destination", "Storing list signatures"])

    def _write(self, lines: list[str]) -> None:
        if lines:
            self.out.write("".join(line + "\n" for line in lines))
            self.out.flush()


def warnings_to(err: TextIO) -> Any:
    """An event sink writing each warning as skopeo's logrus line (`level=warning`), even with -q."""
    from fastsync.cli.skopeo_log import log_line

    def sink(ev: Event) -> None:
        if ev.kind == "warning":
            err.write(log_line("warning", ev.message) + "\n")
            err.flush()
    return sink


class PerImageReport:
    """CopyPrinter's lines for many images copied at once (sync): each image's block is held until
    that image ends, then written whole, so blocks never interleave."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.printers: dict[str, tuple[CopyPrinter, io.StringIO]] = {}

    def __call__(self, ev: Event) -> None:
        if ev.kind in ("list-start", "list-written", "manifest-start", "manifest-written"):
            if ev.image not in self.printers:
                buf = io.StringIO()
                self.printers[ev.image] = (CopyPrinter(buf), buf)
            self.printers[ev.image][0](ev)
        elif ev.kind in ("image-done", "image-skipped", "image-failed") and ev.image in self.printers:
            _, buf = self.printers.pop(ev.image)
            self.out.write(buf.getvalue())
            self.out.flush()


def _names(image: str) -> tuple[str, str]:
    src, _, dst = image.partition(" -> ")
    return src, dst


class RichProgress:
    """Progress bars on a terminal: bytes (with rate and ETA) and images done/total.
    Use as a context manager around the job; it is also the event sink."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(file=out)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[amount]}"),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.console,
                                 transient=False, refresh_per_second=8)
        self.bytes_task = self.progress.add_task("bytes ", total=None, amount="", rate="")
        self.tally = Tally()
        self._images_task: Optional[int] = None

    def __enter__(self) -> "RichProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bytes(total=max(self.tally.bytes_done, 1))
        self.progress.stop()

    def _bytes(self, **kw: Any) -> None:
        t = self.tally
        # the bar fills with what reached the destinations; the rate is what came from the source
        self.progress.update(self.bytes_task, completed=t.bytes_done, amount=f"{human(t.bytes_done)}"
                             + (f"/{human(t.bytes_planned)}" if t.bytes_planned else "")
                             + (f" ({human(min(t.bytes_unique_cached, t.bytes_done))} from cache)"
                                if t.bytes_unique_cached else ""),
                             rate=f"{human(t.rate)}/s", **kw)

    def __call__(self, ev: Event) -> None:
        self.tally(ev)
        if ev.kind == "plan-done":
            self._images_task = self.progress.add_task("images", total=ev.size, amount=f"0/{ev.size}", rate="")
            if ev.total:
                self._bytes(total=ev.total)
            self.console.print(f"Planned {ev.message}", highlight=False)
        elif ev.kind == "bytes":
            self._bytes()
        elif ev.kind in ("image-done", "image-skipped", "image-failed"):
            if self._images_task is not None:
                self.progress.update(self._images_task, completed=self.tally.images_done,
                                     amount=f"{self.tally.images_done}/{self.tally.images_total}")
            if ev.kind == "image-failed":
                src, _ = _names(ev.image)
                self.console.print(f"[red]failed[/red] {src}: {ev.message}", markup=True, highlight=False)
        elif ev.kind == "warning":
            self.console.print(f"[yellow]warning[/yellow] {ev.message}", markup=True, highlight=False)
        elif ev.kind == "image-planned":
            src, dst = _names(ev.image)
            self.console.print(f"Would sync {src} to {dst}", highlight=False)


def human(n: float) -> str:
    """A byte count as people read it (1.5 MiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


_SUMMED = ("bytes_transferred", "bytes_from_cache", "bytes_skipped", "blobs_transferred", "blobs_from_cache",
           "blobs_skipped")


def report(result: "SyncResult", started: float, dry_run: bool = False,
           hosts: Optional[tuple["HostFigures", ...]] = None) -> dict[str, Any]:
    """The --report document: per image status, blobs and bytes by where they came from, time; totals;
    and with `hosts`, each registry host's figures (fastsync.registry.stats.HostFigures.to_json).

    *_transferred: read from the source (downloaded, or read from a local source) and written;
    *_from_cache: written from the local cache (hardlinked, copied or uploaded), nothing read from
    the source; *_skipped: already at the destination, mounted there, or moved by another image;
    attachments: what the copy carried with the image (kind: signature, attestation, sbom, referrer)."""
    images = []
    for r in result.images:
        status = "failed" if r.error else "up-to-date" if r.up_to_date else "planned" if dry_run else "copied"
        images.append({"source": r.source, "destination": r.destination, "status": status,
                       "digest": str(r.digest) if r.digest else None, "bytes_transferred": r.bytes_copied,
                       "bytes_from_cache": r.bytes_cached, "bytes_skipped": r.bytes_reused,
                       "blobs_transferred": r.blobs_copied, "blobs_from_cache": r.blobs_cached,
                       "blobs_skipped": r.blobs_reused, "seconds": round(r.seconds, 3),
                       "attachments": [{"kind": k, "digest": d} for k, d in r.attachments],
                       "error": r.error or None})
    count = {s: sum(1 for i in images if i["status"] == s) for s in ("copied", "up-to-date", "failed", "planned")}
    doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
           "seconds": round(result.seconds, 3), "images": images,
           "totals": {"images": len(images), **count, **{k: sum(i[k] for i in images) for k in _SUMMED}}}
    if hosts is not None:
        doc["hosts"] = [h.to_json() for h in hosts]
    return doc


def write_report(path: str, result: "SyncResult", started: float, dry_run: bool = False,
                 hosts: Optional[tuple["HostFigures", ...]] = None) -> None:
    with open(path, "wb") as f:
        f.write(orjson.dumps(report(result, started, dry_run, hosts), option=orjson.OPT_INDENT_2))
