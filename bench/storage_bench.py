"""Package the corpus into a registry storage tree: fastsync vs skopeo + the conversion script.

    python -m bench.storage_bench [--scale 0.5] [--reps 3] [--wan]

Uses the bench harness (bench/harness.py: corpus, seeded source registry, measured runs).

* fastsync, warm cache: every corpus image from the source registry into
  ``registry-storage:OUT:REPO:TAG`` with the content-addressed cache already holding the blobs
  (a previous release's run): manifests are fetched, blobs are hardlinked from the cache.
  ``fastsync sync --src list --dest registry-storage images.txt OUT:`` when sync knows that
  destination, else the library's copy engine over the image list
  (``python -m bench.storage_bench fastsync-run``).
* skopeo: ``skopeo sync --all --scoped --src yaml --dest dir`` (skopeo has no cache) followed by the
  conversion a user would write (``convert.py`` below, written out with the run: hardlink each
  blob into ``blobs/``, write ``_layers``, revision and tag links).

* floor (bench/floor.py): the hardlink-only floor: manifests fetched from the source, every blob
  hardlinked from a warm pool into the tree, link files written; nothing else.

All trees are checked by serving them with an unmodified docker-registry (every manifest digest)
before a number is reported. Prints a table; results in bench/out/storage/storage-results.json.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .harness import Scenario

OUT = Path(__file__).resolve().parent / "out" / "storage"   # own run dir: `python -m bench` may run meanwhile

CONVERT = r'''
"""skopeo sync --scoped --dest dir output (DIR/HOST/REPO:TAG/) -> registry storage tree ROOT, by hardlink."""
import hashlib, os, sys

src, root = sys.argv[1], sys.argv[2]
v2 = os.path.join(root, "docker", "registry", "v2")

def put(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)

def blob(path, digest):
    hexd = digest.split(":")[1]
    dst = os.path.join(v2, "blobs", "sha256", hexd[:2], hexd, "data")
    if not os.path.exists(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.link(path, dst)

for top, dirs, files in os.walk(src):
    if "manifest.json" not in files:
        continue
    scoped = os.path.relpath(top, src)             # --scoped: HOST:PORT/REPO:TAG
    repo, _, tag = scoped.split("/", 1)[1].rpartition(":")
    repo_dir = os.path.join(v2, "repositories", repo)
    for name in files:
        path = os.path.join(top, name)
        if name.endswith("manifest.json"):
            digest = "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()
            blob(path, digest)
            put(os.path.join(repo_dir, "_manifests", "revisions", "sha256", digest[7:], "link"), digest)
            if name == "manifest.json":
                top_digest = digest
        elif name != "version":
            digest = "sha256:" + name
            blob(path, digest)
            put(os.path.join(repo_dir, "_layers", "sha256", name, "link"), digest)
    put(os.path.join(repo_dir, "_manifests", "tags", tag, "index", "sha256", top_digest[7:], "link"), top_digest)
    put(os.path.join(repo_dir, "_manifests", "tags", tag, "current", "link"), top_digest)
'''


# ---- the fastsync side when `sync` cannot write registry-storage: (the library's copy engine)

async def _fastsync_run(src: str, out: str, refs: list[str]) -> None:
    from fastsync.engine.job import Job
    from fastsync.options import CopyOptions, TransportOptions
    from fastsync.transports import parse_image_name
    from fastsync.session import Session
    from fastsync.store.blobs import Store, default_root

    async with Session(store=Store(default_root())) as session:
        job = Job(session, CopyOptions(multi_arch="all", preserve_digests=True))
        topts = TransportOptions(tls_verify=False)
        await asyncio.gather(*(job.copy(parse_image_name(f"docker://{src}/{ref}"),
                                        parse_image_name(f"registry-storage:{out}:{ref}"), topts)
                               for ref in refs))


def fastsync_run(argv: list[str]) -> int:
    src, out, *refs = argv
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(_fastsync_run(src, out, refs))
    return 0


def scenarios() -> "dict[str, Scenario]":
    """The scenario classes (defined here so that `fastsync-run` imports nothing but fastsync)."""
    from support.registry import Registry

    from .harness import ALL_TOOLS, Command, Measurement, Scenario, Trial, _base_env, fastsync, floor, loop, skopeo

    def _fastsync_sync_knows_storage() -> bool:
        probe = "import fastsync.sync.inputs as s; raise SystemExit('registry-storage' not in s.DEST_KINDS)"
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, env=_base_env()).returncode == 0

    def check_tree(root: Path, images: list[dict]) -> None:
        """An unmodified docker-registry serves every image of the corpus from `root` with its digest."""
        with Registry(root=root) as reg:
            for im in images:
                r = reg.request("HEAD", f"/v2/{im['repo']}/manifests/{im['tag']}", headers={"Accept": im["media_type"]})
                got = r.headers.get("Docker-Content-Digest")
                if r.status != 200 or got != im["digest"]:
                    raise RuntimeError(f"{im['ref']} served from {root}: HTTP {r.status}, digest {got}, "
                                       f"expected {im['digest']}")

    class StorageWarm(Scenario):
        name = "storage-warm"
        metrics = ("wall", "rss")
        tools = ALL_TOOLS
        wan = False

        @property
        def title(self) -> str:  # type: ignore[override]
            return f"package the corpus into a registry-storage tree, warm cache, {'WAN' if self.wan else 'loopback'}"

        def _fastsync(self, t: Trial, out: Path) -> Command:
            if _fastsync_sync_knows_storage():
                argv = fastsync("sync", "-q", "--src", "list", "--dest", "registry-storage", "--all",
                                "--src-registry", t.src(self.wan), "--src-tls-verify=false",
                                str(t.corpus_dir / "images.txt"), f"{out}:")
                return Command(argv, "fastsync sync --src list --dest registry-storage --all --src-registry SRC "
                                     "images.txt OUT: (cache: $XDG_CACHE_HOME/fastsync)")
            refs = [im["ref"] for im in t.corpus["images"]]
            argv = [sys.executable, "-m", "bench.storage_bench", "fastsync-run", t.src(self.wan), str(out), *refs]
            return Command(argv, "fastsync copy engine, all images concurrently, docker://SRC/REPO:TAG -> "
                                 "registry-storage:OUT:REPO:TAG, cache = $XDG_CACHE_HOME/fastsync")

        def _floor(self, t: Trial, out: Path) -> Command:
            argv = floor("copy", str(t.sync_yaml(self.wan)), f"registry-storage:{out}",
                         "--pool", str(t.persistent("storage-pool")), "--timings", str(t.floor_timings))
            return Command(argv, "python -m bench.floor copy sync.yaml registry-storage:OUT --pool POOL "
                                 "(manifests fetched, blobs hardlinked from a warm pool)")

        def prepare(self, t: Trial) -> None:
            if t.tool == "floor":
                pool = t.persistent("storage-pool")
                if not (pool / ".bench-warm").exists():
                    with t.no_delay():
                        t.run(self._floor(t, t.dir / "warmup"))
                    (pool / ".bench-warm").write_text("1")
            elif t.tool == "fastsync":
                cache = t.persistent("storage-cache")
                t.env["XDG_CACHE_HOME"] = str(cache)
                if not (cache / ".bench-warm").exists():       # a previous release's run filled the cache
                    with t.no_delay():
                        t.run(self._fastsync(t, t.dir / "warmup"))
                    (cache / ".bench-warm").write_text("1")
            else:
                (t.dir / "convert.py").write_text(CONVERT)

        def command(self, t: Trial) -> Command:
            out = t.dir / "root"
            if t.tool == "fastsync":
                return self._fastsync(t, out)
            if t.tool == "floor":
                return self._floor(t, out)
            sync = skopeo("sync", "--all", "--scoped", "--src", "yaml", "--dest", "dir", str(t.sync_yaml(self.wan)),
                          str(t.dir / "dirs"))
            convert = [sys.executable, str(t.dir / "convert.py"), str(t.dir / "dirs"), str(out)]
            cmd = loop(t, [sync, convert], "")
            return Command(cmd.argv, "skopeo sync --all --scoped --src yaml --dest dir sync.yaml DIRS && "
                                     "python3 convert.py DIRS OUT (hardlinks + link files)")

        def check(self, t: Trial, m: Measurement) -> None:
            check_tree(t.dir / "root", t.corpus["images"])

    class StorageWarmWan(StorageWarm):
        name = "storage-warm-wan"
        wan = True

    return {"storage-warm": StorageWarm(), "storage-warm-wan": StorageWarmWan()}


def main() -> int:
    if sys.argv[1:2] == ["fastsync-run"]:
        return fastsync_run(sys.argv[2:])
    ap = argparse.ArgumentParser(prog="python -m bench.storage_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--wan", action="store_true", help="also run with the source behind the 20 ms WAN proxy")
    ap.add_argument("--delay-ms", type=float, default=20.0)
    args = ap.parse_args()
    from .harness import Bench, finish, run_all, sigterm_as_interrupt

    table = scenarios()
    chosen = [table["storage-warm"]] + ([table["storage-warm-wan"]] if args.wan else [])

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with sigterm_as_interrupt(), Bench(args.scale, args.delay_ms, None, OUT, log) as bench:
        outcomes = run_all(bench, chosen, args.reps, log)
    lines = ["| scenario | fastsync | skopeo + script | hardlink-only floor | skopeo / fastsync | fastsync / floor |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    rows = []
    for oc in outcomes:
        f, s, fl = (oc.median(tool, "wall") for tool in ("fastsync", "skopeo", "floor"))
        fr, sr = oc.median("fastsync", "rss"), oc.median("skopeo", "rss")
        cell = lambda v: f"{v:.2f} s" if v is not None else "failed"  # noqa: E731
        lines.append(f"| {oc.scenario.title} | {cell(f)} | {cell(s)} | {cell(fl)} | "
                     f"{f'{s / f:.1f}×' if f and s else '—'} | {f'{f / fl:.2f}' if f and fl else '—'} |")
        rows.append({"scenario": oc.scenario.name, "fastsync_s": f, "skopeo_s": s, "floor_s": fl,
                     "ratio": s / f if f and s else None, "fastsync_over_floor": f / fl if f and fl else None,
                     "fastsync_rss": fr, "skopeo_rss": sr, "commands": oc.labels, "failed": oc.failed,
                     "runs": {tool: [x.wall for x in oc.runs[tool]] for tool in oc.runs}})
    header = f"scale {args.scale:g}, {args.reps} repetitions (median)"
    return finish(outcomes, header, lines, OUT, "storage-results.json", {"scale": args.scale, "reps": args.reps}, rows)


if __name__ == "__main__":
    sys.exit(main())
