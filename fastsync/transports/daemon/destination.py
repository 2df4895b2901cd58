"""Writing `docker-daemon:NAME:TAG`: a `docker load` tar produced while the blobs arrive.

The tar is the one containers/image's docker-daemon destination writes: the config as
`<hex>.json`, each layer as it arrived (compressed or not; engines decompress on load) as
`<blob hex>.tar`, then the legacy per-layer directories, `manifest.json` and `repositories`. It is
streamed straight into `POST /images/load`: members are written one at a time (a blob arriving while
another streams waits for it, unread), each header carries the size the manifest gives, so nothing is
spooled to disk (a blob of unknown size, which no v2s2 manifest has, would be spooled to --tmpdir
first, as containers/image does). A blob that fails half-way cannot be taken back from the engine:
the request is cut off (the engine sees a truncated tar and loads nothing) and the copy fails; so
does any later put. The engine's JSON message stream is read at the end, and an error in it fails
the copy with the engine's message.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
from typing import TYPE_CHECKING, AsyncIterator, Optional

from fastsync import model as m
from fastsync.errors import FastsyncError, Unsupported
from fastsync.manifest import dumps
from fastsync.model import Descriptor, Digest
from fastsync.transports.archive.tar import BLOCK, tar_header, tar_padding, unlink_quietly
from fastsync.transports.archive.docker import write_legacy_layers
from fastsync.transports.base import Capabilities, ImageDestination, file_chunks
from fastsync.transports.localfs import in_thread
from fastsync.transports.daemon.client import DaemonClient, DaemonError

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.daemon import DaemonImageReference

_CONFIGS = (m.DOCKER_CONFIG, m.OCI_CONFIG)
MAX_CONFIG = 16 << 20


class LoadStream:
    """The body of one POST /images/load, fed through a small queue (the engine's pace is the copy's)."""

    def __init__(self, client: DaemonClient) -> None:
        self.queue: asyncio.Queue[Optional[bytes]] = asyncio.Queue(maxsize=4)
        self.task: asyncio.Future[list[str]] = asyncio.ensure_future(client.load(self._body()))

    async def _body(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.queue.get()
            if chunk is None:
                return
            yield chunk

    async def _put(self, item: Optional[bytes]) -> None:
        put = asyncio.ensure_future(self.queue.put(item))
        done, _ = await asyncio.wait({put, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            raise self._ended()

    def _ended(self) -> FastsyncError:
        """Why the engine stopped reading before the tar ended."""
        exc = self.task.exception() if not self.task.cancelled() else None
        if isinstance(exc, FastsyncError):
            return exc
        if exc is not None:
            return DaemonError(f"the load request failed: {exc}")
        return DaemonError("the Docker daemon answered before the whole image was sent")

    async def write(self, data: bytes) -> None:
        if data:
            await self._put(data)

    async def finish(self) -> list[str]:
        """End the tar and the body; the engine's messages once it has loaded the image."""
        await self._put(b"\0" * (2 * BLOCK))
        await self._put(None)
        try:
            return await self.task
        except FastsyncError:
            raise
        except Exception as exc:        # the answer broke off (aiohttp's payload errors)
            raise DaemonError(f"the load request failed: {' '.join(str(exc).split()) or type(exc).__name__}") \
                from None

    async def abort(self) -> None:
        """Cut the request off mid-body: the engine sees a truncated tar and loads nothing."""
        if not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class _Tail:
    """Small members collected in memory (write_legacy_layers writes into it as into a TarWriter)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add_bytes(self, name: str, data: bytes) -> None:
        self.data += tar_header(name, len(data)) + data + tar_padding(len(data))

    def add_symlink(self, name: str, target: str) -> None:
        import tarfile

        self.data += tar_header(name, kind=tarfile.SYMTYPE, linkname=target, mode=0)


class DaemonImageDestination(ImageDestination):
    capabilities = Capabilities(manifest_types=frozenset({m.DOCKER_V2S2}), supports_index=False)

    def __init__(self, ref: "DaemonImageReference", client: DaemonClient, tmpdir: Optional[str]) -> None:
        self.reference = ref
        self.client = client
        self.tmpdir = tmpdir
        self.stream = LoadStream(client)
        self.lock = asyncio.Lock()
        self.sent: dict[Digest, str] = {}          # blob digest -> member name
        self.config: Optional[bytes] = None
        self.man: Optional["Manifest"] = None
        self.broken: Optional[str] = None
        self.messages: list[str] = []
        self.done = False

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        return desc.digest in self.sent

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        if desc.size < 0:
            await self._put_unsized(desc, chunks)
            return
        is_config = desc.media_type in _CONFIGS
        name = f"{desc.digest.hex}.json" if is_config else f"{desc.digest.hex}.tar"
        async with self.lock:
            self._check()
            if desc.digest in self.sent:
                return
            if is_config and desc.size > MAX_CONFIG:
                raise FastsyncError(f"{self.reference}: config {desc.digest} is larger than {MAX_CONFIG} bytes")
            try:
                kept = await self._member(name, desc, chunks, keep=is_config)
            except BaseException as exc:
                self.broken = " ".join(str(exc).split()) or type(exc).__name__
                await self.stream.abort()
                if isinstance(exc, DaemonError):
                    raise DaemonError(f"saving image to docker engine: {exc}") from None
                raise
            if is_config:
                self.config = kept
            self.sent[desc.digest] = name

    async def _member(self, name: str, desc: Descriptor, chunks: AsyncIterator[bytes], keep: bool) -> bytes:
        await self.stream.write(tar_header(name, desc.size))
        kept = bytearray()
        sent = 0
        async for chunk in chunks:
            sent += len(chunk)
            if sent > desc.size:
                raise FastsyncError(f"{self.reference}: blob {desc.digest} is longer than its {desc.size} bytes")
            if keep:
                kept += chunk
            await self.stream.write(chunk)
        if sent != desc.size:
            raise FastsyncError(f"{self.reference}: blob {desc.digest} ended after {sent} of {desc.size} bytes")
        await self.stream.write(tar_padding(sent))
        return bytes(kept)

    async def _put_unsized(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        """A blob whose size the manifest does not give: a tar header needs it first, so spool it."""
        fd, path = tempfile.mkstemp(prefix="fastsync-daemon-blob-", dir=self.tmpdir)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                async for chunk in chunks:
                    await in_thread(f.write, chunk)
                    size += len(chunk)
            sized = Descriptor(desc.media_type, desc.digest, size)
            await self.put_blob(sized, file_chunks(path))
        finally:
            unlink_quietly(path)

    def _check(self) -> None:
        if self.broken is not None:
            raise FastsyncError(f"{self.reference}: the load stream to the engine was abandoned after an "
                                f"earlier failure ({self.broken})")

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        if man.media_type != m.DOCKER_V2S2 or instance:
            raise Unsupported(f"{self.reference}: the Docker daemon loads one Docker v2s2 image, "
                              f"not a {man.media_type} manifest")
        self.man = man

    async def commit(self) -> None:
        if self.man is None or self.man.config is None:
            raise FastsyncError(f"{self.reference}: nothing to commit (no manifest was written)")
        missing = [d.digest for d in self.man.blobs() if d.digest not in self.sent]
        if missing:
            raise FastsyncError(f"{self.reference}: blob {missing[0]} was not written")
        config_name = self.sent[self.man.config.digest]
        if not config_name.endswith(".json") or self.config is None:
            raise FastsyncError(f"{self.reference}: the config has media type {self.man.config.media_type}")
        layers = [self.sent[d.digest] for d in self.man.layers]
        named = self.reference.named
        assert named is not None and named.tag is not None
        async with self.lock:
            self._check()
            tail = _Tail()
            top = write_legacy_layers(tail, layers, self.config)       # type: ignore[arg-type]
            repositories = {named.name: {named.tag: top}} if top else {}
            item = {"Config": config_name, "RepoTags": [f"{named.name}:{named.tag}"], "Layers": layers}
            tail.add_bytes("manifest.json", dumps([item]))
            tail.add_bytes("repositories", dumps(repositories))
            try:
                await self.stream.write(bytes(tail.data))
                self.messages = await self.stream.finish()
            except DaemonError as exc:
                raise DaemonError(f"saving image to docker engine: {exc}") from None
            self.done = True

    async def close(self) -> None:
        if not self.done:
            await self.stream.abort()
        await self.client.close()


async def open_destination(ref: "DaemonImageReference", session: "Session",
                           opts: "TransportOptions") -> DaemonImageDestination:
    named = ref.named
    if named is None or named.tag is None:
        raise FastsyncError(f"Invalid destination {ref}: a destination must be a name:tag")
    client = DaemonClient(opts.daemon_host, opts)
    try:
        await client.negotiate()          # an engine that is not there fails the copy before any blob is read
        return DaemonImageDestination(ref, client, session.options.tmpdir)
    except BaseException as exc:
        await client.close()
        if isinstance(exc, DaemonError):
            raise type(exc)(f"saving image to docker engine: {exc}") from None
        raise
