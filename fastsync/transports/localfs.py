"""File helpers shared by the local transports: staged directories, atomic writes, blob files."""
from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import stat
import tempfile
from typing import AsyncIterator, Callable, Optional, TypeVar

from fastsync.core import native
from fastsync.errors import FastsyncError, UnsafeInput, no_space
from fastsync.model import Descriptor

T = TypeVar("T")


def _read_umask() -> int:
    """The process umask, read without changing it (os.umask(x) sets it for every thread meanwhile)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


UMASK = _read_umask()
# skopeo's dir: (containers/image) creates the image directory with MkdirAll(path, 0755)
DIR_MODE = 0o755 & ~UMASK


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in the default executor. Unlike a bare run_in_executor, a cancelled caller does not
    return before the thread is done: whoever cleans up after the cancellation (removing the directory
    the thread writes into) runs after it."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        while not fut.done():
            try:
                await asyncio.wait([fut])
            except asyncio.CancelledError:
                continue
        if not fut.cancelled():
            fut.exception()       # retrieved: the cancellation is what the caller sees
        raise


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def checked_file(path: str, root: str, what: str) -> Optional[str]:
    """`path` when it is a regular file inside the layout at `root` (symlinks that stay inside are
    followed), None when there is nothing there. A symlink (of the file or of a directory on its way)
    that leaves the layout, a FIFO, a device or a socket is refused (UnsafeInput): a layout must not
    make us read /etc/passwd as a blob, or block forever on a pipe."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    real, base = os.path.realpath(path), os.path.realpath(root)
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise UnsafeInput(f"{what}: {path} is a symlink leaving {root} (to {real}); refusing to read it")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise UnsafeInput(f"{what}: {path} is {kind}, not a regular file; refusing to read it")
    return path


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync and rename."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        _unlink(tmp)
        _name_written(exc, path)
        raise


def _name_written(exc: BaseException, path: str) -> None:
    """A failed write says which file it was writing (a full disk is reported with the path)."""
    if no_space(exc):
        assert isinstance(exc, OSError)
        exc.filename = path


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def stream_to_file(path: str, chunks: AsyncIterator[bytes]) -> None:
    """Write a chunk stream to `path` atomically: the file appears only if the stream ends cleanly."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                await in_thread(f.write, chunk)
        os.replace(tmp, path)
    except BaseException as exc:
        _unlink(tmp)
        _name_written(exc, path)
        raise


async def place_file(src: str, dst: str, link: bool) -> None:
    """Hardlink (when `link`) or copy `src` to `dst`, atomically, off the event loop."""
    if link:
        await in_thread(native.link_blobs, [(src, dst)], True)
        return
    await in_thread(_copy_atomic, src, dst)


def _copy_atomic(src: str, dst: str) -> None:
    d = os.path.dirname(dst) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException as exc:
        _unlink(tmp)
        _name_written(exc, dst)
        raise


class StagedDir:
    """A directory written beside its final path and swapped in at commit (never half-written).

    The staging directory is `.NAME.tmp-XXXXXXXX` in the final path's parent, mode 0755 & ~umask (what
    skopeo gives its dir: images), and held under an flock while in use: a commit removes stale staging
    directories of the same NAME (a killed run's) that nobody holds."""

    def __init__(self, final: str) -> None:
        self.final = os.path.abspath(final)
        parent = os.path.dirname(self.final)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise FastsyncError(f"cannot create {parent}: {exc.strerror}") from None
        self.prefix = f".{os.path.basename(self.final)}.tmp-"
        self._lock: Optional[int] = None
        for attempt in range(3):
            self.path = tempfile.mkdtemp(prefix=self.prefix, dir=parent)
            try:
                self._lock = _hold(self.path)
                # another run's sweep may have taken it between mkdtemp and the lock: then it is gone
                if os.fstat(self._lock).st_ino == os.lstat(self.path).st_ino:
                    os.chmod(self.path, DIR_MODE)
                    break
            except OSError:
                if attempt == 2:
                    raise
            self._release()
        else:
            raise FastsyncError(f"cannot create a staging directory in {parent}")

    def commit(self) -> None:
        old: Optional[str] = None
        if os.path.lexists(self.final):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(self.final)}.old-", dir=os.path.dirname(self.final))
            os.rename(self.final, os.path.join(old, "x"))
        os.rename(self.path, self.final)
        self._release()
        if old:
            shutil.rmtree(old, ignore_errors=True)
        sweep_stale(os.path.dirname(self.final), self.prefix)

    def abort(self) -> None:
        """Remove the staging directory. A second pass catches an entry that appeared while the first
        ran (nothing should write here any more; this is a safety net, not the synchronisation)."""
        for _ in range(2):
            shutil.rmtree(self.path, ignore_errors=True)
            if not os.path.lexists(self.path):
                break
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


_MKDTEMP_SUFFIX = re.compile(r"[a-z0-9_]{8}")   # tempfile's names: 8 of "abcdefghijklmnopqrstuvwxyz0123456789_"


def _hold(path: str) -> int:
    """An fd holding an exclusive flock on directory `path` (released when closed or the process ends)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sweep_stale(parent: str, prefix: str) -> list[str]:
    """Remove `parent/PREFIXxxxxxxxx` staging directories (exactly mkdtemp's suffix, real directories)
    that no live StagedDir holds; returns the paths removed. Never raises."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix) or not _MKDTEMP_SUFFIX.fullmatch(name[len(prefix):]):
            continue
        path = os.path.join(parent, name)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                continue
            fd = _hold(path)
        except OSError:
            continue               # held by a live writer, gone, or unreadable: leave it
        try:
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.lexists(path):
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def blob_exists(path: str, desc: Descriptor) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return desc.size < 0 or st.st_size == desc.size
