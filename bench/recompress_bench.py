"""gzip -> zstd recompression of a real layer: fastsync vs skopeo, same input, same run.

    python -m bench.recompress_bench [--mb 96] [--runs 3]

Both tools copy one image from dir: to a fresh dir: with `--dest-compress --dest-compress-format
zstd` (skopeo needs --dest-compress to recompress into dir:), alternating A/B; the table shows
median wall times and the ratio. Outputs are checked: every layer is zstd.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "recompress"


def make_source(mb: int) -> Path:
    src = OUT / f"src-{mb}mb"
    if (src / "manifest.json").exists():
        return src
    sys.path.insert(0, str(ROOT))
    from support import images

    image = images.make_image(4242, layers=1, layer_size=mb * 1024 * 1024, fmt="oci")
    tmp = src.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    images.write_dir(image, tmp)
    tmp.rename(src)
    return src


def run(cmd: list[str], dst: Path) -> float:
    shutil.rmtree(dst, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(cmd + [f"dir:{dst}"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    took = time.perf_counter() - t0
    man = json.loads((dst / "manifest.json").read_bytes())
    assert all(ly["mediaType"].endswith("+zstd") for ly in man["layers"]), man
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=96, help="uncompressed layer size in MiB")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    src = make_source(args.mb)
    layer = max((p for p in src.iterdir() if len(p.name) == 64), key=lambda p: p.stat().st_size)
    flags = ["copy", "--dest-compress", "--dest-compress-format", "zstd", f"dir:{src}"]
    fast = [sys.executable, "-m", "fastsync", *flags]
    skopeo = ["skopeo", "--insecure-policy", *flags]
    times: dict[str, list[float]] = {"fastsync": [], "skopeo": []}
    for _ in range(args.runs):
        times["fastsync"].append(run(fast, OUT / "fastsync-out"))
        times["skopeo"].append(run(skopeo, OUT / "skopeo-out"))
    f, s = statistics.median(times["fastsync"]), statistics.median(times["skopeo"])
    print(f"gzip -> zstd, one layer of {args.mb} MiB uncompressed ({layer.stat().st_size / 2**20:.1f} MiB gzip), "
          f"median of {args.runs}")
    print("| scenario | fastsync | skopeo | skopeo / fastsync |")
    print("| --- | --- | --- | --- |")
    print(f"| recompress gzip → zstd (dir: → dir:) | {f:.2f} s | {s:.2f} s | {s / f:.2f}× |")


if __name__ == "__main__":
    main()
