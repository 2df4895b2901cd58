"""`fastsync sync` vs `skopeo sync`: the sync issue's benchmark figures, in one run.

    python -m bench.sync_bench [--scale 0.5] [--reps 1] [--big-mib 1024] [--only fresh-wan,...]

Scenarios (the registries and the corpus come from bench/harness.py; both tools get the same input):
  fresh-wan    fresh sync registry -> registry, both registries behind a 20 ms (each way) proxy
  resync-wan   the same sync again, nothing changed
  dir-warm     sync to dir: into a new directory with a warm cache (fastsync: its blob cache;
               skopeo has none), WAN; the output's disk usage counts each inode once
  sync-big     sync one image with a single 1 GiB layer registry -> registry (loopback): peak RSS
The first three are bench/scenarios.py's; sync-big is defined here. Targets (issue 6): fresh >= 4x,
re-sync >= 10x, dir warm >= 10x with each unique blob once on disk, peak RSS <= 150 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import harness
from .harness import Bench, Command, Measurement, Scenario, Skip, Trial, fastsync, run_all, skopeo
from .scenarios import DirWarm, FreshWan, ResyncWan, check_registry

OUT = Path(__file__).resolve().parent / "out"
TARGETS = {("fresh-wan", "wall"): 4.0, ("resync-wan", "wall"): 10.0, ("dir-warm", "wall"): 10.0}
RSS_LIMIT = 150 * 2**20


def write_big_image(path: Path, mib: int) -> dict:
    """A dir: image with one incompressible `mib` MiB layer (streamed to disk, never in memory)."""
    import hashlib

    done = path / ".done"
    if done.exists():
        return json.loads(done.read_text())
    path.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    tmp = path / "layer.tmp"
    with open(tmp, "wb") as f:
        seed = hashlib.sha256(b"fastsync big layer").digest()
        block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(32768))  # 1 MiB
        for i in range(mib):
            chunk = hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:]
            h.update(chunk)
            f.write(chunk)
    layer_digest = "sha256:" + h.hexdigest()
    os.rename(tmp, path / h.hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                         "diff_ids": [layer_digest]}}, separators=(",", ":")).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    (path / config_digest.split(":")[1]).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                      "size": len(config), "digest": config_digest},
                           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                       "size": mib << 20, "digest": layer_digest}]}, indent=3).encode()
    (path / "manifest.json").write_bytes(manifest)
    (path / "version").write_text("Directory Transport Version: 1.1\n")
    info = {"digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
            "media_type": "application/vnd.docker.distribution.manifest.v2+json", "repo": "big/layer", "tag": "1",
            "ref": "big/layer:1"}
    done.write_text(json.dumps(info))
    return info


class SyncBig(Scenario):
    name = "sync-big"
    title = "sync one image with a 1 GiB layer, loopback"
    metrics = ("wall", "rss")
    quick = True
    mib = 1024
    timeout = 900

    def prepare(self, t: Trial) -> None:
        info = write_big_image(OUT / f"big-{self.mib}m", self.mib)
        src = t.registry(wan=False)
        push = skopeo("copy", "--dest-tls-verify=false", f"dir:{OUT / f'big-{self.mib}m'}",
                      f"docker://{src.host}/{info['ref']}")
        proc = subprocess.run(push, capture_output=True, env=harness.base_env())
        if proc.returncode:
            raise Skip(f"seeding the big image failed: {proc.stderr.decode(errors='replace')[-300:]}")
        head = src.registry.request("HEAD", f"/v2/{info['repo']}/manifests/{info['tag']}",
                                    headers={"Accept": info["media_type"]})
        info = {**info, "digest": head.headers["Docker-Content-Digest"]}   # as skopeo pushed it
        t.state.update(src=src, dest=t.registry(wan=False), image=info)

    def command(self, t: Trial) -> Command:
        src, dest = t.state["src"].host, t.state["dest"].host
        if t.tool == "fastsync":
            argv = fastsync("sync", "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
                            "--dest-tls-verify=false", f"{src}/big/layer:1", f"{dest}/mirror")
        else:
            argv = skopeo("sync", "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
                          "--dest-tls-verify=false", f"{src}/big/layer:1", f"{dest}/mirror")
        return Command(argv, f"{t.tool} sync --src docker --dest docker SRC/big/layer:1 DEST/mirror")

    def check(self, t: Trial, m: Measurement) -> None:
        check_registry(t, t.state["dest"].registry, [t.state["image"]])


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sync_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.5, help="corpus scale (see bench/corpus.py)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the big layer")
    ap.add_argument("--only", default="", help="comma-separated: fresh-wan,resync-wan,dir-warm,sync-big")
    args = ap.parse_args()
    SyncBig.mib = args.big_mib
    scenarios: list[Scenario] = [FreshWan(), ResyncWan(), DirWarm(), SyncBig()]
    if args.only:
        scenarios = [s for s in scenarios if s.name in set(args.only.split(","))]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    from .__main__ import table

    t0 = time.perf_counter()
    with harness.sigterm_as_interrupt():
        with Bench(args.scale, args.delay_ms, None, OUT, log) as bench:
            from .scenarios import corpus_summary

            summary = corpus_summary(bench.corpus)
            outcomes = run_all(bench, scenarios, args.reps, log)
    lines, rows = table(outcomes)
    print(f"corpus (scale {args.scale}): {summary}; WAN {args.delay_ms:g} ms each way; {args.reps} rep(s); "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("\n".join(lines))
    print()
    for r in rows:
        want = TARGETS.get((r["scenario"], r["metric"]))
        if want and r["ratio"]:
            print(f"{r['scenario']}: {r['ratio']:.1f}x (target >= {want:g}x: {'met' if r['ratio'] >= want else 'missed'})")
        if r["metric"] == "rss" and r["scenario"] == "sync-big" and r["fastsync"]:
            print(f"sync-big peak RSS {r['fastsync'] / 2**20:.0f} MiB (target <= 150 MB: "
                  f"{'met' if r['fastsync'] <= RSS_LIMIT else 'missed'})")
    (OUT / "sync_bench.json").write_text(json.dumps({"scale": args.scale, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
