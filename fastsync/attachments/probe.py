"""The sync planner's check that a destination already has an image's attachments.

First the source alone, at once with the planner's manifest probe: its repository's tags, listed
once per job (`SourceFacts`), and the referrers API where there is one (asked once per host when it
has none). An image whose source shows no attachment costs nothing more — most images of a re-sync,
which then cost the floor's requests plus one tag listing per source repository. Otherwise (or when
the source cannot be listed in one page, or is not a registry) both ends are asked at once: the
three cosign tags and the fallback index tag by HEAD (at the source only those listed), and the
referrers API. The destination is in step when every cosign tag the source has points at the same
manifest there and every referrer the source lists is listed there too; only when the two fallback
indexes differ are they read. No manifest is GET while things are unchanged (a HEAD is not a pull).
This looks at the first level only: a new signature of an unchanged SBOM is not seen by it (the next
copy of the image carries it).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from fastsync.attachments.discover import Reader, SourceFacts
from fastsync.attachments.model import COSIGN_SUFFIXES, AttachmentOptions, cosign_tag, fallback_tag
from fastsync.model import Digest

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.base import ImageReference


@dataclass(frozen=True)
class _State:
    tags: dict[str, Optional[Digest]]       # cosign suffix -> digest there
    api: Optional[frozenset[str]]           # referrers the API lists (None: no API)
    fallback: Optional[Digest]              # the fallback index's digest (None: none)


async def _state(reader: Reader, subject: Digest, options: AttachmentOptions) -> _State:
    kinds = [suffix for suffix, kind in COSIGN_SUFFIXES if options.wants(kind, "")]
    api, fallback, *heads = await asyncio.gather(reader.api_entries(subject, options),
                                                 reader.head(fallback_tag(subject)),
                                                 *(reader.head(cosign_tag(subject, s)) for s in kinds))
    return _State(dict(zip(kinds, heads)), frozenset(e["digest"] for e in api) if api is not None else None,
                  fallback)


async def _listed(reader: Reader, state: _State, subject: Digest, options: AttachmentOptions) -> frozenset[str]:
    if state.api is not None:
        return state.api
    if state.fallback is None:
        return frozenset()
    return frozenset(e["digest"] for e in await reader.fallback_entries(subject, options) or [])


async def in_step(session: "Session", src_ref: "ImageReference", src_opts: "TransportOptions",
                  dst_ref: "ImageReference", dst_opts: "TransportOptions", subject: Digest,
                  options: AttachmentOptions, facts: Optional[SourceFacts] = None) -> bool:
    """Whether `dst_ref` holds the attachments `src_ref` has for `subject` (first level); `facts`
    (the job's, of its sources) spares a listing per image of the same repository."""
    if dst_ref.with_tag("latest") is None:
        return True                   # nothing can be carried there: nothing to wait for
    src = Reader(session, src_ref, src_opts, facts=facts if facts is not None else SourceFacts())
    if await src.has_none(subject, options):
        return True                   # nothing to carry: whatever the destination has will do
    dst = Reader(session, dst_ref, dst_opts)
    s, d = await asyncio.gather(_state(src, subject, options), _state(dst, subject, options))
    if not all(v is None or d.tags.get(k) == v for k, v in s.tags.items()):
        return False
    if s.api is None and (s.fallback is None or s.fallback == d.fallback):
        return True                   # no referrers, or the very same fallback index
    if s.api is not None and d.api is not None:
        return s.api <= d.api
    mine, theirs = await asyncio.gather(_listed(src, s, subject, options), _listed(dst, d, subject, options))
    return mine <= theirs
