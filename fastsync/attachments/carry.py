"""The hook a copy calls once its manifests are written (before the destination commits):

    carried = await carrier.carry(options, src_ref, src, src_opts, dst_ref, dst, dst_opts, written, move_blob)

`written` maps each source manifest the copy wrote (the top one, every index instance) to the digest
it has at the destination. Their attachments are found at the source (every level), their blobs go
through `move_blob` (the engine's job-wide transfers: deduplicated and cached like any blob), then
their manifests are written parents first: cosign tags as tags, referrers by digest, then the fallback
index of each subject whose registry did not index them itself.

Attachments name their subject by digest, so a copy that changed a manifest's digest (a format
conversion) cannot carry them: that is an error. A destination with no tags beside its image (dir:,
archives, daemons) cannot hold them: an error when they were asked for (`required`), else a warning.
A cosign tag that exists at the destination with other content is replaced by the source's when
that holds every layer of it (a signature added at the source: digests stay identical); else a
`.sig` at a registry is merged (the signatures not there are appended, as containers/image writes
them) and anything else is replaced by the source's, with a warning.
"""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from fastsync.attachments.discover import Reader, SourceFacts, Warn, discover
from fastsync.attachments.model import SIGNATURE, Attachment, AttachmentOptions
from fastsync.attachments.write import Writer
from fastsync.errors import FastsyncError, Unsupported
from fastsync.manifest import manifest_digest, parse_manifest
from fastsync.model import Descriptor, Digest

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.base import ImageDestination, ImageReference, ImageSource

MoveBlob = Callable[[Descriptor], Awaitable[Any]]


class Carrier:
    """Carries attachments for the copies of one job (shares the fallback-index locks)."""

    def __init__(self, session: "Session", warn: Warn) -> None:
        self.session = session
        self.warn = warn
        self.locks: dict[Any, asyncio.Lock] = {}
        self.facts = SourceFacts()      # the sources' tag lists and referrers APIs, learnt once per job

    def prefetch(self, src_ref: "ImageReference", src: "ImageSource", src_opts: "TransportOptions") -> None:
        """A copy that will carry attachments has opened its source: what `carry` will ask first starts now."""
        Reader(self.session, src_ref, src_opts, src, self.facts).prefetch()

    async def carry(self, options: AttachmentOptions, src_ref: "ImageReference", src: "ImageSource",
                    src_opts: "TransportOptions", dst_ref: "ImageReference", dst: "ImageDestination",
                    dst_opts: "TransportOptions", written: dict[Digest, Digest], move_blob: MoveBlob
                    ) -> list[Attachment]:
        reader = Reader(self.session, src_ref, src_opts, src, self.facts)
        found = await asyncio.gather(*(discover(reader, d, options, self.warn) for d in written))
        atts = [a for group in found for a in group]
        if not atts:
            return []
        for subject, group in zip(written, found):
            if group and written[subject] != subject:
                raise Unsupported(f"{dst_ref}: the copy wrote manifest {subject} as {written[subject]}, but its "
                                  f"attachments (signatures, SBOMs, referrers) name {subject}; copy without "
                                  "converting it, or with --no-attachments")
        if dst_ref.with_tag("latest") is None:
            msg = f"{dst_ref}: the {dst_ref.transport}: transport cannot hold attachments"
            if options.required:
                raise Unsupported(f"{msg} (signatures, SBOMs, referrers); copy without --attachments")
            self.warn(f"{msg}; {len(atts)} not copied")
            return []
        writer = Writer(self.session, dst_ref, dst_opts, dst, self.locks)
        for depth in sorted({a.depth for a in atts}):
            await self._write_level(writer, src, [a for a in atts if a.depth == depth], move_blob)
        return atts

    async def _write_level(self, writer: Writer, src: "ImageSource", atts: list[Attachment],
                           move_blob: MoveBlob) -> None:
        """One level: blobs, then manifests, then the fallback indexes (the next level's subjects
        exist before their referrers are written)."""
        blobs = {d.digest: d for a in atts for d in parse_manifest(a.raw, a.media_type).blobs()}
        await asyncio.gather(*(move_blob(d) for d in blobs.values()))
        indexed = await asyncio.gather(*(self._put(writer, src, a) for a in atts))
        pending: dict[Digest, list[dict[str, Any]]] = {}
        for a, done in zip(atts, indexed):
            if not done:
                pending.setdefault(a.subject, []).append(a.entry())
        await asyncio.gather(*(writer.merge_index(subject, entries) for subject, entries in pending.items()))

    async def _put(self, writer: Writer, src: "ImageSource", att: Attachment) -> bool:
        """Write one attachment's manifest; True when nothing more is needed (no fallback entry)."""
        if att.tag is None:
            return await writer.put_referrer(att)
        there = await writer.reader.tag(att.tag)
        if there is not None and manifest_digest(there[0]) == att.digest:
            return True
        if there is not None and not _covers(att, there[0]):
            reg = writer.dst.registry_repository()
            if att.kind == SIGNATURE and reg is not None:
                from fastsync.trust.attachments import write_attachments

                await write_attachments(*reg, att.subject, await _signatures(src, att))
                return True
            self.warn(f"{writer.ref}: attachment {att.tag} held layers the source's has not; replaced by the "
                      f"source's {att.digest}")
        await writer.put_tagged(att.tag, att.raw, att.media_type)
        return True


def _covers(att: Attachment, there: bytes) -> bool:
    """Whether the source's cosign manifest holds every layer (payload and annotations) of the one
    at the destination: then writing the source's loses nothing (a signature added at the source)."""
    def layers(man: Any) -> set[tuple[str, str]]:
        return {(str(d.digest), json.dumps(dict(d.annotations), sort_keys=True)) for d in man.layers}
    try:
        theirs = parse_manifest(there)
    except FastsyncError:
        return False
    return layers(theirs) <= layers(parse_manifest(att.raw, att.media_type))


async def _signatures(src: "ImageSource", att: Attachment) -> list[Any]:
    """The sigstore signatures a cosign `.sig` manifest holds (its layers' payloads and annotations)."""
    from fastsync.trust.attachments import MAX_PAYLOAD, small_blob
    from fastsync.trust.formats import Sigstore

    out = []
    for layer in parse_manifest(att.raw, att.media_type).layers:
        data = await small_blob(src.blob_chunks(layer), layer, MAX_PAYLOAD,
                                f"signature payload {layer.digest} of {att.tag}")
        out.append(Sigstore(layer.media_type, data, dict(layer.annotations)))
    return out
