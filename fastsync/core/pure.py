"""The pure-Python twin of ext/_native.pyx: the same pipeline shape (hash, decompress, recompress in
BLOCK-sized pieces), hashlib/zlib/zstandard inside, and os.link for the store."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import zlib
from typing import Any, Callable, Sequence

import zstandard

from fastsync.core.codec import BLOCK, ZSTD_THREADS, CompressionError, DigestResult

# --------------------------------------------------------------------------------------------
# Pure-Python pipeline (the same shape as ext/_native.pyx's Pipeline)

def _gzip_header(level: int) -> bytes:
    xfl = 2 if level == 9 else (4 if level == 1 else 0)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 255])


class _GzipEncoder:
    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
        self._crc = 0
        self._size = 0
        self.header = _gzip_header(level)

    def compress(self, block: bytes) -> bytes:
        self._crc = zlib.crc32(block, self._crc)
        self._size += len(block)
        return self._z.compress(block)

    def flush(self) -> bytes:
        tail = self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little")
        return self._z.flush() + tail


class _ZstdEncoder:
    header = b""

    def __init__(self, level: int) -> None:
        self._z = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=ZSTD_THREADS).compressobj()

    def compress(self, block: bytes) -> bytes:
        return self._z.compress(block)

    def flush(self) -> bytes:
        return self._z.flush()


class _GzipDecoder:
    """Multi-member gzip; anything after a member must be another member."""

    name = "gzip"

    def __init__(self) -> None:
        self._d: Any = None
        self.complete = False           # at least one member, and not inside one

    def feed(self, data: bytes, sink: Callable[[bytes], None]) -> None:
        while data:
            if self._d is None:
                self._d = zlib.decompressobj(31)
                self.complete = False
            d = self._d
            out = d.decompress(data, BLOCK)
            while True:
                sink(out)
                if d.eof or (len(out) < BLOCK and not d.unconsumed_tail):
                    break
                out = d.decompress(d.unconsumed_tail, BLOCK)
            if not d.eof:
                return
            data, self._d, self.complete = d.unused_data, None, True


class _ZstdDecoder:
    """Multi-frame zstd."""

    name = "zstd"

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._d: Any = None
        self.complete = False

    def feed(self, data: bytes, sink: Callable[[bytes], None]) -> None:
        while data:
            if self._d is None:
                self._d = self._dctx.decompressobj()
                self.complete = False
            d = self._d
            sink(d.decompress(data))
            if not d.eof:
                return
            data, self._d, self.complete = d.unused_data, None, True


class _PyPipeline:
    """input --sha256--> [decompress] --sha256--> [compress] --sha256--> output."""

    def __init__(self, src: int, dst: int, level: int, collect: bool) -> None:
        self._src, self._dst, self._collect = src, dst, collect
        self._h = [hashlib.sha256(), hashlib.sha256(), hashlib.sha256()]
        self._n = [0, 0, 0]
        self._dec = (None, _GzipDecoder, _ZstdDecoder)[src]
        self._dec = self._dec() if self._dec else None
        self._enc: Any = (None, _GzipEncoder, _ZstdEncoder)[dst]
        self._enc = self._enc(level) if self._enc else None
        self._pending = bytearray()     # uncompressed bytes not yet handed to the encoder
        self._out: list = [self._enc.header] if self._enc else []
        self._any = False

    def _unc(self, data: bytes) -> None:
        if not data:
            return
        if self._src:
            self._h[1].update(data)
            self._n[1] += len(data)
        if self._enc is None:
            if self._collect:
                self._out.append(bytes(data))
            return
        pending = self._pending
        if not pending and len(data) >= BLOCK:
            view = memoryview(data)
            whole = len(data) - len(data) % BLOCK
            self._out.extend(self._enc.compress(view[i:i + BLOCK]) for i in range(0, whole, BLOCK))
            pending += view[whole:]
            return
        pending += data
        if len(pending) >= BLOCK:
            whole = len(pending) - len(pending) % BLOCK
            view = memoryview(pending)
            self._out.extend(self._enc.compress(view[i:i + BLOCK]) for i in range(0, whole, BLOCK))
            view.release()
            del pending[:whole]

    def _take(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        if self._dst and out:
            self._h[2].update(out)
            self._n[2] += len(out)
        return out

    def feed(self, data: Any) -> bytes:
        self._h[0].update(data)
        n = memoryview(data).nbytes
        self._n[0] += n
        self._any = self._any or n > 0
        if self._dec is None:
            self._unc(data)
        else:
            try:
                self._dec.feed(bytes(data), self._unc)
            except (zlib.error, zstandard.ZstdError) as exc:
                raise CompressionError(f"{self._dec.name} stream: {exc} (after {self._n[0]} input bytes)") from None
        return self._take()

    def finish(self) -> bytes:
        if self._dec is not None and not (self._any and self._dec.complete):
            why = "unexpected end of data" if self._any else "no data"
            raise CompressionError(f"{self._dec.name} stream: {why} (after {self._n[0]} input bytes)")
        if self._enc is not None:
            if self._pending:
                self._out.append(self._enc.compress(bytes(self._pending)))
            self._out.append(self._enc.flush())
            self._pending = bytearray()
        return self._take()

    def digests(self) -> tuple:
        inp = ("sha256:" + self._h[0].hexdigest(), self._n[0])
        unc = ("sha256:" + self._h[1].hexdigest(), self._n[1]) if self._src else inp
        out = ("sha256:" + self._h[2].hexdigest(), self._n[2]) if self._dst else unc
        return inp, unc, out


def _py_sha256_file(path: str) -> DigestResult:
    import mmap
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m, memoryview(m) as view:
                for off in range(0, size, 64 << 20):
                    h.update(view[off:off + (64 << 20)])
    return DigestResult("sha256:" + h.hexdigest(), size)


def _py_link_blobs(pairs: Sequence[tuple], readonly: bool = True) -> int:
    linked = 0
    counter = 0
    for src, dst in pairs:
        src, dst = os.fspath(src), os.fspath(dst)
        try:
            try:
                os.link(src, dst)
            except FileNotFoundError:
                if not os.path.exists(src):
                    raise
                os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
                os.link(src, dst)
        except FileExistsError:
            s1, s2 = os.stat(src), os.stat(dst)
            if (s1.st_dev, s1.st_ino) == (s2.st_dev, s2.st_ino):
                linked += 1
                if readonly and s1.st_mode & 0o222:
                    os.chmod(dst, 0o444)
                continue
            linked += _py_replace(src, dst, readonly, True, counter)
            counter += 1
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            linked += _py_replace(src, dst, readonly, False, counter)
            counter += 1
            continue
        linked += 1
        if readonly:
            os.chmod(dst, 0o444)
    return linked


def _py_replace(src: str, dst: str, readonly: bool, try_link: bool, counter: int) -> int:
    """Build dst under a temp name (hardlink, else copy), then rename over it. 1 if linked."""
    tmp = f"{dst}.{os.getpid()}.py{counter}.tmp"
    try:
        if try_link:
            try:
                os.link(src, tmp)
                if readonly:
                    os.chmod(tmp, 0o444)
                os.replace(tmp, dst)
                return 1
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
        shutil.copyfile(src, tmp)   # uses copy_file_range/sendfile where the OS has them
        os.chmod(tmp, 0o444 if readonly else os.stat(src).st_mode & 0o777)
        os.replace(tmp, dst)
        return 0
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------------------------
# The public classes; each backend supplies its pipeline factory.
