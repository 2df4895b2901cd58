"""`fastsync sync --src docker-daemon` and `--dest docker-daemon` (entries of fastsync.sync.inputs's tables).

SOURCE is a file listing local image names, one a line (`NAME:TAG` or `NAME@DIGEST`, as
`docker-daemon:` takes them; `#` comments and `##section` headers are skipped, as in `--src list`),
or a single such name. Unscoped, the destination keeps the name as written without its registry
host (`sync --src docker-daemon --dest docker images.list harbor.local/rel` writes
`harbor.local/rel/team/app:1` for the line `team/app:1`), as `--src list` does; --scoped uses the
full normalised name (`harbor.local/rel/docker.io/team/app:1`). An image ID names no repository and
cannot be synced. The engine is --src-daemon-host's.

DESTINATION is a repository prefix: each image is loaded into the engine (--dest-daemon-host) as
`DESTINATION/NAME:TAG`. The engine keeps no manifest digest to compare with, so every image is
loaded (there is no up-to-date check).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from fastsync.errors import FastsyncError, InvalidReference, UsageError
from fastsync.reference import DockerReference
from fastsync.sync.kinds import DestKind, SourceImage, SyncInput
from fastsync.transports.daemon import DaemonImageReference
from fastsync.transports.daemon.source import HeldSave, open_source

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.base import ImageReference
    from fastsync.transports.daemon.source import DaemonImageSource


class SyncedDaemonImage(DaemonImageReference):
    """A sync's source: planned from one source and copied from another, over one save stream."""

    def __init__(self, named: DockerReference) -> None:
        super().__init__(named=named)
        self.held = HeldSave(uses=2)

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "DaemonImageSource":
        return await open_source(self, session, opts, self.held)


def _has_registry(name: str) -> bool:
    first, sep, _ = name.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _names(source: str) -> list[tuple[str, str]]:
    """(name, where) pairs: the lines of the list file SOURCE, or SOURCE itself."""
    if not os.path.isfile(source):
        return [(source, "SOURCE")]
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise FastsyncError(f"reading image list {source}: {getattr(exc, 'strerror', None) or exc}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append((line, f"{source}:{n}"))
    return out


async def sync_source(session: "Session", inp: SyncInput) -> list[SourceImage]:
    images = []
    for name, where in _names(inp.source):
        try:
            ref = DaemonImageReference.parse(name)
        except InvalidReference as exc:
            raise UsageError(f"{where}: {exc}") from None
        if ref.named is None:
            raise UsageError(f"{where}: {name} is an image ID; sync needs NAME:TAG or NAME@DIGEST "
                             "(the destination is named after it)")
        written = name.split("/", 1)[1] if _has_registry(name) else name
        images.append(SourceImage(SyncedDaemonImage(ref.named), inp.src_opts, str(ref.named), plain=written))
    if not images:
        raise FastsyncError(f"No images to sync found in {inp.source!r}")
    return images


def dest_reference(joined: str) -> "ImageReference":
    """DESTINATION/NAME:TAG -> the docker-daemon reference the image is loaded as."""
    try:
        ref = DaemonImageReference.parse(joined)
    except InvalidReference as exc:
        raise UsageError(f"Cannot obtain a valid image reference for transport \"docker-daemon\" and "
                         f"reference {joined!r}: {exc}") from None
    if ref.named is None or ref.named.tag is None:
        raise UsageError(f"Invalid destination docker-daemon:{joined}: a destination must be a name:tag "
                         "(an image named by digest cannot be loaded under that name)")
    return ref


def _no_probe(ref: "ImageReference", opts: "TransportOptions") -> Optional[object]:
    return None


SYNC_SOURCE = sync_source
SYNC_DEST = DestKind("docker-daemon", dest_reference, _no_probe)  # type: ignore[arg-type]

__all__ = ["SYNC_SOURCE", "SYNC_DEST", "SyncedDaemonImage"]
