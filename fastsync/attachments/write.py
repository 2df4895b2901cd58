"""Writing attachments at a destination: cosign tags, referrers, and the referrers fallback index.

A referrer is PUT by digest; a registry with the referrers API says so with `OCI-Subject` on that
PUT and indexes it itself. Everywhere else (CNCF distribution 2.8, OCI layouts, registry-storage
trees) the fallback index `sha256-HEX` lists it: read, merge, PUT, then read again after a pause
longer than our own read-to-PUT took, and merge again when another writer's PUT replaced ours. A lost
update needs another writer whose read came before our PUT and whose PUT came after our re-read,
and its read-to-PUT is about as long as ours: the pause (three times ours, jittered) outlasts it.
Writers of one process take a lock per index first.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from typing import TYPE_CHECKING, Any, Optional

from fastsync import model as m
from fastsync.attachments.discover import AttachmentError, Reader, index_document, index_entries
from fastsync.attachments.model import Attachment, fallback_tag
from fastsync.errors import FastsyncError
from fastsync.manifest import parse_manifest
from fastsync.model import Digest

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.base import ImageDestination, ImageReference

MERGE_ATTEMPTS = 8


class Writer:
    """Writes attachments beside `ref`, whose image destination `dst` is open (referrers by digest)."""

    def __init__(self, session: "Session", ref: "ImageReference", opts: "TransportOptions",
                 dst: "ImageDestination", locks: dict[Any, asyncio.Lock]) -> None:
        self.session, self.ref, self.opts, self.dst = session, ref, opts, dst
        self.reader = Reader(session, ref, opts)
        self.locks = locks

    async def put_tagged(self, tag: str, raw: bytes, media_type: str) -> None:
        ref = self.ref.with_tag(tag)
        if ref is None:
            raise AttachmentError(f"{self.ref}: the {self.ref.transport}: transport has no tags for attachments")
        dst = await ref.open_destination(self.session, self.opts)
        try:
            await dst.put_manifest(parse_manifest(raw, media_type))
            await dst.commit()
        finally:
            await dst.close()

    async def put_referrer(self, att: Attachment) -> bool:
        """PUT `att` by digest; True when the registry indexes it itself (`OCI-Subject` answered)."""
        reg = self.dst.registry_repository()
        if reg is not None:
            client, repo = reg
            headers = await client.put_manifest_headers(repo, str(att.digest), att.raw, att.media_type)
            return headers.get("oci-subject") == str(att.subject)
        await self.dst.put_manifest(parse_manifest(att.raw, att.media_type), instance=True)
        return False

    async def merge_index(self, subject: Digest, entries: list[dict[str, Any]]) -> None:
        """Make the fallback index of `subject` list `entries`, keeping every entry already there."""
        key = (self.dst.blob_namespace, str(self.ref), subject)
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            await self._merge(subject, entries)

    async def _merge(self, subject: Digest, entries: list[dict[str, Any]]) -> None:
        tag = fallback_tag(subject)
        what = f"referrers index {tag} in {self.ref}"
        for _ in range(MERGE_ATTEMPTS):
            t0 = time.monotonic()
            cur = await self.reader.tag(tag)
            doc = _index_doc(cur[0] if cur is not None else None, what)
            have = {e["digest"] for e in doc["manifests"]}
            missing = [e for e in entries if e["digest"] not in have]
            if not missing:
                return
            doc["manifests"].extend(missing)
            await self.put_tagged(tag, json.dumps(doc, separators=(",", ":")).encode(), m.OCI_INDEX)
            await asyncio.sleep(max(0.05, 3 * (time.monotonic() - t0)) * (1 + random.random()))
            again = await self.reader.tag(tag)
            there = {e["digest"] for e in index_entries(again[0], what)} if again is not None else set()
            if all(e["digest"] in there for e in entries):
                return
        raise FastsyncError(f"writing {what}: other writers replaced it {MERGE_ATTEMPTS} times in a row; "
                            "its entries for this copy are not all there")


def _index_doc(raw: Optional[bytes], what: str) -> dict[str, Any]:
    if raw is None:
        return {"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": []}
    return index_document(raw, what)
