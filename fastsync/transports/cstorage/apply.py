"""Extracting one layer tar into a layer directory, recording its tar-split metadata on the way.

As containers/storage's archive.UnpackLayer does it: entries are created with the tar's mode,
owner, times and xattrs (the caller is root: in a user namespace or for real); `.wh.NAME` removes
NAME (vfs, whose layer directory starts as a copy of the parent) or becomes a 0:0 character device
(overlay's whiteout); `.wh..wh..opq` empties the directory of what lower layers put there (vfs) or
marks it opaque (overlay's `trusted.overlay.opaque` xattr). Names are resolved inside the layer
root only: an absolute name, a `..` component or a hard link leaving the root is an error, and a
symlink met on the way is followed as if the root were `/`.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from typing import Optional

from fastsync.errors import FastsyncError
from fastsync.transports.cstorage.tarsplit import CHUNK, TarSplitWriter, crc64

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_MAX_LINKS = 255


class LayerError(FastsyncError):
    """A layer tar is malformed or unsafe to extract."""


@dataclass
class Applied:
    uids: set[int] = field(default_factory=set)
    gids: set[int] = field(default_factory=set)
    size: int = 0


def _components(name: str, what: str) -> list[str]:
    if name.startswith("/"):
        raise LayerError(f"{what}: entry {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"{what}: entry {name!r} leaves the layer (a '..' component)")
    return parts


def resolve(root: str, parts: list[str], what: str) -> str:
    """`root/parts...` with every symlink on the way followed inside `root` (as a chroot would)."""
    done: list[str] = []
    todo = list(parts)
    links = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        path = os.path.join(root, *done, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            done.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise LayerError(f"{what}: too many levels of symbolic links under {'/'.join(parts)!r}")
            target = os.readlink(path)
            if target.startswith("/"):
                done = []
            todo = target.split("/") + todo
            continue
        done.append(part)
    return os.path.join(root, *done)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _raw_name(ti: tarfile.TarInfo, f) -> str:
    """The member's name as Go's archive/tar gives it (tarfile drops a directory's trailing '/')."""
    if "path" in ti.pax_headers:
        return ti.pax_headers["path"]
    name = ti.name
    if ti.isdir() and not name.endswith("/"):
        f.seek(ti.offset_data - 512)
        if f.read(100).split(b"\0", 1)[0].endswith(b"/"):
            name += "/"
    return name


class Extractor:
    """One layer: `run()` reads the tar at `tar_path`, writes the files under `root` and the
    tar-split entries to `split`."""

    def __init__(self, tar_path: str, root: str, driver: str, split: TarSplitWriter, what: str) -> None:
        self.tar_path = tar_path
        self.root = root
        self.driver = driver
        self.split = split
        self.what = what
        self.created: set[str] = set()
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.result = Applied()

    def run(self) -> Applied:
        size = os.path.getsize(self.tar_path)
        with open(self.tar_path, "rb") as f:
            end = 0
            if size:
                try:
                    tf = tarfile.open(fileobj=f, mode="r:", ignore_zeros=False)
                except tarfile.ReadError as exc:
                    raise LayerError(f"{self.what}: not a tar archive ({exc})") from None
                while True:
                    try:
                        ti = tf.next()
                    except tarfile.TarError as exc:
                        raise LayerError(f"{self.what}: malformed tar ({exc})") from None
                    if ti is None:
                        break
                    if ti.issparse():
                        raise LayerError(f"{self.what}: sparse file {ti.name!r} is not supported")
                    here = f.tell()
                    f.seek(end)
                    self.split.segment(f.read(ti.offset_data - end))
                    name = _raw_name(ti, f)
                    crc = self._entry(ti, f)
                    self.split.member(name, ti.size, crc)
                    end = ti.offset_data + (ti.size if ti.type in _REGULAR else 0)
                    f.seek(here)
            f.seek(end)
            while True:
                tail = f.read(CHUNK)
                if not tail:
                    break
                self.split.segment(tail)
        for path, ti in reversed(self.dirs):
            self._times(path, ti)
        return self.result

    # ---- one entry ----------------------------------------------------------------------------

    def _entry(self, ti: tarfile.TarInfo, f) -> Optional[int]:
        self.result.uids.add(ti.uid)
        self.result.gids.add(ti.gid)
        parts = _components(ti.name, self.what)
        if not parts:
            return None                               # "./": the layer root itself is left as it is
        base = parts[-1]
        parent = resolve(self.root, parts[:-1], self.what)
        if base.startswith(WHITEOUT):
            self._whiteout(parent, base)
            return None
        os.makedirs(parent, 0o755, exist_ok=True)
        path = os.path.join(parent, base)
        crc = None
        if ti.isdir():
            try:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(path)
                    os.mkdir(path, 0o700)
            except FileNotFoundError:
                os.mkdir(path, 0o700)
            self.dirs.append((path, ti))
        else:
            _remove(path)
            if ti.type in _REGULAR:
                crc = self._file(path, ti, f)
            elif ti.issym():
                os.symlink(ti.linkname, path)
            elif ti.islnk():
                tparts = _components(ti.linkname, self.what)
                if not tparts:
                    raise LayerError(f"{self.what}: hard link {ti.name!r} points at the layer root")
                # the link names the entry itself (a symlink stays a symlink), not what it points at
                target = os.path.join(resolve(self.root, tparts[:-1], self.what), tparts[-1])
                try:
                    os.link(target, path, follow_symlinks=False)
                except FileNotFoundError:
                    raise LayerError(f"{self.what}: hard link {ti.name!r} points at missing {ti.linkname!r}") \
                        from None
            elif ti.ischr() or ti.isblk() or ti.isfifo():
                kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
                try:
                    os.mknod(path, kind | 0o600, os.makedev(ti.devmajor, ti.devminor))
                except PermissionError:
                    raise LayerError(f"{self.what}: cannot create device node {ti.name!r}: permission denied "
                                     "(device nodes need root; run as root or inside `podman unshare`)") from None
            else:
                raise LayerError(f"{self.what}: entry {ti.name!r} has unsupported type {ti.type!r}")
        self.created.add(path)
        if ti.islnk():
            return crc                                # the inode is the target's: its metadata stays
        self._owner_mode_xattrs(path, ti)
        if not ti.isdir():
            self._times(path, ti)
        return crc

    def _file(self, path: str, ti: tarfile.TarInfo, f) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        crc, left = 0, ti.size
        f.seek(ti.offset_data)
        try:
            while left:
                data = f.read(min(CHUNK, left))
                if not data:
                    raise LayerError(f"{self.what}: the tar is truncated in {ti.name!r}")
                crc = crc64(data, crc)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                left -= len(data)
        finally:
            os.close(fd)
        self.result.size += ti.size
        return crc

    def _whiteout(self, parent: str, base: str) -> None:
        if base == OPAQUE:
            os.makedirs(parent, 0o755, exist_ok=True)
            if self.driver == "overlay":
                os.setxattr(parent, OPAQUE_XATTR, b"y")
                return
            for name in os.listdir(parent):
                child = os.path.join(parent, name)
                if child not in self.created:
                    _remove(child)
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return                                     # aufs metadata (.wh..wh.plnk and the like)
        victim = os.path.join(parent, base[len(WHITEOUT):])
        _remove(victim)
        if self.driver == "overlay":
            os.makedirs(parent, 0o755, exist_ok=True)
            os.mknod(victim, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        self.created.discard(victim)

    def _owner_mode_xattrs(self, path: str, ti: tarfile.TarInfo) -> None:
        try:
            os.lchown(path, ti.uid, ti.gid)
        except OSError as exc:
            raise LayerError(f"{self.what}: cannot give {ti.name!r} owner {ti.uid}:{ti.gid}: {exc.strerror} "
                             "(run as root or inside `podman unshare`)") from None
        for key, value in ti.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                try:
                    os.setxattr(path, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                        raise LayerError(f"{self.what}: cannot set xattr {key[13:]} on {ti.name!r}: "
                                         f"{exc.strerror}") from None
        if not ti.issym():
            os.chmod(path, ti.mode & 0o7777)

    def _times(self, path: str, ti: tarfile.TarInfo) -> None:
        ns = int(round(float(ti.mtime) * 1e9))
        try:
            os.utime(path, ns=(ns, ns), follow_symlinks=False)
        except OSError:
            pass
