"""Transports: each implements ImageReference / ImageSource / ImageDestination (base.py).

This module is the registry of transports (as containers/image's alltransports): `TRANSPORTS` maps a
name to the class that parses its `transport:details` names, imported only when used.

docker.py dir.py oci.py   the registry, skopeo's directory layout, OCI image layouts
archive/                  docker-archive: and oci-archive: tars
storage/                  registry-storage: (a registry's on-disk tree)
daemon/                   docker-daemon: (the Docker Engine API: save and load streams)
cstorage/                 containers-storage: (podman/buildah/CRI-O's local store)
sif.py sif_layer.py       sif: (Singularity images, read)
localfs.py                what the local transports share: staged dirs, atomic writes, linking

May import: the vocabulary modules, core, registry, store, fastsync.session. Not engine, sync or cli.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from fastsync.errors import InvalidReference

if TYPE_CHECKING:
    from fastsync.transports.base import ImageReference

# transport name -> "module:class" of its ImageReference implementation
TRANSPORTS = {
    "docker": "fastsync.transports.docker:DockerImageReference",
    "dir": "fastsync.transports.dir:DirImageReference",
    "oci": "fastsync.transports.oci:OCIImageReference",
    "registry-storage": "fastsync.transports.storage.reference:StorageImageReference",
    "oci-archive": "fastsync.transports.archive.oci:OCIArchiveReference",
    "docker-archive": "fastsync.transports.archive.docker:DockerArchiveReference",
    "docker-daemon": "fastsync.transports.daemon:DaemonImageReference",
    "sif": "fastsync.transports.sif:SifImageReference",
    "containers-storage": "fastsync.transports.cstorage:StorageReference",
}


def transport_names() -> list[str]:
    return sorted(TRANSPORTS)


def parse_image_name(name: str) -> "ImageReference":
    """Parse `transport:details` (skopeo's image-name syntax) into an ImageReference."""
    transport, sep, details = name.partition(":")
    if not sep or transport not in TRANSPORTS:
        valid = ", ".join(f"{t}:" for t in transport_names())
        # containers/image's wording (alltransports.ParseImageName), then the valid names
        raise InvalidReference(f'Invalid image name "{name}", unknown transport "{transport}" '
                               f"(valid transports: {valid})" if sep else
                               f'Invalid image name "{name}", expected colon-separated transport:reference '
                               f"(valid transports: {valid})")
    module_name, _, class_name = TRANSPORTS[transport].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.parse(details)
