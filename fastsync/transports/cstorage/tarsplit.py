"""tar-split metadata (github.com/vbatts/tar-split, storage/ and tar/asm/): a layer tar's exact bytes
minus its file contents, so the tar is rebuilt byte-for-byte from the files in a layer directory.

The format containers/storage keeps as `DRIVER-layers/ID.tar-split.gz`: gzip'd JSON lines, one
entry each, numbered by `position`:

    {"type":2,"payload":"<base64 raw bytes>","position":N}          a segment: headers and padding
    {"type":1,"name":"etc/passwd","size":S,"payload":"<base64 crc64>","position":N}   a member

A member's payload is the CRC-64 (ISO polynomial, as Go's hash/crc64 computes it, big-endian) of
its contents (null when empty); a name that is not UTF-8 is carried as base64 `name_raw`. Every
member of the tar has an entry, whatever its type; only those with contents are read back.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Union

import crcmod

from fastsync.errors import FastsyncError

SEGMENT = 2
FILE = 1
CHUNK = 1 << 20

crc64 = crcmod.mkCrcFun(0x1000000000000001B, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


class TarSplitError(FastsyncError):
    """tar-split metadata is unreadable or does not match the layer's files."""


def crc_bytes(crc: int) -> bytes:
    return crc.to_bytes(8, "big")


def name_fields(name: Union[str, bytes]) -> dict[str, str]:
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    try:
        return {"name": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"name_raw": base64.b64encode(raw).decode()}


class TarSplitWriter:
    """Writes the entries of one layer, in tar order, gzip'd to `path` (the caller renames it in)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._raw = open(path, "wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
        self._pos = 0

    def _entry(self, entry: dict) -> None:
        entry["position"] = self._pos
        self._pos += 1
        self._gz.write(json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")

    def segment(self, raw: bytes) -> None:
        for i in range(0, len(raw), CHUNK):
            self._entry({"type": SEGMENT, "payload": base64.b64encode(raw[i:i + CHUNK]).decode()})

    def member(self, name: Union[str, bytes], size: int, crc: Optional[int]) -> None:
        entry: dict = {"type": FILE, **name_fields(name)}
        if size:
            entry["size"] = size
        entry["payload"] = base64.b64encode(crc_bytes(crc)).decode() if size and crc is not None else None
        self._entry(entry)

    def close(self) -> None:
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()

    def abort(self) -> None:
        try:
            self._gz.close()
        except Exception:
            pass
        self._raw.close()


@dataclass(frozen=True)
class Entry:
    type: int
    name: bytes
    size: int
    payload: bytes


def read_entries(path: str) -> Iterator[Entry]:
    try:
        with gzip.open(path, "rb") as f:
            for n, line in enumerate(f):
                if not line.strip():
                    continue
                doc = json.loads(line)
                if "name_raw" in doc and doc["name_raw"]:
                    name = base64.b64decode(doc["name_raw"])
                else:
                    name = (doc.get("name") or "").encode("utf-8", "surrogateescape")
                payload = base64.b64decode(doc["payload"]) if doc.get("payload") else b""
                yield Entry(int(doc["type"]), name, int(doc.get("size") or 0), payload)
    except FileNotFoundError:
        raise TarSplitError(f"layer metadata {path} is missing") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise TarSplitError(f"layer metadata {path} is unreadable: {exc}") from None


def assemble(path: str, open_member: Callable[[bytes], int]) -> Iterator[bytes]:
    """The layer tar rebuilt from tar-split metadata `path`; `open_member(name)` gives a readable fd
    of a member's contents inside the layer. Each member's CRC-64 is checked."""
    for e in read_entries(path):
        if e.type == SEGMENT:
            if e.payload:
                yield e.payload
            continue
        if e.type != FILE or e.size <= 0:
            continue
        fd = open_member(e.name)
        try:
            crc, left = 0, e.size
            while left:
                data = os.read(fd, min(CHUNK, left))
                if not data:
                    raise TarSplitError(f"layer file {e.name.decode(errors='replace')!r} is shorter than "
                                        "its tar entry")
                crc = crc64(data, crc)
                left -= len(data)
                yield data
        finally:
            os.close(fd)
        if e.payload and crc_bytes(crc) != e.payload:
            raise TarSplitError(f"layer file {e.name.decode(errors='replace')!r} changed since the layer "
                                "was stored (checksum mismatch)")
