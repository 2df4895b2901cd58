"""Offline bundles: a registry storage tree as one tar (optionally zstd), and back.

`write_bundle` stores the tree's `docker/registry/v2` files with paths relative to the storage
root, so `tar x -C ROOT` (or `zstd -dc B | tar x -C ROOT`) restores a tree the registry serves.
Files that are hardlinks of each other become tar hardlinks (each blob's bytes are stored once).
Members are ordered blobs, then `_layers` and revision links, then tag index links, then tags'
`current/link`, so a tree being extracted in order never shows a tag before its content.
`_uploads` and temp files are left out.

`read_bundle` extracts safely: members must be plain files or hardlinks under
`docker/registry/v2/`, each file is written to a temp name and renamed (never written through
an existing hardlink), blob data is verified against its path's digest, and blobs already
present with the same size are kept.
"""
from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional, Union

import zstandard

from fastsync.core import native
from fastsync.errors import DigestMismatch, FastsyncError, UsageError
from fastsync.transports.storage.reference import V2

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BUF = 1 << 20
_PREFIX = V2.replace(os.sep, "/") + "/"


@dataclass
class BundleResult:
    files: int = 0          # regular members (bytes stored)
    hardlinks: int = 0      # members stored as tar hardlinks
    blobs: int = 0
    bytes: int = 0          # file bytes stored (before compression)


def compression_for(path: str, compression: Optional[str] = "auto") -> Optional[str]:
    """'zstd' or None, from an explicit choice or the archive's name (.tar.zst/.tzst)."""
    if compression not in ("auto", None, "zstd", "none"):
        raise UsageError(f"unknown bundle compression {compression!r} (valid: zstd, none)")
    if compression == "auto":
        return "zstd" if path.endswith((".zst", ".tzst")) else None
    return "zstd" if compression == "zstd" else None


def _rank(rel: str) -> int:
    parts = rel.split("/")
    if len(parts) > 3 and parts[3] == "blobs":
        return 0
    if "_manifests" in parts:
        i = parts.index("_manifests")
        if parts[i + 1:i + 2] == ["tags"]:
            return 3 if parts[-2:] == ["current", "link"] else 2
    return 1


def tree_files(root: str) -> list[tuple[str, str]]:
    """(relative posix path, absolute path) of every file to bundle, in bundle order."""
    v2 = os.path.join(os.path.abspath(root), V2)
    if not os.path.isdir(v2):
        raise FastsyncError(f"{root} is not a registry storage root (no {V2})")
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(v2):
        dirnames[:] = sorted(d for d in dirnames if d != "_uploads")
        for fn in filenames:
            if fn.startswith(".tmp-") or fn.endswith(".tmp"):
                continue
            full = os.path.join(dirpath, fn)
            found.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    found.sort(key=lambda rf: (_rank(rf[0]), rf[0]))
    return found


def _info(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(rel)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.mtime = int(st.st_mtime)
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def write_bundle(root: str, out: Union[str, BinaryIO], compression: Optional[str] = "auto",
                 level: int = 3) -> BundleResult:
    """Write the storage tree at `root` as a tar (zstd-compressed when asked) to `out` (path or file)."""
    files = tree_files(root)
    name = out if isinstance(out, str) else ""
    comp = compression_for(name, compression)
    if comp == "zstd" and not 1 <= level <= 22:
        raise UsageError(f"zstd level {level} is out of range (1-22)")
    if not isinstance(out, str):
        return _write(files, out, comp, level)
    d = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            result = _write(files, f, comp, level)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        _unlink(tmp)
        raise
    return result


def _write(files: list[tuple[str, str]], raw: BinaryIO, comp: Optional[str], level: int) -> BundleResult:
    res = BundleResult()
    sink: BinaryIO = raw
    zw = None
    if comp == "zstd":
        zw = zstandard.ZstdCompressor(level=level, threads=-1).stream_writer(raw, closefd=False)
        sink = zw  # type: ignore[assignment]
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, bufsize=BUF, copybufsize=BUF) as tf:
        for rel, full in files:
            st = os.stat(full)
            ti = _info(rel, st)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                ti.type, ti.linkname = tarfile.LNKTYPE, seen[key]
                tf.addfile(ti)
                res.hardlinks += 1
                continue
            seen[key] = rel
            ti.size = st.st_size
            with open(full, "rb") as f:
                tf.addfile(ti, f)
            res.files += 1
            res.bytes += st.st_size
            res.blobs += _rank(rel) == 0
    if zw is not None:
        zw.close()
    return res


# ---- reading --------------------------------------------------------------------------------

@dataclass
class UnbundleResult:
    files: int = 0          # files written
    kept: int = 0           # blobs already present (same size), left as they were
    hardlinks: int = 0
    bytes: int = 0


def _open_stream(f: BinaryIO) -> BinaryIO:
    """`f`, decompressed when it starts with the zstd magic (gzip/bz2/xz are left to tarfile)."""
    buffered = f if hasattr(f, "peek") else io.BufferedReader(f, BUF)  # type: ignore[arg-type]
    if buffered.peek(4)[:4] == ZSTD_MAGIC:  # type: ignore[attr-defined]
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)  # type: ignore
    return buffered


def _parts(member_name: str) -> list[str]:
    """The member's path components, checked to stay under docker/registry/v2/."""
    name = member_name
    while name.startswith("./"):
        name = name[2:]
    parts = name.split("/")
    if not name.startswith(_PREFIX) or any(p in ("", ".", "..") for p in parts):
        raise FastsyncError(f"not a registry storage bundle: unexpected member {member_name!r}")
    return parts


def _blob_digest(rel_parts: list[str]) -> Optional[str]:
    """'alg:hex' for blobs/<alg>/<xx>/<hex>/data paths, else None."""
    if len(rel_parts) == 8 and rel_parts[3] == "blobs" and rel_parts[-1] == "data":
        return f"{rel_parts[4]}:{rel_parts[6]}"
    return None


def read_bundle(archive: Union[str, BinaryIO], root: str, verify: bool = True) -> UnbundleResult:
    """Extract a bundle into the storage root `root` (created if needed; existing content is kept)."""
    root = os.path.abspath(root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise FastsyncError(f"{root} exists and is not a directory")
    if isinstance(archive, str):
        try:
            with open(archive, "rb") as f:
                return _read(f, root, verify)
        except FileNotFoundError:
            raise FastsyncError(f"bundle {archive} not found") from None
    return _read(archive, root, verify)


def _read(f: BinaryIO, root: str, verify: bool) -> UnbundleResult:
    res = UnbundleResult()
    try:
        stream = _open_stream(f)
        with tarfile.open(fileobj=stream, mode="r|*", bufsize=BUF) as tf:
            for m in tf:
                _extract(tf, m, root, verify, res)
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise FastsyncError(f"bundle is not a readable tar{' (zstd)' if isinstance(exc, zstandard.ZstdError) else ''}: "
                            f"{exc}") from None
    return res


def _extract(tf: tarfile.TarFile, m: tarfile.TarInfo, root: str, verify: bool, res: UnbundleResult) -> None:
    if m.isdir():
        _parts(m.name.rstrip("/") + "/x")
        return
    parts = _parts(m.name)
    target = os.path.join(root, *parts)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if m.islnk():
        source = os.path.join(root, *_parts(m.linkname))
        if _same_file(source, target):
            return
        _place(target, lambda tmp: os.link(source, tmp))
        res.hardlinks += 1
        return
    if not m.isreg():
        raise FastsyncError(f"not a registry storage bundle: {m.name!r} is not a regular file")
    digest = _blob_digest(parts)
    if digest and _size(target) == m.size:
        res.kept += 1
        return
    src = tf.extractfile(m)
    assert src is not None
    if not digest and m.size <= 4096:       # a link file: leave it alone when it already says this
        data = src.read()
        if _read_small(target) == data:
            return
        src = io.BytesIO(data)  # type: ignore[assignment]

    def fill(tmp: str) -> None:
        dig = native.Digester() if digest and verify else None
        with open(tmp, "wb") as out:
            for chunk in iter(lambda: src.read(BUF), b""):
                if dig is not None:
                    dig.update(chunk)
                out.write(chunk)
        if dig is not None:
            got = dig.result().digest
            if got != digest:
                raise DigestMismatch(f"blob {m.name} in the bundle", digest, got)
        os.chmod(tmp, m.mode & 0o777)
        os.utime(tmp, (m.mtime, m.mtime))

    _place(target, fill)
    res.files += 1
    res.bytes += m.size


def _place(target: str, make) -> None:  # noqa: ANN001
    tmp = os.path.join(os.path.dirname(target), f".tmp-{os.getpid()}-{os.path.basename(target)}")
    _unlink(tmp)
    try:
        make(tmp)
        os.replace(tmp, target)
    except BaseException:
        _unlink(tmp)
        raise


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _read_small(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read(4097)
    except OSError:
        return None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def iter_members(archive: str) -> Iterator[tarfile.TarInfo]:
    """The members of a bundle (for listing and tests)."""
    with open(archive, "rb") as f:
        with tarfile.open(fileobj=_open_stream(f), mode="r|*", bufsize=BUF) as tf:
            yield from tf
