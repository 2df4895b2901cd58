"""Micro-benchmarks of the native core against the pure-Python backend, side by side.

    python -m bench.micro [--mb 48]

Prints a markdown table. Throughput is MB/s (10^6 bytes) of *uncompressed* data for every
compression row, of hashed bytes for sha256, and blobs/s for linking. The corpus is a tar of
the running Python's standard library (text, bytecode and shared objects: layer-like data),
padded with generated source-like text if the library is small.
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from typing import Callable, Optional

import zstandard

from fastsync.core.native import load_backend

CHUNK = 1 << 20


def corpus(size: int) -> bytes:
    buf = io.BytesIO()
    root = os.path.dirname(os.__file__)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    tar.add(path, arcname=os.path.relpath(path, root), recursive=False)
                if buf.tell() >= size:
                    break
            if buf.tell() >= size:
                break
    data = buf.getvalue()
    seed = 1
    filler = bytearray()
    while len(data) + len(filler) < size:  # small stdlib: pad with source-like text
        seed = (seed * 6364136223846793005 + 1) & (2**64 - 1)
        filler += b"    def f%d(self, x):\n        return x * %d\n" % (seed % 9973, seed % 101)
    return (data + bytes(filler))[:size]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def feed_all(obj, data: bytes) -> None:
    view = memoryview(data)
    feed = obj.update if hasattr(obj, "update") else obj.feed
    for i in range(0, len(data), CHUNK):
        feed(view[i:i + CHUNK])
    obj.result() if hasattr(obj, "result") else obj.finish()


def zlib_gunzip(blob: bytes) -> None:
    d = zlib.decompressobj(31)
    view = memoryview(blob)
    for i in range(0, len(blob), CHUNK):
        d.decompress(view[i:i + CHUNK])
    d.flush()


def openssl_speed() -> Optional[float]:
    """`openssl speed -evp sha256` at 16 KiB blocks, MB/s."""
    try:
        out = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "2"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^sha256\s+([\d.]+)k\s*$", out, re.M)
    return float(m.group(1)) * 1000 / 1e6 if m else None


def link_trees(n: int):
    """Returns (pairs, reset) for linking n store blobs into an OCI-like tree."""
    base = tempfile.mkdtemp(prefix="fastsync-bench-")
    store = os.path.join(base, "store")
    os.makedirs(store)
    pairs = []
    for i in range(n):
        src = os.path.join(store, "%064x" % i)
        with open(src, "wb") as f:
            f.write(b"blob %d" % i)
        pairs.append((src, os.path.join(base, "out", "img%03d" % (i % 100), "blobs", "sha256", "%064x" % i)))

    def reset() -> None:
        shutil.rmtree(os.path.join(base, "out"), ignore_errors=True)
    return base, pairs, reset


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=48, help="corpus size in MB (default 48)")
    args = ap.parse_args(argv)
    try:
        nat = load_backend("native")
    except ImportError:
        sys.exit("the native core is not built: pip install -e . --no-build-isolation")
    py = load_backend("python")

    data = corpus(args.mb * 1_000_000)
    n = len(data)
    gz6 = gzip.compress(data, 6, mtime=0)
    zs3 = zstandard.ZstdCompressor(level=3).compress(data)
    rows = []

    def row(name: str, native_s: float, python_s: float, units: float, note: str = "", unit="MB/s"):
        a, b = units / native_s, units / python_s
        rows.append((name, f"{a:,.0f}", f"{b:,.0f}", f"{a / b:.1f}x", note, unit))

    speed = openssl_speed()
    import hashlib

    def hashlib_stream() -> None:
        h, view = hashlib.sha256(), memoryview(data)
        for i in range(0, n, CHUNK):
            h.update(view[i:i + CHUNK])
        h.hexdigest()
    row("sha256, 1 MiB chunks (Digester vs hashlib)", best(lambda: feed_all(nat.Digester(), data), 5),
        best(hashlib_stream, 5), n / 1e6, f"openssl speed -evp sha256: {speed:,.0f} MB/s" if speed else "")
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        row("sha256_file (mmap)", best(lambda: nat.sha256_file(f.name), 5),
            best(lambda: py.sha256_file(f.name), 5), n / 1e6, "page-cached file")
    row("gunzip (native vs zlib.decompressobj)", best(lambda: feed_all(nat.Recompressor("gzip", None), gz6), 3),
        best(lambda: zlib_gunzip(gz6), 3), n / 1e6, "native also hashes input and output")
    row("gzip layer digest + diff_id, one pass", best(lambda: feed_all(nat.Digester("gzip"), gz6), 3),
        best(lambda: feed_all(py.Digester("gzip"), gz6), 3), n / 1e6, "ISA-L + EVP vs zlib + hashlib")
    for level, note in ((1, "native: ISA-L level 1"), (3, "native: ISA-L level 3"), (6, "both zlib (identical bytes)")):
        nat_out = nat.Recompressor(None, "gzip", level)
        py_out = py.Recompressor(None, "gzip", level)
        feed_all(nat_out, data), feed_all(py_out, data)
        ratio = f"; size {nat_out.output.size / n:.3f} vs {py_out.output.size / n:.3f} of input"
        row(f"gzip compress, level {level}", best(lambda: feed_all(nat.Recompressor(None, "gzip", level), data), 1),
            best(lambda: feed_all(py.Recompressor(None, "gzip", level), data), 1), n / 1e6, note + ratio)
    row("gzip -> zstd (level 3)", best(lambda: feed_all(nat.Recompressor("gzip", "zstd"), gz6), 2),
        best(lambda: feed_all(py.Recompressor("gzip", "zstd"), gz6), 2), n / 1e6, "incl. 3 sha256 streams")
    row("zstd -> gzip (default level 3)", best(lambda: feed_all(nat.Recompressor("zstd", "gzip"), zs3), 1),
        best(lambda: feed_all(py.Recompressor("zstd", "gzip"), zs3), 1), n / 1e6, "ISA-L vs zlib")
    row("zstd -> gzip (level 6)", best(lambda: feed_all(nat.Recompressor("zstd", "gzip", 6), zs3), 1),
        best(lambda: feed_all(py.Recompressor("zstd", "gzip", 6), zs3), 1), n / 1e6, "zlib-bound in both")
    row("zstd -> gzip (level 1)", best(lambda: feed_all(nat.Recompressor("zstd", "gzip", 1), zs3), 2),
        best(lambda: feed_all(py.Recompressor("zstd", "gzip", 1), zs3), 2), n / 1e6, "ISA-L vs zlib")

    count = 10_000
    base, pairs, reset = link_trees(count)
    try:
        def native_link() -> float:
            reset()
            t0 = time.perf_counter()
            assert nat.link_blobs(pairs, readonly=False) == count
            return time.perf_counter() - t0

        def python_loop() -> float:
            reset()
            t0 = time.perf_counter()
            for src, dst in pairs:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.link(src, dst)
            return time.perf_counter() - t0

        def python_backend() -> float:
            reset()
            t0 = time.perf_counter()
            py.link_blobs(pairs, readonly=False)
            return time.perf_counter() - t0
        tn = min(native_link() for _ in range(3))
        tl = min(python_loop() for _ in range(3))
        tb = min(python_backend() for _ in range(3))
        row(f"link {count:,} blobs into 100 trees", tn, tl, count,
            f"python backend: {count / tb:,.0f} blobs/s", unit="blobs/s")
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"corpus: {n / 1e6:.0f} MB tar (gzip-6 ratio {len(gz6) / n:.3f}, zstd-3 {len(zs3) / n:.3f}); "
          f"{os.cpu_count()} cores; Python {sys.version.split()[0]}\n")
    print("| benchmark | native | python | speed-up | unit | note |")
    print("|---|---:|---:|---:|---|---|")
    for name, a, b, r, note, unit in rows:
        print(f"| {name} | {a} | {b} | {r} | {unit} | {note} |")


if __name__ == "__main__":
    main()
