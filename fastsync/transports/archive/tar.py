"""Tar plumbing shared by `oci-archive:` (archive_oci.py) and `docker-archive:` (archive_docker.py).

`TarWriter` builds an archive in a temp file beside the destination and renames it into place on
`finish`, so a destination is never half-written. Blobs arrive concurrently: the first one streams
straight into the archive (its header is written as a placeholder and patched once the size and
name are known); blobs that arrive while another is being written are spooled to temp files beside
it and appended in turn. A failed member is cut off again (truncate), so a retry starts clean.

`TarReader` indexes an archive once (names -> data offsets; a gzip or zstd compressed archive is
first decompressed into a temp file, as containers/image does) and reads members by offset, so
nothing is extracted.
"""
from __future__ import annotations

import asyncio
import bz2
import lzma
import os
import posixpath
import tarfile
import tempfile
from contextlib import contextmanager
from typing import Any, AsyncIterator, Callable, Iterator, Optional

from fastsync.core import native
from fastsync.errors import FastsyncError, NotFound
from fastsync.transports.base import CHUNK
from fastsync.transports.localfs import in_thread

BLOCK = tarfile.BLOCKSIZE
FORMAT = tarfile.GNU_FORMAT      # sizes of 8 GiB and more fit the same 512-byte header (base-256)


class ArchiveError(FastsyncError):
    """An archive is missing, unreadable or malformed."""


def tar_header(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o444) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.linkname, ti.mode, ti.mtime = size, kind, linkname, mode, 0
    ti.uname = ti.gname = ""
    return ti.tobuf(FORMAT, "utf-8", "surrogateescape")


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class Decoder:
    """Decompresses a layer stream when it is gzip or zstd (sniffed, not trusted from media types) and
    gives the sha256 of what comes out (the layer's diff_id).

    Corrupt compressed data is reported by `finish`, not where it is met: the rest of the stream is
    still read, so the pipeline's digest check upstream reports a corrupted blob as such first."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.kind: Optional[str] = None
        self._head = b""
        self._rc: Optional[native.Recompressor] = None
        self._digester: Optional[native.Digester] = None
        self._error: Optional[str] = None

    def feed(self, data: bytes) -> bytes:
        if self._rc is None and self._digester is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            return self._start()
        return self._pass(data)

    def finish(self) -> bytes:
        out = b"" if (self._rc or self._digester) else self._start()
        if self._rc is not None and self._error is None:
            try:
                out += self._rc.finish()
            except native.CompressionError as exc:
                self._error = str(exc)
        if self._error is not None:
            raise ArchiveError(f"{self.what}: {self._error}")
        return out

    @property
    def diff_id(self) -> str:
        if self._rc is not None:
            return self._rc.uncompressed.digest
        assert self._digester is not None
        return self._digester.result().digest

    def _start(self) -> bytes:
        head, self._head = self._head, b""
        self.kind = native.detect_compression(head)
        if self.kind is None:
            self._digester = native.Digester()
        else:
            self._rc = native.Recompressor(self.kind, None)
        return self._pass(head)

    def _pass(self, data: bytes) -> bytes:
        if self._rc is None:
            assert self._digester is not None
            self._digester.update(data)
            return data
        if self._error is not None:
            return b""
        try:
            return self._rc.feed(data)
        except native.CompressionError as exc:
            self._error = str(exc)
            return b""


async def pump(chunks: AsyncIterator[bytes], write: Callable[[bytes], object],
               decoder: Optional[Decoder] = None) -> int:
    """Copy a chunk stream to `write` (through `decoder`), off the event loop; returns bytes written."""
    size = 0
    async for chunk in chunks:
        if decoder is not None:
            chunk = await in_thread(decoder.feed, chunk) if len(chunk) >= 1 << 16 else decoder.feed(chunk)
        if chunk:
            await in_thread(write, chunk)
            size += len(chunk)
    if decoder is not None:
        tail = await in_thread(decoder.finish)
        if tail:
            await in_thread(write, tail)
            size += len(tail)
    return size


class TarWriter:
    """A tar archive written to a temp file beside `final` and renamed over it by `finish`."""

    def __init__(self, final: str, what: str) -> None:
        self.final = os.path.abspath(final)
        self.what = what
        self.dir = os.path.dirname(self.final)
        try:
            os.makedirs(self.dir, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.final)}.tmp-", dir=self.dir)
        except OSError as exc:
            raise ArchiveError(f"{what}: cannot create {self.dir}: {exc.strerror}") from None
        self.f = os.fdopen(fd, "w+b")
        self.lock = asyncio.Lock()
        self.members: dict[str, tuple[int, int]] = {}     # name -> (data offset, size)
        self._spools: set[str] = set()
        self.aborted = False

    # -- small members (written while no stream holds the archive; they do not yield) ---------------

    def add_bytes(self, name: str, data: bytes) -> None:
        assert not self.lock.locked()
        self._add(name, data)

    def _add(self, name: str, data: bytes) -> None:
        start = self.f.tell()
        header = tar_header(name, len(data))
        self.f.write(header + data + tar_padding(len(data)))
        self.members[name] = (start + len(header), len(data))

    async def put_bytes(self, name: str, data: bytes) -> None:
        """add_bytes, waiting for a member being streamed to end."""
        async with self.lock:
            if name not in self.members and not self.aborted:
                self._add(name, data)

    def add_dir(self, name: str) -> None:
        self.f.write(tar_header(name.rstrip("/") + "/", kind=tarfile.DIRTYPE, mode=0o755))

    def add_symlink(self, name: str, target: str) -> None:
        self.f.write(tar_header(name, kind=tarfile.SYMTYPE, linkname=target, mode=0))

    def read(self, name: str) -> bytes:
        offset, size = self.members[name]
        self.f.flush()
        return os.pread(self.f.fileno(), size, offset)

    # -- streamed members ----------------------------------------------------------------------------

    async def add_stream(self, chunks: AsyncIterator[bytes], name_for: Callable[[], str],
                         decoder: Optional[Decoder] = None) -> str:
        """Append a member from a stream (through `decoder`); `name_for()` names it once the stream
        has ended (a layer is named by its diff_id). A member whose name is already in the archive
        is dropped (the same content arrived under another digest). A stream arriving while
        another is written is spooled to a temp file first. Returns the member's name."""
        if self.lock.locked():
            return await self._spooled(chunks, name_for, decoder)
        async with self.lock:
            if self.aborted:
                raise ArchiveError(f"{self.what}: the archive was abandoned")
            start = self.f.tell()
            with self._member_at(start):
                placeholder = tar_header(name_for() if decoder is None else "0" * 64 + ".tar")
                self.f.write(placeholder)
                size = await pump(chunks, self.f.write, decoder)
                name = name_for()
                header = tar_header(name, size)
                if name in self.members or len(header) != len(placeholder):
                    self._cut(start)
                    if name in self.members:
                        return name
                    raise ArchiveError(f"{self.what}: internal error: tar header size changed for {name}")
                self.f.write(tar_padding(size))
                end = self.f.tell()
                self.f.seek(start)
                self.f.write(header)
                self.f.seek(end)
            self.members[name] = (start + len(header), size)
            return name

    async def _spooled(self, chunks: AsyncIterator[bytes], name_for: Callable[[], str],
                       decoder: Optional[Decoder]) -> str:
        fd, path = tempfile.mkstemp(prefix=f".{os.path.basename(self.final)}.blob-", dir=self.dir)
        self._spools.add(path)
        try:
            with os.fdopen(fd, "w+b") as spool:
                size = await pump(chunks, spool.write, decoder)
                name = name_for()
                async with self.lock:
                    if name in self.members or self.aborted:
                        return name
                    start = self.f.tell()
                    header = tar_header(name, size)
                    with self._member_at(start):
                        self.f.write(header)
                        spool.seek(0)
                        await in_thread(_copy, spool, self.f, size)
                        self.f.write(tar_padding(size))
                    self.members[name] = (start + len(header), size)
                    return name
        finally:
            self._spools.discard(path)
            unlink_quietly(path)

    # -- the end -----------------------------------------------------------------------------------

    def finish(self) -> None:
        """End the archive (two zero blocks, like tar), fsync and rename it over the destination."""
        self.f.write(b"\0" * (2 * BLOCK))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        """Drop the temp archive. A member still being streamed (another blob of a failed copy) ends
        on its own; the file is closed when it does."""
        self.aborted = True
        unlink_quietly(self.tmp)
        for path in list(self._spools):
            unlink_quietly(path)
        if not self.lock.locked():
            self.f.close()

    @contextmanager
    def _member_at(self, start: int) -> Iterator[None]:
        """Writing one member from `start`: a failure cuts it off again, so retries start clean."""
        try:
            yield
        except BaseException:
            self._cut(start)
            raise
        finally:
            self._closed_if_aborted()

    def _cut(self, start: int) -> None:
        """Cut a failed member off again, so the archive ends where it did before."""
        if not self.f.closed and not self.aborted:
            self.f.truncate(start)
            self.f.seek(start)

    def _closed_if_aborted(self) -> None:
        if self.aborted and not self.f.closed:
            self.f.close()


def _copy(src, dst, size: int) -> None:
    left = size
    while left:
        data = src.read(min(CHUNK, left))
        if not data:
            raise ArchiveError("spool file ended early")
        dst.write(data)
        left -= len(data)


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_STDLIB_KINDS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def _truncated(kind: str) -> bytes:
    raise EOFError(f"the {kind} stream ends early")


class TarReader:
    """Random access to the regular members of a tar archive (symlinks and hardlinks resolved)."""

    def __init__(self, path: str, what: str, tmpdir: Optional[str] = None) -> None:
        self.path = os.path.abspath(path)
        self.what = what
        self._scratch: Optional[str] = None
        self.fd: Optional[int] = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if not os.path.exists(self.path):
            raise NotFound(f"{what}: no such file")
        if os.path.isdir(self.path):
            raise ArchiveError(f"{what}: is a directory, not an archive")
        try:
            self._open(tmpdir)
        except BaseException:
            self.close()
            raise

    def _open(self, tmpdir: Optional[str]) -> None:
        try:
            with open(self.path, "rb") as f:
                head = f.read(6)
            kind = native.detect_compression(head[:4]) or _STDLIB_KINDS.get(head[:3]) or _STDLIB_KINDS.get(head)
            file = self._decompressed(kind, tmpdir) if kind else self.path
            self.fd = os.open(file, os.O_RDONLY)
        except OSError as exc:
            raise ArchiveError(f"{self.what}: cannot read the archive: {exc.strerror}") from None
        try:
            with tarfile.open(file, "r:") as tar:
                for ti in tar:
                    self.members[_norm(ti.name)] = ti
        except (tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{self.what}: not a valid tar archive ({exc})") from None

    def _decompressed(self, kind: str, tmpdir: Optional[str]) -> str:
        """A compressed archive, decompressed into a temp file (removed by `close`)."""
        fd, self._scratch = tempfile.mkstemp(prefix="fastsync-archive-", suffix=".tar", dir=tmpdir)
        if kind in ("xz", "bzip2"):          # as containers/image reads them; not a layer format, so stdlib
            dec: Any = lzma.LZMADecompressor() if kind == "xz" else bz2.BZ2Decompressor()
            feed, finish = dec.decompress, lambda: b"" if dec.eof else _truncated(kind)
        else:
            rc = native.Recompressor(kind, None)
            feed, finish = rc.feed, rc.finish
        try:
            with open(self.path, "rb") as src, os.fdopen(fd, "wb") as out:
                while data := src.read(CHUNK):
                    if kind in ("xz", "bzip2") and dec.eof:
                        break                # trailing bytes after the stream, as Go's readers ignore
                    out.write(feed(data))
                out.write(finish())
        except (native.CompressionError, lzma.LZMAError, OSError, EOFError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise                        # the disk, not the data
            raise ArchiveError(f"{self.what}: {exc}") from None
        return self._scratch

    def member(self, name: str) -> tarfile.TarInfo:
        """The regular file `name` (relative to the archive root), following links."""
        seen = 0
        key = _norm(name)
        while True:
            ti = self.members.get(key)
            if ti is None:
                raise NotFound(f"{self.what}: {name} not found in the archive")
            if ti.isfile():
                return ti
            if not (ti.issym() or ti.islnk()) or seen > 16:
                kind = "a FIFO" if ti.isfifo() else "a device" if ti.isdev() else "a directory" if ti.isdir() \
                    else "a link loop" if seen > 16 else "not a regular file"
                raise ArchiveError(f"{self.what}: {name} is {kind} in the archive, not a regular file")
            if ti.issym() and (ti.linkname.startswith("/") or
                               posixpath.normpath(posixpath.join(posixpath.dirname(key), ti.linkname)).startswith("..")):
                raise ArchiveError(f"{self.what}: {name} is a symlink leaving the archive (to {ti.linkname}); "
                                   "refusing to read it")
            seen += 1
            key = _norm(ti.linkname if ti.islnk() else posixpath.join(posixpath.dirname(key), ti.linkname))

    def has(self, name: str) -> bool:
        return _norm(name) in self.members

    def read(self, name: str) -> bytes:
        ti = self.member(name)
        return os.pread(self.fd, ti.size, ti.offset_data)

    def head(self, name: str, n: int) -> bytes:
        ti = self.member(name)
        return os.pread(self.fd, min(n, ti.size), ti.offset_data)

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        """The member's bytes in chunks, read by offset off the event loop."""
        ti = self.member(name)
        loop = asyncio.get_running_loop()
        offset, left = ti.offset_data, ti.size
        while left:
            data = await loop.run_in_executor(None, os.pread, self.fd, min(CHUNK, left), offset)
            if not data:
                raise ArchiveError(f"{self.what}: {name} is truncated")
            offset += len(data)
            left -= len(data)
            yield data

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self._scratch:
            unlink_quietly(self._scratch)
            self._scratch = None


def _norm(name: str) -> str:
    name = posixpath.normpath(name.lstrip("/"))
    return "" if name == "." else name
