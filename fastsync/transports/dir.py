"""skopeo's `dir:` transport: manifest.json, blobs named by digest hex, a `version` file."""
from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator, Optional

from fastsync.errors import FastsyncError, NotFound, no_space
from fastsync.manifest import parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.transports.base import Capabilities, ImageDestination, ImageSource, PathReference, file_chunks
from fastsync.transports import durable
from fastsync.transports.localfs import StagedDir, blob_exists, checked_file, in_thread, place_file, stream_to_file

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.session import Session

VERSION = b"Directory Transport Version: 1.1\n"


def blob_name(digest: Digest) -> str:
    return digest.hex if digest.algorithm == "sha256" else f"{digest.algorithm}-{digest.hex}"


def signature_name(index: int, instance: Optional[Digest]) -> str:
    """`signature-N` (N from 1), or `HEX.signature-N` for an instance of an index (as containers/image)."""
    return f"{instance.hex}.signature-{index + 1}" if instance else f"signature-{index + 1}"


def manifest_name(instance: Optional[Digest]) -> str:
    return f"{blob_name(instance)}.manifest.json" if instance else "manifest.json"


class DirImageReference(PathReference):
    transport = "dir"
    path_kind = "a directory path"
    absolute = True

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "DirSource":
        if not os.path.isfile(os.path.join(self.path, "manifest.json")):
            raise NotFound(f"{self}: no image here (open {os.path.join(self.path, 'manifest.json')}: "
                           "no such file or directory)")
        return DirSource(self)

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "DirDestination":
        if os.path.isdir(self.path) and os.listdir(self.path):
            try:
                with open(os.path.join(self.path, "version"), "rb") as f:
                    ok = f.read() == VERSION
            except OSError:
                ok = False
            if not ok:
                raise FastsyncError(f"{self}: not a containers image directory, refusing to overwrite its data")
        elif os.path.exists(self.path) and not os.path.isdir(self.path):
            raise FastsyncError(f"{self}: exists and is not a directory")
        return DirDestination(self)


class DirSource(ImageSource):
    def __init__(self, ref: DirImageReference) -> None:
        self.reference = ref

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        path = os.path.join(self.reference.path, manifest_name(digest))
        try:
            checked_file(path, self.reference.path, str(self.reference))
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"{self.reference}: manifest {digest or ''} not found ({path})".replace("  ", " ")) \
                from None
        return raw, parse_manifest(raw).media_type

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return checked_file(os.path.join(self.reference.path, blob_name(desc.digest)), self.reference.path,
                            f"{self.reference}: blob {desc.digest}")

    async def get_signatures(self, instance: Optional[Digest] = None) -> list[bytes]:
        out = []
        while True:
            try:
                with open(os.path.join(self.reference.path, signature_name(len(out), instance)), "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                return out

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        path = self.blob_path(desc)
        if path is None:
            raise NotFound(f"{self.reference}: blob {desc.digest} not found")
        return file_chunks(path)


def _write(path: str, data: bytes) -> None:
    """Write a file of the staging directory (nobody reads it before the commit renames the
    directory into place; `commit` makes it durable first)."""
    try:
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
    except OSError as exc:
        if no_space(exc):
            exc.filename = path     # a full disk is reported with the file
        raise


class DirDestination(ImageDestination):
    """Writes into a staging directory swapped in at commit. `close` first waits for writes still
    running (a blob's thread cannot be stopped), then removes what was not committed; writes that
    start after `close` fail instead of recreating the directory.

    Nothing is synced while the image is written: the commit fsyncs every file written into the
    staging directory (not the blobs hardlinked from the store: a blob is durable before the store
    takes it) and the directory itself, renames it into place and fsyncs the parent, all in one
    thread. An image directory that survives a crash therefore holds all its files, complete."""

    capabilities = Capabilities(accepts_files=True)

    def __init__(self, ref: DirImageReference) -> None:
        self.reference = ref
        self.stage = StagedDir(ref.path)
        self._closed = False
        self._writes = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending = durable.Pending(self.stage.path)
        try:
            self._put(os.path.join(self.stage.path, "version"), VERSION)
        except BaseException:
            self.stage.abort()
            raise

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        if self._closed:
            raise FastsyncError(f"{self.reference}: the destination was closed")
        self._writes += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._writes -= 1
            if not self._writes:
                self._idle.set()

    def _blob(self, desc: Descriptor) -> str:
        return os.path.join(self.stage.path, blob_name(desc.digest))

    def _put(self, path: str, data: bytes) -> None:
        _write(path, data)
        self._pending.add(path)

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        return blob_exists(self._blob(desc), desc)

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        async with self._writing():
            await stream_to_file(self._blob(desc), chunks)
            self._pending.add(self._blob(desc))

    async def put_blob_file(self, desc: Descriptor, path: str, link: bool) -> None:
        async with self._writing():
            await place_file(path, self._blob(desc), link)
            if not link:        # a link is of the store's inode, synced before the store took it
                self._pending.add(self._blob(desc))

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        async with self._writing():
            name = manifest_name(man.digest if instance else None)
            self._put(os.path.join(self.stage.path, name), man.raw)

    async def put_signatures(self, blobs: list[bytes], instance: Optional[Digest] = None) -> None:
        async with self._writing():
            for i, blob in enumerate(blobs):
                self._put(os.path.join(self.stage.path, signature_name(i, instance)), blob)

    async def commit(self) -> None:
        if self._closed:
            raise FastsyncError(f"{self.reference}: the destination was closed")
        await self._idle.wait()
        await in_thread(self._commit)

    def _commit(self) -> None:
        self._pending.flush()       # every file, then the staging directory's entries
        self.stage.commit()
        durable.fsync_path(os.path.dirname(self.stage.final), directory=True)

    async def close(self) -> None:
        self._closed = True
        cancelled = False
        while not self._idle.is_set():
            try:
                await self._idle.wait()
            except asyncio.CancelledError:
                cancelled = True      # the writes end soon (their threads cannot be stopped): clean up first
        if os.path.isdir(self.stage.path):
            self.stage.abort()
        if cancelled:
            raise asyncio.CancelledError
