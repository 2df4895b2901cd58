"""File helpers shared by the local transports: staged directories, atomic writes, blob files."""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import AsyncIterator, Optional

from .. import native
from ..errors import FastsyncError
from ..model import Descriptor


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
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def stream_to_file(path: str, chunks: AsyncIterator[bytes]) -> None:
    """Write a chunk stream to `path` atomically: the file appears only if the stream ends cleanly."""
    loop = asyncio.get_running_loop()
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                await loop.run_in_executor(None, f.write, chunk)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


async def place_file(src: str, dst: str, link: bool) -> None:
    """Hardlink (when `link`) or copy `src` to `dst`, atomically, off the event loop."""
    loop = asyncio.get_running_loop()
    if link:
        await loop.run_in_executor(None, native.link_blobs, [(src, dst)], True)
        return
    await loop.run_in_executor(None, _copy_atomic, src, dst)


def _copy_atomic(src: str, dst: str) -> None:
    d = os.path.dirname(dst) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        _unlink(tmp)
        raise


class StagedDir:
    """A directory written beside its final path and swapped in at commit (never half-written)."""

    def __init__(self, final: str) -> None:
        self.final = os.path.abspath(final)
        parent = os.path.dirname(self.final)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise FastsyncError(f"cannot create {parent}: {exc.strerror}") from None
        self.path = tempfile.mkdtemp(prefix=f".{os.path.basename(self.final)}.tmp-", dir=parent)

    def commit(self) -> None:
        old: Optional[str] = None
        if os.path.lexists(self.final):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(self.final)}.old-", dir=os.path.dirname(self.final))
            os.rename(self.final, os.path.join(old, "x"))
        os.rename(self.path, self.final)
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def blob_exists(path: str, desc: Descriptor) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return desc.size < 0 or st.st_size == desc.size
