"""Select images from a pool storage tree into a new tree, by hardlink (a release's bundle for ~no I/O).
Each image's attachments (cosign tags, referrers and their fallback index) come along.

The new tree's blob and manifest files are the pool's inodes; only the small link files are new.
Blobs are taken from the pool without re-hashing them (the pool is trusted as the registry trusts
its own storage); sizes are checked, manifests are read and verified against their digests.
"""
from __future__ import annotations

import asyncio
from typing import Iterable, Optional, Sequence

from fastsync.attachments.model import ATTACHMENT_TAG, AttachmentOptions
from fastsync.engine.job import ImageResult, Job
from fastsync.errors import FastsyncError, InvalidReference, UsageError
from fastsync.options import CopyOptions, GlobalOptions
from fastsync.progress import EventSink
from fastsync.session import Session
from fastsync.transports.storage.reference import Layout, StorageImageReference, V2, parse_image


def read_image_list(path: str) -> list[str]:
    """Image names from a list file: one per line; blank lines and `#` comments are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read image list {path}: {exc.strerror}") from None
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def storage_name(text: str) -> str:
    """An image from a list, as a name in a storage tree: a leading registry host is dropped
    (`harbor.local/library/nginx:1` -> `library/nginx:1`), since the tree does not record it."""
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return rest
    return text


def selection(pool: str, out: str, images: Iterable[str]) -> list[tuple[StorageImageReference,
                                                                         StorageImageReference]]:
    """(source in the pool, destination in `out` linking from the pool) for each image name."""
    pairs = []
    for text in images:
        name, tag, digest = parse_image(storage_name(text), text)
        src = StorageImageReference(pool, name, tag, digest)
        pairs.append((src, StorageImageReference(out, name, tag, digest, pool=pool)))
    return pairs


async def select_images_async(session: Session, pool: str, out: str, images: Sequence[str],
                              on_event: Optional[EventSink] = None, concurrency: int = 8) -> list[ImageResult]:
    """Build (or add to) the storage tree `out` holding `images` (every image of the pool when empty)."""
    if not Layout(pool).exists():
        raise FastsyncError(f"pool {pool} is not a registry storage root (no {V2})")
    # attachments (cosign tags, referrers indexes) travel with their images, not as images
    names = list(images) or [f"{n}:{t}" for n, t in Layout(pool).images() if not ATTACHMENT_TAG.match(t)]
    if not names:
        raise FastsyncError(f"pool {pool} holds no tagged images")
    pairs = selection(pool, out, names)
    if Layout(out).root == Layout(pool).root:
        raise InvalidReference(f"the output tree {out} is the pool itself")
    job = Job(session, CopyOptions(multi_arch="all", preserve_digests=True, attachments=AttachmentOptions()),
              on_event)
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(src: StorageImageReference, dst: StorageImageReference) -> ImageResult:
        async with sem:
            return await job.copy(src, dst)

    return list(await asyncio.gather(*(one(s, d) for s, d in pairs)))


def select_images(pool: str, out: str, images: Sequence[str], on_event: Optional[EventSink] = None,
                  global_options: Optional[GlobalOptions] = None) -> list[ImageResult]:
    """`select_images_async` on a fresh event loop."""
    from fastsync.session import run

    return run(lambda session: select_images_async(session, pool, out, images, on_event), global_options)
