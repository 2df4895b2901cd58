"""Deterministic, small but real container images for tests, benchmarks and demos.

Every function here is pure: the same arguments give byte-identical images on every
run and every machine (layer tars have fixed metadata and sorted entries, gzip has
mtime=0 and no file name, zstd has a fixed level, JSON is serialised with a fixed
key order, the schema-1 signature uses a key derived from the seed and RFC 6979
deterministic ECDSA).

Public API
----------
``Blob(digest, data, media_type)``
    One blob (config or layer).
``SampleImage(manifest, media_type, digest, blobs, children=(), platform=None, diff_ids=())``
    ``blobs`` is (config, *layers) for a v2s2/OCI image, the layers for schema 1, and
    empty for an index (the blobs live in ``children``). ``platform`` is
    ``(os, architecture, variant)``; ``diff_ids`` are the uncompressed layer digests.
    ``all_blobs()`` -> {digest: bytes} including the children's; ``config`` and
    ``layers`` properties; ``manifests()`` -> {digest: manifest bytes} of self and children.
``make_image(seed, layers=2, layer_size=64*1024, fmt="v2s2"|"oci", compression="gzip"|"zstd",
             arch="amd64", os="linux", variant=None, labels=None, base_seed=None, base_layers=0)``
    ``base_seed``/``base_layers``: the first ``base_layers`` layers are the ones
    ``make_image(base_seed, layer_size=...)`` would produce, so images can share layers.
``make_index(children, fmt="oci"|"v2s2")``
    OCI image index or Docker manifest list with platform fields.
``make_schema1(seed, name, tag, arch="amd64")``
    Signed schema 1 (libtrust JWS, ECDSA P-256) that distribution verifies and accepts
    on PUT. Note distribution stores only the signed payload and re-signs it with its own
    key on every GET: compare schema 1 by ``manifest_digest``, never by bytes, after a registry.
``sample_set()`` -> dict of the standard images: v2s2, oci, zstd, multiarch, list,
    schema1 (name ``SCHEMA1_NAME``, tag ``SCHEMA1_TAG``), empty, shared.
``sample_repo(name)`` -> (repository, tag) where the sample set is pushed by the fixtures
    (``samples/<name>``, ``latest``; schema1: ``SCHEMA1_NAME``, ``SCHEMA1_TAG``).
``write_dir(image, path)``
    skopeo's ``dir:`` layout as skopeo 1.9 writes it (see the function).
``write_oci(image, layout, ref=None, allow_docker=False)``
    OCI image layout; adds/replaces the index.json entry for ``ref`` (written atomically).
``push_with_skopeo(image_or_dir, dest, creds=None, tls_verify=False, cert_dir=None)``
    Seed a registry with ``skopeo copy --all --preserve-digests``.
``manifest_digest(manifest_bytes)``
    Digest as registries compute it (schema 1 signed: signatures stripped).
"""
from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import json
import os as _os
import random
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

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


def _layer_seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"fastsync-layer:{seed}:{index}".encode()).digest()[:8], "big")


def make_layer(layer_seed: int, size: int, compression: str = "gzip") -> tuple[bytes, bytes]:
    """Return (uncompressed tar, compressed blob) for one layer of about ``size`` bytes of files."""
    raw = _tar(_layer_files(layer_seed, size))
    return raw, _compress(raw, compression)


def _json(obj: object, indent: Optional[int] = None) -> bytes:
    if indent is None:
        return json.dumps(obj, separators=(",", ":")).encode()
    return json.dumps(obj, indent=indent).encode()


# Images ---------------------------------------------------------------------------
def make_image(
    seed: int,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    fmt: str = "v2s2",
    compression: str = "gzip",
    arch: str = "amd64",
    os: str = "linux",
    variant: Optional[str] = None,
    labels: Optional[dict[str, str]] = None,
    base_seed: Optional[int] = None,
    base_layers: int = 0,
) -> SampleImage:
    if fmt not in ("v2s2", "oci"):
        raise ValueError(f"fmt must be 'v2s2' or 'oci', not {fmt!r}")
    if fmt == "v2s2" and compression != "gzip":
        raise ValueError("Docker v2s2 layers must be gzip")
    layer_mt = {("v2s2", "gzip"): DOCKER_LAYER_GZIP, ("oci", "gzip"): OCI_LAYER_GZIP,
                ("oci", "zstd"): OCI_LAYER_ZSTD}[(fmt, compression)]
    layer_blobs: list[Blob] = []
    diff_ids: list[str] = []
    history: list[dict] = []
    for i in range(layers):
        src_seed = base_seed if (base_seed is not None and i < base_layers) else seed
        raw, comp = make_layer(_layer_seed(src_seed, i), layer_size, compression)
        layer_blobs.append(Blob(sha256_digest(comp), comp, layer_mt))
        diff_ids.append(sha256_digest(raw))
        history.append({"created": CREATED,
                        "created_by": f"/bin/sh -c #(nop) ADD file:layer-{src_seed}-{i} in / "})
    cmd = ["/bin/sh", "-c", f"echo fastsync sample {seed}"]
    if not layers:
        history.append({"created": CREATED, "created_by": f'/bin/sh -c #(nop)  CMD {json.dumps(cmd)}',
                        "empty_layer": True})
    config: dict = {"architecture": arch, "os": os}
    if variant:
        config["variant"] = variant
    config["created"] = CREATED
    config["config"] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"FASTSYNC_SAMPLE={seed}"],
        "Cmd": cmd,
        "Labels": dict(sorted((labels or {"org.fastsync.sample": str(seed)}).items())),
    }
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = history
    config_bytes = _json(config)
    config_mt = DOCKER_CONFIG if fmt == "v2s2" else OCI_CONFIG
    config_blob = Blob(sha256_digest(config_bytes), config_bytes, config_mt)

    def desc(b: Blob) -> dict:
        return {"mediaType": b.media_type, "size": b.size, "digest": b.digest}

    if fmt == "v2s2":
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_V2S2, "config": desc(config_blob),
                    "layers": [desc(b) for b in layer_blobs]}
        data, mt = _json(manifest, indent=3), DOCKER_V2S2
    else:
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(config_blob),
                    "layers": [desc(b) for b in layer_blobs]}
        data, mt = _json(manifest), OCI_MANIFEST
    return SampleImage(manifest=data, media_type=mt, digest=sha256_digest(data),
                       blobs=(config_blob, *layer_blobs), platform=(os, arch, variant),
                       diff_ids=tuple(diff_ids))


def make_index(children: Sequence[SampleImage], fmt: str = "oci") -> SampleImage:
    if fmt not in ("oci", "v2s2"):
        raise ValueError(f"fmt must be 'oci' or 'v2s2', not {fmt!r}")
    entries = []
    for child in children:
        if child.platform is None:
            raise ValueError("index children must be single-platform images")
        os_, arch, variant = child.platform
        platform: dict = {"architecture": arch, "os": os_}
        if variant:
            platform["variant"] = variant
        entries.append({"mediaType": child.media_type, "size": len(child.manifest),
                        "digest": child.digest, "platform": platform})
    if fmt == "oci":
        data, mt = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}), OCI_INDEX
    else:
        data = _json({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}, indent=3)
        mt = DOCKER_LIST
    return SampleImage(manifest=data, media_type=mt, digest=sha256_digest(data), blobs=(),
                       children=tuple(children))


# Schema 1 ------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def libtrust_key_id(public_key) -> str:
    """libtrust's key ID: base32 of the first 240 bits of sha256(PKIX DER), in 4-char groups."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def _schema1_payload_and_tail(manifest: bytes) -> tuple[bytes, Optional[dict]]:
    """Strip libtrust signatures: return the signed payload (what the digest is of)."""
    try:
        obj = json.loads(manifest)
    except ValueError:
        return manifest, None
    if not isinstance(obj, dict) or obj.get("schemaVersion") != 1 or "signatures" not in obj:
        return manifest, None
    protected = json.loads(_b64url_decode(obj["signatures"][0]["protected"]))
    n = protected["formatLength"]
    tail = _b64url_decode(protected["formatTail"])
    return manifest[:n] + tail, protected


def manifest_digest(manifest: bytes) -> str:
    """The digest a registry (and ``skopeo manifest-digest``) computes for these bytes."""
    payload, _ = _schema1_payload_and_tail(manifest)
    return sha256_digest(payload)


def make_schema1(seed: int, name: str = SCHEMA1_NAME, tag: str = SCHEMA1_TAG,
                 arch: str = "amd64", layer_size: int = 32 * 1024) -> SampleImage:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    # Layers bottom-up: a real layer, an ENV (empty layer), a second real layer, a CMD (empty).
    raw1, l1 = make_layer(_layer_seed(seed, 0), layer_size, "gzip")
    raw2, l2 = make_layer(_layer_seed(seed, 1), layer_size, "gzip")
    steps = [
        (l1, "/bin/sh -c #(nop) ADD file:" + hashlib.sha256(raw1).hexdigest() + " in / "),
        (EMPTY_GZIP_LAYER, f"/bin/sh -c #(nop)  ENV FASTSYNC_SAMPLE={seed}"),
        (l2, "/bin/sh -c #(nop) ADD file:" + hashlib.sha256(raw2).hexdigest() + " in /usr "),
        (EMPTY_GZIP_LAYER, '/bin/sh -c #(nop)  CMD ["/bin/sh"]'),
    ]
    ids = [hashlib.sha256(f"fastsync-v1-id:{seed}:{i}".encode()).hexdigest() for i in range(len(steps))]
    v1: list[str] = []
    for i, (_blob, created_by) in enumerate(steps):
        entry: dict = {}
        if i == len(steps) - 1:
            entry["architecture"] = arch
            entry["config"] = {"Hostname": "", "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                                      f"FASTSYNC_SAMPLE={seed}"],
                               "Cmd": ["/bin/sh"], "Image": "sha256:" + ids[i - 1], "Labels": {}}
            entry["container"] = hashlib.sha256(f"container:{seed}".encode()).hexdigest()
        entry["container_config"] = {"Cmd": [created_by]}
        entry["created"] = f"2023-01-01T00:00:0{i}.000000000Z"
        if i == len(steps) - 1:
            entry["docker_version"] = "20.10.23"
        entry["id"] = ids[i]
        if i == len(steps) - 1:
            entry["os"] = "linux"
        if i > 0:
            entry["parent"] = ids[i - 1]
        if _blob is EMPTY_GZIP_LAYER:
            entry["throwaway"] = True
        v1.append(json.dumps(entry, separators=(",", ":")))
    manifest = {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": arch,
        "fsLayers": [{"blobSum": sha256_digest(b)} for b, _ in reversed(steps)],
        "history": [{"v1Compatibility": s} for s in reversed(v1)],
    }
    payload = json.dumps(manifest, indent=3).encode()  # Go's MarshalIndent(m, "", "   ")
    # libtrust: formatLength = index after the last non-space char before the final '}'
    close = payload.rstrip().rfind(b"}")
    format_length = len(payload[:close].rstrip())
    format_tail = payload[format_length:]

    secret = int.from_bytes(hashlib.sha256(f"fastsync-schema1-key:{seed}".encode()).digest(), "big")
    key = ec.derive_private_key(secret % (2**255) + 1, ec.SECP256R1())
    pub = key.public_key().public_numbers()
    protected = _b64url(json.dumps({"formatLength": format_length, "formatTail": _b64url(format_tail),
                                    "time": CREATED}, separators=(",", ":")).encode())
    sign_input = (protected + "." + _b64url(payload)).encode()
    der = key.sign(sign_input, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    signature = _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    jwk = {"crv": "P-256", "kid": libtrust_key_id(key.public_key()), "kty": "EC",
           "x": _b64url(pub.x.to_bytes(32, "big")), "y": _b64url(pub.y.to_bytes(32, "big"))}
    sigs = [{"header": {"jwk": jwk, "alg": "ES256"}, "signature": signature, "protected": protected}]
    # libtrust PrettySignature: payload[:formatLength] + ",\n   \"signatures\": " + MarshalIndent(sigs, "   ", "   ") + "\n}"
    marshalled = json.dumps(sigs, indent=3).replace("\n", "\n   ")
    data = payload[:format_length] + b',\n   "signatures": ' + marshalled.encode() + b"\n}"
    blobs: dict[str, Blob] = {}
    for b, _ in steps:
        blobs.setdefault(sha256_digest(b), Blob(sha256_digest(b), b, DOCKER_LAYER_GZIP))
    return SampleImage(manifest=data, media_type=DOCKER_V2S1_SIGNED, digest=sha256_digest(payload),
                       blobs=tuple(blobs.values()), platform=("linux", arch, None),
                       diff_ids=(sha256_digest(raw1), sha256_digest(raw2)))


def sample_set() -> dict[str, SampleImage]:
    """The standard test images (built once per process; the images are immutable)."""
    return dict(_build_sample_set())


@functools.lru_cache(maxsize=1)
def _build_sample_set() -> dict[str, SampleImage]:
    return {
        "v2s2": make_image(1, layers=2, fmt="v2s2"),
        "oci": make_image(2, layers=3, fmt="oci"),
        "zstd": make_image(3, layers=2, fmt="oci", compression="zstd"),
        "multiarch": make_index([
            make_image(4, layers=2, fmt="oci", arch="amd64"),
            make_image(5, layers=2, fmt="oci", arch="arm64", variant="v8"),
        ], fmt="oci"),
        "list": make_index([
            make_image(6, layers=1, fmt="v2s2", arch="amd64"),
            make_image(7, layers=1, fmt="v2s2", arch="arm", variant="v7"),
        ], fmt="v2s2"),
        "schema1": make_schema1(8, SCHEMA1_NAME, SCHEMA1_TAG),
        "empty": make_image(9, layers=0, fmt="v2s2"),
        "shared": make_image(10, layers=2, fmt="v2s2", base_seed=1, base_layers=1),
    }


def sample_repo(name: str) -> tuple[str, str]:
    if name == "schema1":
        return SCHEMA1_NAME, SCHEMA1_TAG
    return f"samples/{name}", "latest"


# Writers ---------------------------------------------------------------------------
def _write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def write_dir(image: SampleImage, path: Union[str, "_os.PathLike[str]"]) -> None:
    """Write ``image`` in skopeo's ``dir:`` layout, as ``skopeo copy --all`` 1.9 writes it.

    ``version`` ("Directory Transport Version: 1.1\\n"), ``manifest.json`` (the top-level
    manifest), one file per blob named by its digest hex, and for an index each instance
    manifest as ``<instance digest hex>.manifest.json``.
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    _write_file(p / "version", b"Directory Transport Version: 1.1\n")
    for digest, data in image.all_blobs().items():
        _write_file(p / digest.split(":", 1)[1], data)
    for child in image.children:
        _write_file(p / (child.digest.split(":", 1)[1] + ".manifest.json"), child.manifest)
    _write_file(p / "manifest.json", image.manifest)


def write_oci(image: SampleImage, layout: Union[str, "_os.PathLike[str]"], ref: Optional[str] = None,
              allow_docker: bool = False) -> None:
    """Write ``image`` into an OCI image layout, adding (or replacing) the entry for ``ref``.

    skopeo 1.9 ignores index.json entries whose mediaType is not an OCI manifest/index
    ("no descriptor found for reference"), so Docker-typed images are refused unless
    ``allow_docker=True`` (to test how a reader copes with such a layout). The OCI twin of
    a v2s2 sample is ``make_image(same seed, fmt="oci")``: same config and layer bytes."""
    if image.media_type == DOCKER_V2S1_SIGNED:
        raise ValueError("schema 1 images cannot be stored in an OCI layout")
    if not allow_docker and image.media_type not in (OCI_MANIFEST, OCI_INDEX):
        raise ValueError(f"{image.media_type} in an OCI layout is invisible to skopeo; "
                         "use an OCI image or pass allow_docker=True")
    root = Path(layout)
    blobs_dir = root / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(b'{"imageLayoutVersion": "1.0.0"}')
    for digest, data in image.all_blobs().items():
        _write_file(blobs_dir / digest.split(":", 1)[1], data)
    for digest, data in image.manifests().items():
        _write_file(blobs_dir / digest.split(":", 1)[1], data)
    index_path = root / "index.json"
    if index_path.exists():
        index = json.loads(index_path.read_bytes())
    else:
        index = {"schemaVersion": 2, "manifests": []}
    key = "org.opencontainers.image.ref.name"
    manifests = [m for m in index.get("manifests", [])
                 if ref is None or (m.get("annotations") or {}).get(key) != ref]
    entry: dict = {"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest)}
    if image.platform is not None:
        os_, arch, variant = image.platform
        entry["platform"] = {"architecture": arch, "os": os_, **({"variant": variant} if variant else {})}
    if ref is not None:
        entry["annotations"] = {key: ref}
    manifests.append(entry)
    index["manifests"] = manifests
    tmp = index_path.with_name(".index.json.tmp")
    tmp.write_bytes(_json(index))
    _os.replace(tmp, index_path)


def skopeo_path() -> Optional[str]:
    return shutil.which("skopeo")


def push_with_skopeo(
    image_or_dir: Union[SampleImage, str, "_os.PathLike[str]"],
    dest: str,
    creds: Optional[str] = None,
    tls_verify: bool = False,
    cert_dir: Optional[str] = None,
    timeout: float = 120,
) -> None:
    """Copy an image (or a ``dir:`` directory) to ``dest`` ("HOST:PORT/repo:tag" or
    "docker://...") with ``skopeo copy --all --preserve-digests``; raises
    ``subprocess.CalledProcessError`` (with skopeo's stderr) on failure.

    skopeo refuses to push a schema 1 image anywhere but the name:tag embedded in it
    ("would change the manifest" with --preserve-digests); ``Registry.push_image`` has
    no such limit (distribution does not check the embedded name)."""
    if not dest.startswith("docker://"):
        dest = "docker://" + dest
    with tempfile.TemporaryDirectory(prefix="fastsync-push-") as tmp:
        if isinstance(image_or_dir, SampleImage):
            src = Path(tmp) / "img"
            write_dir(image_or_dir, src)
        else:
            src = Path(image_or_dir)
        cmd = [skopeo_path() or "skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests",
               "--retry-times", "0", f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
        if creds:
            cmd += ["--dest-creds", creds]
        if cert_dir:
            cmd += ["--dest-cert-dir", str(cert_dir)]
        cmd += [f"dir:{src}", dest]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout,
                              env={**_os.environ, "REGISTRY_AUTH_FILE": str(Path(tmp) / "auth.json")})
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
