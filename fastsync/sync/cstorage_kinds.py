"""`fastsync sync --src containers-storage` and `--dest containers-storage` (entries of fastsync.sync.inputs's
tables).

SOURCE is `[SPEC]` (every named image of the store), `[SPEC]NAME` (every tag of repository NAME and
of the repositories below it: `localhost/app` takes `localhost/app:1` and `localhost/app/web:2`) or
`[SPEC]NAME:TAG` / `[SPEC]NAME@DIGEST`; without `[SPEC]` the store is storage.conf's, and then a
bare SOURCE names a repository (`sync --src containers-storage --dest docker quay.io/ns/app
registry.local:5000`). Each name an image carries is one image to sync, suffixed by its full name
(`docker.io/library/busybox:1`, or `busybox:1` without --scoped), as skopeo names docker sources.

DESTINATION is `[SPEC]PREFIX`, `[SPEC]` or a bare PREFIX (storage.conf's store): the image's
suffix is joined to PREFIX (`[vfs@/srv/store+/run/store]mirror.local` + `busybox:1` ->
`mirror.local/busybox:1`; with no prefix, `busybox:1` is `docker.io/library/busybox:1`).
"""
from __future__ import annotations

from typing import Optional

from fastsync.errors import FastsyncError, NotFound, UsageError
from fastsync.model import Digest
from fastsync.options import TransportOptions
from fastsync.reference import parse_docker_reference
from fastsync.session import Session
from fastsync.sync.kinds import DestKind, SourceImage, SyncInput
from fastsync.transports.base import ImageReference
from fastsync.transports.localfs import in_thread
from fastsync.transports.cstorage import StorageReference


def _split(text: str) -> tuple[str, str]:
    """(`[SPEC]` or "", the rest)."""
    if text.startswith("["):
        close = text.find("]")
        if close < 1:
            raise UsageError(f"invalid containers-storage source {text!r}: the store specification does not end")
        return text[:close + 1], text[close + 1:].lstrip("/")
    return "", text


async def sync_source(session: Session, inp: SyncInput) -> list[SourceImage]:
    spec, rest = _split(inp.source)
    probe = StorageReference.parse(f"{spec}{rest or 'x'}")
    store = probe.store()
    await in_thread(store.check, False, f"containers-storage:{inp.source}")
    _, records = await in_thread(store.snapshot)
    exact = None
    repo = None
    if rest:
        try:
            exact = parse_docker_reference(rest)
        except FastsyncError:
            raise UsageError(f"invalid containers-storage source {inp.source!r}: {rest!r} is not an image "
                             "name") from None
        if exact.tag is None and exact.digest is None:
            repo, exact = exact.name, None
    images: list[SourceImage] = []
    for rec in records:
        for name in rec.get("names") or ():
            try:
                named = parse_docker_reference(name)
            except FastsyncError:
                continue
            if exact is not None and str(named) != str(exact):
                continue
            if repo is not None and named.name != repo and not named.name.startswith(repo + "/"):
                continue
            ref = StorageReference.parse(f"{spec}{name}")
            images.append(SourceImage(ref, inp.src_opts, str(named)))
    if not images:
        raise NotFound(f"No images to sync found in {inp.source!r}")
    return images


def dest_reference(joined: str) -> ImageReference:
    spec, rest = _split(joined)
    if not rest:
        raise UsageError(f"invalid containers-storage destination {joined!r}: no image name")
    return StorageReference.parse(f"{spec}{rest}")


def _probe(ref: ImageReference, opts: TransportOptions):  # noqa: ANN202
    assert isinstance(ref, StorageReference)

    async def probe(session: Session) -> Optional[Digest]:
        def current() -> Optional[Digest]:
            try:
                _, records = ref.store().snapshot()
                rec = ref.resolve(records)
                return Digest.parse(rec.get("digest", ""))
            except FastsyncError:
                return None
        return await in_thread(current)
    return probe


SYNC_SOURCE = sync_source
SYNC_DEST = DestKind("containers-storage", dest_reference, _probe, local=True)

__all__ = ["SYNC_SOURCE", "SYNC_DEST", "dest_reference"]
