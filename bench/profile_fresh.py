"""One fresh sync of the bench corpus, for profiling: the bench's registries, one command, its figures.

    python -m bench.profile_fresh [--wan] [--scale 0.5] [--tool fastsync|floor] [--reps N]
                                  [--wrap 'python -m cProfile -o /tmp/x.prof'] [--requests] [--resync]

Starts the seeded source registry (read-only) and a fresh destination registry the way the
harness does (behind 20 ms proxies with --wan), runs the bench's command for the tool (``--wrap``
replaces the leading ``python`` of its argv, e.g. with a profiler), and prints wall time, the tool's
user+system CPU and peak RSS (/usr/bin/time), the registries' CPU, and with --requests the
destination's and the source's requests by method and path kind (from its log, at level info).
Each repetition gets a fresh destination and an empty cache.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from support.registry import Registry

from . import corpus as corpus_mod
from .cputime import cpu_delta, side_cpu, track
from .harness import Bench, base_env, fastsync, floor, run_measured

OUT = Path(__file__).resolve().parent / "out"
_REQ = re.compile(r'http.request.method=(\w+) .*?http.request.uri="?([^" ]*)"?.*?http.response.status=(\d+)')


def _kind(uri: str) -> str:
    path = uri.split("?", 1)[0]
    for k in ("/blobs/uploads/", "/blobs/", "/manifests/", "/tags/list", "/referrers/"):
        if k in path:
            return k.strip("/")
    return path


def requests(log: Path, since: int) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    with open(log, errors="replace") as fh:
        fh.seek(since)
        for line in fh:
            m = _REQ.search(line)
            if m:
                counts[(m.group(1), _kind(m.group(2)), m.group(3))] += 1
    return counts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wan", action="store_true")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--tool", choices=("fastsync", "floor"), default="fastsync")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--wrap", default="", help="replaces the argv's leading python (e.g. a profiler)")
    ap.add_argument("--extra", default="", help="more arguments for fastsync sync (e.g. --no-cache)")
    ap.add_argument("--requests", action="store_true", help="count the registries' requests")
    ap.add_argument("--resync", action="store_true", help="measure a re-sync: the same sync once before "
                    "(same destination and cache, not measured)")
    args = ap.parse_args()
    with Bench(args.scale, 20.0, None, OUT, lambda s: print(s, file=sys.stderr)) as bench:
        assert bench.src is not None
        src_reg = bench.src.registry
        if args.requests:        # a second read-only registry on the seeded root, logging its requests
            src_reg = bench.stack.enter_context(Registry(root=bench.src.registry.root, extra_config={
                "storage": {"maintenance": {"readonly": {"enabled": True}}}, "log": {"level": "info"}}))
            track(src_reg, bench.stack)
        src = (bench.proxy(src_reg).host if src_reg is not bench.src.registry else bench.src.host) if args.wan \
            else src_reg.host
        for rep in range(args.reps):
            with contextlib.ExitStack() as stack:
                work = Path(tempfile.mkdtemp(prefix="cpu-prof-"))
                stack.callback(shutil.rmtree, work, True)
                reg = stack.enter_context(Registry(extra_config={"log": {"level": "info"}} if args.requests else None))
                track(reg, stack)
                dest = bench.proxy(reg, stack).host if args.wan else reg.host
                yaml = work / "sync.yaml"
                yaml.write_text(corpus_mod.sync_yaml(bench.corpus["images"], src))
                if args.tool == "floor":
                    argv = floor("copy", str(yaml), f"docker://{dest}/mirror")
                else:
                    argv = fastsync("sync", "--src", "yaml", "--dest", "docker", "--all", "--dest-tls-verify=false",
                                    *shlex.split(args.extra), str(yaml), f"{dest}/mirror")
                if args.wrap:
                    argv = shlex.split(args.wrap) + argv[1:]
                env = base_env()
                env["XDG_CACHE_HOME"] = str(work / "cache")
                env["TMPDIR"] = str(work / "tmp")
                (work / "tmp").mkdir()
                if args.resync:
                    first = run_measured(argv, env, work / "first.log", 1800)
                    if first.returncode:
                        print(first.error, file=sys.stderr)
                        return 1
                logs = [(name, r.log_path, r.log_path.stat().st_size if r.log_path.exists() else 0)
                        for name, r in (("dest", reg), ("src", src_reg))]
                before = side_cpu()
                m = run_measured(argv, env, work / "run.log", 1800)
                after = side_cpu()
                if m.returncode:
                    print(m.error, file=sys.stderr)
                    return 1
                print(f"rep {rep + 1}: wall {m.wall:.2f} s, cpu {m.user + m.sys:.2f} s (user {m.user:.2f}, sys "
                      f"{m.sys:.2f}), rss {m.rss_kb / 1024:.0f} MiB, registries {cpu_delta(before[0], after[0]):.2f} s, "
                      f"proxies {cpu_delta(before[1], after[1]):.2f} s")
                if args.requests:
                    for name, path, since in logs:
                        for key, n in sorted(requests(path, since).items()):
                            print(f"  {name} {' '.join(key)}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
