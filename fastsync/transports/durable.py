"""Making what a commit names durable before the commit point, in one batch.

A local destination writes and links files without syncing them, records what the next commit
point (a `dir:` image's rename into place, a registry-storage tag link) will depend on, and
flushes that set just before it: fsync(2) of each file (its data and inode) and of each directory
between it and the tree's root (the entries naming it, including directories created on the way).
That is what POSIX asks for and no more: unlike syncfs(2) it never waits for other programs' dirty
data on the same filesystem, and on a journalling filesystem the first fsync commits the journal
for all of them, so the rest of the batch finds clean inodes and returns at once.
"""
from __future__ import annotations

import os
from typing import Iterable


def fsync_path(path: str, directory: bool = False) -> None:
    """fsync(2) the file or directory at `path`."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ancestors(path: str, root: str) -> list[str]:
    """The directories from `path`'s parent up to `root` (inclusive), deepest first; [] outside root."""
    root = os.path.abspath(root)
    out = []
    d = os.path.dirname(os.path.abspath(path))
    while d == root or d.startswith(root.rstrip(os.sep) + os.sep):
        out.append(d)
        if d == root:
            break
        d = os.path.dirname(d)
    return out


class Pending:
    """Files a commit point will depend on, under `root`; `flush` makes them and their entries durable.

    Not thread-safe by itself: one destination records from the event loop, and flushes in a thread
    only while nothing else records (its commit)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.files: set[str] = set()

    def add(self, *paths: str) -> None:
        self.files.update(paths)

    def flush(self, extra_dirs: Iterable[str] = ()) -> None:
        """fsync every recorded file, then every directory from them up to the root (and
        `extra_dirs`); the set is empty afterwards. A file that is gone raises (a commit must not
        name it)."""
        files, self.files = sorted(self.files), set()
        dirs: set[str] = set(extra_dirs)
        for f in files:
            fsync_path(f)
            dirs.update(ancestors(f, self.root))
        for d in sorted(dirs, key=len, reverse=True):        # deepest first
            fsync_path(d, directory=True)
