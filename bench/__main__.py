"""python -m bench: fastsync vs skopeo vs the floor on the generated corpus; prints a markdown table.

The floor (bench/floor.py) does only the HTTP work a sync strictly needs; it runs in the same run,
taking turns with fastsync and skopeo, and the table shows skopeo / fastsync and fastsync / floor
with the CPU seconds of the tool, the registries and the proxies. Start-up figures
(bench/startup.py: `fastsync --version`, `fastsync sync` to its first request) follow the table.

    python -m bench                 # default scale and repetitions (see --help)
    python -m bench --quick         # scale 0.1, 1 repetition, smoke check (~2 minutes)
    python -m bench --only fresh-wan,resync-wan --reps 5

Results also go to bench/out/results.json; command logs to bench/out/logs/.
Scenario modules: bench/scenarios*.py (each registers its scenarios with @register).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import harness, startup
from .harness import ALL_TOOLS, Bench, Outcome, run_all, sigterm_as_interrupt

DEFAULT_SCALE = 1.0
DEFAULT_REPS = 5
OUT = Path(__file__).resolve().parent / "out"


def load_scenarios() -> None:
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("scenarios*.py")):
        importlib.import_module(f"bench.{path.stem}")


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / 2**30),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def _out(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=harness.base_env()).stdout.strip()
    except OSError:
        return "?"


def fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "—"
    if metric in ("wall", "cpu", "nostart"):
        return f"{v:.2f} s" if v < 100 else f"{v:.0f} s"
    return f"{v / 2**20:.0f} MiB"


ROW = {"wall": "{}", "rss": "peak RSS: {}", "disk": "dir: output on disk: {}", "cpu": "CPU time: {}",
       "nostart": "{}: floor without interpreter start-up"}
CPU_PARTS = ("cpu", "reg_cpu", "proxy_cpu")   # the tool, the registries, the WAN proxies


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _cpu_cell(oc: Outcome, tool: str) -> str:
    if tool not in oc.runs or tool in oc.failed or tool in oc.skipped:
        return "—"
    parts = [oc.median(tool, p) for p in CPU_PARTS]
    return " · ".join("—" if v is None else f"{v:.2f}" for v in parts)


def table(outcomes: list[Outcome]) -> tuple[list[str], list[dict]]:
    lines = ["| scenario | fastsync | skopeo | floor | skopeo / fastsync | fastsync / floor "
             "| CPU s fastsync · registries · proxies | CPU s floor · registries · proxies |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rows = []
    for n, oc in enumerate(outcomes, 1):
        for metric in oc.scenario.metrics:
            cells, med = [], {}
            for tool in ALL_TOOLS:
                med[tool] = oc.median(tool, metric) if tool in oc.runs else None
                if tool not in oc.runs:
                    cells.append("n/a")
                elif tool in oc.skipped:
                    cells.append(f"n/a ({oc.skipped[tool]})")
                elif tool in oc.failed:
                    cells.append("**failed**")
                else:
                    vals = oc.values(tool, metric)
                    spread = f" ({fmt(metric, min(vals))}–{fmt(metric, max(vals))})" if len(vals) > 2 else ""
                    cells.append(fmt(metric, med[tool]) + spread)
            f, s, fl = med["fastsync"], med["skopeo"], med["floor"]
            vs_skopeo, vs_floor = _ratio(s, f), _ratio(f, fl)
            cpu = [_cpu_cell(oc, "fastsync"), _cpu_cell(oc, "floor")] if metric == "wall" else ["", ""]
            lines.append(f"| {ROW[metric].format(oc.scenario.title)} [{n}] | {' | '.join(cells)} "
                         f"| {f'{vs_skopeo:.2f}×' if vs_skopeo else '—'} | {f'{vs_floor:.2f}' if vs_floor else '—'} "
                         f"| {cpu[0]} | {cpu[1]} |")
            row = {"scenario": oc.scenario.name, "metric": metric, "title": oc.scenario.title,
                   "fastsync": f, "skopeo": s, "floor": fl, "ratio": vs_skopeo, "fastsync_over_floor": vs_floor}
            if metric == "wall":
                row["cpu"] = {tool: {p: oc.median(tool, p) for p in CPU_PARTS} for tool in oc.runs}
            rows.append(row)
    return lines, rows


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=None, help=f"corpus scale (default {DEFAULT_SCALE}; 1.0 = "
                    "the issue's sizes: 90 MB base, 384 MB layer)")
    ap.add_argument("--reps", type=int, default=None, help=f"repetitions per tool (default {DEFAULT_REPS})")
    ap.add_argument("--quick", action="store_true", help="scale 0.1, 1 repetition")
    ap.add_argument("--delay-ms", type=float, default=20.0, help="WAN one-way delay per proxy (default 20)")
    ap.add_argument("--bandwidth-mbps", type=float, default=None,
                    help="WAN bandwidth cap per direction per proxy, megabytes/s (default none)")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--baseline", choices=("sync", "copy-loop"), default="sync",
                    help="skopeo side: `skopeo sync` (default) or a `skopeo copy` loop")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    args = ap.parse_args()
    scale = args.scale if args.scale is not None else (0.1 if args.quick else DEFAULT_SCALE)
    reps = args.reps if args.reps is not None else (1 if args.quick else DEFAULT_REPS)

    load_scenarios()
    from . import scenarios as sc_mod
    sc_mod.OPTIONS["baseline"] = args.baseline
    chosen = [s for s in harness.SCENARIOS if (not args.quick or s.quick)]
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {s.name for s in harness.SCENARIOS}
        if unknown:
            ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        chosen = [s for s in harness.SCENARIOS if s.name in names]
    if args.list:
        for s in harness.SCENARIOS:
            print(f"{s.name:20} {s.title}")
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now().astimezone()
    commit = _out(["git", "-C", str(OUT.parent.parent), "describe", "--always", "--dirty"])   # the tree that ran
    load0 = os.getloadavg()[0]   # other work on the machine skews the figures: say so
    t0 = time.perf_counter()
    bw = args.bandwidth_mbps * 1e6 if args.bandwidth_mbps else None
    with sigterm_as_interrupt():
        try:
            with Bench(scale, args.delay_ms, bw, OUT, log) as bench:
                log(f"running {len(chosen)} scenarios × up to {len(ALL_TOOLS)} tools × {reps} repetitions")
                outcomes = run_all(bench, chosen, reps, log)
                corpus = bench.corpus
            log("start-up: --version and the first request of a sync")
            start_rows = startup.measure(max(reps, 5), log)
        except KeyboardInterrupt:
            log("interrupted: registries, proxies and child processes stopped")
            return 130
    took = time.perf_counter() - t0

    m = machine()
    fs_version = _out(harness.fastsync("--version"))
    sk_version = _out(["skopeo", "--version"])
    load1 = os.getloadavg()[0]
    wan = f"WAN = each registry behind a proxy adding {args.delay_ms:g} ms one-way"
    wan += f", {args.bandwidth_mbps:g} MB/s cap" if args.bandwidth_mbps else " (no bandwidth cap)"
    header = (f"**{m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB, {m['os']}** — {started:%Y-%m-%d}, "
              f"scale {scale:g}{' (--quick)' if args.quick else ''}, {reps} repetition{'s' * (reps != 1)} "
              f"(median{', min–max' if reps > 2 else ''}), {wan}; {fs_version}, {sk_version}, commit {commit}; "
              f"load average {load0:.1f} at start, {load1:.1f} at end")
    lines, rows = table(outcomes)
    notes = [f"Corpus: {sc_mod.corpus_summary(corpus)}.",
             "skopeo / fastsync > 1: fastsync faster / smaller; fastsync / floor: how far fastsync is above the "
             "floor (1.00 = at the floor). CPU: user + system seconds of the tool's processes, of every "
             "registry process and of the WAN proxies during the timed run. Commands that ran:"]
    for n, oc in enumerate(outcomes, 1):
        labels = "; ".join(f"{tool}: `{oc.labels.get(tool, oc.skipped.get(tool, '—'))}`" for tool in oc.runs)
        notes.append(f"[{n}] {labels}")
    failures = [f"{oc.scenario.name} [{tool}]: {err.splitlines()[-1] if err else ''}"
                for oc in outcomes for tool, err in oc.failed.items()]
    if failures:
        notes.append("Failures (logs in bench/out/logs/): " + "; ".join(failures))
    print(header + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(startup.table(start_rows)) + "\n\n"
          + "\n".join(f"{x}  " for x in notes))
    results = {"date": started.isoformat(), "machine": m, "load_average": [load0, load1], "scale": scale, "repetitions": reps,
               "delay_ms": args.delay_ms, "bandwidth_mbps": args.bandwidth_mbps, "baseline": args.baseline,
               "fastsync": fs_version, "skopeo": sk_version, "commit": commit, "duration_s": round(took, 1),
               "corpus": {k: v for k, v in corpus.items() if k != "images"} | {"images": len(corpus["images"])},
               "rows": rows,
               "startup": [{"key": r.key, "what": r.what, "seconds": list(r.values), "median": r.median,
                            "target": r.target} for r in start_rows],
               "scenarios": [{"name": oc.scenario.name, "title": oc.scenario.title, "commands": oc.labels,
                              "skipped": oc.skipped, "failed": oc.failed,
                              "runs": {tool: [vars(x) for x in runs] for tool, runs in oc.runs.items()}}
                             for oc in outcomes]}
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    log(f"done in {took / 60:.1f} min; results in {OUT / 'results.json'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
