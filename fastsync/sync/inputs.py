"""`sync` inputs and destination naming, as skopeo sync does them, plus plain lists and image-syncer.

A *source kind* (`--src`) turns the SOURCE argument into images (`SourceImage`: a reference, its
options and the suffix skopeo would name it by); a *destination kind* (`--dest`) turns DESTINATION and
that suffix into a reference, and can say what a destination holds now. Both are tables of
"module:attribute" entries, so a transport adds itself with one line in each:

    SOURCE_KINDS["registry-storage"] = "fastsync.sync.storage_kinds:SYNC_SOURCE"
    DEST_KINDS["registry-storage"] = "fastsync.sync.storage_kinds:SYNC_DEST"

Naming (skopeo's cmd/skopeo/sync.go): the suffix is the source's full docker reference
(`registry.example.com/ns/busybox:1.36`) or, for dir:, its path below SOURCE; without --scoped only
its last path element is kept; then DESTINATION/suffix + --append-suffix.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import posixpath
from typing import TYPE_CHECKING, Any, Optional

from fastsync.errors import FastsyncError, InvalidReference, UsageError
from fastsync.model import Digest
from fastsync.options import GlobalOptions, TransportOptions
from fastsync.progress import Event, EventSink, emitter
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.sync.config import syncer_options
from fastsync.sync.kinds import (DestKind, SourceImage, SourceKind, SyncInput, SyncRequest, docker_image,
                                 repository_images)
from fastsync.sync.plan import Probe, SyncItem, SyncOptions
from fastsync.session import run
from fastsync.session import Session
from fastsync.transports.base import ImageReference

if TYPE_CHECKING:
    from fastsync.registry.stats import TrafficStats
    from fastsync.store.blobs import Store
    from fastsync.sync.run import SyncResult


SOURCE_KINDS: dict[str, str] = {
    "docker": "fastsync.sync.inputs:docker_source",
    "dir": "fastsync.sync.inputs:dir_source",
    "yaml": "fastsync.sync.config:yaml_source",
    "list": "fastsync.sync.config:list_source",
    "image-syncer": "fastsync.sync.config:image_syncer_source",
    "registry-storage": "fastsync.sync.storage_kinds:SYNC_SOURCE",
    "docker-daemon": "fastsync.sync.daemon_kinds:SYNC_SOURCE",
    "containers-storage": "fastsync.sync.cstorage_kinds:SYNC_SOURCE",
}
DEST_KINDS: dict[str, str] = {
    "docker": "fastsync.sync.inputs:DOCKER_DEST",
    "dir": "fastsync.sync.inputs:DIR_DEST",
    "registry-storage": "fastsync.sync.storage_kinds:SYNC_DEST",
    "docker-daemon": "fastsync.sync.daemon_kinds:SYNC_DEST",
    "containers-storage": "fastsync.sync.cstorage_kinds:SYNC_DEST",
}


def _load(table: dict[str, str], kind: str, what: str) -> Any:
    if kind not in table:
        raise UsageError(f"{kind!r} is not a valid {what} transport (valid: {', '.join(sorted(table))})")
    module, _, attr = table[kind].partition(":")
    return getattr(importlib.import_module(module), attr)


# ---- Go's path package, which skopeo's naming uses ------------------------------------------------

def go_clean(p: str) -> str:
    if not p:
        return "."
    out = posixpath.normpath(p)
    return "/" + out.lstrip("/") if out.startswith("//") else out


def go_join(*parts: str) -> str:
    joined = "/".join(x for x in parts if x)
    return go_clean(joined) if joined else ""


def go_base(p: str) -> str:
    if not p:
        return "."
    p = p.rstrip("/")
    return p.rsplit("/", 1)[-1] if p else "/"


# ---- sources: docker and dir ----------------------------------------------------------------------

def parse_source_name(text: str) -> DockerReference:
    text = text[len("docker://"):] if text.startswith("docker://") else text
    try:
        return parse_docker_reference(text)
    except InvalidReference as exc:
        raise UsageError(f"Cannot obtain a valid image reference for transport \"docker\" and reference "
                         f"{text!r}: {exc}") from None


async def docker_source(session: Session, inp: SyncInput) -> list[SourceImage]:
    ref = parse_source_name(inp.source)
    refs = [ref] if ref.tag or ref.digest else await repository_images(session, ref, inp.src_opts)
    if not refs:
        raise FastsyncError(f"No images to sync found in {inp.source!r}")
    return [SourceImage(docker_image(r), inp.src_opts, str(r)) for r in refs]


def find_dir_images(root: str) -> list[str]:
    """Directories holding manifest.json below `root`, found in the order Go's filepath.WalkDir
    visits them (lexical; a manifest.json ends the walk of its directory, as skopeo's SkipDir)."""
    found: list[str] = []

    def walk(path: str) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            raise FastsyncError(f"Error walking the path {root!r}: {exc.strerror}") from None
        for e in entries:
            child = go_join(path, e.name)
            if e.is_dir(follow_symlinks=False):
                walk(child)
            elif e.name == "manifest.json":
                found.append(posixpath.dirname(child) or ".")
                return
    walk(root)
    return found


async def dir_source(session: Session, inp: SyncInput) -> list[SourceImage]:
    from fastsync.transports.dir import DirImageReference

    base = inp.source
    if not os.path.exists(base):
        raise FastsyncError(f"Invalid source directory specified: stat {base}: no such file or directory")
    images = []
    for d in find_dir_images(base):
        suffix = d[len(base):] if d.startswith(base) else d
        images.append(SourceImage(DirImageReference(d), inp.src_opts, suffix or go_base(base)))
    if not images:
        raise FastsyncError(f"No images to sync found in {base!r}")
    return images


# ---- destinations -------------------------------------------------------------------------------

def _docker_dest(name: str) -> ImageReference:
    from fastsync.transports.docker import DockerImageReference

    try:
        return DockerImageReference.parse("//" + name)
    except InvalidReference as exc:
        raise UsageError(f"Cannot obtain a valid image reference for transport \"docker\" and reference "
                         f"\"//{name}\": {exc}") from None


def _docker_probe(ref: ImageReference, opts: TransportOptions) -> Probe:
    async def probe(session: Session) -> Optional[Digest]:
        """The tag's digest; when there is none, whether the repository exists at all (a new one
        holds no blob: the copy then uploads without asking for each)."""
        r = ref.docker_reference
        assert r is not None
        client, scopes = session.registry(r.registry, opts), (f"repository:{r.path}:pull,push",)
        digest = await client.head_manifest(r.path, str(r.digest) if r.digest else (r.tag or "latest"), scopes=scopes)
        if digest is None:
            await client.probe_repository(r.path, scopes)
        return digest
    return probe


def _dir_dest(name: str) -> ImageReference:
    from fastsync.transports.dir import DirImageReference

    return DirImageReference(name)


def _dir_probe(ref: ImageReference, opts: TransportOptions) -> Probe:
    async def probe(session: Session) -> Optional[Digest]:
        from fastsync.manifest import manifest_digest

        try:
            with open(os.path.join(ref.details, "manifest.json"), "rb") as f:
                raw = f.read()
            return manifest_digest(raw)
        except (OSError, FastsyncError):
            return None
    return probe


DOCKER_DEST = DestKind("docker", _docker_dest, _docker_probe)
DIR_DEST = DestKind("dir", _dir_dest, _dir_probe, local=True)


# ---- resolving a sync into items ----------------------------------------------------------------

def destination_name(img: SourceImage, inp: SyncInput) -> str:
    if img.dest is not None:
        return img.dest
    suffix = img.suffix if inp.scoped else (img.plain if img.plain is not None else go_base(img.suffix))
    dest = inp.destination[len("docker://"):] if inp.destination.startswith("docker://") else inp.destination
    return go_join(dest, suffix) + inp.append_suffix


async def resolve(session: Session, src_kind: str, dest_kind: str, inp: SyncInput) -> list[SyncItem]:
    """Expand SOURCE into images and name each one's destination (no image is read yet)."""
    source: SourceKind = _load(SOURCE_KINDS, src_kind, "source")
    dest: DestKind = _load(DEST_KINDS, dest_kind, "destination")
    inp = dataclasses.replace(inp, destination=dest.destination(inp.destination))
    if src_kind == "dir" and dest.local and dest_kind == "dir":
        raise UsageError("sync from 'dir' to 'dir' not implemented, consider using rsync instead")
    images = [img for img in await source(session, inp) if not _attachment_tag(img, inp)]
    items: list[SyncItem] = []
    by_dest: dict[str, str] = {}
    for img in images:
        name = destination_name(img, inp)
        ref = dest.reference(name)
        key, src = str(ref), str(img.ref)
        if key in by_dest:
            if by_dest[key] == src:
                continue
            raise UsageError(f"{by_dest[key]} and {src} would both be written to {key} (use --scoped)")
        by_dest[key] = src
        opts = dest_options(ref, inp)
        items.append(SyncItem(img.ref, ref, img.opts, opts, dest.probe(ref, opts), img.attachments))
    return items


def _attachment_tag(img: SourceImage, inp: SyncInput) -> bool:
    """A cosign or referrers-index tag, when attachments travel with their images (not as images)."""
    from fastsync.attachments.model import ATTACHMENT_TAG, applying

    atts = applying(img.attachments, inp.options.copy.attachments)
    dref = img.ref.docker_reference
    last = img.suffix.rsplit("/", 1)[-1]
    tag = dref.tag if dref is not None else (last.rsplit(":", 1)[1] if ":" in last else None)
    return bool(atts is not None and tag and ATTACHMENT_TAG.match(tag))


def dest_options(ref: ImageReference, inp: SyncInput) -> TransportOptions:
    """The destination's options; image-syncer's auth file may name its registry or namespace."""
    if inp.auth_file and ref.docker_reference is not None:
        return syncer_options(inp.auth_file, ref.docker_reference, inp.dst_opts)
    return inp.dst_opts


def sync_images(request: SyncRequest, global_options: Optional[GlobalOptions] = None,
                store: Optional[Store] = None, on_event: Optional[EventSink] = None,
                traffic: Optional[TrafficStats] = None) -> SyncResult:
    """skopeo sync: every image of `request.source` to `request.destination`.

    With a `store` blobs are cached across runs and dir: destinations are filled by hardlinks; with
    `traffic`, per-host figures are counted into it.
    Returns per-image results; raises on the first failure unless `request.options.keep_going`."""
    r = request
    opts = r.options
    inp = SyncInput.of(r)

    async def go(session: Session) -> SyncResult:
        from fastsync.sync.run import run_sync

        items = await resolve(session, r.src_kind, r.dest_kind, inp)
        for w in inp.warnings:
            emitter(on_event)(Event("warning", message=w))
        return await run_sync(session, items, opts, on_event)

    return run(go, global_options, store, traffic)


__all__ = ["SyncRequest", "SyncInput", "SourceImage", "DestKind", "SOURCE_KINDS", "DEST_KINDS", "resolve", "sync_images",
           "destination_name", "SyncItem", "SyncOptions"]
