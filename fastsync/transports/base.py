"""The narrow interfaces every transport implements, and what a destination can do, as data."""
from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, ClassVar, Optional

from fastsync.errors import Unsupported
from fastsync.model import Descriptor, Digest

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.reference import DockerReference
    from fastsync.session import Session

CHUNK = 1 << 20


_NAMESPACES = itertools.count(1)


class ImageReference(ABC):
    """A parsed `transport:details` image name that can open a source or a destination.

    A transport's class (listed in `fastsync.transports.TRANSPORTS`) also has a classmethod
    `parse(details)` that builds it from the text after `transport:`; references made by code
    (the sync planner's wrapper, for one) need none."""

    transport: ClassVar[str]

    @property
    @abstractmethod
    def details(self) -> str: ...

    @property
    def docker_reference(self) -> Optional["DockerReference"]:
        return None

    def __str__(self) -> str:
        return f"{self.transport}:{self.details}"

    @property
    def remote_host(self) -> Optional[str]:
        """The network host this image lives on (concurrency is limited per host); None when local."""
        return None

    def prepare(self, session: "Session", opts: "TransportOptions") -> None:
        """Set up, ahead of time and off the event loop, what opening this image will need (a
        registry client's TLS context, say). Blocking; optional."""

    @abstractmethod
    async def open_source(self, session: "Session", opts: "TransportOptions") -> "ImageSource": ...

    @abstractmethod
    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "ImageDestination": ...

    async def delete(self, session: "Session", opts: "TransportOptions") -> None:
        raise Unsupported(f"deleting images is not supported by the {self.transport}: transport")


class ImageSource(ABC):
    reference: ImageReference

    @abstractmethod
    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        """Raw bytes and media type of the manifest (or of instance `digest` of an index)."""

    @abstractmethod
    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes as they come, unverified (the copy engine verifies)."""

    async def head_manifest(self) -> Optional[Digest]:
        """The digest the name points at now, when that is cheaper to learn than the manifest (a
        registry's HEAD); None when it is not."""
        return None

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        """A local file holding the blob, when the transport has one (lets the engine link or mmap)."""
        return None

    async def list_tags(self) -> list[str]:
        raise Unsupported(f"Unsupported transport '{self.reference.transport}' for tag listing")

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Capabilities:
    """What a destination accepts and can do; the copy engine plans from this."""

    manifest_types: Optional[frozenset[str]] = None    # None: any type, stored as-is
    can_mount: bool = False                            # cross-repository blob mount
    accepts_files: bool = False                        # put_blob_file links/copies a local file
    supports_index: bool = True
    compress_uncompressed: bool = False                # gzip uncompressed layers unless told otherwise


class ImageDestination(ABC):
    reference: ImageReference
    capabilities: Capabilities = Capabilities()

    @property
    def blob_namespace(self) -> str:
        """Where this destination keeps blobs; two destinations with equal namespaces share blobs.
        By default each destination object is its own (a counter, not id(): ids are reused)."""
        ns = self.__dict__.get("_blob_namespace")
        if ns is None:
            ns = self.__dict__["_blob_namespace"] = f"{type(self).__name__}:{next(_NAMESPACES)}"
        return ns

    async def try_reuse_blob(self, desc: Descriptor, mount_from: Optional["DockerReference"] = None) -> bool:
        """True when the blob is already there (or was mounted/linked without a transfer)."""
        return False

    @abstractmethod
    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        """Store a blob from a stream; nothing becomes visible unless the stream ends cleanly."""

    async def put_blob_file(self, desc: Descriptor, path: str, link: bool) -> None:
        """Store a blob from a verified local file (hardlink it when `link` and the transport can)."""
        await self.put_blob(desc, file_chunks(path))

    async def manifest_digest(self) -> Optional[Digest]:
        """The digest the destination's tag points at now, if cheap to know (HEAD), else None."""
        return None

    @abstractmethod
    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        """Store a manifest; `instance` marks a child of an index (not the named/tagged one)."""

    async def commit(self) -> None:
        """Make the image visible (tag/ref). Called once, after every blob and manifest."""

    async def close(self) -> None:
        return None


async def file_chunks(path: str, size: int = CHUNK) -> AsyncIterator[bytes]:
    """Read a local file in chunks without blocking the event loop."""
    loop = asyncio.get_running_loop()
    with open(path, "rb") as f:
        while True:
            chunk = await loop.run_in_executor(None, f.read, size)
            if not chunk:
                return
            yield chunk
