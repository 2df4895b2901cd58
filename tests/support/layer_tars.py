"""Images made of hand-built layer tars (odd formats, whiteouts, hostile names), as skopeo dir:s.

``Member(name, kind="file", data=b"", mode=0o644, uid=0, gid=0, link="", xattrs=None, mtime=...)``
    kind: file | dir | symlink | hardlink | fifo.
``layer_tar(members, fmt=tarfile.PAX_FORMAT)`` -> bytes (Python's tarfile, padded to its 10 KiB
    record size, so the tar ends with more zeros than the two end blocks).
``write_image_dir(path, layers, gzip_layers=True, oci=False)`` -> (manifest digest, config digest,
    diff_ids): a Docker v2s2 (or OCI) image whose config lists the layers' diff_ids.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MTIME = 1672531200


@dataclass(frozen=True)
class Member:
    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""
    xattrs: Optional[dict[str, str]] = field(default=None, hash=False)
    mtime: float = MTIME


def layer_tar(members: list[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for m in members:
            ti = tarfile.TarInfo(m.name)
            ti.mode, ti.uid, ti.gid, ti.mtime = m.mode, m.uid, m.gid, m.mtime
            ti.uname = ti.gname = ""
            if m.xattrs:
                ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in m.xattrs.items()}
            data = None
            if m.kind == "file":
                ti.size = len(m.data)
                data = io.BytesIO(m.data)
            elif m.kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif m.kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, m.link
            elif m.kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, m.link
            elif m.kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            else:
                raise ValueError(m.kind)
            tf.addfile(ti, data)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_image_dir(path: Path, layers: list[bytes], gzip_layers: bool = True,
                    oci: bool = False) -> tuple[str, str, list[str]]:
    path.mkdir(parents=True, exist_ok=True)
    (path / "version").write_bytes(b"Directory Transport Version: 1.1\n")
    diff_ids = [_sha(t) for t in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2023-01-01T00:00:00Z",
                         "config": {"Env": ["PATH=/usr/bin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}, separators=(",", ":")).encode()
    (path / _sha(config).split(":")[1]).write_bytes(config)
    descs = []
    layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "") if oci else \
        "application/vnd.docker.image.rootfs.diff.tar" + (".gzip" if gzip_layers else "")
    for t in layers:
        blob = gzip.compress(t, mtime=0) if gzip_layers else t
        (path / _sha(blob).split(":")[1]).write_bytes(blob)
        descs.append({"mediaType": layer_type, "size": len(blob), "digest": _sha(blob)})
    config_type = "application/vnd.oci.image.config.v1+json" if oci else \
        "application/vnd.docker.container.image.v1+json"
    manifest_type = "application/vnd.oci.image.manifest.v1+json" if oci else \
        "application/vnd.docker.distribution.manifest.v2+json"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                           "config": {"mediaType": config_type, "size": len(config), "digest": _sha(config)},
                           "layers": descs}, separators=(",", ":")).encode()
    (path / "manifest.json").write_bytes(manifest)
    return _sha(manifest), _sha(config), diff_ids
