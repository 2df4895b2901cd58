"""The OCI image layout (`oci:PATH[:REF]`): oci-layout, index.json with ref names, blobs/<alg>/<hex>."""
from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, Optional

from ..errors import DigestMismatch, FastsyncError, InvalidReference, ManifestError, NotFound
from ..manifest import dumps, manifest_digest, parse_manifest
from .. import model as m
from ..model import Descriptor, Digest
from .base import Capabilities, ImageDestination, ImageReference, ImageSource, file_chunks
from .localfs import atomic_write, blob_exists, place_file, stream_to_file

if TYPE_CHECKING:
    from ..manifest import Manifest
    from ..options import TransportOptions
    from ..session import Session

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_REF_RE = re.compile(r"^[A-Za-z0-9]+(?:[-._:@/+][A-Za-z0-9]+)*$")


class OCIImageReference(ImageReference):
    transport = "oci"

    def __init__(self, path: str, ref: str = "") -> None:
        self.path = os.path.abspath(path)
        self.ref = ref

    @classmethod
    def parse(cls, details: str) -> "OCIImageReference":
        path, _, ref = details.partition(":")
        if not path:
            raise InvalidReference(f"invalid image name 'oci:{details}': a layout path is required")
        if ref and not _REF_RE.match(ref):
            raise InvalidReference(f"invalid image name 'oci:{details}': invalid reference name {ref!r}")
        return cls(path, ref)

    @property
    def details(self) -> str:
        return f"{self.path}:{self.ref}" if self.ref else self.path

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self.path, "blobs", digest.algorithm, digest.hex)

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "OCISource":
        return OCISource(self, self.resolve())

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "OCIDestination":
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise FastsyncError(f"{self}: exists and is not a directory")
        return OCIDestination(self)

    def read_index(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.path, "index.json"), "rb") as f:
                doc = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"{self}: not an OCI layout (no index.json)") from None
        except ValueError as exc:
            raise ManifestError(f"{self}: index.json is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
            raise ManifestError(f"{self}: index.json is malformed")
        return doc

    def resolve(self) -> Descriptor:
        """The descriptor in index.json that this reference names."""
        entries = self.read_index().get("manifests") or []
        if self.ref:
            found = [d for d in entries if (d.get("annotations") or {}).get(REF_NAME) == self.ref]
            if not found:
                raise NotFound(f"{self}: no image named {self.ref!r} in the layout")
        else:
            found = entries
            if len(found) != 1:
                raise NotFound(f"{self}: the layout holds {len(found)} images; name one as oci:PATH:REF")
        return Descriptor.from_json(found[0])

    async def delete(self, session: "Session", opts: "TransportOptions") -> None:
        with locked(self.path):
            self.resolve()
            doc = self.read_index()
            doc["manifests"] = [d for d in doc.get("manifests") or []
                                if (d.get("annotations") or {}).get(REF_NAME, "") != self.ref]
            atomic_write(os.path.join(self.path, "index.json"), dumps(doc))


@contextmanager
def locked(path: str) -> Iterator[None]:
    """An exclusive lock on the layout (flock on its directory), for index.json updates."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class OCISource(ImageSource):
    def __init__(self, ref: OCIImageReference, top: Descriptor) -> None:
        self.reference = ref
        self.top = top

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        digest = digest or self.top.digest
        try:
            with open(self.reference.blob_path(digest), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"{self.reference}: manifest {digest} not found") from None
        actual = manifest_digest(raw)
        if actual != digest:
            raise DigestMismatch(f"manifest in {self.reference}", str(digest), str(actual))
        mt = self.top.media_type if digest == self.top.digest else ""
        return raw, mt or parse_manifest(raw).media_type

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return self.reference.blob_path(desc.digest)

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        path = self.reference.blob_path(desc.digest)
        if not os.path.exists(path):
            raise NotFound(f"{self.reference}: blob {desc.digest} not found")
        return file_chunks(path)

    async def list_tags(self) -> list[str]:
        return [(d.get("annotations") or {}).get(REF_NAME) for d in self.reference.read_index().get("manifests", [])
                if (d.get("annotations") or {}).get(REF_NAME)]


class OCIDestination(ImageDestination):
    # Like containers/image, the layout holds OCI manifests only (skopeo ignores other types in
    # index.json), so Docker manifests are converted on the way in.
    capabilities = Capabilities(accepts_files=True, manifest_types=frozenset({m.OCI_MANIFEST, m.OCI_INDEX}))

    def __init__(self, ref: OCIImageReference) -> None:
        self.reference = ref
        self.top: Optional[Descriptor] = None
        try:
            os.makedirs(os.path.join(ref.path, "blobs", "sha256"), exist_ok=True)
        except OSError as exc:
            raise FastsyncError(f"{ref}: cannot create the layout: {exc.strerror}") from None
        if not os.path.exists(os.path.join(ref.path, "oci-layout")):
            atomic_write(os.path.join(ref.path, "oci-layout"), LAYOUT)

    @property
    def blob_namespace(self) -> str:
        return f"oci:{self.reference.path}"

    def _blob(self, digest: Digest) -> str:
        path = self.reference.blob_path(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        return blob_exists(self.reference.blob_path(desc.digest), desc)

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        await stream_to_file(self._blob(desc.digest), chunks)

    async def put_blob_file(self, desc: Descriptor, path: str, link: bool) -> None:
        await place_file(path, self._blob(desc.digest), link)

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        path = self._blob(man.digest)
        if not blob_exists(path, man.descriptor()):
            atomic_write(path, man.raw)
        if not instance:
            self.top = man.descriptor()

    async def commit(self) -> None:
        if self.top is None:
            raise FastsyncError(f"{self.reference}: nothing to commit (no manifest was written)")
        entry: dict[str, Any] = {"mediaType": self.top.media_type, "digest": str(self.top.digest),
                                 "size": self.top.size}
        if self.reference.ref:
            entry["annotations"] = {REF_NAME: self.reference.ref}
        index_path = os.path.join(self.reference.path, "index.json")
        with locked(self.reference.path):
            doc: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
            if os.path.exists(index_path):
                doc = self.reference.read_index()
            manifests = doc.setdefault("manifests", [])
            for i, d in enumerate(manifests):
                if (d.get("annotations") or {}).get(REF_NAME, "") == self.reference.ref:
                    manifests[i] = entry
                    break
            else:
                manifests.append(entry)
            atomic_write(index_path, dumps(doc))
