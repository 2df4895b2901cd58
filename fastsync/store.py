"""Content-addressed blob store: blobs by digest, written to a temp name, verified, then renamed."""
from __future__ import annotations

import os
import tempfile
from typing import Optional

from . import native
from .errors import DigestMismatch, FastsyncError
from .model import Descriptor, Digest


def default_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastsync")


class Store:
    """Blobs live at ROOT/blobs/<alg>/<hex>, read-only; a blob is present only once verified."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.tmp = os.path.join(self.root, "tmp")
        try:
            os.makedirs(self.tmp, exist_ok=True)
            os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
        except OSError as exc:
            raise FastsyncError(f"cache {self.root}: {exc.strerror}") from None

    def path(self, digest: Digest) -> str:
        return os.path.join(self.root, "blobs", digest.algorithm, digest.hex)

    def lookup(self, desc: Descriptor) -> Optional[str]:
        """The blob's path when the store holds it (with the expected size), else None."""
        p = self.path(desc.digest)
        try:
            st = os.stat(p)
        except OSError:
            return None
        return p if desc.size < 0 or st.st_size == desc.size else None

    def writer(self, desc: Descriptor, verified: bool = False) -> "StoreWriter":
        """A writer for `desc`; `verified=True` when the caller's stream is already digest-checked."""
        return StoreWriter(self, desc, verified)


class StoreWriter:
    """Receives a blob's chunks; `commit` verifies and renames it into place, `abort` discards it."""

    def __init__(self, store: Store, desc: Descriptor, verified: bool = False) -> None:
        self.store = store
        self.desc = desc
        self.verified = verified
        fd, self.tmp_path = tempfile.mkstemp(prefix=f"{desc.digest.hex[:16]}-", dir=store.tmp)
        self.file = os.fdopen(fd, "wb")
        self.digester = None if verified else native.Digester()

    def write(self, chunk: bytes) -> None:
        if self.digester is not None:
            self.digester.update(chunk)
        self.file.write(chunk)

    def commit(self) -> str:
        """Verify, fsync, make read-only and rename; returns the blob's final path."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if self.digester is not None:
            result = self.digester.result()
            if result.digest != str(self.desc.digest) or (0 <= self.desc.size != result.size):
                self.abort()
                raise DigestMismatch(f"blob {self.desc.digest}", str(self.desc.digest), result.digest)
        final = self.store.path(self.desc.digest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.chmod(self.tmp_path, 0o444)
        os.replace(self.tmp_path, final)
        return final

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
