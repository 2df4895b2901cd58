"""The README's quick-start job (`make demo` = scripts/demo.py) runs end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def test_demo_pushes_mirrors_resyncs_and_writes_a_registry_tree(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True,
                          env={**os.environ, "FASTSYNC_DEMO_OUT": str(out)}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "$ fastsync sync" in proc.stdout and "Done." in proc.stdout
    first = json.loads((out / "report-1.json").read_bytes())["images"]
    again = json.loads((out / "report-2.json").read_bytes())["images"]
    assert len(first) == 6 and {i["status"] for i in first} == {"copied"}
    assert {i["status"] for i in again} == {"up-to-date"} and sum(i["bytes_transferred"] for i in again) == 0
    assert sorted(p.name for p in (out / "mirror" / "release").iterdir()) == \
        ["api:1.0", "base:1.0", "model:1.0", "scratch:1.0", "web:1.0", "worker:1.0"]
    tags = list((out / "offline").glob("docker/registry/v2/repositories/release/*/_manifests/tags/1.0/current/link"))
    assert len(tags) == 6
    index = json.loads((out / "layout" / "index.json").read_bytes())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["base-1.0"]
