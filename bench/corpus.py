"""A deterministic benchmark corpus that looks like a release's image list.

    python -m bench.corpus [--scale 1.0] [--out bench/out]     # prints the corpus directory

31 images (33 manifests, all OCI): a ~90 MB "debian-like" base shared by 15 images, a small
"alpine-like" base (amd64 + arm64), a "distroless" static/base pair, language-runtime layers
shared by several apps, app layers of 0.5-12 MB, two tags of one app differing in the top
layer, the 32-byte empty gzip layer old builders emit (3 images), a multi-arch OCI index, an image with 40 small layers and a "model
server" with one layer of several hundred MB. Sizes are uncompressed at ``scale`` 1.0 and
multiplied by ``scale`` (16 KiB minimum per layer).

Layer content is a tar of files cut from content pools: prose (docs, man pages),
code, machine-code-like binaries, already-compressed data and float16 "weights", mixed per
layer kind so that gzip ratios are close to real images (binaries ~2.3x, docs ~3x, code
~4x, weights ~1.1x). Layers are gzip level 6 (zlib; ISA-L level 3 for the weights layer
when ``isal`` is installed, same ratio at 10x the speed), generated once per unique layer in
parallel processes and streamed to disk (never a whole layer in memory).

Output: ``<out>/corpus-s<scale>-<key>/`` with
  ``oci/``          an OCI image layout; index.json ref names are ``<repo>:<tag>``
  ``images.txt``    image-list file (``##section`` headers, one ``repo:tag`` per line)
  ``sync.yaml.in``  skopeo-sync YAML with ``@SRC@`` in place of the source registry
  ``corpus.json``   images, digests and sizes (what the harness reads)
The directory name is keyed by the parameters and the library versions that shape the bytes
(numpy, isal); a finished corpus is reused, an interrupted one is regenerated.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import tarfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

try:  # ISA-L: same format, ~10x faster; only used for the incompressible "weights" layers
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - depends on the machine
    _isal = None

CORPUS_VERSION = 1
MiB = 1 << 20
KiB = 1 << 10
POOL_SIZE = 8 * MiB
MTIME = 1704067200  # 2024-01-01
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_GZIP_LAYER = bytes.fromhex("1f8b08000000000000ff621805a360148c5800080000ffff2eafb5ef00040000")
ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "out"


# ---------------------------------------------------------------- the image list
@dataclass(frozen=True)
class LayerSpec:
    name: str          # identity: the same name gives the same bytes (shared layers)
    kind: str          # a key of MIXES, or "empty"
    size: int          # uncompressed bytes at scale 1.0


@dataclass(frozen=True)
class ImageSpec:
    repo: str
    tag: str
    layers: tuple[LayerSpec, ...]
    arch: str = "amd64"
    section: str = "apps"


@dataclass(frozen=True)
class IndexSpec:
    repo: str
    tag: str
    children: tuple[ImageSpec, ...]
    section: str = "multi-arch"


EMPTY = LayerSpec("empty", "empty", 0)
DEBIAN = LayerSpec("debian-12", "os", 90 * MiB)
ALPINE = LayerSpec("alpine-3.19-amd64", "os", 7 * MiB)
ALPINE_ARM = LayerSpec("alpine-3.19-arm64", "os", 7 * MiB)
STATIC = LayerSpec("distroless-static", "os", 2 * MiB)
LIBC = LayerSpec("distroless-base-libc", "os", 18 * MiB)
PYTHON = LayerSpec("runtime-python-3.12", "runtime", 12 * MiB)
JAVA = LayerSpec("runtime-jre-21", "runtime", 12 * MiB)


def _app_size(i: int) -> int:
    """App layer sizes spread over 0.5-12 MB, deterministic."""
    return int((0.5 + (i * 7919 % 23) / 2.0) * MiB)


def image_specs() -> list:
    """The release's image list at scale 1.0 (ImageSpec and IndexSpec entries)."""
    out: list = [
        ImageSpec("release/base-debian", "12", (DEBIAN,), section="bases"),
        ImageSpec("release/base-alpine", "3.19", (ALPINE,), section="bases"),
        ImageSpec("release/distroless-static", "nonroot", (STATIC,), section="bases"),
        ImageSpec("release/distroless-base", "nonroot", (STATIC, LIBC), section="bases"),
    ]
    debian_apps = ["api-server", "controller-manager", "scheduler", "console", "notification-manager",
                   "devops-apiserver", "jenkins-agent", "logging-operator", "alert-manager", "audit-webhook",
                   "gateway", "installer"]
    for i, name in enumerate(debian_apps):
        runtime = (PYTHON,) if i % 3 == 0 else (JAVA,) if i % 3 == 1 else ()
        empty = (EMPTY,) if i % 4 == 0 else ()
        top = LayerSpec(f"app-{name}-v4.1.0", "app", _app_size(i))
        out.append(ImageSpec(f"release/{name}", "v4.1.0", (DEBIAN, *runtime, *empty, top)))
    # the same app in two releases: only the top layer differs
    out.append(ImageSpec("release/gateway", "v4.0.2", (DEBIAN, LayerSpec("app-gateway-v4.0.2", "app", _app_size(10)))))
    for i, name in enumerate(["redis", "nginx-ingress", "fluent-bit", "node-exporter", "kube-state-metrics",
                              "etcd-backup"]):
        out.append(ImageSpec(f"release/{name}", "v4.1.0",
                             (ALPINE, LayerSpec(f"app-{name}", "app", _app_size(20 + i)))))
    for i, name in enumerate(["operator", "webhook", "prometheus-adapter", "metrics-server", "cert-manager"]):
        base = (STATIC,) if i % 2 else (STATIC, LIBC)
        out.append(ImageSpec(f"release/{name}", "v4.1.0",
                             base + (LayerSpec(f"app-{name}", "app", _app_size(40 + i)),), section="distroless"))
    out.append(IndexSpec("release/kube-proxy", "v1.29.0", (
        ImageSpec("release/kube-proxy", "v1.29.0", (ALPINE, LayerSpec("kube-proxy-amd64", "app", 9 * MiB))),
        ImageSpec("release/kube-proxy", "v1.29.0", (ALPINE_ARM, LayerSpec("kube-proxy-arm64", "app", 9 * MiB)),
                  arch="arm64"),
    )))
    small = tuple(LayerSpec(f"config-step-{i:02d}", "config", (20 + (i * 37) % 280) * KiB) for i in range(40))
    out.append(ImageSpec("release/many-layers", "v4.1.0", (ALPINE, *small), section="special"))
    out.append(ImageSpec("release/model-server", "v4.1.0",
                         (DEBIAN, PYTHON, LayerSpec("model-weights", "model", 384 * MiB)), section="special"))
    return out


# ---------------------------------------------------------------- content
# Fractions of a layer's bytes by content type, and the size distribution of its files.
MIXES: dict[str, dict[str, float]] = {
    "os": {"binary": 0.45, "text": 0.25, "code": 0.15, "packed": 0.10, "config": 0.05},
    "runtime": {"binary": 0.40, "code": 0.45, "text": 0.10, "packed": 0.05},
    "app": {"binary": 0.75, "code": 0.10, "text": 0.05, "packed": 0.10},
    "config": {"text": 0.4, "code": 0.3, "config": 0.3},
    "model": {"weights": 0.92, "binary": 0.05, "text": 0.03},
}
DIRS = {"binary": "usr/lib/x86_64-linux-gnu", "text": "usr/share/doc", "code": "usr/lib/python3/dist-packages",
        "packed": "usr/share/bundles", "config": "etc", "weights": "opt/model/shards"}
EXT = {"binary": ".so", "text": ".txt", "code": ".py", "packed": ".gz", "config": ".conf", "weights": ".safetensors"}


@lru_cache(maxsize=None)
def _pools(seed: int = 20240101) -> dict[str, bytes]:
    """One content pool per type (POOL_SIZE bytes); files are slices at random offsets."""
    rng = np.random.Generator(np.random.PCG64(seed))
    r = random.Random(seed)
    syl = ("ka to ri men lo sa ne ti ver con fig pro ser dat ion ing al ex im port lib bin sys net pa ge "
           "re de st th an or en ch ck qu ul").split()
    vocab = sorted({"".join(r.choices(syl, k=r.randint(1, 4))) for _ in range(6000)})
    words = [w.encode() for w in vocab]
    p = 1.0 / (np.arange(len(words)) + 2.7)
    p /= p.sum()

    def prose(seps: list[bytes], sep_p: list[float]) -> bytes:
        n = POOL_SIZE // 5
        idx = rng.choice(len(words), size=n, p=p).tolist()
        sep = rng.choice(len(seps), size=n, p=sep_p).tolist()
        return b"".join(x for i, s in zip(idx, sep) for x in (words[i], seps[s]))[:POOL_SIZE]

    text = prose([b" ", b"\n", b", ", b".\n"], [0.82, 0.1, 0.05, 0.03])
    config = prose([b" = ", b"\n", b"\n  ", b": "], [0.3, 0.4, 0.2, 0.1])
    # code: lines built from keywords, identifiers and punctuation
    kws = [b"def ", b"return ", b"if ", b"for ", b"import ", b"class ", b"self.", b"else:", b"raise ", b"yield "]
    punct = [b"(", b")", b", ", b" = ", b".", b":\n", b"\n", b" + ", b"[", b"]", b" == ", b"\n    ", b"\n        "]
    n = POOL_SIZE // 3
    kind = rng.choice(3, size=n, p=[0.15, 0.5, 0.35]).tolist()
    wi = rng.choice(min(len(words), 1500), size=n, p=p[:1500] / p[:1500].sum()).tolist()
    ki = rng.integers(0, len(kws), size=n).tolist()
    pi = rng.integers(0, len(punct), size=n).tolist()
    table = (kws, words, punct)
    picks = (ki, wi, pi)
    code = b"".join(table[k][picks[k][j]] for j, k in enumerate(kind))[:POOL_SIZE]
    # machine-code-like: skewed literals, recurring 64-byte "instruction sequences", zero padding
    groups = POOL_SIZE // 64
    bp = 1.0 / np.arange(1, 257) ** 1.1
    bp /= bp.sum()
    perm = rng.permutation(256).astype(np.uint8)
    lit = perm[rng.choice(256, size=(groups, 64), p=bp)]
    motifs = perm[rng.choice(256, size=(2048, 64), p=bp)]
    mp = 1.0 / np.arange(1, 2049) ** 0.9
    mp /= mp.sum()
    gk = rng.choice(3, size=groups, p=[0.28, 0.52, 0.20])
    lit[gk == 1] = motifs[rng.choice(2048, size=int((gk == 1).sum()), p=mp)]
    lit[gk == 2] = 0
    binary = lit.tobytes()
    packed = rng.bytes(POOL_SIZE)
    weights = rng.standard_normal(POOL_SIZE // 2).astype(np.float16).tobytes()
    return {"text": text, "config": config, "code": code, "binary": binary, "packed": packed, "weights": weights}


def _file_sizes(r: random.Random, kind: str, total: int) -> Iterator[tuple[str, int]]:
    """(content type, size) of the files of a layer, summing to ``total``."""
    mix = MIXES[kind]
    for ctype, frac in mix.items():
        budget = int(total * frac)
        if kind == "app" and ctype == "binary" and budget:
            main = int(budget * 0.7)    # the app's own binary is one big file
            yield ctype, main
            budget -= main
        big = 64 * MiB if ctype == "weights" else 2 * MiB
        while budget > 0:
            size = big if ctype == "weights" else int(min(big, max(64, r.lognormvariate(8.7, 1.6))))
            size = min(size, budget)
            yield ctype, size
            budget -= size


def _content(pool: bytes, r: random.Random, size: int) -> bytes:
    parts, left = [], size
    while left > 0:
        n = min(left, len(pool) // 2)
        off = r.randrange(0, len(pool) - n + 1)
        parts.append(pool[off:off + n])
        left -= n
    return b"".join(parts)


class _GzipSink:
    """File-like sink for tarfile: hashes the raw stream, gzips it, hashes and writes the result."""

    def __init__(self, fh: io.BufferedWriter, fast: bool) -> None:
        self.fh = fh
        self.raw = hashlib.sha256()
        self.comp = hashlib.sha256()
        self.size = 0
        if fast and _isal is not None:
            self.co = _isal.compressobj(3, _isal.DEFLATED, 31)
        else:
            self.co = zlib.compressobj(6, zlib.DEFLATED, 31)

    def _out(self, data: bytes) -> None:
        if data:
            self.comp.update(data)
            self.size += len(data)
            self.fh.write(data)

    def write(self, data: bytes) -> int:
        self.raw.update(data)
        self._out(self.co.compress(data))
        return len(data)

    def finish(self) -> None:
        self._out(self.co.flush())


def _make_layer(spec: LayerSpec, scale: float, blobs: str) -> tuple[str, int, str]:
    """Write one layer into ``blobs``; return (digest, compressed size, diff_id)."""
    if spec.kind == "empty":
        data = EMPTY_GZIP_LAYER
        digest = hashlib.sha256(data).hexdigest()
        Path(blobs, digest).write_bytes(data)
        return "sha256:" + digest, len(data), "sha256:" + hashlib.sha256(b"\0" * 1024).hexdigest()
    pools = _pools()
    r = random.Random(f"{CORPUS_VERSION}:{spec.name}")
    total = max(16 * KiB, int(spec.size * scale))
    tmp = Path(blobs, f".tmp-{os.getpid()}-{spec.name}")
    with open(tmp, "wb") as fh:
        sink = _GzipSink(fh, fast=spec.kind == "model")
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
            dirs_done: set[str] = set()
            for i, (ctype, size) in enumerate(_file_sizes(r, spec.kind, total)):
                d = f"{DIRS[ctype]}/{spec.name}/{i // 64:03d}"
                parts = d.split("/")
                for k in range(1, len(parts) + 1):
                    sub = "/".join(parts[:k])
                    if sub not in dirs_done:
                        dirs_done.add(sub)
                        ti = _tarinfo(sub, 0o755)
                        ti.type = tarfile.DIRTYPE
                        tf.addfile(ti)
                data = _content(pools[ctype], r, size)
                ti = _tarinfo(f"{d}/f{i:05d}{EXT[ctype]}", 0o755 if ctype == "binary" else 0o644)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        sink.finish()
    digest = sink.comp.hexdigest()
    os.replace(tmp, Path(blobs, digest))
    return "sha256:" + digest, sink.size, "sha256:" + sink.raw.hexdigest()


def _tarinfo(name: str, mode: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, mode, 0, 0, "root", "root"
    return ti


# ---------------------------------------------------------------- images
def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


@dataclass
class _Writer:
    blobs: Path
    layers: dict[str, tuple[str, int, str]] = field(default_factory=dict)

    def put(self, data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return "sha256:" + digest, len(data)

    def image(self, spec: ImageSpec) -> dict:
        descs, diff_ids, history = [], [], []
        for ly in spec.layers:
            digest, size, diff_id = self.layers[ly.name]
            descs.append({"mediaType": OCI_LAYER, "digest": digest, "size": size})
            diff_ids.append(diff_id)
            history.append({"created": "2024-01-01T00:00:00Z", "created_by": f"/bin/sh -c #(nop) ADD {ly.name} /"})
        config = {"created": "2024-01-01T00:00:00Z", "architecture": spec.arch, "os": "linux",
                  "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                             "Cmd": [f"/usr/local/bin/{spec.repo.rsplit('/', 1)[-1]}"],
                             "Labels": {"org.opencontainers.image.version": spec.tag}},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}
        cdigest, csize = self.put(_json(config))
        manifest = _json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": OCI_CONFIG, "digest": cdigest, "size": csize},
                          "layers": descs})
        digest, size = self.put(manifest)
        return {"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                "platform": {"architecture": spec.arch, "os": "linux"},
                "blobs": [cdigest] + [d["digest"] for d in descs],
                "bytes": csize + sum(d["size"] for d in descs)}


def corpus_key(scale: float) -> str:
    parts = [CORPUS_VERSION, scale, np.__version__, getattr(_isal, "__name__", None) and _isal_version()]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def _isal_version() -> str:
    try:
        import isal
        return isal.__version__
    except (ImportError, AttributeError):
        return "?"


def corpus_dir(scale: float, out: Path = DEFAULT_OUT) -> Path:
    return Path(out) / f"corpus-s{scale:g}-{corpus_key(scale)}"


def build(scale: float = 1.0, out: Path = DEFAULT_OUT, jobs: Optional[int] = None) -> Path:
    """Generate the corpus (or reuse a finished one) and return its directory."""
    final = corpus_dir(scale, out)
    if (final / "corpus.json").exists():
        return final
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    blobs = tmp / "oci" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    specs = image_specs()
    flat = [c for s in specs for c in (s.children if isinstance(s, IndexSpec) else (s,))]
    unique = {ly.name: ly for s in flat for ly in s.layers}
    _pools()  # build once here; forked workers inherit it
    order = sorted(unique.values(), key=lambda ly: -ly.size)  # biggest first: better packing
    w = _Writer(blobs)
    import multiprocessing
    with ProcessPoolExecutor(jobs or os.cpu_count() or 1, mp_context=multiprocessing.get_context("fork")) as ex:
        for ly, res in zip(order, ex.map(_make_layer, order, [scale] * len(order), [str(blobs)] * len(order))):
            w.layers[ly.name] = res
    index_entries, images = [], []
    for s in specs:
        ref = f"{s.repo}:{s.tag}"
        if isinstance(s, IndexSpec):
            kids = [w.image(c) for c in s.children]
            idx = _json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                         "manifests": [{k: c[k] for k in ("mediaType", "digest", "size", "platform")} for c in kids]})
            digest, size = w.put(idx)
            entry = {"mediaType": OCI_INDEX, "digest": digest, "size": size}
            blob_list = sorted({b for c in kids for b in c["blobs"]})
            nbytes = sum(c["bytes"] for c in kids)
        else:
            img = w.image(s)
            entry = {k: img[k] for k in ("mediaType", "digest", "size")}
            blob_list, nbytes = img["blobs"], img["bytes"]
        index_entries.append({**entry, "annotations": {"org.opencontainers.image.ref.name": ref}})
        images.append({"repo": s.repo, "tag": s.tag, "ref": ref, "section": s.section, "digest": entry["digest"],
                       "media_type": entry["mediaType"], "blobs": blob_list, "bytes": nbytes})
    oci = tmp / "oci"
    (oci / "oci-layout").write_bytes(b'{"imageLayoutVersion": "1.0.0"}')
    (oci / "index.json").write_bytes(_json({"schemaVersion": 2, "manifests": index_entries}))
    _write_lists(tmp, images)
    layers = {d: s for d, s, _ in w.layers.values()}
    info = {"version": CORPUS_VERSION, "scale": scale, "key": corpus_key(scale), "images": images,
            "manifests": len(index_entries) + sum(len(s.children) for s in specs if isinstance(s, IndexSpec)),
            "unique_layers": len(layers), "unique_layer_bytes": sum(layers.values()),
            "uncompressed_bytes": sum(int(max(16 * KiB, ly.size * scale)) for ly in unique.values()
                                      if ly.kind != "empty"),
            "total_image_bytes": sum(i["bytes"] for i in images),
            "biggest": max(images, key=lambda i: i["bytes"])["ref"]}
    (tmp / "corpus.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _write_lists(root: Path, images: list[dict]) -> None:
    lines, section = ["# fastsync benchmark corpus: one repo:tag per line"], None
    for im in images:
        if im["section"] != section:
            section = im["section"]
            lines.append(f"##{section}")
        lines.append(im["ref"])
    (root / "images.txt").write_text("\n".join(lines) + "\n")
    (root / "sync.yaml.in").write_text(sync_yaml(images, "@SRC@"))


def sync_yaml(images: list[dict], registry: str, tls_verify: bool = False) -> str:
    """skopeo-sync YAML listing every image under ``registry``."""
    repos: dict[str, list[str]] = {}
    for im in images:
        repos.setdefault(im["repo"], []).append(im["tag"])
    out = [f"{registry}:", "  images:"]
    out += [f"    {repo}: [{', '.join(json.dumps(t) for t in tags)}]" for repo, tags in repos.items()]
    out.append(f"  tls-verify: {'true' if tls_verify else 'false'}")
    return "\n".join(out) + "\n"


def load(path: Path) -> dict:
    return json.loads((Path(path) / "corpus.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description="Generate the benchmark corpus (cached).")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    import time
    t0 = time.perf_counter()
    path = build(args.scale, args.out)
    info = load(path)
    print(path)
    print(f"{len(info['images'])} images ({info['manifests']} manifests), {info['unique_layers']} unique layers, "
          f"{info['uncompressed_bytes'] / MiB:.0f} MiB uncompressed -> {info['unique_layer_bytes'] / MiB:.0f} MiB "
          f"gzip; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
