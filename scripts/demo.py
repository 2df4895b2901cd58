"""The quick-start job: generate a small release's images, push them into a local registry with
fastsync, then mirror them back out into one OCI layout, printing each command as it runs.

Everything happens on 127.0.0.1 with a temporary docker-registry; the output stays in ./demo-out.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastsync.testing import images  # noqa: E402
from fastsync.testing.registry import Registry  # noqa: E402

OUT = ROOT / "demo-out"


def fastsync(*args: str) -> str:
    print("$ fastsync " + " ".join(shlex.quote(a) for a in args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "fastsync", *args], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        sys.exit(f"demo: fastsync exited with {proc.returncode}")
    return proc.stdout


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    samples = images.sample_set()
    release = {name: samples[name] for name in ("v2s2", "shared", "oci", "zstd", "multiarch", "empty")}
    print(f"Generated {len(release)} sample images ({sum(len(d) for i in release.values() for d in i.all_blobs().values()) // 1024} KiB of blobs)")
    for name, image in release.items():
        images.write_dir(image, OUT / "source" / name)
    print(fastsync("--version").strip())
    with Registry() as reg:
        print(f"Started docker-registry on {reg.host} (root {reg.root})")
        t0 = time.monotonic()
        for name in release:
            fastsync("copy", "--all", "-q", "--dest-tls-verify=false", f"dir:{OUT / 'source' / name}",
                     f"docker://{reg.host}/release/{name}:1.0")
        print(json.dumps(json.loads(fastsync("list-tags", "--tls-verify=false",
                                             f"docker://{reg.host}/release/v2s2"))))
        for name in release:
            fastsync("copy", "--all", "-q", "--src-tls-verify=false", f"docker://{reg.host}/release/{name}:1.0",
                     f"oci:{OUT / 'layout'}:{name}-1.0")
        took = time.monotonic() - t0
        info = json.loads(fastsync("inspect", f"oci:{OUT / 'layout'}:multiarch-1.0"))
        print(f"multiarch-1.0 in the layout: {info['Digest']} ({info['Architecture']}/{info['Os']}, "
              f"{len(info['Layers'])} layers)")
    index = json.loads((OUT / "layout" / "index.json").read_bytes())
    refs = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    print(f"Done in {took:.1f}s: {len(release)} images pushed to a registry and mirrored into "
          f"{OUT / 'layout'} ({', '.join(refs)})")


if __name__ == "__main__":
    main()
