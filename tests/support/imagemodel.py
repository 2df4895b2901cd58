"""The sample-image model and deterministic layer content (see ``support.images``).

Media-type constants, ``Blob``, ``SampleImage``, ``sha256_digest``, ``make_layer``.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from typing import Iterable, Optional

import zstandard

# Media types ------------------------------------------------------------------
DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_V2S1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

CREATED = "2023-01-01T00:00:00Z"
MTIME = 1672531200  # CREATED as a unix timestamp
SCHEMA1_NAME = "fastsync/schema1"
SCHEMA1_TAG = "v1"

# A real empty layer (a gzipped 1024-byte empty tar), as docker/buildkit use for
# metadata-only history entries.
EMPTY_GZIP_LAYER = bytes.fromhex(
    "1f8b08000000000000ff621805a360148c5800080000ffff2eafb5ef00040000"
)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    digest: str
    data: bytes
    media_type: str

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class SampleImage:
    manifest: bytes
    media_type: str
    digest: str
    blobs: tuple[Blob, ...]
    children: tuple["SampleImage", ...] = ()
    platform: Optional[tuple[str, str, Optional[str]]] = None  # (os, arch, variant)
    diff_ids: tuple[str, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in (OCI_INDEX, DOCKER_LIST)

    @property
    def config(self) -> Optional[Blob]:
        if self.is_index or self.media_type == DOCKER_V2S1_SIGNED or not self.blobs:
            return None
        return self.blobs[0]

    @property
    def layers(self) -> tuple[Blob, ...]:
        if self.is_index:
            return ()
        if self.media_type == DOCKER_V2S1_SIGNED:
            return self.blobs
        return self.blobs[1:]

    def all_blobs(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for child in self.children:
            out.update(child.all_blobs())
        for b in self.blobs:
            out[b.digest] = b.data
        return out

    def manifests(self) -> dict[str, bytes]:
        """digest -> manifest bytes, for this image and every child."""
        out = {self.digest: self.manifest}
        for child in self.children:
            out.update(child.manifests())
        return out


# Content generation -------------------------------------------------------------
_WORDS = (
    "the of and to in is for that with on as by this are be from at or it an was "
    "package version install config server client error warning info debug static "
    "library binary module import export function return value string integer list "
    "registry image layer manifest digest blob upload download stream buffer cache "
    "linux amd64 arm64 x86_64 kernel systemd network socket address timeout retry "
    "copyright license permission granted free software distributed warranty"
).split()


def _text(rng: random.Random, size: int) -> bytes:
    lines: list[str] = []
    total = 0
    while total < size:
        n = rng.randint(3, 14)
        line = " ".join(rng.choices(_WORDS, k=n))
        if rng.random() < 0.2:
            line = f"{line} = {rng.randint(0, 99999)}"
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


def _binary(rng: random.Random, size: int) -> bytes:
    # Machine-code-like: runs of random bytes mixed with repeated opcodes and zero padding,
    # compresses to roughly 40-60% like real executables.
    out = bytearray()
    motifs = [rng.randbytes(rng.randint(4, 24)) for _ in range(32)]
    while len(out) < size:
        r = rng.random()
        if r < 0.45:
            out += rng.randbytes(rng.randint(8, 64))
        elif r < 0.9:
            out += rng.choice(motifs) * rng.randint(1, 3)
        else:
            out += b"\x00" * rng.randint(8, 128)
    return bytes(out[:size])


def _layer_files(layer_seed: int, size: int) -> list[tuple[str, bytes, int]]:
    rng = random.Random(layer_seed)
    files: list[tuple[str, bytes, int]] = []
    remaining = max(size, 0)
    i = 0
    while remaining > 0:
        chunk = min(remaining, rng.randint(2048, 48 * 1024))
        if rng.random() < 0.5:
            files.append((f"usr/share/doc/pkg{layer_seed % 1000}/file{i:04d}.txt", _text(rng, chunk), 0o644))
        else:
            files.append((f"usr/bin/tool{layer_seed % 1000}-{i:04d}", _binary(rng, chunk), 0o755))
        remaining -= chunk
        i += 1
    files.append((f"etc/fastsync/layer-{layer_seed}", f"layer seed {layer_seed}\n".encode(), 0o644))
    return files


def _tar(files: Iterable[tuple[str, bytes, int]]) -> bytes:
    entries: dict[str, tuple[Optional[bytes], int]] = {}
    for name, data, mode in files:
        parts = name.split("/")
        for d in range(1, len(parts)):
            entries.setdefault("/".join(parts[:d]) + "/", (None, 0o755))
        entries[name] = (data, mode)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(entries):
            data, mode = entries[name]
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mode = mode
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    raise ValueError(f"unknown compression {compression!r}")


def layer_seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"fastsync-layer:{seed}:{index}".encode()).digest()[:8], "big")


def make_layer(layer_seed: int, size: int, compression: str = "gzip") -> tuple[bytes, bytes]:
    """Return (uncompressed tar, compressed blob) for one layer of about ``size`` bytes of files."""
    raw = _tar(_layer_files(layer_seed, size))
    return raw, _compress(raw, compression)


def canonical_json(obj: object, indent: Optional[int] = None) -> bytes:
    if indent is None:
        return json.dumps(obj, separators=(",", ":")).encode()
    return json.dumps(obj, indent=indent).encode()
