"""The OCI image layout (`oci:PATH[:REF]`): oci-layout, index.json with ref names, blobs/<alg>/<hex>."""
from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, Optional

from fastsync.errors import DigestMismatch, FastsyncError, InvalidReference, ManifestError, NotFound
from fastsync.manifest import dumps, manifest_digest, parse_manifest
from fastsync import model as m
from fastsync.model import Descriptor, Digest
from fastsync.transports.base import Capabilities, ImageDestination, ImageReference, ImageSource, file_chunks
from fastsync.transports.localfs import atomic_write, blob_exists, checked_file, place_file, stream_to_file

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.session import Session

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_REF_RE = re.compile(r"^[A-Za-z0-9]+(?:[-._:@/+][A-Za-z0-9]+)*$")


class PathRefReference(ImageReference):
    """`PATH[:REF]` names: oci: (a layout directory) and oci-archive: (a tar of one)."""

    container = "layout"          # what PATH holds, in messages

    def __init__(self, path: str, ref: str = "") -> None:
        self.path = os.path.abspath(path)
        self.ref = ref

    @classmethod
    def parse(cls, details: str) -> "PathRefReference":
        path, _, ref = details.partition(":")
        name = f"invalid image name '{cls.transport}:{details}'"
        if not path:
            article = "an" if cls.container[0] in "aeiou" else "a"
            raise InvalidReference(f"{name}: {article} {cls.container} path is required")
        if ref and not _REF_RE.match(ref):
            raise InvalidReference(f"{name}: invalid reference name {ref!r}")
        return cls(path, ref)

    @property
    def local_path(self) -> str:
        return self.path

    @property
    def details(self) -> str:
        return f"{self.path}:{self.ref}" if self.ref else self.path

    def parse_index(self, raw: Optional[bytes]) -> dict[str, Any]:
        """index.json's document (None: there is none), checked for shape."""
        if raw is None:
            raise NotFound(f"{self}: not an OCI {self.container} (open {os.path.join(self.path, 'index.json')}: "
                           "no such file or directory)")
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ManifestError(f"{self}: index.json is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
            raise ManifestError(f"{self}: index.json is malformed")
        return doc

    def pick(self, index: dict[str, Any]) -> Descriptor:
        """The descriptor in an index.json document that this reference names."""
        entries = index.get("manifests") or []
        if self.ref:
            found = [d for d in entries if (d.get("annotations") or {}).get(REF_NAME) == self.ref]
            if not found:
                raise NotFound(f"{self}: no image named {self.ref!r} in the {self.container} "
                               f'(no descriptor found for reference "{self.ref}")')
        else:
            found = entries
            if len(found) != 1:
                raise NotFound(f"{self}: the {self.container} holds {len(found)} images; name one as "
                               f"{self.transport}:PATH:REF")
        return Descriptor.from_json(found[0])


class OCIImageReference(PathRefReference):
    transport = "oci"

    def with_tag(self, tag: str) -> "OCIImageReference":
        return OCIImageReference(self.path, tag)

    def blob_path(self, digest: Digest, shared_blob_dir: Optional[str] = None) -> str:
        """Where a blob lives: the layout's blobs/<alg>/<hex>, or <alg>/<hex> under a shared blob
        directory (skopeo's --shared-blob-dir, as containers/image's blobPath)."""
        root = os.path.abspath(shared_blob_dir) if shared_blob_dir else os.path.join(self.path, "blobs")
        return os.path.join(root, digest.algorithm, digest.hex)

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "OCISource":
        return OCISource(self, self.resolve(), opts.shared_blob_dir)

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "OCIDestination":
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise FastsyncError(f"{self}: exists and is not a directory")
        return OCIDestination(self, opts.shared_blob_dir, opts.oci_accept_uncompressed_layers)

    def read_index(self) -> dict[str, Any]:
        try:
            checked_file(os.path.join(self.path, "index.json"), self.path, str(self))
            with open(os.path.join(self.path, "index.json"), "rb") as f:
                raw: Optional[bytes] = f.read()
        except FileNotFoundError:
            raw = None
        return self.parse_index(raw)

    def resolve(self) -> Descriptor:
        """The descriptor in index.json that this reference names."""
        return self.pick(self.read_index())

    async def delete(self, session: "Session", opts: "TransportOptions") -> None:
        with locked(self.path):
            self.resolve()
            doc = self.read_index()
            doc["manifests"] = [d for d in doc.get("manifests") or []
                                if (d.get("annotations") or {}).get(REF_NAME, "") != self.ref]
            atomic_write(os.path.join(self.path, "index.json"), dumps(doc))


def checked_manifest(raw: bytes, digest: Digest, top: Descriptor, ref: ImageReference) -> tuple[bytes, str]:
    """A manifest read from a layout, checked against its digest; with its media type (the index
    entry's for the top one, else the manifest's own)."""
    actual = manifest_digest(raw)
    if actual != digest:
        raise DigestMismatch(f"manifest in {ref}", str(digest), str(actual))
    mt = top.media_type if digest == top.digest else ""
    return raw, mt or parse_manifest(raw).media_type


def index_entry(top: Optional[Descriptor], ref: PathRefReference) -> dict[str, Any]:
    """index.json's entry for the image a destination wrote (its ref name annotated)."""
    if top is None:
        raise FastsyncError(f"{ref}: nothing to commit (no manifest was written)")
    entry: dict[str, Any] = {"mediaType": top.media_type, "digest": str(top.digest), "size": top.size}
    if ref.ref:
        entry["annotations"] = {REF_NAME: ref.ref}
    return entry


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
    def __init__(self, ref: OCIImageReference, top: Descriptor, shared_blob_dir: Optional[str] = None) -> None:
        self.reference = ref
        self.top = top
        self.shared_blob_dir = shared_blob_dir

    def _path(self, digest: Digest) -> str:
        return self.reference.blob_path(digest, self.shared_blob_dir)

    def _checked(self, digest: Digest, what: str) -> Optional[str]:
        """The blob's file when it is a regular file inside the layout (or the shared blob directory)."""
        return checked_file(self._path(digest), self.shared_blob_dir or self.reference.path, f"{self.reference}: {what}")

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        digest = digest or self.top.digest
        try:
            path = self._checked(digest, f"manifest {digest}")
            if path is None:
                raise FileNotFoundError(digest)
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"{self.reference}: manifest {digest} not found") from None
        return checked_manifest(raw, digest, self.top, self.reference)

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return self._checked(desc.digest, f"blob {desc.digest}")

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        path = self.blob_path(desc)
        if path is None:
            raise NotFound(f"{self.reference}: blob {desc.digest} not found")
        return file_chunks(path)

    async def list_tags(self) -> list[str]:
        return [(d.get("annotations") or {}).get(REF_NAME) for d in self.reference.read_index().get("manifests", [])
                if (d.get("annotations") or {}).get(REF_NAME)]


class OCIDestination(ImageDestination):
    # Like containers/image, the layout holds OCI manifests only (skopeo ignores other types in
    # index.json), so Docker manifests are converted on the way in.
    # and, as containers/image, it gzips uncompressed layers unless --dest-oci-accept-uncompressed-layers
    def __init__(self, ref: OCIImageReference, shared_blob_dir: Optional[str] = None,
                 accept_uncompressed: bool = False) -> None:
        self.reference = ref
        self.shared_blob_dir = shared_blob_dir
        self.capabilities = Capabilities(accepts_files=True, manifest_types=frozenset({m.OCI_MANIFEST, m.OCI_INDEX}),
                                         compress_layers=not accept_uncompressed)
        self.top: Optional[Descriptor] = None
        try:
            os.makedirs(os.path.join(ref.path, "blobs", "sha256"), exist_ok=True)
        except OSError as exc:
            raise FastsyncError(f"{ref}: cannot create the layout: {exc.strerror}") from None
        if not os.path.exists(os.path.join(ref.path, "oci-layout")):
            atomic_write(os.path.join(ref.path, "oci-layout"), LAYOUT)

    @property
    def blob_namespace(self) -> str:
        if self.shared_blob_dir:
            return f"oci-blobs:{os.path.abspath(self.shared_blob_dir)}"
        return f"oci:{self.reference.path}"

    def _blob(self, digest: Digest) -> str:
        path = self.reference.blob_path(digest, self.shared_blob_dir)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:
            raise FastsyncError(f"{self.reference}: cannot create {os.path.dirname(path)}: {exc.strerror}") from None
        return path

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        return blob_exists(self.reference.blob_path(desc.digest, self.shared_blob_dir), desc)

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
        entry = index_entry(self.top, self.reference)
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
