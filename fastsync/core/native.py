"""The hot paths: streaming sha256, gzip/zstd (re)compression, batch hardlinking.

Two backends with identical behaviour: the compiled core (``fastsync.core._native``, built from
``ext/``; loops run without the GIL) and a pure-Python fallback (hashlib, zlib, zstandard,
os.link). ``FASTSYNC_BACKEND=python`` forces the fallback, ``FASTSYNC_BACKEND=native`` makes a
missing extension an ImportError; unset picks native when it imports. ``load_backend(name)``
gives either one explicitly (the tests run against both).

Compressed output is deterministic for a given backend, level and input, whatever the chunking:
both backends hand the compressor fixed ``BLOCK``-sized pieces of the uncompressed stream.
gzip output is one member, mtime 0, no name, OS 255. gzip levels 0 and 4-9 use zlib in both
backends (4-9 give byte-identical output when both link the same zlib; level 0's stored blocks
follow output buffer sizes); levels 1-3 use ISA-L in the native backend (several times faster,
a few percent larger). zstd output carries a content checksum.

The extension's libraries are each optional at build time (``accelerations()`` names what runs):
without OpenSSL it hashes with its own SHA-256, without ISA-L zlib does every gzip level (levels
1-3 then match the Python backend's bytes), without libzstd zstd streams go through the zstandard
package while everything else stays native.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, ClassVar, Optional, Sequence

from fastsync.core.codec import (_CODES, _DEFAULT_LEVEL, _LEVELS, BLOCK, ZSTD_THREADS, CompressionError, DigestResult,
                                 PYTHON_LIBRARIES, _check, detect_compression)
from fastsync.core.pure import _py_link_blobs, _py_sha256_file, _PyPipeline

__all__ = [
    "BACKEND", "CompressionError", "DigestResult", "detect_compression", "Digester",
    "sha256_file", "Recompressor", "link_blobs", "load_backend", "Backend", "BLOCK", "ZSTD_THREADS",
    "accelerations",
]


def _results(pipeline: Any) -> tuple:
    return tuple(DigestResult(d, n) for d, n in pipeline.digests())


class Digester:
    """Streaming sha256 of the bytes fed; with ``uncompressed`` also the diff_id, same pass."""

    _engine: ClassVar[Callable[..., Any]]

    def __init__(self, uncompressed: Optional[str] = None) -> None:
        _check(uncompressed, "uncompressed")
        self._kind = uncompressed
        self._p = self._engine(_CODES[uncompressed], 0, 0, False)
        self._result: Optional[DigestResult] = None
        self._diff_id: Optional[DigestResult] = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._p.feed(data)

    def result(self) -> DigestResult:
        if self._result is None:
            self._p.finish()
            inp, unc, _ = _results(self._p)
            self._result, self._diff_id = inp, (unc if self._kind else None)
        return self._result

    @property
    def diff_id(self) -> Optional[DigestResult]:
        return self._diff_id


class Recompressor:
    """One streaming pass src -> dst, with digests of the input, uncompressed and output streams."""

    _engine: ClassVar[Callable[..., Any]]
    input: DigestResult
    uncompressed: DigestResult
    output: DigestResult

    def __init__(self, src: Optional[str], dst: Optional[str], level: Optional[int] = None) -> None:
        _check(src, "src")
        _check(dst, "dst")
        if dst is not None:
            level = _DEFAULT_LEVEL[dst] if level is None else level
            if level not in _LEVELS[dst]:
                r = _LEVELS[dst]
                raise ValueError(f"{dst} level must be {r.start}..{r.stop - 1}, not {level}")
        self.src, self.dst, self.level = src, dst, level
        self._p = self._engine(_CODES[src], _CODES[dst], level or 0, True)

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._p.feed(data)

    def finish(self) -> bytes:
        out = self._p.finish()
        self.input, self.uncompressed, self.output = _results(self._p)
        return out


@dataclass(frozen=True)
class Backend:
    """One backend's implementation of the API (see ``load_backend``)."""

    name: str
    Digester: type
    Recompressor: type
    sha256_file: Callable[[str], DigestResult]
    link_blobs: Callable[..., int]


def _native_engine(mod: ModuleType) -> Callable[..., Any]:
    zstd_inside = _features(mod)["zstd"] is not None
    zstd = _CODES["zstd"]

    class _Engine:
        __slots__ = ("_p",)

        def __init__(self, src: int, dst: int, level: int, collect: bool) -> None:
            if not zstd_inside and zstd in (src, dst):   # built without libzstd: the zstandard package
                self._p = _PyPipeline(src, dst, level, collect)
                return
            self._p = mod.Pipeline(src, dst, level, collect)

        def feed(self, data: Any) -> bytes:
            try:
                return self._p.feed(data)
            except mod.Error as exc:
                raise CompressionError(str(exc)) from None

        def finish(self) -> bytes:
            try:
                return self._p.finish()
            except mod.Error as exc:
                raise CompressionError(str(exc)) from None

        def digests(self) -> tuple:
            return self._p.digests()
    return _Engine


def _features(mod: ModuleType) -> dict[str, Optional[str]]:
    # an extension built before the libraries became optional linked all three
    return dict(getattr(mod, "FEATURES", {"sha256": "openssl", "gzip": "isa-l", "zstd": "libzstd"}))


def accelerations() -> dict[str, str]:
    """Which library does each job in the chosen backend: {"sha256", "gzip", "zstd"} -> name."""
    if _CHOSEN.name == "python":
        return dict(PYTHON_LIBRARIES)
    from fastsync.core import _native as mod
    found = _features(mod)
    return {job: found[job] or lib for job, lib in PYTHON_LIBRARIES.items()}


def load_backend(name: str) -> Backend:
    """The "native" or "python" backend; ImportError if native is asked for and not built."""
    if name == "python":
        engine: Callable[..., Any] = _PyPipeline
        sha, link = _py_sha256_file, _py_link_blobs
    elif name == "native":
        from fastsync.core import _native as mod
        engine = _native_engine(mod)

        def sha(path: str) -> DigestResult:
            return DigestResult(*mod.sha256_file(os.fsencode(path)))

        def link(pairs: Sequence[tuple], readonly: bool = True) -> int:
            return mod.link_blobs([(os.fsencode(s), os.fsencode(d)) for s, d in pairs], bool(readonly))
    else:
        raise ValueError(f"unknown backend {name!r} (use 'native' or 'python')")
    dig = type("Digester", (Digester,), {"_engine": staticmethod(engine), "__module__": __name__})
    rec = type("Recompressor", (Recompressor,), {"_engine": staticmethod(engine), "__module__": __name__})
    return Backend(name, dig, rec, sha, link)


def _choose() -> Backend:
    wanted = os.environ.get("FASTSYNC_BACKEND", "").strip().lower()
    if wanted in ("python", "native"):
        return load_backend(wanted)
    try:
        return load_backend("native")
    except ImportError:
        return load_backend("python")


_CHOSEN = _choose()
BACKEND: str = _CHOSEN.name
Digester._engine = staticmethod(_CHOSEN.Digester._engine)  # type: ignore[assignment]
Recompressor._engine = staticmethod(_CHOSEN.Recompressor._engine)  # type: ignore[assignment]


def sha256_file(path: str) -> DigestResult:
    """sha256 and size of a whole file, hashed over an mmap (GIL released in native)."""
    return _CHOSEN.sha256_file(path)


def link_blobs(pairs: Sequence[tuple[str, str]], readonly: bool = True) -> int:
    """Hardlink each (src, dst), creating parents; copy across filesystems. Returns links made.

    An existing dst that is already src's inode is kept (and counted as linked); a different
    one is replaced atomically (temp name + rename). Copies (EXDEV/EPERM/EMLINK) are not counted.
    """
    return _CHOSEN.link_blobs(pairs, readonly)
