"""Writing images into a registry storage tree that an unmodified registry serves.

Order keeps the tree valid for a registry started at any moment: blob data first (hardlinked from
the store or a pool tree, or streamed to a temp name and renamed), then per manifest its blob,
the `_layers` links of everything it references and its revision link (index children before the
index), and at commit the tag's index entry and finally `current/link`. Nothing is written under
`_uploads`. Link files hold the bare digest, no newline, written to a temp name and renamed;
one syncfs(2) of the tree's filesystem before each tag link makes what the tag names durable.
"""
from __future__ import annotations

import ctypes
import os
import threading
from typing import TYPE_CHECKING, AsyncIterator, Callable, Optional

from fastsync.core import native
from fastsync.errors import FastsyncError, Unsupported
from fastsync.manifest import schema1_payload
from fastsync.model import Descriptor, Digest
from fastsync.transports.base import Capabilities, ImageDestination
from fastsync.transports.localfs import blob_exists, in_thread, place_file, stream_to_file
from fastsync.transports.storage.layout import Layout

if TYPE_CHECKING:
    from fastsync.transports.storage.reference import StorageImageReference
    from fastsync.manifest import Manifest


def stored_bytes(man: "Manifest") -> bytes:
    """What the registry keeps as a manifest's blob: the bytes, or for signed schema 1 the payload."""
    data = schema1_payload(man.raw, man.doc) if man.is_schema1 else man.raw
    if Digest.of(data) != man.digest:
        raise FastsyncError(f"manifest {man.digest}: its stored form does not hash to its digest")
    return data


def write_file(path: str, data: bytes) -> None:
    """Write `path` via a temp name and rename (visible whole or not at all; made durable by `flush_tree`)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_link(layout: Layout, path: str, digest: Digest) -> None:
    """Write a link file holding `digest` (skipped when it already does; a corrupt one is replaced)."""
    try:
        if layout.read_link(path) == digest:
            return
    except FastsyncError:
        pass
    write_file(path, str(digest).encode())


def _syncfs() -> Optional[Callable[[int], int]]:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


def _syncfs_now(root: str) -> None:
    if _SYNCFS is None:
        os.sync()
        return
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), root)
    finally:
        os.close(fd)


class _GroupSync:
    """Group commit: a caller waits for one syncfs that *starts* after its call, and callers that
    arrive while one runs share the next. Many images committing at once cost two or three syncfs
    calls, not one each (each may wait for other processes' writeback of the same filesystem)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.started = 0      # generations of syncfs begun
        self.done = 0         # the newest generation finished
        self.running = False
        self.error: dict[int, OSError] = {}

    def flush(self, root: str) -> None:
        with self.cond:
            target = self.started + 1
            while self.done < target:
                if self.running:
                    self.cond.wait()
                    continue
                self.running = True
                self.started += 1
                gen = self.started
                self.cond.release()
                err: Optional[OSError] = None
                try:
                    _syncfs_now(root)
                except OSError as exc:
                    err = exc
                finally:
                    self.cond.acquire()
                    self.running = False
                    self.done = gen
                    if err is not None:
                        self.error[gen] = err
                    self.cond.notify_all()
            err = self.error.get(self.done) if self.done == target else None
        if err is not None:
            raise err


_GROUPS: dict[int, _GroupSync] = {}
_GROUPS_LOCK = threading.Lock()


def flush_tree(root: str) -> None:
    """Make everything written under `root` durable before a tag points at it: one syncfs(2) of the
    tree's filesystem instead of an fsync per small link file (os.sync where syncfs is missing),
    shared by concurrent callers on the same filesystem."""
    dev = os.stat(root).st_dev
    with _GROUPS_LOCK:
        group = _GROUPS.setdefault(dev, _GroupSync())
    group.flush(root)


def current_digest(layout: Layout, name: str, tag: str) -> Optional[Digest]:
    """The digest tag `name:tag` points at, when the tree holds that manifest (else None)."""
    try:
        digest = layout.read_link(layout.tag_current(name, tag))
    except FastsyncError:       # a corrupt tag link: not up to date (the copy rewrites it)
        return None
    if digest and layout.linked(layout.revision_link(name, digest), digest) \
            and os.path.isfile(layout.blob_data(digest)):
        return digest
    return None


class StorageDestination(ImageDestination):
    capabilities = Capabilities(accepts_files=True)

    def __init__(self, ref: StorageImageReference) -> None:
        assert ref.name
        self.reference = ref
        self.layout = ref.layout
        self.pool: Optional[Layout] = ref.pool
        self.name = ref.name
        self.top: Optional[Digest] = None

    @property
    def blob_namespace(self) -> str:
        # Blobs are shared by the whole tree; `_layers` links are written per manifest (put_manifest),
        # so a blob the job placed for another repository still gets linked into this one.
        return f"registry-storage:{self.layout.root}"

    def _data(self, digest: Digest) -> str:
        path = self.layout.blob_data(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    async def _link_from_pool(self, digest: Digest, size: int) -> bool:
        """Hardlink blob `digest` from the pool tree when it holds it (its inode, its mode kept)."""
        if self.pool is None:
            return False
        src = self.pool.blob_data(digest)
        if not blob_exists(src, Descriptor("", digest, size)):
            return False
        dst = self.layout.blob_data(digest)
        await in_thread(native.link_blobs, [(src, dst)], False)
        return True

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        if blob_exists(self.layout.blob_data(desc.digest), desc):
            return True
        return await self._link_from_pool(desc.digest, desc.size)

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        path = self._data(desc.digest)
        await stream_to_file(path, chunks)
        os.chmod(path, 0o644)       # readable by a registry running as another user

    async def put_blob_file(self, desc: Descriptor, path: str, link: bool) -> None:
        if link:        # link_blobs creates the parent directories (in its thread)
            await place_file(path, self.layout.blob_data(desc.digest), True)
            return
        dst = self._data(desc.digest)
        await place_file(path, dst, False)
        os.chmod(dst, 0o644)

    async def manifest_digest(self) -> Optional[Digest]:
        tag = self.reference.tag
        return current_digest(self.layout, self.name, tag) if tag else None

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        lay, name = self.layout, self.name
        data = stored_bytes(man)
        for child in man.manifests:
            if not lay.linked(lay.revision_link(name, child.digest), child.digest):
                raise Unsupported(f"{self.reference}: the index names manifest {child.digest}, which is not in "
                                  f"repository {name}; a registry would refuse it (copy with --all)")
        for d in man.blobs():
            if not os.path.isfile(lay.blob_data(d.digest)):
                raise FastsyncError(f"{self.reference}: blob {d.digest} of manifest {man.digest} is missing")
        if not blob_exists(lay.blob_data(man.digest), Descriptor("", man.digest, len(data))) \
                and not await self._link_from_pool(man.digest, len(data)):
            await self._in_thread(lambda: write_file(lay.blob_data(man.digest), data))
        links = [(lay.layer_link(name, d.digest), d.digest) for d in man.blobs()]
        links.append((lay.revision_link(name, man.digest), man.digest))      # after the blobs' links
        await self._in_thread(lambda: [write_link(lay, p, d) for p, d in links])
        if not instance:
            self.top = man.digest

    async def _in_thread(self, fn) -> None:  # noqa: ANN001
        """Directory creation and file writes are slow; keep them off the event loop (images run concurrently)."""
        await in_thread(fn)

    async def commit(self) -> None:
        ref, lay = self.reference, self.layout
        if self.top is None:
            raise FastsyncError(f"{ref}: nothing to commit (no manifest was written)")
        if ref.digest:
            if ref.digest != self.top:
                raise Unsupported(f"destination {ref} names digest {ref.digest}, but the manifest written is "
                                  f"{self.top}")
            await self._in_thread(lambda: flush_tree(lay.root))
            return
        assert ref.tag
        top, tag = self.top, ref.tag
        await self._in_thread(lambda: (flush_tree(lay.root),
                                       write_link(lay, lay.tag_index(self.name, tag, top), top),
                                       write_link(lay, lay.tag_current(self.name, tag), top)))
