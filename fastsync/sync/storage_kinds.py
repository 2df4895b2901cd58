"""`fastsync sync --src registry-storage` and `--dest registry-storage` (entries of fastsync.sync.inputs's tables).

SOURCE is ``ROOT`` (every tagged image of the tree), ``ROOT:NAME`` (every tag of a repository) or
``ROOT:NAME:TAG`` / ``ROOT:NAME@DIGEST``; ``ROOT/NAME[:TAG|@DIGEST]`` too (the tree exists, so
ROOT is the enclosing directory holding ``docker/registry/v2``: `storage.split_root`). Images keep
their repository path in the destination name, scoped or not (a tree's names carry no registry
host): ``sync --src registry-storage --dest docker /var/lib/registry harbor.local`` writes
``harbor.local/library/nginx:1``.

DESTINATION is ``ROOT:`` or ``ROOT:PREFIX`` (the colon ends the storage root, as in
``registry-storage:ROOT:NAME``): ``sync --src list --dest registry-storage images.list ./out:``
writes ``registry-storage:./out:ns/app:1`` for the line ``ns/app:1``. A bare ``ROOT`` means
``ROOT:`` (no prefix): `dest_root` (SYNC_DEST.destination) spells it so before the image names are joined to
it; on its own, `dest_reference` can tell where a bare ROOT ends only in a tree that exists.
"""
from __future__ import annotations

from typing import Optional

from fastsync.errors import FastsyncError, NotFound, UsageError
from fastsync.model import Digest
from fastsync.options import TransportOptions
from fastsync.session import Session
from fastsync.sync.kinds import DestKind, SourceImage, SyncInput
from fastsync.transports.base import ImageReference
from fastsync.transports.storage.reference import V2, Layout, StorageImageReference, parse_image, split_root
from fastsync.transports.storage.destination import current_digest


async def sync_source(session: Session, inp: SyncInput) -> list[SourceImage]:
    root, rest = split_root(inp.source)
    if not root:
        raise UsageError(f"invalid registry-storage source {inp.source!r}: expected ROOT[:NAME[:TAG|@DIGEST]]")
    probe = StorageImageReference(root, spelled=f"registry-storage:{inp.source}")
    probe.check_root_spelling()
    layout = probe.layout
    if not layout.exists():
        raise NotFound(f"{root} is not a registry storage root (no {V2})")
    if not rest:
        found = [(n, t, None) for n, t in layout.images()]
    else:
        name, tag, digest = parse_image(rest, f"registry-storage:{inp.source}")
        found = [(name, tag, digest)] if tag or digest else [(name, t, None) for t in layout.tags(name)]
    images = []
    for name, tag, digest in found:
        ref = StorageImageReference(root, name, tag, digest)
        suffix = f"{name}@{digest}" if digest else f"{name}:{tag}"
        images.append(SourceImage(ref, inp.src_opts, suffix, plain=suffix))
    if not images:
        raise FastsyncError(f"No images to sync found in {inp.source!r}")
    return images


def dest_reference(joined: str) -> ImageReference:
    """`ROOT:[PREFIX/]NAME:TAG` (DESTINATION joined with the image's name) -> a destination reference."""
    root, sep, rest = joined.partition(":")
    rest = rest.lstrip("/")
    if sep and root and (":" in rest or "@" in rest):
        return StorageImageReference.parse(f"{root}:{rest}")
    outer, image = split_root(joined)       # a bare ROOT whose tree exists: ROOT/[PREFIX/]NAME:TAG
    if outer != root and image and (":" in image or "@" in image):
        return StorageImageReference.parse(f"{outer}:{image}")
    raise UsageError("a registry-storage sync DESTINATION is spelled ROOT: or ROOT:PREFIX (for example ./out:), "
                     "so that the storage root is known")


def dest_root(destination: str) -> str:
    """DESTINATION as `dest_reference` reads it: a bare ROOT (no colon) is ``ROOT:``, no prefix."""
    if destination and ":" not in destination:
        return (destination.rstrip("/") or "/") + ":"
    return destination


def _probe(ref: ImageReference, opts: TransportOptions):  # noqa: ANN202
    assert isinstance(ref, StorageImageReference)

    async def probe(session: Session) -> Optional[Digest]:
        if not ref.name or not ref.tag:
            return None
        return current_digest(ref.layout, ref.name, ref.tag)
    return probe


SYNC_SOURCE = sync_source
SYNC_DEST = DestKind("registry-storage", dest_reference, _probe, local=True, destination=dest_root)

__all__ = ["SYNC_SOURCE", "SYNC_DEST", "Layout", "dest_reference", "dest_root"]
