"""`oci-archive:PATH[:REF]`: an OCI image layout (oci-layout, index.json, blobs/<alg>/<hex>) in one tar.

As containers/image (oci/archive) does it: a destination writes a new archive holding the one
image (or index) copied, with REF as its `org.opencontainers.image.ref.name` annotation, replacing
the file; a source picks the image whose ref name is REF, or the only one. Manifests are OCI only,
as in `oci:` (Docker manifests are converted by the engine). Members are read by offset, never
extracted.
"""
from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from fastsync import model as m
from fastsync.errors import FastsyncError, NotFound
from fastsync.manifest import dumps
from fastsync.model import Descriptor, Digest
from fastsync.transports.archive.tar import TarReader, TarWriter
from fastsync.transports.base import Capabilities, ImageDestination, ImageSource
from fastsync.transports.localfs import in_thread
from fastsync.transports.oci import LAYOUT, REF_NAME, PathRefReference, checked_manifest, index_entry

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.session import Session


def blob_member(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


class OCIArchiveReference(PathRefReference):
    transport = "oci-archive"
    container = "archive"

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "OCIArchiveSource":
        loop = asyncio.get_running_loop()
        reader = await loop.run_in_executor(None, TarReader, self.path, str(self), session.options.tmpdir)
        try:
            index = read_index(reader, self)
            return OCIArchiveSource(self, reader, index, self.pick(index))
        except BaseException:
            reader.close()
            raise

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "OCIArchiveDestination":
        if os.path.isdir(self.path):
            raise FastsyncError(f"{self}: is a directory")
        return OCIArchiveDestination(self, opts.oci_accept_uncompressed_layers)


def read_index(reader: TarReader, ref: OCIArchiveReference) -> dict[str, Any]:
    try:
        raw: Optional[bytes] = reader.read("index.json")
    except NotFound:
        raw = None
    return ref.parse_index(raw)


class OCIArchiveSource(ImageSource):
    def __init__(self, ref: OCIArchiveReference, reader: TarReader, index: dict[str, Any], top: Descriptor) -> None:
        self.reference = ref
        self.reader = reader
        self.index = index
        self.top = top

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        digest = digest or self.top.digest
        try:
            raw = self.reader.read(blob_member(digest))
        except NotFound:
            raise NotFound(f"{self.reference}: manifest {digest} not found") from None
        return checked_manifest(raw, digest, self.top, self.reference)

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        name = blob_member(desc.digest)
        if not self.reader.has(name):
            raise NotFound(f"{self.reference}: blob {desc.digest} not found")
        return self.reader.chunks(name)

    async def list_tags(self) -> list[str]:
        return [(d.get("annotations") or {}).get(REF_NAME) for d in self.index.get("manifests") or []
                if (d.get("annotations") or {}).get(REF_NAME)]

    async def close(self) -> None:
        self.reader.close()


class OCIArchiveDestination(ImageDestination):
    def __init__(self, ref: OCIArchiveReference, accept_uncompressed: bool = False) -> None:
        self.reference = ref
        # as containers/image: uncompressed layers are gzipped unless --dest-oci-accept-uncompressed-layers
        self.capabilities = Capabilities(manifest_types=frozenset({m.OCI_MANIFEST, m.OCI_INDEX}),
                                         compress_layers=not accept_uncompressed)
        self.tar = TarWriter(ref.path, str(ref))
        self.tar.add_dir("blobs")
        self.tar.add_dir("blobs/sha256")
        self.top: Optional[Descriptor] = None
        self.done = False

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        return blob_member(desc.digest) in self.tar.members

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        await self.tar.add_stream(chunks, lambda: blob_member(desc.digest))

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        name = blob_member(man.digest)
        if name not in self.tar.members:
            await self.tar.put_bytes(name, man.raw)
        if not instance:
            self.top = man.descriptor()

    async def commit(self) -> None:
        entry = index_entry(self.top, self.reference)
        self.tar.add_bytes("index.json", dumps({"schemaVersion": 2, "manifests": [entry]}))
        self.tar.add_bytes("oci-layout", LAYOUT)
        await in_thread(self.tar.finish)
        self.done = True

    async def close(self) -> None:
        if not self.done:
            self.tar.abort()
