"""The narrow interfaces every transport implements, and what a destination can do, as data."""
from __future__ import annotations

import asyncio
import itertools
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, ClassVar, Optional

from fastsync.core.codec import detect_compression
from fastsync.errors import DigestMismatch, InvalidReference, Unsupported
from fastsync.model import Descriptor, Digest, compression_of

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.reference import DockerReference
    from fastsync.registry.client import RegistryClient
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
    def local_path(self) -> Optional[str]:
        """The file or directory a local image lives in (what a trust policy's path scopes match)."""
        return None

    @property
    def remote_host(self) -> Optional[str]:
        """The network host this image lives on (concurrency is limited per host); None when local."""
        return None

    def prepare(self, session: "Session", opts: "TransportOptions") -> None:
        """Set up, ahead of time and off the event loop, what opening this image will need (a
        registry client's TLS context, say). Blocking; optional."""

    def warm_up(self, session: "Session", opts: "TransportOptions") -> None:
        """Start, on the event loop and before the session's HTTP client exists, what opening this
        image will wait for on the network (a registry's ping). Must not block; optional."""

    @abstractmethod
    async def open_source(self, session: "Session", opts: "TransportOptions") -> "ImageSource": ...

    @abstractmethod
    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "ImageDestination": ...

    def with_tag(self, tag: str) -> Optional["ImageReference"]:
        """The image tagged `tag` beside this one (same repository or layout): where attachments
        (signatures, SBOMs, the referrers fallback index) live; None when the transport has no such
        place."""
        return None

    async def delete(self, session: "Session", opts: "TransportOptions") -> None:
        raise Unsupported(f"deleting images is not supported by the {self.transport}: transport")



class PathReference(ImageReference):
    """An image named by one local path (`dir:PATH`, `sif:PATH`); `path_kind` names it in the error
    for an empty name, `absolute` says whether the path is made absolute as it is parsed."""

    path_kind: ClassVar[str]
    absolute: ClassVar[bool] = False

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path) if self.absolute else path

    @classmethod
    def parse(cls, details: str) -> "PathReference":
        if not details:
            raise InvalidReference(f"invalid image name '{cls.transport}:': {cls.path_kind} is required")
        return cls(details)

    @property
    def local_path(self) -> str:
        return self.path

    @property
    def details(self) -> str:
        return self.path


class ImageSource(ABC):
    reference: ImageReference
    # blob bytes come over a network: a digest or size mismatch of blob_chunks may be damage on the
    # way, and fetching the blob again from the start may well succeed
    downloads: bool = False

    @abstractmethod
    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        """Raw bytes and media type of the manifest (or of instance `digest` of an index)."""

    async def inspect_manifest(self) -> tuple[bytes, str]:
        """The top manifest as `inspect` shows it: the one the copy gets, unless the transport serves
        a rewritten one (containers-storage serves its layers rebuilt, and shows the stored manifest)."""
        return await self.get_manifest()

    async def get_instance(self, d: Descriptor) -> "Manifest":
        """Instance `d` of an index, parsed and checked against its digest."""
        from fastsync.manifest import parse_manifest

        raw, mt = await self.get_manifest(d.digest)
        man = parse_manifest(raw, mt or d.media_type)
        if man.digest != d.digest:
            raise DigestMismatch(f"manifest {d.digest}", str(d.digest), str(man.digest))
        return man

    @abstractmethod
    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes as they come, unverified (the copy engine verifies)."""

    async def head_manifest(self) -> Optional[Digest]:
        """The digest the name points at now, when that is cheaper to learn than the manifest (a
        registry's HEAD); None when it is not."""
        return None

    def layer_compression(self, desc: Descriptor) -> Optional[str]:
        """How the bytes `blob_chunks(desc)` serves are compressed ('gzip', 'zstd' or None): sniffed
        from a local file's first bytes (as containers/image sniffs every stream), else what the
        media type says."""
        path = self.blob_path(desc)
        if path:
            try:
                with open(path, "rb") as f:
                    return detect_compression(f.read(4))
            except OSError:
                pass
        return compression_of(desc.media_type)

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        """A local file holding the blob, when the transport has one (lets the engine link or mmap)."""
        return None

    async def list_tags(self) -> list[str]:
        raise Unsupported(f"Unsupported transport '{self.reference.transport}' for tag listing")

    async def get_signatures(self, instance: Optional[Digest] = None) -> list[bytes]:
        """The image's signatures as stored (or those of index instance `instance`); none by default."""
        return []

    def registry_repository(self) -> Optional[tuple["RegistryClient", str]]:
        """(client, repository) when the image lives in a registry: for what travels beside an
        image in its repository (sigstore attachments); None elsewhere."""
        return None

    async def close(self) -> None:
        return None


class ForwardingSource(ImageSource):
    """A source that answers as `inner` does; subclasses change what they must."""

    def __init__(self, inner: ImageSource) -> None:
        self.inner = inner
        self.reference = inner.reference
        self.downloads = inner.downloads

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        return await self.inner.get_manifest(digest)

    async def head_manifest(self) -> Optional[Digest]:
        return await self.inner.head_manifest()

    async def inspect_manifest(self) -> tuple[bytes, str]:
        return await self.inner.inspect_manifest()

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        return self.inner.blob_chunks(desc)

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return self.inner.blob_path(desc)

    def layer_compression(self, desc: Descriptor) -> Optional[str]:
        return self.inner.layer_compression(desc)

    def registry_repository(self) -> Optional[tuple["RegistryClient", str]]:
        return self.inner.registry_repository()

    async def list_tags(self) -> list[str]:
        return await self.inner.list_tags()

    async def get_signatures(self, instance: Optional[Digest] = None) -> list[bytes]:
        return await self.inner.get_signatures(instance)

    async def close(self) -> None:
        await self.inner.close()


class RememberedSource(ForwardingSource):
    """A source whose manifests were read already (by the sync planner, the policy check): served
    from memory (None: the top one); everything else comes from the source itself."""

    def __init__(self, inner: ImageSource, manifests: dict[Optional[Digest], tuple[bytes, str]]) -> None:
        super().__init__(inner)
        self.manifests = manifests

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        got = self.manifests.get(digest)
        return got if got is not None else await self.inner.get_manifest(digest)


@dataclass(frozen=True)
class Capabilities:
    """What a destination accepts and can do; the copy engine plans from this."""

    manifest_types: Optional[frozenset[str]] = None    # None: any type, stored as-is
    can_mount: bool = False                            # cross-repository blob mount
    accepts_files: bool = False                        # put_blob_file links/copies a local file
    supports_index: bool = True
    compress_layers: bool = False                      # uncompressed layers are gzipped on the way in


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

    def registry_repository(self) -> Optional[tuple["RegistryClient", str]]:
        """(client, repository) when the destination is a registry repository; None elsewhere."""
        return None

    async def put_signatures(self, blobs: list[bytes], instance: Optional[Digest] = None) -> None:
        """Store signatures (as stored, see fastsync.trust.formats) of the manifest put last, or of index
        instance `instance`; called after put_manifest, before commit."""
        raise Unsupported(f"storing signatures is not supported by the {self.reference.transport}: transport")

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
