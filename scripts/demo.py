"""The quick-start job: a small release's images moved the way a release engineer moves them.

1. generate the release's images (deterministic sample images, written as `dir:` images);
2. `fastsync sync --src dir --dest docker`: push them all into a local registry;
3. `fastsync sync --src list --dest dir`: mirror the release, from an image-list file, into
   directories, filling the content-addressed cache on the way (with a JSON report);
4. the same sync again: nothing changed, so every image is skipped after a HEAD;
5. `fastsync sync --src list --dest registry-storage`: the offline installer's registry tree, its
   blobs hardlinked from the warm cache;
6. `fastsync copy --all`: one multi-arch image into an OCI layout.

Every command is printed as it runs. Everything happens on 127.0.0.1 with a temporary
docker-registry; the output stays in ./demo-out (or $FASTSYNC_DEMO_OUT).
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
sys.path.insert(0, str(ROOT / "tests"))   # the sample images and registry harness

from support import images  # noqa: E402
from support.registry import Registry  # noqa: E402

OUT = Path(os.environ.get("FASTSYNC_DEMO_OUT") or ROOT / "demo-out")
RELEASE = {"web": "v2s2", "api": "shared", "worker": "oci", "model": "zstd", "base": "multiarch", "scratch": "empty"}


def fastsync(*args: str) -> tuple[str, float]:
    print("$ fastsync " + " ".join(shlex.quote(a) for a in args), flush=True)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "fastsync", *args], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                       "XDG_CACHE_HOME": str(OUT / "cache-home")})
    if proc.returncode != 0:
        sys.exit(f"demo: fastsync exited with {proc.returncode}")
    return proc.stdout, time.monotonic() - t0


def report_line(path: Path) -> str:
    rep = json.loads(path.read_bytes())
    imgs = rep["images"]
    by_status: dict[str, int] = {}
    for i in imgs:
        by_status[i["status"]] = by_status.get(i["status"], 0) + 1
    moved = sum(i["bytes_transferred"] for i in imgs)
    cached = sum(i["bytes_from_cache"] for i in imgs)
    return (f"report: {len(imgs)} images ({', '.join(f'{n} {s}' for s, n in sorted(by_status.items()))}), "
            f"{moved // 1024} KiB transferred, {cached // 1024} KiB from the cache")


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    samples = images.sample_set()
    size = sum(len(d) for name in RELEASE.values() for d in samples[name].all_blobs().values())
    for app, name in RELEASE.items():
        images.write_dir(samples[name], OUT / "release" / f"{app}:1.0")
    print(f"Generated {len(RELEASE)} images of a release in {OUT / 'release'} ({size // 1024} KiB of blobs)")
    print(fastsync("--version")[0].strip())
    lst = OUT / "images.txt"
    lst.write_text("# the release's image list\n##apps\n" + "".join(f"release/{a}:1.0\n" for a in RELEASE))
    cache = str(OUT / "cache")
    with Registry() as reg:
        print(f"Started docker-registry on {reg.host} (root {reg.root})")
        _, t_push = fastsync("sync", "-q", "--all", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false",
                             str(OUT / "release"), f"{reg.host}/release")
        print(json.dumps(json.loads(fastsync("list-tags", "--tls-verify=false",
                                             f"docker://{reg.host}/release/web")[0])))
        mirror = ["sync", "-q", "--all", "--src", "list", "--dest", "dir", "--src-registry", reg.host,
                  "--src-tls-verify=false", "--cache", cache]
        _, t_cold = fastsync(*mirror, "--report", str(OUT / "report-1.json"), str(lst), str(OUT / "mirror"))
        print("  " + report_line(OUT / "report-1.json"))
        _, t_again = fastsync(*mirror, "--report", str(OUT / "report-2.json"), str(lst), str(OUT / "mirror"))
        print("  " + report_line(OUT / "report-2.json"))
        _, t_tree = fastsync("sync", "-q", "--all", "--src", "list", "--dest", "registry-storage", "--src-registry",
                             reg.host, "--src-tls-verify=false", "--cache", cache, str(lst), f"{OUT / 'offline'}:")
        _, t_oci = fastsync("copy", "--all", "-q", "--src-tls-verify=false", f"docker://{reg.host}/release/base:1.0",
                            f"oci:{OUT / 'layout'}:base-1.0")
        info = json.loads(fastsync("inspect", f"oci:{OUT / 'layout'}:base-1.0")[0])
        print(f"  base-1.0 in the layout: {info['Digest']} ({info['Architecture']}/{info['Os']}, "
              f"{len(info['Layers'])} layers)")
    tags = sorted(p.parent.parent.name + ":" + p.parent.name for p in
                  (OUT / "offline").glob("docker/registry/v2/repositories/release/*/_manifests/tags/*/current"))
    print(f"\nDone. Pushed {len(RELEASE)} images in {t_push:.2f}s; mirrored them to {OUT / 'mirror'} in "
          f"{t_cold:.2f}s, again (unchanged) in {t_again:.2f}s; wrote the registry tree {OUT / 'offline'} "
          f"({len(tags)} tags, blobs hardlinked from the cache) in {t_tree:.2f}s; OCI layout in {t_oci:.2f}s.")
    print(f"A docker-registry with storage.filesystem.rootdirectory: {OUT / 'offline'} serves the release.")


if __name__ == "__main__":
    main()
