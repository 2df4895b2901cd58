"""Side-by-side benchmark harness: real registries, an optional simulated WAN, measured runs.

Scenario API (for other engineers; see bench/scenarios.py for examples)
-----------------------------------------------------------------------
Subclass ``Scenario`` in any module ``bench/scenarios*.py`` (``python -m bench`` imports them
all) and decorate the class with ``@register``::

    @register
    class MyScenario(Scenario):
        name = "my-thing"                    # id: --only my-thing, key in results.json
        title = "my thing, WAN"              # the table row
        metrics = ("wall", "rss")            # rows: wall time, peak RSS, "disk" (set in check)
        quick = True                         # also run by --quick

        def prepare(self, t: Trial) -> None:     # untimed set-up (optional)
            t.state["dest"] = t.registry(wan=True)
        def command(self, t: Trial) -> Command:  # what is timed, for t.tool
            ...
        def check(self, t: Trial, m: Measurement) -> None:   # untimed verification (optional)
            ...

A ``Trial`` is one timed run of one tool (``t.tool`` is "fastsync", "skopeo" or, for scenarios
whose ``tools`` include it, "floor": ``floor(...)`` builds a bench/floor.py argv) in repetition
``t.rep``. It gives a fresh directory ``t.dir``, the environment ``t.env`` (``XDG_CACHE_HOME``
points into the trial directory unless the scenario changes it), the source registry
(``t.src(wan)`` -> "127.0.0.1:PORT", direct or through the WAN proxy), fresh destination
registries (``t.registry(wan)`` -> ``Endpoint``, removed when the trial ends), the corpus
(``t.corpus`` dict, ``t.corpus_dir``), ``t.sync_yaml(wan)`` (the skopeo YAML pointing at the
source), ``t.persistent(key)`` (a directory of this tool kept for the whole run and shared by
every scenario asking for the same key, e.g. the warm cache dir-cold leaves for dir-warm),
``t.no_delay()`` (a block in which every proxy forwards at loopback speed, for untimed
set-up through the same addresses as the timed run), ``t.run(cmd)`` (an untimed command)
and ``t.state`` (a dict for prepare -> command -> check).
``fastsync(...)``/``skopeo(...)`` build argv lists; ``loop(t, argvs, label)`` turns a list of
commands into one timed shell script. A ``Command`` carries the argv and the exact label shown
under the table. Raise ``Skip("why")`` from prepare/command when a tool cannot run a scenario.

Measurement: each command runs in its own session under GNU ``/usr/bin/time`` (Debian package
``time``), which gives user/sys CPU and peak RSS (the largest single process among the command
and all its descendants); wall time is the harness's clock. The CPU time the registries (their
processes' /proc/PID/stat) and the WAN proxies (their threads in this process,
/proc/self/task/TID/stat) spent during the timed run is recorded beside it; a floor run writing
``t.floor_timings`` adds its time without interpreter start-up (metric "nostart"). Failed or unverified runs are
reported as failed, never as a number. Tools
take turns per repetition (the order rotates); the table shows medians and skopeo-median / fastsync-median.
Registries, proxies and child processes are cleaned up on errors, Ctrl-C and SIGTERM.
"""
from __future__ import annotations

import compileall
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional

from support.proxy import DelayProxy
from support.registry import Registry

from . import corpus as corpus_mod
from .cputime import cpu_delta, side_cpu, track as _track

TOOLS = ("fastsync", "skopeo")              # what a scenario runs unless it sets ``tools``
ALL_TOOLS = ("fastsync", "skopeo", "floor")  # floor: bench/floor.py, the HTTP work a sync strictly needs
SCENARIOS: list["Scenario"] = []   # filled by @register at import time
_LIVE_PROXIES: set[DelayProxy] = set()   # for Bench.no_delay (DelayProxy has no public setter)


# ---------------------------------------------------------------- scenario API
class Skip(Exception):
    """A tool cannot run this scenario (the table says so instead of a number)."""


@dataclass(frozen=True)
class Command:
    argv: list[str]
    label: str


@dataclass
class Measurement:
    wall: float = 0.0
    rss_kb: int = 0
    user: float = 0.0
    sys: float = 0.0
    returncode: int = 0
    reg_cpu: float = 0.0      # CPU seconds of every live registry process during the run
    proxy_cpu: float = 0.0    # CPU seconds of the WAN proxies' threads during the run
    extra: dict = field(default_factory=dict)   # e.g. {"disk": bytes}; set by Scenario.check
    error: str = ""


class Scenario:
    name = ""
    title = ""
    metrics: tuple[str, ...] = ("wall",)
    tools: tuple[str, ...] = TOOLS
    quick = True
    timeout = 1800.0

    def prepare(self, t: "Trial") -> None:
        pass

    def command(self, t: "Trial") -> Command:
        raise NotImplementedError

    def check(self, t: "Trial", m: Measurement) -> None:
        pass


def register(cls: type) -> type:
    SCENARIOS.append(cls())
    return cls


def fastsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastsync", *args]


def floor(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.floor", *args]


def skopeo(*args: str) -> list[str]:
    return [shutil.which("skopeo") or "skopeo", "--insecure-policy", *args]


@lru_cache(maxsize=None)
def fastsync_has(command: str) -> bool:
    """True when ``python -m fastsync <command> --help`` works in this tree."""
    proc = subprocess.run(fastsync(command, "--help"), capture_output=True, env=base_env())
    return proc.returncode == 0


def loop(t: "Trial", argvs: Iterable[list[str]], label: str) -> Command:
    """One timed command that runs ``argvs`` one after another (stops at the first failure)."""
    argvs = list(argvs)
    script = t.dir / f"{t.tool}-loop.sh"
    script.write_text("set -e\n" + "".join(shlex.join(a) + "\n" for a in argvs))
    return Command(["bash", str(script)], f"{label} ({len(argvs)} commands)")


def disk_usage(path: Path) -> int:
    """Bytes of the regular files under ``path``, each inode counted once (hardlinks shared)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


# ---------------------------------------------------------------- environment
@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale_runs(out: Path) -> None:
    """Working directories of benchmark processes that died without cleaning up."""
    for d in out.glob("run-*"):
        pid = d.name[4:]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


def base_env() -> dict:
    """os.environ with this checkout first on PYTHONPATH (so `python -m fastsync` is this tree's)."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


_base_env = base_env   # the old private name, still imported by bench/storage_bench.py


@dataclass
class Endpoint:
    registry: Registry
    proxy: Optional[DelayProxy]

    @property
    def host(self) -> str:
        """Where clients connect: the proxy when there is one."""
        return self.proxy.host if self.proxy else self.registry.host

    @property
    def direct(self) -> str:
        return self.registry.host


class Bench:
    """The run's fixed parts: corpus, seeded source registry (direct and behind the WAN proxy)."""

    def __init__(self, scale: float, delay_ms: float, bandwidth_bps: Optional[float], out: Path,
                 log: Callable[[str], None] = print) -> None:
        self.scale, self.delay_ms, self.bandwidth_bps, self.out, self.log = scale, delay_ms, bandwidth_bps, out, log
        self.stack = contextlib.ExitStack()
        self.corpus_dir = Path()
        self.corpus: dict = {}
        self.src: Optional[Endpoint] = None
        self.run_dir = out / f"run-{os.getpid()}"     # concurrent benchmark processes never collide
        self.logs_dir = out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"

    def __enter__(self) -> "Bench":
        try:
            t0 = time.perf_counter()
            # the tree's bytecode, as an install has it (bench.startup does the same): with
            # PYTHONDONTWRITEBYTECODE=1 an uncompiled tree recompiles every module in each timed run
            compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "fastsync"), quiet=1)
            self.out.mkdir(parents=True, exist_ok=True)
            with _locked(self.out / ".corpus.lock"):   # another benchmark may be generating/seeding it
                self.corpus_dir = corpus_mod.build(self.scale, self.out)
                self.corpus = corpus_mod.load(self.corpus_dir)
                self.log(f"corpus: {self.corpus_dir.name} ({time.perf_counter() - t0:.1f} s)")
                root = self._seeded_root()
            readonly = {"storage": {"maintenance": {"readonly": {"enabled": True}}}}
            reg = self.stack.enter_context(Registry(root=root, extra_config=readonly))
            _track(reg, self.stack)
            self.src = Endpoint(reg, self.proxy(reg))
            _remove_stale_runs(self.out)
            self.run_dir.mkdir(parents=True)
            self.stack.callback(shutil.rmtree, self.run_dir, True)
            self.logs_dir.mkdir(parents=True)
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def proxy(self, reg: Registry, stack: Optional[contextlib.ExitStack] = None) -> DelayProxy:
        p = DelayProxy("127.0.0.1", reg.port, self.delay_ms, self.bandwidth_bps)
        st = stack or self.stack
        st.enter_context(p)
        _LIVE_PROXIES.add(p)
        st.callback(_LIVE_PROXIES.discard, p)
        return p

    @contextlib.contextmanager
    def no_delay(self):
        proxies = list(_LIVE_PROXIES)
        saved = [(p, [(ln.delay, ln.bandwidth) for ln in (p._up, p._down)]) for p in proxies]
        try:
            for p in proxies:
                for ln in (p._up, p._down):
                    ln.delay, ln.bandwidth = 0.0, None
            yield
        finally:
            for p, links in saved:
                for ln, (d, b) in zip((p._up, p._down), links):
                    ln.delay, ln.bandwidth, ln.free_at = d, b, 0.0

    def _seeded_root(self) -> Path:
        """The source registry's storage, pushed from the corpus with skopeo once and kept."""
        root = self.corpus_dir / "registry-root"
        if (root / ".seeded").exists():
            return root
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        t0 = time.perf_counter()
        layout = self.corpus_dir / "oci"
        with Registry(root=root) as reg:
            procs: list[tuple[dict, subprocess.Popen]] = []
            try:
                for im in self.corpus["images"]:
                    argv = skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
                                  f"oci:{layout}:{im['ref']}", f"docker://{reg.host}/{im['ref']}")
                    procs.append((im, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
                    while sum(p.poll() is None for _, p in procs) >= 2:
                        time.sleep(0.05)
                for im, p in procs:
                    _, err = p.communicate()
                    if p.returncode:
                        raise RuntimeError(f"seeding {im['ref']} failed: {err.decode(errors='replace')}")
            finally:
                for _, p in procs:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
            for im in self.corpus["images"]:
                r = reg.request("HEAD", f"/v2/{im['repo']}/manifests/{im['tag']}",
                                headers={"Accept": im["media_type"]})
                if r.headers.get("Docker-Content-Digest") != im["digest"]:
                    raise RuntimeError(f"seeded {im['ref']}: {r.status} {r.headers.get('Docker-Content-Digest')}")
        (root / ".seeded").write_text("ok\n")
        self.log(f"seeded the source registry with skopeo ({time.perf_counter() - t0:.1f} s, kept for reruns)")
        return root


class Trial:
    def __init__(self, bench: Bench, scenario: Scenario, tool: str, rep: int) -> None:
        self.bench, self.scenario, self.tool, self.rep = bench, scenario, tool, rep
        self.dir = bench.run_dir / f"{scenario.name}-{tool}-{rep}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.stack = contextlib.ExitStack()
        self.state: dict = {}
        self.env = base_env()
        self.env["XDG_CACHE_HOME"] = str(self.dir / "cache")
        self.env["TMPDIR"] = str(self.dir / "tmp")
        (self.dir / "tmp").mkdir()

    @property
    def corpus(self) -> dict:
        return self.bench.corpus

    @property
    def corpus_dir(self) -> Path:
        return self.bench.corpus_dir

    def src(self, wan: bool) -> str:
        assert self.bench.src is not None
        return self.bench.src.host if wan else self.bench.src.direct

    def registry(self, wan: bool) -> Endpoint:
        reg = self.stack.enter_context(Registry())
        _track(reg, self.stack)
        return Endpoint(reg, self.bench.proxy(reg, self.stack) if wan else None)

    def sync_yaml(self, wan: bool) -> Path:
        path = self.dir / ("sync-wan.yaml" if wan else "sync.yaml")
        path.write_text(corpus_mod.sync_yaml(self.corpus["images"], self.src(wan)))
        return path

    @property
    def floor_timings(self) -> Path:
        """Where a floor command writes its time without start-up (``--timings``)."""
        return self.dir / "floor-timings.json"

    def persistent(self, key: str) -> Path:
        """A directory of this tool kept for the whole run (shared by scenarios using the same key)."""
        path = self.bench.run_dir / "keep" / f"{self.tool}-{key}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def no_delay(self):
        """Within this block every proxy forwards at loopback speed (for untimed set-up that must
        use the same addresses as the timed run)."""
        with self.bench.no_delay():
            yield

    def run(self, cmd: Command, timeout: Optional[float] = None, log_name: str = "prepare.log") -> Measurement:
        """Run an untimed helper command (e.g. in prepare); raises on failure."""
        m = run_measured(cmd.argv, self.env, self.dir / log_name, timeout or self.scenario.timeout)
        if m.returncode:
            raise RuntimeError(f"{cmd.label}: exit {m.returncode}\n{m.error}")
        return m

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- measuring
TIME = "/usr/bin/time"
def run_measured(argv: list[str], env: dict, log_path: Path, timeout: float) -> Measurement:
    """Run ``argv`` in a new session and measure it. Wall time is the harness's clock; peak RSS and
    CPU come from GNU ``/usr/bin/time`` (its own wait4 of the command: the largest single process
    of the command and its descendants). Without /usr/bin/time, ``os.wait4`` of our child is used,
    but Linux then folds the harness's own high-water RSS into the figure (vfork+exec), so RSS is
    recorded as unknown (0). The whole process group is killed on timeout, error or Ctrl-C."""
    rfile = log_path.with_suffix(".rusage")
    use_time = os.access(TIME, os.X_OK)
    full = [TIME, "-f", "%M %U %S", "-o", str(rfile), *argv] if use_time else argv
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        timer = threading.Timer(timeout, _killpg, (proc.pid,))
        timer.start()
        try:
            while True:   # polled, not blocking: a signal delivered to a proxy thread still interrupts us
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            _killpg(proc.pid)   # stragglers (a loop's children) never outlive their command
            if proc.returncode is None:
                with contextlib.suppress(ChildProcessError):
                    proc.wait()
    m = Measurement(wall=wall, rss_kb=0, user=ru.ru_utime, sys=ru.ru_stime, returncode=proc.returncode)
    if use_time:
        try:
            fields = rfile.read_text().split()[-3:]   # "Command exited with non-zero status N" may precede
            m.rss_kb, m.user, m.sys = int(fields[0]), float(fields[1]), float(fields[2])
        except (OSError, ValueError, IndexError):
            pass
    if m.returncode:
        m.error = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        if wall >= timeout:
            m.error = f"timed out after {timeout:.0f} s\n" + m.error
    return m


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Outcome:
    scenario: Scenario
    runs: dict[str, list[Measurement]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tool in self.scenario.tools:
            self.runs.setdefault(tool, [])

    def values(self, tool: str, metric: str) -> list[float]:
        ok = [m for m in self.runs.get(tool, ()) if not m.returncode]
        if metric == "wall":
            return [m.wall for m in ok]
        if metric == "nostart":   # the floor's own clock (no interpreter start-up); the others' wall
            return [m.extra.get("work", m.wall) for m in ok]
        if metric == "rss":
            return [m.rss_kb * 1024 for m in ok]
        if metric == "cpu":
            return [m.user + m.sys for m in ok]
        if metric == "reg_cpu":
            return [m.reg_cpu for m in ok]
        if metric == "proxy_cpu":
            return [m.proxy_cpu for m in ok]
        return [m.extra[metric] for m in ok if metric in m.extra]

    def median(self, tool: str, metric: str) -> Optional[float]:
        v = self.values(tool, metric)
        return statistics.median(v) if v and tool not in self.failed else None


def run_all(bench: Bench, scenarios: list[Scenario], reps: int, log: Callable[[str], None] = print) -> list[Outcome]:
    outcomes = [Outcome(s) for s in scenarios]
    for rep in range(reps):
        for oc in outcomes:
            tools = oc.scenario.tools
            k = rep % len(tools)
            order = tools[k:] + tools[:k]   # each tool runs first, middle and last in turn
            for tool in order:
                if tool in oc.skipped or tool in oc.failed:
                    continue
                _one(bench, oc, tool, rep, log)
    return outcomes


def _one(bench: Bench, oc: Outcome, tool: str, rep: int, log: Callable[[str], None]) -> None:
    sc = oc.scenario
    t = Trial(bench, sc, tool, rep)
    logs = bench.logs_dir
    try:
        try:
            sc.prepare(t)
            cmd = sc.command(t)
        except Skip as e:
            oc.skipped[tool] = str(e)
            log(f"  {sc.name} [{tool}] skipped: {e}")
            return
        oc.labels[tool] = cmd.label
        before = side_cpu()
        m = run_measured(cmd.argv, t.env, t.dir / "run.log", sc.timeout)
        after = side_cpu()
        m.reg_cpu, m.proxy_cpu = cpu_delta(before[0], after[0]), cpu_delta(before[1], after[1])
        if not m.returncode:
            if t.floor_timings.exists():
                m.extra["work"] = json.loads(t.floor_timings.read_text())["work"]
            sc.check(t, m)
        oc.runs[tool].append(m)
        status = "ok" if not m.returncode else f"FAILED exit {m.returncode}"
        log(f"  {sc.name} [{tool}] rep {rep + 1}: {m.wall:.2f} s, peak RSS {m.rss_kb / 1024:.0f} MiB, {status}")
        if m.returncode:
            oc.failed[tool] = m.error
            log("    " + m.error.replace("\n", "\n    "))
    except Exception as e:  # a broken prepare/check is a failure of this cell, not of the whole run
        oc.failed[tool] = f"{type(e).__name__}: {e}"
        log(f"  {sc.name} [{tool}] ERROR {type(e).__name__}: {e}")
    finally:
        for name in ("run.log", "prepare.log"):
            if (t.dir / name).exists():
                shutil.copy(t.dir / name, logs / f"{sc.name}-{tool}-{rep}-{name}")
        t.close()


def finish(outcomes: list[Outcome], header: str, lines: list[str], out: Path, name: str,
           meta: dict, rows: list[dict]) -> int:
    """The end of a feature benchmark: the table, each scenario's commands and failures, the JSON
    results in `out/name`; the exit code (1 when any tool failed)."""
    print(header + "\n\n" + "\n".join(lines))
    for oc in outcomes:
        print(f"\n{oc.scenario.name}: " + "; ".join(f"{k}: `{v}`" for k, v in oc.labels.items()))
        for tool, err in oc.failed.items():
            print(f"  {tool} FAILED: {err.splitlines()[-1] if err else ''}")
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps({**meta, "rows": rows}, indent=1))
    return 1 if any(oc.failed for oc in outcomes) else 0


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM unwinds like Ctrl-C, so registries, proxies and children are cleaned up."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
