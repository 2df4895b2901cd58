"""Content-addressed blob store: blobs by digest, written to a temp name, verified, then renamed.

Layout under ROOT (default $XDG_CACHE_HOME/fastsync):
  blobs/<alg>/<hex>      read-only blob files; present only once verified and synced (hardlinked out to
                         dir:/oci:/registry-storage, which rely on that and do not sync them again)
  blake3/<hex>           blake3 of the blob (hex), written with it: `verify` re-hashes 4x faster with it
  manifests/<alg>/<hex>  manifest bytes by digest (lets a re-run plan without GETs)
  refs/<key>.json        remembered tag -> manifest digest per source (with ETag and last-checked time)
  tmp/                   writers' temp files, each flock'ed by its writer while alive
  lock                   runs hold a shared flock on it; `gc` takes it exclusively
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import orjson

from fastsync.core import native
from fastsync.errors import DigestMismatch, DiskFull, FastsyncError, disk_full, no_space
from fastsync.model import Descriptor, Digest

try:
    import blake3 as _blake3
except ImportError:  # pragma: no cover - blake3 is a dependency
    _blake3 = None


def default_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastsync")


_LOCKED_PREFIXES = ("w-", "s-")   # temp files whose writers hold a flock while alive
_IOV_MAX = 1024                   # buffers one writev takes (Linux)


class CacheBusy(FastsyncError):
    """The cache is in use by another fastsync run (gc needs it alone)."""


@dataclass(frozen=True)
class BlobEntry:
    digest: Digest
    size: int
    last_used: float           # newest of atime/ctime (a hardlink out or a read counts as a use)
    path: str


@dataclass(frozen=True)
class RefEntry:
    digest: Digest
    media_type: str
    etag: str
    checked: float


@dataclass
class GcResult:
    removed: int = 0
    freed: int = 0
    kept: int = 0
    kept_bytes: int = 0


@dataclass
class VerifyResult:
    checked: int = 0
    fast: int = 0              # checked by blake3 sidecar
    bad: list[str] = None      # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.bad is None:
            self.bad = []


class Store:
    """Blobs live at ROOT/blobs/<alg>/<hex>, read-only; a blob is present only once verified."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.tmp = os.path.join(self.root, "tmp")
        self._run_lock: Optional[int] = None
        try:
            for sub in ("tmp", "blobs/sha256", "blake3", "manifests/sha256", "refs"):
                os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        except OSError as exc:
            raise FastsyncError(f"cache {self.root}: {exc.strerror}") from None

    # ---- locking: runs share, gc is exclusive ---------------------------------------------------

    def _lock_fd(self) -> int:
        return os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT, 0o644)

    def open_run(self) -> "Store":
        """Hold a shared lock for a run (so gc waits) and remove temp files of dead writers."""
        if self._run_lock is None:
            fd = self._lock_fd()
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._run_lock = fd
        self.sweep_tmp()
        return self

    def close_run(self) -> None:
        if self._run_lock is not None:
            os.close(self._run_lock)   # closing releases the flock
            self._run_lock = None

    @contextmanager
    def exclusive(self, wait: bool = False) -> Iterator[None]:
        fd = self._lock_fd()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise CacheBusy(f"cache {self.root} is in use by another fastsync run (retry later)") from None
            yield
        finally:
            os.close(fd)

    def sweep_tmp(self, grace: float = 3600.0) -> int:
        """Delete temp files no live writer holds (left by a killed run); returns how many.
        Files of other writers that do not lock (recompression scratch) must also be `grace` old."""
        removed = 0
        now = time.time()
        for name in _listdir(self.tmp):
            path = os.path.join(self.tmp, name)
            try:
                if not name.startswith(_LOCKED_PREFIXES) and now - os.stat(path).st_mtime < grace:
                    continue
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        return removed

    # ---- blobs ------------------------------------------------------------------------------

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

    def adopt(self, path: str, new: Descriptor) -> str:
        """Move a freshly written, already hashed file into the store under its digest (read-only),
        synced first as the store's writer does: destinations link store blobs without syncing them."""
        final = self.path(new.digest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.chmod(path, 0o444)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(path, final)
        return final

    def writer(self, desc: Descriptor, verified: bool = False) -> "StoreWriter":
        """A writer for `desc`; `verified=True` when the caller's stream is already digest-checked."""
        return StoreWriter(self, desc, verified)

    def _sidecar(self, digest: Digest) -> str:
        return os.path.join(self.root, "blake3", digest.hex)

    def entries(self) -> Iterator[BlobEntry]:
        for alg in _listdir(os.path.join(self.root, "blobs")):
            d = os.path.join(self.root, "blobs", alg)
            for name in _listdir(d):
                p = os.path.join(d, name)
                try:
                    st = os.stat(p)
                    digest = Digest.parse(f"{alg}:{name}")
                except (OSError, ValueError, FastsyncError):
                    continue
                yield BlobEntry(digest, st.st_size, max(st.st_atime, st.st_ctime), p)

    def remove(self, entry: BlobEntry) -> None:
        for p in (entry.path, self._sidecar(entry.digest)):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def gc(self, max_age: Optional[float] = None, max_size: Optional[int] = None,
           dry_run: bool = False, wait: bool = False) -> GcResult:
        """Remove blobs unused for `max_age` seconds, then least recently used ones until the
        store holds at most `max_size` bytes. Needs the store alone (CacheBusy otherwise)."""
        res = GcResult()
        with self.exclusive(wait):
            entries = sorted(self.entries(), key=lambda e: e.last_used)
            now = time.time()
            total = sum(e.size for e in entries)
            for e in entries:
                old = max_age is not None and now - e.last_used > max_age
                big = max_size is not None and total > max_size
                if old or big:
                    if not dry_run:
                        self.remove(e)
                    res.removed += 1
                    res.freed += e.size
                    total -= e.size
                else:
                    res.kept += 1
                    res.kept_bytes += e.size
            if not dry_run:
                self.sweep_tmp()
        return res

    def verify(self, full: bool = False, repair: bool = False) -> VerifyResult:
        """Re-hash every blob: by its blake3 sidecar when there is one (and not `full`), else sha256.
        A blob that does not match its name is listed in `bad` (and removed with `repair`)."""
        res = VerifyResult()
        for e in self.entries():
            res.checked += 1
            ok = None if full else self._check_sidecar(e)
            if ok is None:
                ok = self._check_sha(e)
            else:
                res.fast += 1
            if not ok:
                res.bad.append(str(e.digest))
                if repair:
                    self.remove(e)
        return res

    def _check_sidecar(self, e: BlobEntry) -> Optional[bool]:
        if _blake3 is None:
            return None
        try:
            with open(self._sidecar(e.digest)) as f:
                want = f.read().strip()
        except OSError:
            return None
        h = _blake3.blake3(max_threads=_blake3.blake3.AUTO)
        if e.size:
            h.update_mmap(e.path)
        return h.hexdigest() == want

    def _check_sha(self, e: BlobEntry) -> bool:
        if e.digest.algorithm == "sha256":
            r = native.sha256_file(e.path)
            ok = r.digest == str(e.digest) and r.size == e.size
        else:
            h = hashlib.new(e.digest.algorithm)
            with open(e.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            ok = h.hexdigest() == e.digest.hex
        if ok and _blake3 is not None and not os.path.exists(self._sidecar(e.digest)):
            h3 = _blake3.blake3(max_threads=_blake3.blake3.AUTO)
            if e.size:
                h3.update_mmap(e.path)
            write_small(self._sidecar(e.digest), h3.hexdigest().encode(), self.tmp)
        return ok

    def usage(self) -> tuple[int, int]:
        """(number of blobs, bytes) held."""
        n = size = 0
        for e in self.entries():
            n += 1
            size += e.size
        return n, size

    # ---- manifests and remembered refs --------------------------------------------------------

    def manifest(self, digest: Digest) -> Optional[bytes]:
        """Manifest bytes by digest (checked against it), or None."""
        try:
            with open(os.path.join(self.root, "manifests", digest.algorithm, digest.hex), "rb") as f:
                raw = f.read()
        except OSError:
            return None
        from fastsync.manifest import manifest_digest

        try:
            ok = Digest.of(raw) == digest or manifest_digest(raw) == digest
        except FastsyncError:
            ok = False
        return raw if ok else None

    def put_manifest(self, digest: Digest, raw: bytes) -> None:
        d = os.path.join(self.root, "manifests", digest.algorithm)
        os.makedirs(d, exist_ok=True)
        write_small(os.path.join(d, digest.hex), raw, self.tmp)

    def _ref_path(self, source: str) -> str:
        return os.path.join(self.root, "refs", hashlib.sha256(source.encode()).hexdigest()[:32] + ".json")

    def recall(self, source: str) -> Optional[RefEntry]:
        """What `source` (an image name) resolved to when last checked."""
        try:
            with open(self._ref_path(source), "rb") as f:
                doc = orjson.loads(f.read())
            if doc.get("source") != source:
                return None
            return RefEntry(Digest.parse(doc["digest"]), doc.get("mediaType", ""), doc.get("etag", ""),
                            float(doc.get("checked", 0)))
        except (OSError, ValueError, KeyError, TypeError, FastsyncError):
            return None

    def remember(self, source: str, digest: Digest, media_type: str = "", etag: str = "") -> None:
        doc = {"source": source, "digest": str(digest), "mediaType": media_type, "etag": etag,
               "checked": time.time()}
        write_small(self._ref_path(source), orjson.dumps(doc), self.tmp)

    def refs(self) -> Iterator[tuple[str, RefEntry]]:
        d = os.path.join(self.root, "refs")
        for name in _listdir(d):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    source = orjson.loads(f.read()).get("source", "")
            except (OSError, ValueError):
                continue
            entry = self.recall(source) if source else None
            if entry:
                yield source, entry


class StoreWriter:
    """Receives a blob's chunks; `commit` verifies and renames it into place, `abort` discards it.

    The temp file is flock'ed while the writer lives, so another run's sweep never takes it, and a
    killed run's leftovers (unlocked) are swept on the next run. `write_many`, `commit` and `abort`
    exclude each other (worker threads write and commit while the loop may abort): an abort waits
    for the call under way, so no thread ever writes to or syncs a closed (or reused) descriptor."""

    def __init__(self, store: Store, desc: Descriptor, verified: bool = False) -> None:
        self.store = store
        self.desc = desc
        self.verified = verified
        fd, self.tmp_path = tempfile.mkstemp(prefix=f"w-{desc.digest.hex[:16]}-", dir=store.tmp)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd: Optional[int] = fd      # written unbuffered: whole chunks, one writev per batch
        self._lock = threading.Lock()
        self.written = 0
        self.digester = None if verified else native.Digester()
        self.b3 = _blake3.blake3() if _blake3 is not None else None

    def write(self, chunk: bytes) -> None:
        self.write_many((chunk,))

    def write_many(self, chunks: Sequence[bytes]) -> None:
        """Append `chunks` (in order), in one system call when the kernel takes them all."""
        with self._lock:
            self._write_many(chunks)

    def _write_many(self, chunks: Sequence[bytes]) -> None:
        if self.fd is None:
            raise FastsyncError(f"blob {self.desc.digest}: written to the cache after its writer was closed")
        for chunk in chunks:
            if self.digester is not None:
                self.digester.update(chunk)
            if self.b3 is not None:
                self.b3.update(chunk)
        try:
            for at in range(0, len(chunks), _IOV_MAX):
                group = chunks[at:at + _IOV_MAX]
                done, want = os.writev(self.fd, group), sum(len(c) for c in group)
                if done < want:               # a short write (a signal, a full disk): the rest one by one
                    rest = memoryview(b"".join(group))[done:]
                    while rest:
                        rest = rest[os.write(self.fd, rest):]
                self.written += want
        except OSError as exc:
            raise self._full(exc) from None

    def _full(self, exc: OSError) -> OSError | DiskFull:
        return disk_full(exc, f"the cache {self.store.root}", self.tmp_path) if no_space(exc) else exc

    def commit(self) -> str:
        """Verify, fsync, make read-only and rename; returns the blob's final path."""
        with self._lock:
            return self._commit()

    def _commit(self) -> str:
        if self.fd is None:
            raise FastsyncError(f"blob {self.desc.digest}: committed to the cache after its writer was closed")
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise self._full(exc) from None
        if 0 <= self.desc.size != self.written:     # a stream cut short (verified or not): never kept
            self._abort()
            raise DigestMismatch(f"blob {self.desc.digest} (size, in the cache)", f"{self.desc.size} bytes",
                                 f"{self.written} bytes")
        if self.digester is not None:
            result = self.digester.result()
            if result.digest != str(self.desc.digest) or (0 <= self.desc.size != result.size):
                self._abort()
                raise DigestMismatch(f"blob {self.desc.digest}", str(self.desc.digest), result.digest)
        final = self.store.path(self.desc.digest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.chmod(self.tmp_path, 0o444)
        if self.b3 is not None:
            write_small(self.store._sidecar(self.desc.digest), self.b3.hexdigest().encode(), self.store.tmp)
        os.replace(self.tmp_path, final)
        self._close()          # releases the flock only after the rename
        return final

    def abort(self) -> None:
        with self._lock:
            self._abort()

    def _abort(self) -> None:
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
        self._close()

    def _close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def write_small(path: str, data: bytes, tmpdir: str) -> None:
    """Atomically replace `path` with `data` (temp file in the store's tmp/, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix="s-", dir=tmpdir)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.replace(tmp, path)      # while still locked: a sweep never takes it mid-way
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if no_space(exc):
            assert isinstance(exc, OSError)
            raise disk_full(exc, f"the cache {os.path.dirname(tmpdir)}", path) from None
        raise


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
