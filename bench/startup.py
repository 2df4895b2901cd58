"""Start-up costs: `fastsync --version`, and `fastsync sync` until its first request reaches the wire.

    python -m bench.startup [--reps 7]

The first-request figure uses a listening socket that records when the first bytes of any
connection arrive (a TLS ClientHello counts as much as an HTTP request line), measured from just
before the process is spawned; the process is then killed. The same is measured for the floor's
no-op (bench/floor.py noop) and for the bare interpreter (`python -c pass`), so the table shows
what is the interpreter and what is fastsync. Medians of ``reps`` runs, alternating the commands.

The tree's bytecode is compiled first, as an install does (with PYTHONDONTWRITEBYTECODE=1 in the
environment and no __pycache__, every run would compile each module from source: ~100 ms more).
"""
from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .harness import base_env, fastsync, floor, skopeo

TARGETS = {"version": 0.080, "sync-first-request": 0.150}   # seconds (issue 17)


@dataclass(frozen=True)
class Row:
    key: str
    what: str
    values: tuple[float, ...]
    target: Optional[float] = None

    @property
    def median(self) -> float:
        return statistics.median(self.values)


class FirstBytes:
    """A listening socket on loopback that records when the first bytes of a connection arrive."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.arrived = threading.Event()
        self.at = 0.0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="bench-startup-listener", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        self.arrived.clear()
        self.at = 0.0

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if conn.recv(1) and not self.arrived.is_set():
                self.at = time.perf_counter()
                self.arrived.set()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(2)


def _wall(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    took = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}")
    return took


def _first_request(argv: list[str], env: dict, listener: FirstBytes, timeout: float = 20.0) -> float:
    listener.reset()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    try:
        if not listener.arrived.wait(timeout):
            proc.kill()
            err = proc.communicate()[1].decode(errors="replace")[-400:]
            raise RuntimeError(f"{' '.join(argv)}: no request within {timeout:.0f} s\n{err}")
        return listener.at - t0
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(reps: int = 7, log: Callable[[str], None] = lambda _m: None) -> list[Row]:
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "fastsync"), quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="fastsync-startup-"))
    listener = FirstBytes()
    try:
        env = base_env()
        env["XDG_CACHE_HOME"] = str(tmp / "cache")   # a cache that exists, as on a re-sync
        host = f"127.0.0.1:{listener.port}"
        yaml = tmp / "sync.yaml"
        yaml.write_text(f"{host}:\n  images:\n    release/app: [v1]\n  tls-verify: false\n")
        sync = fastsync("sync", "--src", "yaml", "--dest", "docker", "--all", "--dest-tls-verify=false",
                        str(yaml), f"{host}/mirror")
        walls: dict[str, tuple[str, list[str]]] = {
            "python": ("`python -c pass` (the interpreter alone)", [sys.executable, "-c", "pass"]),
            "version": ("`python -m fastsync --version`", fastsync("--version")),
        }
        if shutil.which("skopeo"):
            walls["skopeo-version"] = ("`skopeo --version`", skopeo("--version"))
        firsts = {
            "sync-first-request": ("`fastsync sync --src yaml --dest docker` to its first request", sync),
            "floor-first-request": ("floor `noop` (bench/floor.py) to its first request",
                                    floor("noop", str(yaml), f"docker://{host}/mirror")),
        }
        got: dict[str, list[float]] = {k: [] for k in [*walls, *firsts]}
        for _ in range(reps):
            for k, (_, argv) in walls.items():
                got[k].append(_wall(argv, env))
            for k, (_, argv) in firsts.items():
                got[k].append(_first_request(argv, env, listener))
        rows = [Row(k, what, tuple(got[k]), TARGETS.get(k)) for k, (what, _) in {**walls, **firsts}.items()]
        for r in rows:
            log(f"  start-up {r.key}: {r.median * 1000:.0f} ms")
        return rows
    finally:
        listener.close()
        shutil.rmtree(tmp, ignore_errors=True)


def table(rows: list[Row]) -> list[str]:
    lines = ["| start-up | median (min–max) | target |", "| --- | ---: | ---: |"]
    for r in rows:
        target = f"≤ {r.target * 1000:.0f} ms ({'met' if r.median <= r.target else 'missed'})" if r.target else ""
        lines.append(f"| {r.what} | {r.median * 1000:.0f} ms ({min(r.values) * 1000:.0f}–{max(r.values) * 1000:.0f}) "
                     f"| {target} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    print("\n".join(table(measure(args.reps))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
