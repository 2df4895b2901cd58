"""The sync planner's check that a destination already has an image's attachments, in one round.

For the image's digest, both ends are asked at once (and at once with the planner's manifest probe):
the three cosign tags by HEAD and the referrers (the API and the fallback tag together). The
destination is in step when every cosign tag the source has points at the same manifest there and
every referrer the source lists is listed there too. This looks at the first level only: a new
signature of an unchanged SBOM is not seen by it (a copy of the image carries it).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastsync.attachments.discover import Reader
from fastsync.attachments.model import COSIGN_SUFFIXES, AttachmentOptions, cosign_tag
from fastsync.model import Digest

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.base import ImageReference


async def _state(reader: Reader, subject: Digest, options: AttachmentOptions) -> tuple[dict, set[str]]:
    kinds = [(suffix, kind) for suffix, kind in COSIGN_SUFFIXES if options.wants(kind, "")]
    got = await asyncio.gather(reader.listing(subject, options),
                               *(reader.head(cosign_tag(subject, suffix)) for suffix, _ in kinds))
    return dict(zip((s for s, _ in kinds), got[1:])), {e["digest"] for e in got[0]}


async def in_step(session: "Session", src_ref: "ImageReference", src_opts: "TransportOptions",
                  dst_ref: "ImageReference", dst_opts: "TransportOptions", subject: Digest,
                  options: AttachmentOptions) -> bool:
    """Whether `dst_ref` holds the attachments `src_ref` has for `subject` (first level)."""
    if dst_ref.with_tag("latest") is None:
        return True                   # nothing can be carried there: nothing to wait for
    (src_tags, src_refs), (dst_tags, dst_refs) = await asyncio.gather(
        _state(Reader(session, src_ref, src_opts), subject, options),
        _state(Reader(session, dst_ref, dst_opts), subject, options))
    tags_ok = all(d is None or dst_tags.get(s) == d for s, d in src_tags.items())
    return tags_ok and src_refs <= dst_refs
