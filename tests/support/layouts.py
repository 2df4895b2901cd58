"""Writing sample images where tools read them: skopeo's ``dir:``, OCI layouts, a registry via skopeo."""
from __future__ import annotations

import json
import os as _os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Union

from .imagemodel import (
    DOCKER_V2S1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
    SampleImage,
    canonical_json,
)


def _write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def write_dir(image: SampleImage, path: Union[str, "_os.PathLike[str]"]) -> None:
    """Write ``image`` in skopeo's ``dir:`` layout, as ``skopeo copy --all`` 1.9 writes it.

    ``version`` ("Directory Transport Version: 1.1\\n"), ``manifest.json`` (the top-level
    manifest), one file per blob named by its digest hex, and for an index each instance
    manifest as ``<instance digest hex>.manifest.json``.
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    _write_file(p / "version", b"Directory Transport Version: 1.1\n")
    for digest, data in image.all_blobs().items():
        _write_file(p / digest.split(":", 1)[1], data)
    for child in image.children:
        _write_file(p / (child.digest.split(":", 1)[1] + ".manifest.json"), child.manifest)
    _write_file(p / "manifest.json", image.manifest)


def write_oci(image: SampleImage, layout: Union[str, "_os.PathLike[str]"], ref: Optional[str] = None,
              allow_docker: bool = False) -> None:
    """Write ``image`` into an OCI image layout, adding (or replacing) the entry for ``ref``.

    skopeo 1.9 ignores index.json entries whose mediaType is not an OCI manifest/index
    ("no descriptor found for reference"), so Docker-typed images are refused unless
    ``allow_docker=True`` (to test how a reader copes with such a layout). The OCI twin of
    a v2s2 sample is ``make_image(same seed, fmt="oci")``: same config and layer bytes."""
    if image.media_type == DOCKER_V2S1_SIGNED:
        raise ValueError("schema 1 images cannot be stored in an OCI layout")
    if not allow_docker and image.media_type not in (OCI_MANIFEST, OCI_INDEX):
        raise ValueError(f"{image.media_type} in an OCI layout is invisible to skopeo; "
                         "use an OCI image or pass allow_docker=True")
    root = Path(layout)
    blobs_dir = root / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(b'{"imageLayoutVersion": "1.0.0"}')
    for digest, data in image.all_blobs().items():
        _write_file(blobs_dir / digest.split(":", 1)[1], data)
    for digest, data in image.manifests().items():
        _write_file(blobs_dir / digest.split(":", 1)[1], data)
    index_path = root / "index.json"
    if index_path.exists():
        index = json.loads(index_path.read_bytes())
    else:
        index = {"schemaVersion": 2, "manifests": []}
    key = "org.opencontainers.image.ref.name"
    manifests = [m for m in index.get("manifests", [])
                 if ref is None or (m.get("annotations") or {}).get(key) != ref]
    entry: dict = {"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest)}
    if image.platform is not None:
        os_, arch, variant = image.platform
        entry["platform"] = {"architecture": arch, "os": os_, **({"variant": variant} if variant else {})}
    if ref is not None:
        entry["annotations"] = {key: ref}
    manifests.append(entry)
    index["manifests"] = manifests
    tmp = index_path.with_name(".index.json.tmp")
    tmp.write_bytes(canonical_json(index))
    _os.replace(tmp, index_path)


def skopeo_path() -> Optional[str]:
    return shutil.which("skopeo")


def push_with_skopeo(
    image_or_dir: Union[SampleImage, str, "_os.PathLike[str]"],
    dest: str,
    creds: Optional[str] = None,
    tls_verify: bool = False,
    cert_dir: Optional[str] = None,
    timeout: float = 120,
) -> None:
    """Copy an image (or a ``dir:`` directory) to ``dest`` ("HOST:PORT/repo:tag" or
    "docker://...") with ``skopeo copy --all --preserve-digests``; raises
    ``subprocess.CalledProcessError`` (with skopeo's stderr) on failure.

    skopeo refuses to push a schema 1 image anywhere but the name:tag embedded in it
    ("would change the manifest" with --preserve-digests); ``Registry.push_image`` has
    no such limit (distribution does not check the embedded name)."""
    if not dest.startswith("docker://"):
        dest = "docker://" + dest
    with tempfile.TemporaryDirectory(prefix="fastsync-push-") as tmp:
        if isinstance(image_or_dir, SampleImage):
            src = Path(tmp) / "img"
            write_dir(image_or_dir, src)
        else:
            src = Path(image_or_dir)
        cmd = [skopeo_path() or "skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests",
               "--retry-times", "0", f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
        if creds:
            cmd += ["--dest-creds", creds]
        if cert_dir:
            cmd += ["--dest-cert-dir", str(cert_dir)]
        cmd += [f"dir:{src}", dest]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout,
                              env={**_os.environ, "REGISTRY_AUTH_FILE": str(Path(tmp) / "auth.json")})
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
