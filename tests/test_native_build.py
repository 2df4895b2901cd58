"""The native core builds without its optional libraries and falls back inside the extension.

One build (setup.py build_ext in a temporary tree, FASTSYNC_NATIVE_WITHOUT=isal,zstd,openssl), then a
subprocess that loads that build as fastsync.core._native and checks digests, round trips and the
accelerations it reports against hashlib, zlib and zstandard.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")

CHECK = r'''
import gzip, hashlib, importlib.util, json, os, sys, zlib
import zstandard
spec = importlib.util.spec_from_file_location("fastsync.core._native", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
sys.modules["fastsync.core._native"] = mod
os.environ["FASTSYNC_BACKEND"] = "native"
from fastsync.core import native

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

out = {"features": mod.FEATURES, "accelerations": native.accelerations(), "backend": native.BACKEND}
data = bytes(range(256)) * 4096 + b"tail"
# the built-in SHA-256 across block boundaries (55/56/63/64 bytes: one or two padding blocks)
sizes = [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, len(data)]
for n in sizes:
    one = native.Digester()
    one.update(data[:n])
    assert one.result().digest == sha(data[:n]), n
path = sys.argv[2]
with open(path, "wb") as f:
    f.write(data)
assert native.sha256_file(path).digest == sha(data)
# gzip on zlib: every level decodes back; levels 1-3 decode to the same bytes; crc/isize trailer checked
for level in (1, 3, 6):
    r = native.Recompressor(None, "gzip", level)
    gz = b"".join(r.feed(data[i:i + 70000]) for i in range(0, len(data), 70000)) + r.finish()
    assert gzip.decompress(gz) == data and r.output.digest == sha(gz) and r.uncompressed.digest == sha(data)
two = gzip.compress(data[:5000], mtime=0) + gzip.compress(data[5000:], mtime=0)   # two members
r = native.Recompressor("gzip", None)
assert r.feed(two) + r.finish() == data and r.uncompressed.digest == sha(data)
bad = bytearray(gzip.compress(data, mtime=0)); bad[-8] ^= 1
try:
    r = native.Recompressor("gzip", None)
    r.feed(bytes(bad))
    r.finish()
    raise SystemExit("a corrupt crc32 was accepted")
except native.CompressionError as exc:
    out["crc_error"] = str(exc)
# zstd without libzstd: the zstandard package, same digests
zs = zstandard.ZstdCompressor(level=3).compress(data)
r = native.Recompressor("zstd", "gzip", 1)
gz = r.feed(zs) + r.finish()
assert gzip.decompress(gz) == data and r.input.digest == sha(zs) and r.uncompressed.digest == sha(data)
r = native.Recompressor("gzip", "zstd", 3)
z = r.feed(gz) + r.finish()
assert zstandard.ZstdDecompressor().decompressobj().decompress(z) == data and r.output.digest == sha(z)
try:
    mod.Pipeline(2, 0, 0, False)
    raise SystemExit("the extension accepted zstd without libzstd")
except mod.Error as exc:
    out["zstd_refused"] = str(exc)
print(json.dumps(out))
'''


def _build_without(tmp_path: Path, libraries: str) -> tuple[Path, subprocess.CompletedProcess]:
    """`setup.py build_ext` on a copy of setup.py and ext/ with FASTSYNC_NATIVE_WITHOUT=`libraries`;
    the tree and the finished build."""
    tree = tmp_path / "src"
    (tree / "fastsync" / "core").mkdir(parents=True)
    shutil.copy2(ROOT / "setup.py", tree / "setup.py")
    shutil.copytree(ROOT / "ext", tree / "ext", ignore=shutil.ignore_patterns("*.c", "*.so"))
    env = {**os.environ, "FASTSYNC_NATIVE_WITHOUT": libraries, "FASTSYNC_REQUIRE_NATIVE": "1"}
    env.pop("FASTSYNC_NO_EXT", None)
    return tree, subprocess.run([sys.executable, "setup.py", "build_ext", "--build-lib", "out", "--build-temp", "tmp"],
                                cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_native_core_builds_without_isal_zstd_openssl_and_falls_back_inside(tmp_path):
    tree, build = _build_without(tmp_path, "isal,zstd,openssl")
    assert build.returncode == 0, build.stderr[-2000:]
    assert "native core built (without optional libraries)" in build.stderr
    so = next((tree / "out" / "fastsync" / "core").glob("_native*.so"))
    # what the build links: zlib and libc only
    ldd = subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout
    assert "libcrypto" not in ldd and "libisal" not in ldd and "libzstd" not in ldd, ldd

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.run([sys.executable, "-c", CHECK, str(so), str(tmp_path / "blob")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["features"] == {"sha256": "builtin", "gzip": "zlib", "zstd": None}
    assert got["accelerations"] == {"sha256": "builtin", "gzip": "zlib", "zstd": "zstandard"}
    assert got["backend"] == "native"
    assert got["crc_error"].startswith("gzip stream: CRC32 or size mismatch"), got["crc_error"]
    assert "built without libzstd" in got["zstd_refused"]


def test_unknown_library_in_native_without_is_one_line(tmp_path):
    _, proc = _build_without(tmp_path, "isal,lz4")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == ("fastsync: FASTSYNC_NATIVE_WITHOUT names unknown libraries: "
                                                   "lz4 (known: openssl, isal, zstd)")
