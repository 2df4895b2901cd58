"""Helpers for driving the real CLI and checking what it wrote (independently of fastsync's readers)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from support.images import SampleImage

ROOT = Path(__file__).resolve().parent.parent


def fastsync(*args: str, backend: Optional[str] = None, env: Optional[dict] = None, timeout: float = 120,
             input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Run `python -m fastsync ARGS` from the source tree; returns the completed process (bytes)."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if backend:
        e["FASTSYNC_BACKEND"] = backend
    return subprocess.run([sys.executable, "-m", "fastsync", *args], capture_output=True, env=e,
                          timeout=timeout, input=input, cwd=ROOT)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str, code: Optional[int] = None) -> str:
    """A failed command printed exactly one line on stderr (no traceback) containing `fragments`."""
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, "command unexpectedly succeeded"
    if code is not None:
        assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def blob_file(path: Path, digest: str) -> Path:
    return path / digest.split(":", 1)[1]


def assert_dir_holds(path: Path, image: SampleImage, converted: bool = False) -> None:
    """`path` is a skopeo dir: holding `image`: byte-exact manifests (unless `converted` to OCI) and blobs."""
    raw = (path / "manifest.json").read_bytes()
    if not converted:
        assert raw == image.manifest
    else:
        assert_converted(raw, image)
    got = json.loads(raw)
    for child, entry in zip(image.children, got.get("manifests", [])):
        child_raw = (path / f"{entry['digest'].split(':', 1)[1]}.manifest.json").read_bytes()
        if converted:
            assert_converted(child_raw, child)
        else:
            assert child_raw == child.manifest
    for digest, data in image.all_blobs().items():
        assert blob_file(path, digest).read_bytes() == data, digest


def assert_converted(raw: bytes, image: SampleImage) -> None:
    """`raw` is the OCI form of `image` (same config and layers, OCI media types)."""
    doc = json.loads(raw)
    src = json.loads(image.manifest)
    if "manifests" in src:
        assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
        assert [m.get("platform") for m in doc["manifests"]] == [m.get("platform") for m in src["manifests"]]
        return
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["digest"] == src["config"]["digest"]
    assert [ly["digest"] for ly in doc["layers"]] == [ly["digest"] for ly in src["layers"]]
    assert all(ly["mediaType"].startswith("application/vnd.oci.image.layer.") for ly in doc["layers"])


def on_terminal(args: list[str], columns: int = 160) -> str:
    """Run `fastsync ARGS` with stderr on a pseudo-terminal (so progress draws bars); what it drew.
    The command must succeed."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fastsync", *args], cwd=ROOT, stderr=slave,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns), "TERM": "xterm"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(60) == 0
    return b"".join(chunks).decode(errors="replace")
