"""Checks shared by the fault-injection suites: what a registry, a dir: or a cache holds, read
independently of fastsync."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from support import images
from support.faultproxy import Fault
from support.registry import Registry

def transient_faults(retry_after: str = "1", *, with_500: bool = True) -> dict[str, Fault]:
    """Every kind of transient fault, each injected on the first attempt of every request; a 429
    tells the client to wait `retry_after` seconds."""
    faults = {
        "reset": Fault("reset", "any"),
        "truncate": Fault("truncate", "any"),
        "corrupt": Fault("corrupt", "any"),
        "stall": Fault("stall", "any"),
        "503": Fault("status", "any", status=503),
        "429": Fault("status", "any", status=429, retry_after=retry_after),
    }
    if with_500:
        faults["500"] = Fault("status", "any", status=500)
    return faults


ACCEPT = ", ".join([images.DOCKER_V2S2, images.OCI_MANIFEST, images.OCI_INDEX, images.DOCKER_LIST])


def registry_holds(reg: Registry, repo: str, tag: str, image: images.SampleImage) -> None:
    """`repo:tag` in `reg` is exactly `image` (manifest bytes, digest), and every blob it names is there
    with its digest: no tag points at missing content."""
    resp = reg.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
    assert resp.status == 200, (repo, tag, resp.status)
    assert resp.body == image.manifest
    assert resp.headers.get("Docker-Content-Digest") == image.digest
    for digest, data in image.all_blobs().items():
        blob = reg.request("GET", f"/v2/{repo}/blobs/{digest}")
        assert blob.status == 200, (digest, blob.status)
        assert "sha256:" + hashlib.sha256(blob.body).hexdigest() == digest


def registry_lacks(reg: Registry, repo: str, tag: str) -> None:
    assert reg.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}).status == 404


def dir_holds(path: Path, image: images.SampleImage) -> None:
    assert (path / "manifest.json").read_bytes() == image.manifest
    for digest, data in image.all_blobs().items():
        assert (path / digest.split(":", 1)[1]).read_bytes() == data


def cache_is_sound(cache: Path) -> int:
    """Every blob file of the cache hashes to its name, and no temporary file is left; returns how
    many blobs it holds."""
    root = cache / "blobs"
    count = 0
    for alg_dir in (root.iterdir() if root.exists() else []):
        for f in alg_dir.iterdir():
            assert f.is_file(), f
            assert hashlib.new(alg_dir.name, f.read_bytes()).hexdigest() == f.name, f
            count += 1
    tmp = cache / "tmp"
    leftovers = os.listdir(tmp) if tmp.exists() else []
    assert not leftovers, leftovers
    return count


def manifest_of(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_bytes())
