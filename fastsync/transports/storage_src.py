"""Reading images straight from a registry storage tree, as the registry would serve them."""
from __future__ import annotations

import os
from typing import AsyncIterator, Optional

from ..errors import DigestMismatch, NotFound
from ..manifest import manifest_digest, parse_manifest
from ..model import Descriptor, Digest
from .base import ImageSource, file_chunks
from .storage import StorageImageReference


class StorageSource(ImageSource):
    def __init__(self, ref: StorageImageReference, top: Digest) -> None:
        assert ref.name
        self.reference = ref
        self.layout = ref.layout
        self.name = ref.name
        self.top = top

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        digest = digest or self.top
        # Like the registry: a manifest is in a repository only through its revision link.
        if not self.layout.linked(self.layout.revision_link(self.name, digest), digest):
            raise NotFound(f"{self.reference}: manifest {digest} is not in repository {self.name}")
        path = self.layout.blob_data(digest)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"{self.reference}: manifest {digest} is linked but its data is missing ({path})") \
                from None
        actual = manifest_digest(raw)
        if actual != digest:
            raise DigestMismatch(f"manifest {digest} in {self.layout.root}", str(digest), str(actual))
        return raw, parse_manifest(raw).media_type

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return self.layout.blob_data(desc.digest)

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        path = self.layout.blob_data(desc.digest)
        if not os.path.isfile(path):
            raise NotFound(f"{self.reference}: blob {desc.digest} not found ({path})")
        return file_chunks(path)

    async def list_tags(self) -> list[str]:
        return self.layout.tags(self.name)
