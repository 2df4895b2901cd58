"""Which manifest type a destination gets: skopeo's --format, zstd's OCI requirement, and what the
destination accepts; --preserve-digests as a check."""
from __future__ import annotations

from typing import Sequence

from fastsync import manifest as mf
from fastsync import model as m
from fastsync.errors import Unsupported
from fastsync.manifest import Manifest
from fastsync.options import CopyOptions
from fastsync.transports.base import ImageDestination


def target_type(man: Manifest, dst: ImageDestination, options: CopyOptions, zstd: bool = False) -> str:
    wanted = mf.target_type_for(man.media_type, options.format) or man.media_type
    if zstd and wanted in (m.DOCKER_V2S2, m.DOCKER_LIST):
        if options.format == "v2s2":
            raise Unsupported("zstd layers cannot be stored in a Docker v2s2 manifest; use --format oci")
        wanted = m.OCI_MANIFEST   # as skopeo does: zstd forces the OCI format
    accepted = dst.capabilities.manifest_types
    if accepted is not None and wanted not in accepted:
        for fmt in ("oci", "v2s2"):
            alt = mf.target_type_for(man.media_type, fmt)
            if alt in accepted:
                return alt
        raise Unsupported(f"{dst.reference} cannot store a {man.media_type} manifest")
    return wanted


def index_target(target: str, children: Sequence[Manifest]) -> str:
    """An index's type once its instances are written: a Docker list whose instance became OCI (zstd
    layers) becomes an OCI index."""
    if target == m.DOCKER_LIST and any(c.media_type == m.OCI_MANIFEST for c in children):
        return m.OCI_INDEX
    return target


def check_preserved(before: Manifest, after: Manifest, options: CopyOptions) -> None:
    if options.preserve_digests and before.digest != after.digest:
        raise Unsupported(f"--preserve-digests: the copy would change manifest {before.digest} "
                          f"into {after.digest}")
