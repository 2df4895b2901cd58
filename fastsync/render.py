"""Renders progress events for people (plain lines on stderr)."""
from __future__ import annotations

from typing import TextIO

from .progress import Event


class CopyPrinter:
    """skopeo-like lines: one per blob as it finishes, one when the manifest is written."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, ev: Event) -> None:
        if ev.kind == "blob-done":
            state = "skipped: already exists" if ev.reused else "done"
            self.out.write(f"Copying blob {ev.digest} {state}\n")
        elif ev.kind == "image-done":
            self.out.write(f"Wrote manifest {ev.digest}\n")
        elif ev.kind == "image-skipped":
            self.out.write(f"Destination already has {ev.digest}; nothing to copy\n")
        else:
            return
        self.out.flush()
