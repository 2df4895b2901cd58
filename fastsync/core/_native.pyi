"""Type stub of the compiled core built from ext/_native.pyx (use fastsync.native, not this)."""
from typing import Optional, Union

_Buffer = Union[bytes, bytearray, memoryview]
_Digest = tuple[str, int]  # ("sha256:<hex>", size)

FEATURES: dict[str, Optional[str]]
"""What this build uses: sha256 "openssl"|"builtin", gzip "isa-l"|"zlib", zstd "libzstd"|None."""

class Error(ValueError):
    """Corrupt or truncated compressed input; fastsync.native re-raises it as CompressionError."""

class Pipeline:
    """input -> sha256 -> [decompress] -> sha256 -> [compress] -> sha256 -> output, GIL released.

    src/dst: 0 none, 1 gzip, 2 zstd. level: gzip 0-9 (1-3 ISA-L when built with it, others zlib), zstd 1-22
    (Error when built without libzstd).
    collect=False discards the output (digest-only use).
    """

    def __init__(self, src: int, dst: int, level: int, collect: bool) -> None: ...
    def feed(self, data: _Buffer) -> bytes: ...
    def finish(self) -> bytes: ...
    def digests(self) -> tuple[_Digest, _Digest, _Digest]:
        """(input, uncompressed, output); call once, after finish()."""

def sha256_file(path: bytes) -> _Digest: ...
def link_blobs(pairs: list[tuple[bytes, bytes]], readonly: bool = True) -> int: ...
