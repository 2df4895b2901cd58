"""A private podman `system service` speaking the Docker Engine API on its own unix socket.

Its storage (vfs driver), run root, tmp dir, events log and socket all live under one directory, so
the machine's container stores are never touched: `PodmanService(dir).start()`, `.stop()`,
`.cleanup()`. `.host` is the socket as `--daemon-host` spells it; `.podman(*args)` runs the podman CLI
against the same storage (to list what the service loaded, or to seed it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional


def _ping(sock: str, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.startswith(b"HTTP/1.1 200") and data.rstrip().endswith(b"OK")
    except OSError:
        return False


class PodmanService:
    def __init__(self, base: Path, binary: str = "podman") -> None:
        self.base = Path(base)
        self.binary = binary
        self.socket = str(self.base / "engine.sock")
        self.proc: Optional[subprocess.Popen] = None
        self.log = self.base / "service.log"
        # podman refuses a run root longer than 50 characters: a deep base gets a short one in /tmp
        self.run = self.base / "run"
        self._short_run: Optional[str] = None
        if len(str(self.run)) > 50:
            self._short_run = tempfile.mkdtemp(prefix="fastsync-podman-")
            self.run = Path(self._short_run)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def _global_args(self) -> list[str]:
        b = self.base
        return [self.binary, "--root", str(b / "root"), "--runroot", str(self.run), "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", str(b / "tmp")]

    def _env(self) -> dict[str, str]:
        b = self.base
        # no storage.conf or registries.conf of the machine's: only the flags above count
        return {**os.environ, "CONTAINERS_STORAGE_CONF": str(b / "storage.conf"),
                "CONTAINERS_REGISTRIES_CONF": str(b / "registries.conf"),
                "CONTAINERS_CONF": str(b / "containers.conf"), "TMPDIR": str(b / "tmp"),
                "XDG_RUNTIME_DIR": str(b / "xdg"), "XDG_CONFIG_HOME": str(b / "config"),
                "XDG_DATA_HOME": str(b / "data")}

    def start(self, timeout: float = 30) -> "PodmanService":
        self.run.mkdir(parents=True, exist_ok=True)
        for d in ("root", "tmp", "xdg", "config", "data"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "xdg").chmod(0o700)
        (self.base / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.base / "root"}"\nrunroot = "{self.run}"\n')
        (self.base / "registries.conf").write_text('unqualified-search-registries = []\n')
        (self.base / "containers.conf").write_text(
            f'[engine]\nevents_logger = "file"\nevents_logfile_path = "{self.base / "events.log"}"\n'
            'cgroup_manager = "cgroupfs"\n')
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*self._global_args(), "system", "service", "--time", "0", self.host],
                                         stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"podman system service exited ({self.proc.returncode}): "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            if _ping(self.socket):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"podman system service did not answer /_ping within {timeout}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        if self._short_run:
            shutil.rmtree(self._short_run, ignore_errors=True)

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self._global_args(), *args], capture_output=True, env=self._env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    def images(self) -> list[dict[str, Any]]:
        """`podman images --format json`: what the service's storage holds."""
        return json.loads(self.podman("images", "--format", "json").stdout or b"[]")

    def image_ids(self) -> dict[str, str]:
        """Every tag (`example.com/a/b:1`) -> image ID (sha256:<config digest hex>)."""
        out = {}
        for img in self.images():
            for name in img.get("Names") or []:
                out[name] = "sha256:" + img["Id"]
        return out

    def remove_all(self) -> None:
        self.podman("rmi", "--all", "--force", check=False)
