"""A sync killed with SIGKILL mid-transfer, then rerun: it completes, and the cache holds no corrupt entry."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from support import images
from support.proxy import DelayProxy

from helpers import ROOT, fastsync, ok


def _writing_a_blob(tmp: Path) -> bool:
    """A blob's temp file is open in the cache (a writer exists from its first chunk to its rename;
    its bytes arrive in batches, so its size says little)."""
    return tmp.exists() and any(p.name.startswith("w-") for p in tmp.iterdir())


def test_kill_9_mid_sync_then_rerun_completes_with_a_clean_cache(registry_factory: Callable, tmp_path: Path) -> None:
    src, dst = registry_factory(), registry_factory()
    pushed = {}
    for i in range(4):
        img = images.make_image(100 + i, layers=2, layer_size=1 << 20, base_seed=100, base_layers=1)
        src.push_image(img, "big/app", f"v{i}")
        pushed[f"v{i}"] = img.digest
    cache, out = tmp_path / "cache", tmp_path / "out"
    with DelayProxy("127.0.0.1", src.port, 20, bandwidth_bps=1_500_000) as slow:
        args = ["sync", "--cache", str(cache), "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
                "--dest-tls-verify=false", f"{slow.host}/big/app", f"{dst.host}/mirror"]
        proc = subprocess.Popen([sys.executable, "-m", "fastsync", *args], cwd=ROOT, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 30
        tmp = cache / "tmp"
        while time.monotonic() < deadline and not _writing_a_blob(tmp):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert any(p.name.startswith("w-") for p in tmp.iterdir()), "killed before any blob was being written"
        ok(fastsync(*args, timeout=180))
    for tag, digest in pushed.items():
        r = dst.request("HEAD", f"/v2/mirror/app/manifests/{tag}",
                        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        assert r.headers.get("Docker-Content-Digest") == digest, tag
    blobs = cache / "blobs" / "sha256"
    entries = list(blobs.iterdir())
    assert entries
    for p in entries:
        assert len(p.name) == 64, f"not a blob name: {p}"
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, p
    assert list(tmp.iterdir()) == []
    assert not out.exists()
