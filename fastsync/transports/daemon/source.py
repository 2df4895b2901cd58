"""Reading `docker-daemon:` images: the engine's `docker save` stream, spooled once, served by offset.

Every engine puts the stream's index last: `manifest.json` follows the layers and the config in the
classic layout (Docker's tarexport, and podman, which writes what containers/image's docker-archive
writer writes), and in the OCI layout newer Docker engines save (`blobs/sha256/...`, `index.json`, then
`manifest.json` naming those blobs). Nothing can be served before the end is read, so the stream is
written once, as it arrives, to a temp file in --tmpdir (the file is unlinked as soon as it is
indexed: nothing is left behind, whatever happens later), and read from there exactly as a
`docker-archive:` file is (`TarReader` + `DockerArchiveSource`): layers under their diff_ids, a
Docker v2s2 manifest built as containers/image builds it but for the layer media type (see
archive_docker.py).
"""
from __future__ import annotations

import asyncio
import os
import tempfile
from typing import TYPE_CHECKING, Any, Optional

from fastsync.errors import FastsyncError, ManifestError
from fastsync.transports.archive.tar import TarReader, unlink_quietly
from fastsync.transports.archive.docker import DockerArchiveSource
from fastsync.transports.localfs import in_thread
from fastsync.transports.daemon.client import DaemonClient, DaemonError

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.daemon import DaemonImageReference


class HeldSave:
    """One image's spooled save stream, shared by the sources opened on it: `sync` opens a source to
    plan and another to copy, and the engine is asked to save the image once. The reader is closed
    when `uses` sources have been closed (or when the holder is collected)."""

    def __init__(self, uses: int = 2) -> None:
        self.reader: Optional[TarReader] = None
        self.left = uses
        self.lock = asyncio.Lock()

    def release(self) -> None:
        self.left -= 1
        if self.left <= 0 and self.reader is not None:
            self.reader.close()
            self.reader = None

    def __del__(self) -> None:
        if self.reader is not None:
            self.reader.close()


class DaemonImageSource(DockerArchiveSource):
    """A docker-archive source over the spooled save stream of one image."""

    reference: "DaemonImageReference"

    def __init__(self, ref: "DaemonImageReference", reader: TarReader, held: Optional[HeldSave] = None) -> None:
        super().__init__(ref, reader)  # type: ignore[arg-type]
        self.held = held

    async def close(self) -> None:
        if self.held is not None:
            self.held.release()
        else:
            self.reader.close()

    def choose(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        # the engine was asked for one image: its stream holds exactly that one, whatever its tags say
        # (an image asked for by ID or digest has none that match the name)
        if len(items) != 1:
            raise ManifestError(f"{self.reference}: the engine's save stream holds {len(items)} images, not 1")
        return items[0]


async def spool_save(client: DaemonClient, name: str, tmpdir: "str | None") -> str:
    """The engine's save stream of `name` written to a temp file; returns its path."""
    fd, path = tempfile.mkstemp(prefix="fastsync-daemon-", suffix=".tar", dir=tmpdir)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in client.save(name):
                await in_thread(f.write, chunk)
        return path
    except BaseException:
        unlink_quietly(path)
        raise


async def open_source(ref: "DaemonImageReference", session: "Session", opts: "TransportOptions",
                      held: Optional[HeldSave] = None) -> DaemonImageSource:
    """A source over the engine's save stream of `ref` (with `held`: the one saved for it before)."""
    if held is None:
        reader = await _saved(ref, session, opts)
    else:
        async with held.lock:
            if held.reader is None:
                held.reader = await _saved(ref, session, opts)
            reader = held.reader
    try:
        src = DaemonImageSource(ref, reader, held)
        await asyncio.get_running_loop().run_in_executor(None, src.load)
    except BaseException:
        if held is None:
            reader.close()
        raise
    return src


async def _saved(ref: "DaemonImageReference", session: "Session", opts: "TransportOptions") -> TarReader:
    client = DaemonClient(opts.daemon_host, opts)
    try:
        path = await spool_save(client, ref.details, session.options.tmpdir)
    except DaemonError as exc:
        raise type(exc)(f"loading image from docker engine: {exc}") from None
    finally:
        await client.close()
    loop = asyncio.get_running_loop()
    try:
        reader = await loop.run_in_executor(None, TarReader, path, str(ref), session.options.tmpdir)
    except FastsyncError as exc:
        raise DaemonError(f"{ref}: the engine's save stream is not a valid archive: {exc}") from None
    finally:
        unlink_quietly(path)          # the reader holds it open
    return reader
