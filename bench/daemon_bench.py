"""docker-daemon: push 10 images from a local engine to a registry, and load them back.

    python -m bench.daemon_bench [--scale 0.25] [--reps 3]

Uses the bench harness (bench/harness.py: corpus, seeded source registry, measured runs) and a
private podman `system service` (tests/support/podman.py: its own socket, --root/--runroot, vfs) as
the engine. The first 10 single-platform images of the corpus are loaded into it once, untimed
(with skopeo). Then, per repetition and tool:

* daemon-push: the 10 images from the engine to a fresh registry.
  fastsync: ``fastsync sync --src docker-daemon --dest docker images.txt DEST/push`` (one process,
  images concurrently, a cold cache); skopeo: a loop of ``skopeo copy docker-daemon:NAME
  docker://DEST/push/NAME``. skopeo gzips every layer for the registry (Go's gzip); fastsync pushes the
  layers as the engine saved them (uncompressed) unless asked to compress, so
* daemon-push-gzip is the same with ``fastsync sync --dest-compress`` (gzip via the native core): the
  same work as skopeo's.
* daemon-load: the 10 images from the source registry into the engine.
  fastsync: ``fastsync sync --src list --dest docker-daemon``; skopeo: a loop of ``skopeo copy
  docker://SRC/NAME docker-daemon:NAME``.

Every run is checked before its number counts: each pushed image's config digest at the destination
registry, each loaded image's ID in podman's storage, equal to the source's config digest. Prints a
table; results in bench/out/daemon/daemon-results.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.harness import Bench, Scenario

OUT = Path(__file__).resolve().parent / "out" / "daemon"
COUNT = 10


def _podman_service(base: Path) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.podman import PodmanService     # the test harness's engine (tests/support/podman.py)

    return PodmanService(base)


def chosen_images(bench: "Bench") -> list[dict]:
    """The first COUNT single-platform images of the corpus, with their config digests (read from the
    source registry)."""
    assert bench.src is not None
    out = []
    for im in bench.corpus["images"]:
        if "index" in im["media_type"] or "list" in im["media_type"]:
            continue
        r = bench.src.registry.request("GET", f"/v2/{im['repo']}/manifests/{im['tag']}",
                                       headers={"Accept": im["media_type"]})
        if r.status != 200:
            raise RuntimeError(f"{im['ref']}: HTTP {r.status} from the source registry")
        out.append({**im, "config": r.json()["config"]["digest"]})  # type: ignore[index]
        if len(out) == COUNT:
            break
    return out


def scenarios(engine: Any, chosen: list[dict]) -> "list[Scenario]":
    from bench.harness import Command, Measurement, Scenario, Trial, fastsync, loop, skopeo

    host = engine.host

    def names_file(t: Trial) -> Path:
        path = t.dir / "images.txt"
        path.write_text("".join(f"{im['ref']}\n" for im in chosen))
        return path

    class Push(Scenario):
        name = "daemon-push"
        title = f"push {COUNT} images from the engine to a registry"
        metrics = ("wall", "rss", "cpu")
        compress = False

        def prepare(self, t: Trial) -> None:
            t.state["dest"] = t.registry(False)

        def command(self, t: Trial) -> Command:
            dest = t.state["dest"].host
            if t.tool == "fastsync":
                extra = ["--dest-compress"] if self.compress else []
                argv = fastsync("sync", "-q", "--src", "docker-daemon", "--dest", "docker", *extra,
                                "--src-daemon-host", host, "--dest-tls-verify=false", str(names_file(t)),
                                f"{dest}/push")
                return Command(argv, "fastsync sync --src docker-daemon --dest docker " + " ".join(extra) +
                               " images.txt DEST/push")
            return loop(t, [skopeo("copy", "-q", "--src-daemon-host", host, "--dest-tls-verify=false",
                                   f"docker-daemon:{im['ref']}", f"docker://{dest}/push/{im['ref']}")
                            for im in chosen], "skopeo copy docker-daemon:NAME docker://DEST/push/NAME, in a loop")

        def check(self, t: Trial, m: Measurement) -> None:
            reg = t.state["dest"].registry
            for im in chosen:
                r = reg.request("GET", f"/v2/push/{im['repo']}/manifests/{im['tag']}", headers={"Accept": ",".join([
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.oci.image.manifest.v1+json"])})
                got = r.json()["config"]["digest"] if r.status == 200 else f"HTTP {r.status}"  # type: ignore[index]
                if got != im["config"]:
                    raise RuntimeError(f"push/{im['ref']}: config {got}, expected {im['config']}")

    class PushGzip(Push):
        name = "daemon-push-gzip"
        title = f"push {COUNT} images from the engine to a registry, layers gzipped (fastsync --dest-compress)"
        compress = True

    class Load(Scenario):
        name = "daemon-load"
        title = f"load {COUNT} images from a registry into the engine"
        metrics = ("wall", "rss", "cpu")

        def command(self, t: Trial) -> Command:
            src = t.src(False)
            prefix = f"localhost/load-{t.tool}-{t.rep}"
            t.state["prefix"] = prefix
            if t.tool == "fastsync":
                argv = fastsync("sync", "-q", "--src", "list", "--dest", "docker-daemon", "--src-registry", src,
                                "--src-tls-verify=false", "--dest-daemon-host", host, str(names_file(t)), prefix)
                return Command(argv, "fastsync sync --src list --dest docker-daemon --src-registry SRC images.txt "
                                     "localhost/load")
            return loop(t, [skopeo("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", host,
                                   f"docker://{src}/{im['ref']}", f"docker-daemon:{prefix}/{im['ref']}")
                            for im in chosen], "skopeo copy docker://SRC/NAME docker-daemon:localhost/load/NAME, "
                                               "in a loop")

        def check(self, t: Trial, m: Measurement) -> None:
            ids = engine.image_ids()
            names = [f"{t.state['prefix']}/{im['ref']}" for im in chosen]
            try:
                for name, im in zip(names, chosen):
                    if ids.get(name) != im["config"]:
                        raise RuntimeError(f"{name}: image ID {ids.get(name)}, expected {im['config']}")
            finally:
                engine.podman("rmi", "--force", *[n for n in names if n in ids], check=False)

    return [Push(), PushGzip(), Load()]


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.daemon_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    from bench.harness import Bench, finish, run_all, sigterm_as_interrupt, skopeo

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with sigterm_as_interrupt(), Bench(args.scale, 0.0, None, OUT, log) as bench:
        engine = _podman_service(bench.run_dir / "engine")
        bench.stack.callback(engine.cleanup)
        engine.start()
        chosen = chosen_images(bench)
        assert bench.src is not None
        import subprocess
        for im in chosen:         # the engine's images, loaded once (untimed) by the reference tool
            subprocess.run(skopeo("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", engine.host,
                                  f"docker://{bench.src.direct}/{im['ref']}", f"docker-daemon:{im['ref']}"),
                           check=True, capture_output=True)
        total = sum(im["bytes"] for im in chosen)
        log(f"engine: podman system service at {engine.host}, {len(chosen)} images ({total / (1 << 20):.0f} MiB "
            "compressed in the registry)")
        outcomes = run_all(bench, scenarios(engine, chosen), args.reps, log)
    lines = ["| scenario | fastsync | skopeo | ratio | CPU fastsync / skopeo | peak RSS fastsync / skopeo |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    rows = []
    for oc in outcomes:
        f, s = oc.median("fastsync", "wall"), oc.median("skopeo", "wall")
        fc, sc = oc.median("fastsync", "cpu"), oc.median("skopeo", "cpu")
        fr, sr = oc.median("fastsync", "rss"), oc.median("skopeo", "rss")
        cell = lambda v, unit="s": f"{v:.2f} {unit}" if v is not None else "failed"  # noqa: E731
        mib = lambda v: f"{v / (1 << 20):.0f} MiB" if v is not None else "—"  # noqa: E731
        lines.append(f"| {oc.scenario.title} | {cell(f)} | {cell(s)} | {f'{s / f:.1f}×' if f and s else '—'} | "
                     f"{cell(fc)} / {cell(sc)} | {mib(fr)} / {mib(sr)} |")
        rows.append({"scenario": oc.scenario.name, "fastsync_s": f, "skopeo_s": s, "ratio": s / f if f and s else None,
                     "fastsync_cpu_s": fc, "skopeo_cpu_s": sc, "fastsync_rss": fr, "skopeo_rss": sr,
                     "commands": oc.labels, "failed": oc.failed,
                     "runs": {tool: [x.wall for x in oc.runs[tool]] for tool in oc.runs}})
    header = f"scale {args.scale:g}, {args.reps} repetitions (median)"
    return finish(outcomes, header, lines, OUT, "daemon-results.json", {"scale": args.scale, "reps": args.reps}, rows)


if __name__ == "__main__":
    sys.exit(main())
