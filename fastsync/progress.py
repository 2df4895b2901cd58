"""Progress events. Library code emits them; only the CLI renders them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Event:
    kind: str                    # image-start | image-done | image-failed | image-skipped | blob-start | blob-done | bytes
    image: str = ""              # "SRC -> DST"
    digest: str = ""
    size: int = 0                # bytes moved (blob-done/bytes) or blob size (blob-start)
    reused: bool = False         # blob-done: already at the destination, mounted, or deduplicated
    message: str = ""


EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    return None


def emitter(sink: Optional[EventSink]) -> EventSink:
    return sink or ignore
