"""A private containers/storage store and a `podman` that only ever uses it.

``PodmanStore(base, driver="vfs")``: graph root ``base/root``; run root and podman's temp files
in a short private directory under /tmp (podman wants a run root of at most 50 characters),
removed by ``cleanup()``; never the machine's default stores.
    ``spec``            "[vfs@/.../root+/.../run]"
    ``name(image)``     "containers-storage:[...]image" (the image name fastsync and skopeo take)
    ``podman(*args, check=True, timeout=120)`` -> CompletedProcess (text), always with
                        --root/--runroot/--storage-driver/--tmpdir, cgroupfs and file events
    ``layers()`` / ``images()``   the store's layers.json / images.json as lists (empty if none)
``overlay_usable(base)`` -> (bool, reason): whether podman can use overlay here (tried once).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any


class PodmanStore:
    def __init__(self, base: Path, driver: str = "vfs") -> None:
        self.base = Path(base)
        self.driver = driver
        self.graphroot = self.base / "root"
        # podman refuses a run root longer than 50 characters: a short one under /tmp
        self._short = Path(tempfile.mkdtemp(prefix="fs-cs-", dir="/tmp"))
        self.runroot = self._short / "run"
        self.tmp = self._short / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.base.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> None:
        """Remove the run root; undo the private bind mount podman's overlay driver puts on its home."""
        prefix = str(self.graphroot) + "/"
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
        for point in reversed(points):           # a bind mount of the same file system: ismount says no
            if point.startswith(prefix):
                subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self._short, ignore_errors=True)

    @property
    def spec(self) -> str:
        return f"[{self.driver}@{self.graphroot}+{self.runroot}]"

    def name(self, image: str) -> str:
        return f"containers-storage:{self.spec}{image}"

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        binary = shutil.which("podman")
        assert binary, "podman is not installed (apt-get install podman)"
        cmd = [binary, "--root", str(self.graphroot), "--runroot", str(self.runroot),
               "--storage-driver", self.driver, "--tmpdir", str(self.tmp), "--cgroup-manager", "cgroupfs",
               "--events-backend", "file", *args]
        env = dict(os.environ)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def _records(self, kind: str) -> list[dict[str, Any]]:
        path = self.graphroot / f"{self.driver}-{kind}" / f"{kind}.json"
        if not path.exists() or not path.read_bytes().strip():
            return []
        return json.loads(path.read_bytes())

    def layers(self) -> list[dict[str, Any]]:
        return self._records("layers")

    def images(self) -> list[dict[str, Any]]:
        return self._records("images")


_OVERLAY: dict[str, tuple[bool, str]] = {}


def overlay_usable(base: Path) -> tuple[bool, str]:
    """Can podman create an overlay store here (kernel overlay or fuse-overlayfs)?"""
    if "result" not in _OVERLAY:
        store = PodmanStore(base, "overlay")
        try:
            proc = store.podman("images", check=False, timeout=60)
        finally:
            store.cleanup()
        _OVERLAY["result"] = (proc.returncode == 0, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                              else "")
    return _OVERLAY["result"]
