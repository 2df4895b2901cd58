"""What both backends share: block size, compression codes and levels, result and error types."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

BLOCK = 256 * 1024                  # must equal BLOCK in ext/_native.pyx (output parity)
ZSTD_THREADS = 1                    # zstd compresses on a worker thread (= ZSTD_WORKERS in the .pyx)
_CODES = {None: 0, "gzip": 1, "zstd": 2}
_DEFAULT_LEVEL = {"gzip": 3, "zstd": 3}     # gzip 3: ISA-L in the native core, ~4x zlib-6 for a few % size
_LEVELS = {"gzip": range(0, 10), "zstd": range(1, 23)}


class CompressionError(ValueError):
    """Compressed input is corrupt or truncated; ``str()`` is one line."""


@dataclass(frozen=True)
class DigestResult:
    digest: str                     # "sha256:<64 hex>"
    size: int


def detect_compression(head: bytes) -> Optional[str]:
    """"gzip" / "zstd" from a stream's first bytes (magic 1f8b / 28b52ffd), else None."""
    head = bytes(head[:4])
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return None


def _check(kind: Optional[str], what: str) -> None:
    if kind not in _CODES:
        raise ValueError(f"{what} must be 'gzip', 'zstd' or None, not {kind!r}")


# the libraries the pure-Python twin does each job with (and the native core falls back to for one
# it was built without)
PYTHON_LIBRARIES = {"sha256": "hashlib", "gzip": "zlib", "zstd": "zstandard"}
