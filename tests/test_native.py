"""The native core and its pure-Python twin behave identically (fastsync.core.native)."""
from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import zlib

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsync.core import native
from fastsync.core.native import CompressionError, DigestResult, detect_compression, load_backend

PY = load_backend("python")
try:
    NATIVE = load_backend("native")
except ImportError:
    NATIVE = None

BACKENDS = [
    pytest.param(PY, id="python"),
    pytest.param(NATIVE, id="native", marks=pytest.mark.skipif(NATIVE is None, reason="native core not built")),
]
SETTINGS = settings(max_examples=int(os.environ.get("FASTSYNC_HYPOTHESIS_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def text_like(n: int, seed: int = 0) -> bytes:
    """Compressible, tar-ish content: headers, repeated words, some numbers."""
    words = [b"usr", b"lib", b"python3", b"import", b"return", b"self", b"\x00" * 12, b"0000644",
             b"def", b"class", b"ustar", b"\n", b"    ", b"=", b"(", b")", b"etc/ssl"]
    out, x = bytearray(), seed * 2654435761 + 1
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        out += words[(x >> 33) % len(words)]
        if (x >> 20) % 7 == 0:
            out += str(x % 99991).encode()
    return bytes(out[:n])


def chunked(data: bytes, sizes: list[int]):
    i, k = 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)] if sizes else len(data)
        yield data[i:i + max(1, n)]
        i += max(1, n)
        k += 1


def recompress(api, src, dst, payload: bytes, sizes=(65536,), level=None):
    r = api.Recompressor(src, dst, level)
    out = b"".join(r.feed(c) for c in chunked(payload, list(sizes))) + r.finish()
    return out, r


def decompress(kind, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def compress(kind, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, 6, mtime=0)
    if kind == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


# --- backend selection ---------------------------------------------------------------------

def test_native_core_is_built_when_required():
    if os.environ.get("FASTSYNC_REQUIRE_NATIVE") == "1":
        assert NATIVE is not None, "FASTSYNC_REQUIRE_NATIVE=1 but fastsync.core._native did not build/import"
    assert native.BACKEND in ("native", "python")


def _backend_in_subprocess(env_value: str, block_native: bool = False) -> subprocess.CompletedProcess:
    code = ("import sys\n" + ("sys.modules['fastsync.core._native'] = None\n" if block_native else "")
            + "try:\n    import fastsync.core.native as n; print(n.BACKEND)\n"
            + "except ImportError as e:\n    print('ImportError', e)")
    env = dict(os.environ, FASTSYNC_BACKEND=env_value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_fastsync_backend_python_forces_the_fallback():
    assert _backend_in_subprocess("python").stdout.strip() == "python"


def test_unset_backend_falls_back_when_native_is_missing():
    assert _backend_in_subprocess("", block_native=True).stdout.strip() == "python"


def test_fastsync_backend_native_makes_a_missing_extension_an_import_error():
    proc = _backend_in_subprocess("native", block_native=True)
    assert proc.stdout.startswith("ImportError")


@pytest.mark.skipif(NATIVE is None, reason="native core not built")
def test_unset_backend_picks_native_when_built():
    assert _backend_in_subprocess("").stdout.strip() == "native"


# --- detection and digests -----------------------------------------------------------------

def test_detect_compression_from_magic():
    assert detect_compression(gzip.compress(b"x")) == "gzip"
    assert detect_compression(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert detect_compression(b"ustar\x00") is None
    assert detect_compression(b"") is None
    assert detect_compression(b"\x28\xb5\x2f") is None


@pytest.mark.parametrize("api", BACKENDS)
def test_digester_hashes_the_bytes_fed(api):
    data = text_like(300_000)
    d = api.Digester()
    for c in chunked(data, [1, 1000, 70_000]):
        d.update(c)
    d.update(b"")
    assert d.result() == DigestResult(sha(data), len(data))
    assert d.diff_id is None


@pytest.mark.parametrize("api", BACKENDS)
def test_digester_accepts_bytearray_and_memoryview(api):
    d = api.Digester()
    d.update(bytearray(b"ab"))
    d.update(memoryview(b"cd"))
    assert d.result().digest == sha(b"abcd")


@pytest.mark.parametrize("api", BACKENDS)
@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_digester_computes_the_diff_id_in_the_same_pass(api, kind):
    data = text_like(600_000, seed=3)
    blob = compress(kind, data)
    d = api.Digester(uncompressed=kind)
    for c in chunked(blob, [4096, 17]):
        d.update(c)
    assert d.result() == DigestResult(sha(blob), len(blob))
    assert d.diff_id == DigestResult(sha(data), len(data))


@pytest.mark.parametrize("api", BACKENDS)
def test_sha256_file_hashes_whole_files(api, tmp_path):
    data = text_like(1_000_003)
    (tmp_path / "blob").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    assert api.sha256_file(str(tmp_path / "blob")) == DigestResult(sha(data), len(data))
    assert api.sha256_file(str(tmp_path / "empty")) == DigestResult(sha(b""), 0)
    with pytest.raises(FileNotFoundError, match="missing"):
        api.sha256_file(str(tmp_path / "missing"))


# --- recompression -------------------------------------------------------------------------

KINDS = [None, "gzip", "zstd"]


@pytest.mark.parametrize("api", BACKENDS)
@pytest.mark.parametrize("src", KINDS)
@pytest.mark.parametrize("dst", KINDS)
def test_recompressor_converts_and_reports_all_three_digests(api, src, dst):
    data = text_like(700_000, seed=1)
    payload = compress(src, data)
    out, r = recompress(api, src, dst, payload, sizes=[100_000, 3])
    assert decompress(dst, out) == data
    assert r.input == DigestResult(sha(payload), len(payload))
    assert r.uncompressed == DigestResult(sha(data), len(data))
    assert r.output == DigestResult(sha(out), len(out))


@pytest.mark.parametrize("api", BACKENDS)
@pytest.mark.parametrize("level", range(10))
def test_gzip_output_is_one_member_with_mtime_0_and_no_name(api, level):
    data = text_like(300_000, seed=level)
    out, _ = recompress(api, None, "gzip", data, level=level)
    assert out[:4] == b"\x1f\x8b\x08\x00" and out[4:8] == b"\0\0\0\0" and out[9] == 255
    d = zlib.decompressobj(31)
    assert d.decompress(out) == data and d.eof and d.unused_data == b""


@pytest.mark.parametrize("api", BACKENDS)
@pytest.mark.parametrize("dst,level", [("gzip", 1), ("gzip", 6), ("zstd", 3), ("zstd", 19)])
def test_compressed_output_does_not_depend_on_chunking(api, dst, level):
    data = text_like(900_000, seed=7)
    a, _ = recompress(api, None, dst, data, sizes=[len(data)], level=level)
    b, _ = recompress(api, None, dst, data, sizes=[1, 4095, 70_001], level=level)
    assert a == b


@pytest.mark.parametrize("api", BACKENDS)
def test_empty_layer_round_trips(api):
    for dst in ("gzip", "zstd"):
        out, r = recompress(api, None, dst, b"")
        assert decompress(dst, out) == b"" and r.uncompressed == DigestResult(sha(b""), 0)
        back, r2 = recompress(api, dst, None, out)
        assert back == b"" and r2.input == r.output


@pytest.mark.parametrize("api", BACKENDS)
def test_invalid_arguments_are_rejected(api):
    for args in [("bzip2", None), (None, "xz"), (None, "gzip", 10), (None, "zstd", 0), (None, "gzip", -1)]:
        with pytest.raises(ValueError):
            api.Recompressor(*args)
    with pytest.raises(ValueError):
        api.Digester("lz4")


@pytest.mark.parametrize("api", BACKENDS)
def test_multi_member_gzip_decompresses_completely(api):
    parts = [text_like(n, seed=n) for n in (10, 0, 300_000, 5)]
    blob = b"".join(gzip.compress(p, mtime=0) for p in parts)
    for sizes in ([1], [7, 300], [len(blob)]):
        out, r = recompress(api, "gzip", None, blob, sizes=sizes)
        assert out == b"".join(parts)
        assert r.uncompressed.size == sum(map(len, parts))


@pytest.mark.parametrize("api", BACKENDS)
@pytest.mark.parametrize("content_size", [True, False])
def test_zstd_frames_with_and_without_content_size(api, content_size):
    parts = [text_like(200_000, seed=2), b"", text_like(1000, seed=5)]
    cctx = zstandard.ZstdCompressor(level=5, write_content_size=content_size, write_checksum=True)
    if content_size:
        frames = [cctx.compress(p) for p in parts]
    else:
        frames = []
        for p in parts:
            c = cctx.compressobj()
            frames.append(c.compress(p) + c.flush())
    blob = b"".join(frames)
    out, r = recompress(api, "zstd", None, blob, sizes=[999])
    assert out == b"".join(parts) and r.uncompressed == DigestResult(sha(out), len(out))


# --- corrupt input -------------------------------------------------------------------------

def _bad_inputs():
    data = text_like(200_000, seed=9)
    gz = gzip.compress(data, mtime=0)
    zs = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    crc_flipped = gz[:-8] + bytes([gz[-8] ^ 1]) + gz[-7:]
    return [
        ("gzip", gz[:-1], "unexpected end"), ("gzip", gz[: len(gz) // 2], "unexpected end"),
        ("gzip", b"", "no data"), ("gzip", b"not gzip at all", ""), ("gzip", crc_flipped, ""),
        ("gzip", gz + b"trailing garbage", ""), ("gzip", gz + b"\x1f", "unexpected end"),
        ("zstd", zs[:-1], "unexpected end"), ("zstd", zs[:100], "unexpected end"), ("zstd", b"", "no data"),
        ("zstd", b"\x28\xb5\x2f\xfd" + b"\xff" * 64, ""), ("zstd", zs + b"garbage!", ""),
        ("zstd", zs[:-4] + bytes([zs[-4] ^ 0x40]) + zs[-3:], ""),
    ]


@pytest.mark.parametrize("api", BACKENDS)
@pytest.mark.parametrize("kind,blob,words", _bad_inputs())
def test_corrupt_or_truncated_input_raises_compression_error(api, kind, blob, words):
    for make in (lambda: api.Digester(kind), lambda: api.Recompressor(kind, "gzip")):
        obj = make()
        with pytest.raises(CompressionError) as info:
            for c in chunked(blob, [4096]):
                (obj.update if hasattr(obj, "update") else obj.feed)(c)
            obj.result() if hasattr(obj, "result") else obj.finish()
        msg = str(info.value)
        assert isinstance(info.value, ValueError) and "\n" not in msg and msg.startswith(kind)
        assert words in msg


# --- parity between the backends (Hypothesis) -----------------------------------------------

needs_native = pytest.mark.skipif(NATIVE is None, reason="native core not built")
payloads = st.one_of(
    st.binary(max_size=3000),
    st.builds(text_like, st.integers(0, 700_000), st.integers(0, 1000)),
    st.builds(lambda b, k: b * k, st.binary(min_size=1, max_size=50), st.integers(1, 20_000)),
)
chunkings = st.lists(st.integers(1, 300_000), min_size=1, max_size=6)


@needs_native
@SETTINGS
@given(data=payloads, sizes=chunkings, src=st.sampled_from(KINDS), dst=st.sampled_from(KINDS),
       level=st.sampled_from([None, 1, 3, 4, 6, 9, 0]))
def test_parity_digests_sizes_diff_ids_and_output(data, sizes, src, dst, level):
    payload = compress(src, data)
    level = None if dst != "gzip" else level
    results = []
    for api in (PY, NATIVE):
        out, r = recompress(api, src, dst, payload, sizes=sizes, level=level)
        results.append((decompress(dst, out), r.input, r.uncompressed, out, r.output))
        d = api.Digester(src)
        for c in chunked(payload, sizes[::-1]):
            d.update(c)
        assert (d.result(), d.diff_id) == (r.input, r.uncompressed if src else None)
    (py_plain, *py_digests, py_out, py_outd), (nat_plain, *nat_digests, nat_out, nat_outd) = results
    assert py_plain == nat_plain == data
    assert py_digests == nat_digests
    # zlib levels 4-9 are byte-identical across backends (same library, same block feeding);
    # level 0's stored blocks follow each backend's output buffer sizes, 1-3 (and the default,
    # 3) are ISA-L in native
    if dst is None or (dst == "gzip" and level not in (None, 0, 1, 2, 3)
                       and zlib.ZLIB_RUNTIME_VERSION == zlib.ZLIB_VERSION):
        assert py_out == nat_out and py_outd == nat_outd


@needs_native
@SETTINGS
@given(data=st.builds(text_like, st.integers(1, 100_000), st.integers(0, 99)),
       kind=st.sampled_from(["gzip", "zstd"]), where=st.floats(0, 1), xor=st.integers(1, 255),
       cut=st.booleans())
def test_parity_on_damaged_input(data, kind, where, xor, cut):
    blob = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(data) if kind == "zstd"
                     else gzip.compress(data, mtime=0))
    i = min(len(blob) - 1, int(where * len(blob)))
    if cut:
        del blob[i:]
    else:
        blob[i] ^= xor
    outcomes = []
    for api in (PY, NATIVE):
        try:
            out, _ = recompress(api, kind, None, bytes(blob), sizes=[5000])
            outcomes.append(out)
        except CompressionError:
            outcomes.append("error")
    # Same verdict, or one library version is stricter about bits that do not change the
    # content (e.g. libzstd 1.5.7 vs 1.5.4 on padding): never a silently different output.
    if outcomes[0] != outcomes[1]:
        assert "error" in outcomes and (outcomes[0] == data or outcomes[1] == data)


# --- link_blobs ----------------------------------------------------------------------------

@pytest.mark.parametrize("api", BACKENDS)
def test_link_blobs_hardlinks_into_new_trees_read_only(api, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    pairs = []
    for i in range(50):
        (store / f"b{i}").write_bytes(b"x%d" % i)
        pairs.append((str(store / f"b{i}"), str(tmp_path / "out" / f"d{i % 5}" / "blobs" / f"b{i}")))
    assert api.link_blobs(pairs) == 50
    for s, d in pairs:
        assert os.stat(s).st_ino == os.stat(d).st_ino
        assert os.stat(d).st_mode & 0o777 == 0o444
    assert api.link_blobs(pairs) == 50          # already linked: kept, still counted
    assert not [p for p in (tmp_path / "out").rglob("*.tmp")]


@pytest.mark.parametrize("api", BACKENDS)
def test_link_blobs_replaces_a_different_existing_file(api, tmp_path):
    (tmp_path / "src").write_bytes(b"new")
    (tmp_path / "dst").write_bytes(b"old")
    os.chmod(tmp_path / "src", 0o640)
    assert api.link_blobs([(str(tmp_path / "src"), str(tmp_path / "dst"))], readonly=False) == 1
    assert (tmp_path / "dst").read_bytes() == b"new"
    assert os.stat(tmp_path / "dst").st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]


@pytest.mark.parametrize("api", BACKENDS)
def test_link_blobs_reports_the_failing_path(api, tmp_path):
    (tmp_path / "ok").write_bytes(b"1")
    pairs = [(str(tmp_path / "ok"), str(tmp_path / "a" / "ok")),
             (str(tmp_path / "missing"), str(tmp_path / "a" / "m"))]
    with pytest.raises(FileNotFoundError) as info:
        api.link_blobs(pairs)
    assert "missing" in str(info.value)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError) as info:
        api.link_blobs([(str(tmp_path / "ok"), str(tmp_path / "file" / "sub" / "x"))])
    assert "file" in str(info.value)


def _other_filesystem(tmp_path):
    for cand in ("/dev/shm", "/run", "/tmp"):
        if os.path.isdir(cand) and os.access(cand, os.W_OK) and os.stat(cand).st_dev != os.stat(tmp_path).st_dev:
            return cand
    return None


@pytest.mark.parametrize("api", BACKENDS)
def test_link_blobs_copies_across_filesystems(api, tmp_path):
    other = _other_filesystem(tmp_path)
    if other is None:
        pytest.skip("no second writable filesystem")
    import tempfile
    with tempfile.TemporaryDirectory(dir=other) as far:
        data = text_like(200_000)
        (tmp_path / "blob").write_bytes(data)
        dst = os.path.join(far, "t", "blob")
        assert api.link_blobs([(str(tmp_path / "blob"), dst)]) == 0   # copied, not counted
        with open(dst, "rb") as f:
            assert f.read() == data
        assert os.stat(dst).st_mode & 0o777 == 0o444
        assert api.link_blobs([(str(tmp_path / "blob"), dst)]) == 0   # replaced by a fresh copy
        assert os.listdir(os.path.dirname(dst)) == ["blob"]


# --- the GIL is released inside long calls -------------------------------------------------

def _iterations_while(fn) -> int:
    """How often this thread runs while `fn` is inside one long call in another thread."""
    import threading
    import time
    entered = threading.Event()

    def work():
        entered.set()
        fn()
    t = threading.Thread(target=work)
    t.start()
    entered.wait()
    time.sleep(0.01)    # let `work` get into the call; a GIL-holding call blocks us until its end
    n = 0
    while t.is_alive():
        n += 1
    t.join()
    return n


@pytest.mark.parametrize("api", BACKENDS)
def test_long_calls_release_the_gil(api, tmp_path):
    big = b"fastsync layer bytes, not all zeros. " * 2_000_000         # ~74 MB
    gz = gzip.compress(big, 1)
    (tmp_path / "f").write_bytes(big)
    d = api.Digester("gzip")
    assert _iterations_while(lambda: d.update(gz)) > 1000
    assert _iterations_while(lambda: api.Digester().update(big)) > 1000
    assert _iterations_while(lambda: api.sha256_file(str(tmp_path / "f"))) > 1000
