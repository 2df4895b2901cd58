"""Load corpus images from a registry into a containers-storage store: fastsync vs skopeo.

    python -m bench.cstorage_bench [--scale 0.2] [--reps 3] [--images 10] [--driver vfs] [--wan]

Uses the bench harness (bench/harness.py: corpus, seeded source registry, measured runs).

* fastsync: ``fastsync sync --src list --dest containers-storage --src-registry SRC list.txt
  '[DRIVER@ROOT+RUN]'`` into a fresh store, without the blob cache (``--no-cache``: every blob
  downloaded) and with a warm one (a previous run filled it: layers are extracted from cached
  blobs, nothing is downloaded).
* ``--wan``: the same with the source behind the harness's 20 ms proxy (each way).
* skopeo: a loop of ``skopeo copy docker://SRC/REPO:TAG containers-storage:[...]NAME:TAG`` (skopeo
  sync cannot write containers-storage; skopeo has no cache).

Every run is checked before a number is reported: the store's images.json holds each image with
its source manifest digest. Prints a table; results in bench/out/cstorage/cstorage-results.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.harness import Scenario

OUT = Path(__file__).resolve().parent / "out" / "cstorage"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def scenarios(count: int, driver: str) -> "dict[str, Scenario]":
    from bench.harness import Command, Measurement, Scenario, Trial, fastsync, loop, skopeo

    def chosen(t: Trial) -> list[dict]:
        return [im for im in t.corpus["images"] if im["media_type"] == OCI_MANIFEST][:count]

    def store_spec(t: Trial) -> str:
        run = t.state.get("runroot")
        if run is None:
            run = t.state["runroot"] = tempfile.mkdtemp(prefix="fs-csb-", dir="/tmp")
            t.stack.callback(shutil.rmtree, run, True)
        return f"[{driver}@{t.dir / 'store'}+{run}]"

    class Load(Scenario):
        name = "cstorage-cold"
        metrics = ("wall", "rss")
        warm = False
        wan = False

        @property
        def title(self) -> str:  # type: ignore[override]
            cache = "warm cache" if self.warm else "no cache"
            where = "WAN" if self.wan else "loopback"
            return f"{count} corpus images registry -> containers-storage ({driver}), {where}, fastsync {cache}"

        def _fastsync(self, t: Trial, spec: str) -> Command:
            listing = t.dir / "list.txt"
            listing.write_text("".join(im["ref"] + "\n" for im in chosen(t)))
            cache = ["--cache", str(t.persistent("cstorage-cache"))] if self.warm else ["--no-cache"]
            argv = fastsync("sync", "-q", "--src", "list", "--dest", "containers-storage", *cache,
                            "--src-registry", t.src(self.wan), "--src-tls-verify=false", str(listing), spec)
            return Command(argv, "fastsync sync --src list --dest containers-storage "
                                 f"{' '.join(cache[:1])} --src-registry SRC list.txt '[{driver}@ROOT+RUN]'")

        def prepare(self, t: Trial) -> None:
            if t.tool == "fastsync" and self.warm:
                marker = t.persistent("cstorage-cache") / ".bench-warm"
                if not marker.exists():
                    warm_dir, warm_run = t.dir / "warmup", tempfile.mkdtemp(prefix="fs-csw-", dir="/tmp")
                    try:
                        with t.no_delay():
                            t.run(self._fastsync(t, f"[{driver}@{warm_dir}+{warm_run}]"))
                    finally:
                        shutil.rmtree(warm_dir, ignore_errors=True)
                        shutil.rmtree(warm_run, ignore_errors=True)
                    marker.write_text("1")

        def command(self, t: Trial) -> Command:
            spec = store_spec(t)
            if t.tool == "fastsync":
                return self._fastsync(t, spec)
            argvs = [skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{t.src(self.wan)}/{im['ref']}",
                            f"containers-storage:{spec}{im['ref'].rsplit('/', 1)[-1]}") for im in chosen(t)]
            return loop(t, argvs, "skopeo copy docker://SRC/REPO:TAG containers-storage:[...]NAME:TAG")

        def check(self, t: Trial, m: Measurement) -> None:
            path = t.dir / "store" / f"{driver}-images" / "images.json"
            stored = {rec.get("digest") for rec in json.loads(path.read_bytes())}
            missing = [im["ref"] for im in chosen(t) if im["digest"] not in stored]
            if missing:
                raise RuntimeError(f"not in the store with their digests: {missing}")

    class LoadWarm(Load):
        name = "cstorage-warm"
        warm = True

    class LoadWan(Load):
        name = "cstorage-cold-wan"
        wan = True

    class LoadWarmWan(LoadWarm):
        name = "cstorage-warm-wan"
        wan = True

    return {"cstorage-cold": Load(), "cstorage-warm": LoadWarm(), "cstorage-cold-wan": LoadWan(),
            "cstorage-warm-wan": LoadWarmWan()}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cstorage_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--driver", choices=("vfs", "overlay"), default="vfs")
    ap.add_argument("--wan", action="store_true", help="also run with the source behind the 20 ms WAN proxy")
    args = ap.parse_args()
    from bench.harness import Bench, finish, run_all, sigterm_as_interrupt

    table = scenarios(args.images, args.driver)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with sigterm_as_interrupt(), Bench(args.scale, 20.0, None, OUT, log) as bench:
        chosen = [sc for sc in table.values() if args.wan or not sc.wan]
        outcomes = run_all(bench, chosen, args.reps, log)
    lines = ["| scenario | fastsync | skopeo | ratio |", "| --- | ---: | ---: | ---: |"]
    rows = []
    for oc in outcomes:
        f, s = oc.median("fastsync", "wall"), oc.median("skopeo", "wall")
        cell = lambda v: f"{v:.2f} s" if v is not None else "failed"  # noqa: E731
        lines.append(f"| {oc.scenario.title} | {cell(f)} | {cell(s)} | {f'{s / f:.1f}×' if f and s else '—'} |")
        rows.append({"scenario": oc.scenario.name, "fastsync_s": f, "skopeo_s": s, "ratio": s / f if f and s else None,
                     "fastsync_rss": oc.median("fastsync", "rss"), "skopeo_rss": oc.median("skopeo", "rss"),
                     "commands": oc.labels, "failed": oc.failed,
                     "runs": {tool: [x.wall for x in oc.runs[tool]] for tool in oc.runs}})
    header = f"scale {args.scale:g}, {args.images} images, {args.driver}, {args.reps} repetitions (median)"
    meta = {"scale": args.scale, "images": args.images, "driver": args.driver, "reps": args.reps}
    return finish(outcomes, header, lines, OUT, "cstorage-results.json", meta, rows)


if __name__ == "__main__":
    sys.exit(main())
