"""Whole-file reads for the native core: numpy.memmap slices against read() chunks (issue 17).

    python -m bench.memmap_bench [--mb 256] [--reps 7]

Where fastsync reads whole files (an upload from the store, `cache verify`, a copy across
filesystems), would mapping the file with numpy.memmap and handing memoryview slices to the native
core (no copy into a bytes object) beat what it does now? Each row hashes one file already in the
page cache, as an upload from a warm cache does:

* read(1 MiB) chunks fed to native.Digester -- today's upload path (transports/base.file_chunks)
* numpy.memmap, 1 MiB memoryview slices fed to native.Digester -- the candidate
* mmap.mmap (the standard library), the same slices -- the candidate without numpy
* native.sha256_file -- today's `cache verify` (mmap inside the extension, GIL released)

and, for copies across filesystems, copy_file_range (what link_blobs does) against writing
numpy.memmap slices to a new file. Medians of alternating runs, MB/s (10^6 bytes).
"""
from __future__ import annotations

import argparse
import mmap
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

from fastsync.core import native

CHUNK = 1 << 20


def by_read(path: str) -> str:
    d = native.Digester()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            d.update(chunk)
    return d.result().digest


def by_numpy_memmap(path: str) -> str:
    import numpy

    d = native.Digester()
    view = memoryview(numpy.memmap(path, dtype=numpy.uint8, mode="r"))
    for off in range(0, len(view), CHUNK):
        d.update(view[off:off + CHUNK])
    return d.result().digest


def by_mmap(path: str) -> str:
    d = native.Digester()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = memoryview(m)
        for off in range(0, len(view), CHUNK):
            d.update(view[off:off + CHUNK])
        view.release()
    return d.result().digest


def by_sha256_file(path: str) -> str:
    return native.sha256_file(path).digest


def copy_by_range(src: str, dst: str) -> None:
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        left = os.fstat(fi.fileno()).st_size
        while left:
            left -= os.copy_file_range(fi.fileno(), fo.fileno(), left)


def copy_by_numpy_memmap(src: str, dst: str) -> None:
    import numpy

    view = memoryview(numpy.memmap(src, dtype=numpy.uint8, mode="r"))
    with open(dst, "wb") as fo:
        for off in range(0, len(view), CHUNK):
            fo.write(view[off:off + CHUNK])


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memmap_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fastsync-memmap-") as tmp:
        path = os.path.join(tmp, "blob")
        with open(path, "wb") as f:
            f.write(os.urandom(args.mb << 20))
        size = os.path.getsize(path)
        hashers: dict[str, Callable[[str], str]] = {
            "read() 1 MiB chunks -> Digester (upload path today)": by_read,
            "numpy.memmap slices -> Digester": by_numpy_memmap,
            "mmap.mmap slices -> Digester": by_mmap,
            "native.sha256_file (cache verify today)": by_sha256_file,
        }
        copies: dict[str, Callable[[str, str], None]] = {
            "copy_file_range (link_blobs across filesystems today)": copy_by_range,
            "numpy.memmap slices -> write()": copy_by_numpy_memmap,
        }
        digests = {fn(path) for fn in hashers.values()}
        assert len(digests) == 1, digests
        times: dict[str, list[float]] = {k: [] for k in [*hashers, *copies]}
        for _ in range(args.reps):
            for k, fn in hashers.items():
                t0 = time.perf_counter()
                fn(path)
                times[k].append(time.perf_counter() - t0)
            for k, cp in copies.items():
                out = os.path.join(tmp, "copy")
                t0 = time.perf_counter()
                cp(path, out)
                times[k].append(time.perf_counter() - t0)
                os.unlink(out)
    print(f"| whole-file read ({args.mb} MiB, page cache, backend {native.BACKEND}) | MB/s (median) |")
    print("| --- | ---: |")
    for k, v in times.items():
        print(f"| {k} | {size / statistics.median(v) / 1e6:.0f} |")
    print(f"\nload: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
