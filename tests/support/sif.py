"""Build SIF files (Singularity's container format, sylabs/sif v2 layout) for tests.

A SIF file is a 128-byte global header, a table of fixed-size (585-byte) object descriptors,
then the objects' data. `write_sif` lays out a squashfs partition (the primary system
partition, which containers/image and fastsync convert to a layer) and optionally a definition
file, as `singularity build` would; `make_squashfs` packs a directory tree with mksquashfs.
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Optional, Sequence

HEADER = struct.Struct("<32s10s3s3s16s8q")
DESCRIPTOR = struct.Struct("<i?IIIqqqqqqq128s384s")
PARTITION_EXTRA = struct.Struct("<ii3s")
DATA_DEFFILE, DATA_ENVVAR, DATA_LABELS, DATA_PARTITION = 0x4001, 0x4002, 0x4003, 0x4004
FS_SQUASH, FS_EXT3, FS_RAW = 1, 2, 4
PART_SYSTEM, PART_PRIMSYS, PART_DATA = 1, 2, 3
ARCH_CODES = {"386": b"01", "amd64": b"02", "arm": b"03", "arm64": b"04", "ppc64le": b"06", "s390x": b"11",
              "riscv64": b"12"}
GROUP = 0xF0000000 | 1
ALIGN = 4096


def make_squashfs(tree: Path, out: Path) -> bytes:
    """A squashfs image of `tree` (fixed times, so the same tree gives the same bytes)."""
    subprocess.run(["mksquashfs", str(tree), str(out), "-noappend", "-quiet", "-no-progress", "-mkfs-time", "0",
                    "-all-time", "1672531200"], check=True, capture_output=True)
    return out.read_bytes()


def write_sif(path: Path, squashfs: bytes, deffile: Optional[bytes] = None, arch: str = "amd64",
              modified: int = 1672574645, uuid: bytes = bytes(range(16)), part_type: int = PART_PRIMSYS,
              fs_type: int = FS_SQUASH, extra_partitions: Sequence[tuple[int, int, bytes]] = (),
              magic: bytes = b"SIF_MAGIC\0", version: bytes = b"01\0") -> None:
    """Write a SIF file: [deffile], the system partition, then `extra_partitions` ((part, fs, data))."""
    objects: list[tuple[int, bytes, bytes]] = []      # (data type, data, extra)
    if deffile is not None:
        objects.append((DATA_DEFFILE, deffile, b""))
    code = ARCH_CODES[arch] + b"\0"
    objects.append((DATA_PARTITION, squashfs, PARTITION_EXTRA.pack(fs_type, part_type, code)))
    for part, fs, data in extra_partitions:
        objects.append((DATA_PARTITION, data, PARTITION_EXTRA.pack(fs, part, code)))
    total = len(objects) + 2                          # and two free slots, as images usually have
    desc_offset = HEADER.size
    data_offset = -(-(desc_offset + total * DESCRIPTOR.size) // ALIGN) * ALIGN
    table, blobs, offset = [], bytearray(), data_offset
    for i, (dtype, data, extra) in enumerate(objects, start=1):
        padded = -(-len(data) // ALIGN) * ALIGN
        name = b"rootfs" if dtype == DATA_PARTITION else b""
        table.append(DESCRIPTOR.pack(dtype, True, i, GROUP, 0, offset, len(data), padded, modified, modified, 0, 0,
                                     name, extra))
        blobs += data + bytes(padded - len(data))
        offset += padded
    table += [bytes(DESCRIPTOR.size)] * (total - len(objects))
    header = HEADER.pack(b"#!/usr/bin/env run-singularity\n", magic, version, code, uuid, modified, modified,
                         total - len(objects), total, desc_offset, total * DESCRIPTOR.size, data_offset, len(blobs))
    with open(path, "wb") as f:
        f.write(header)
        f.write(b"".join(table))
        f.write(bytes(data_offset - f.tell()))
        f.write(blobs)
