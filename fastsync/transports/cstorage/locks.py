"""containers/storage's lock files (pkg/lockfile): POSIX record locks plus a last-writer token.

Every lock file (storage.lock, DRIVER-layers/layers.lock, DRIVER-images/images.lock) is locked
whole with fcntl(F_SETLKW) — shared for reading, exclusive for writing — and a writer records its
write by putting a fresh 64-byte token at offset 0 before it replaces the JSON: every other process
compares the token with the one it saw and reloads when it changed.

POSIX locks belong to the process, and closing any descriptor of the file drops them all, so each
path has one descriptor for the life of the process (the registry below) and a thread lock that
keeps this process's own threads apart.
"""
from __future__ import annotations

import fcntl
import itertools
import os
import struct
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from fastsync.errors import FastsyncError

TOKEN_SIZE = 64
_COUNTER = itertools.count(1)


class LockFile:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FastsyncError(f"cannot open lock file {path}: {exc.strerror}") from None
        self.thread_lock = threading.Lock()

    @contextmanager
    def held(self, exclusive: bool) -> Iterator["LockFile"]:
        with self.thread_lock:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            except OSError as exc:
                raise FastsyncError(f"cannot lock {self.path}: {exc.strerror}") from None
            try:
                yield self
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def record_write(self) -> None:
        """A new last-writer token (time, counter, pid, random), as lockfile.RecordWrite writes it."""
        token = struct.pack("<QQI", time.time_ns(), next(_COUNTER), os.getpid()) + os.urandom(TOKEN_SIZE - 20)
        os.pwrite(self.fd, token, 0)

    def token(self) -> bytes:
        return os.pread(self.fd, TOKEN_SIZE, 0)


_REGISTRY: dict[str, LockFile] = {}
_REGISTRY_LOCK = threading.Lock()


def lock_file(path: str) -> LockFile:
    """The process's one LockFile for `path` (created with the file when missing)."""
    key = os.path.realpath(path)
    with _REGISTRY_LOCK:
        lf = _REGISTRY.get(key)
        if lf is None:
            lf = _REGISTRY[key] = LockFile(key)
        return lf


@contextmanager
def locked(*specs: tuple[str, bool]) -> Iterator[list[LockFile]]:
    """Take the lock files `specs` ((path, exclusive), in containers/storage's order: storage.lock,
    layers.lock, images.lock) and release them in reverse."""
    held: list[LockFile] = []
    stack = []
    try:
        for path, exclusive in specs:
            lf = lock_file(path)
            cm = lf.held(exclusive)
            cm.__enter__()
            stack.append(cm)
            held.append(lf)
        yield held
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)
