"""Finding attachments at one end: cosign's tags, and referrers by the API or the fallback index.

A `Reader` reads through the generic transport interfaces: `ImageReference.with_tag` names the tags
beside the image (a registry repository, an OCI layout, a registry-storage repository), an opened
`ImageSource` reads manifests by digest, and a registry's client answers the referrers API. One level
of discovery is one round of concurrent requests; `discover` walks MAX_DEPTH levels (a signature of
an SBOM is level 2).

Malformed input, decided per case: a cosign tag or referrers index that is not a manifest (bad JSON,
wrong type) or is too large is an error that names it (the registry client caps manifests at 4 MiB);
a referrer whose `subject` is not the image, or that is an index, is skipped with a warning (another
writer's mistake must not stop a mirror).
"""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Callable, Optional

from fastsync import model as m
from fastsync.attachments.model import (COSIGN_SUFFIXES, MAX_DEPTH, REFERRER, Attachment, AttachmentOptions,
                                        artifact_type, cosign_tag, fallback_tag, is_manifest)
from fastsync.errors import FastsyncError, ManifestError, NotFound
from fastsync.manifest import manifest_digest, parse_manifest
from fastsync.model import Digest
from fastsync.registry.limits import MAX_MANIFEST     # local layouts are held to the registry client's cap too
from fastsync.trust.attachments import AttachmentError

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.registry.client import RegistryClient
    from fastsync.session import Session
    from fastsync.transports.base import ImageReference, ImageSource

Warn = Callable[[str], None]
MAX_INDEX_ENTRIES = 10000


class SourceFacts:
    """What one job learns about its sources' registries, shared by every image's discovery so that
    an image without attachments costs one request, not five: each repository's tags, listed once
    (a cosign or fallback tag not listed is not asked for; a repository that cannot be listed in
    one page of LISTING_PAGE has each tag asked for), and whether a host has the referrers API, asked once (a registry with the
    API never answers it 404: OCI distribution 1.1). Only for reading sources: a destination's
    tags change while the job writes them."""

    def __init__(self) -> None:
        self._tags: dict[tuple[str, str], asyncio.Future[Optional[frozenset[str]]]] = {}
        self._api: dict[str, asyncio.Future[bool]] = {}

    def start(self, client: "RegistryClient", repo: str) -> "asyncio.Future[Optional[frozenset[str]]]":
        """The listing of `repo`'s tags, started now if it was not."""
        key = (client.host, repo)
        if key not in self._tags:
            self._tags[key] = asyncio.ensure_future(_listed_tags(client, repo))
        return self._tags[key]

    async def tags(self, client: "RegistryClient", repo: str) -> Optional[frozenset[str]]:
        return await asyncio.shield(self.start(client, repo))

    async def referrers(self, client: "RegistryClient", repo: str, subject: Digest,
                        artifact_type: Optional[str]) -> Optional[tuple[bytes, bool]]:
        """client.referrers, except that once the host answered it has no API it is not asked again."""
        known = self._api.get(client.host)
        if known is not None:
            if not await asyncio.shield(known):
                return None
            return await client.referrers(repo, subject, artifact_type)
        known = self._api[client.host] = asyncio.get_running_loop().create_future()
        try:
            answer = await client.referrers(repo, subject, artifact_type)
        except BaseException:
            known.set_result(True)       # not learnt: the others ask for themselves
            raise
        known.set_result(answer is not None)
        return answer


LISTING_PAGE = 1000     # a repository with more tags than one page of this size has each tag asked for


async def _listed_tags(client: "RegistryClient", repo: str) -> Optional[frozenset[str]]:
    try:
        tags = await client.tags_if_one_page(repo, LISTING_PAGE)
    except Exception:      # noqa: BLE001 - not listable (permissions, a cap, a fault): each tag is
        return None        # asked for instead, and that request reports what is wrong
    return frozenset(tags) if tags is not None else None


class Reader:
    """Reads attachments beside `ref`; `image` (its opened source) reads manifests by digest;
    `facts` (a source's, shared by the job) spare requests for tags and APIs known to be absent."""

    def __init__(self, session: "Session", ref: "ImageReference", opts: "TransportOptions",
                 image: Optional["ImageSource"] = None, facts: Optional[SourceFacts] = None) -> None:
        self.session, self.ref, self.opts, self.image, self.facts = session, ref, opts, image, facts
        self._registry: Optional[tuple["RegistryClient", str]] = None

    def prefetch(self) -> None:
        """Start listing the opened image's repository (wanted once its manifests are written)."""
        reg = self.image.registry_repository() if self.facts is not None and self.image is not None else None
        if reg is not None:
            assert self.facts is not None
            self.facts.start(*reg)

    async def registry(self) -> Optional[tuple["RegistryClient", str]]:
        """(client, repository) when the image lives in a registry (opening a network source does no I/O)."""
        if self._registry is None and self.image is not None:
            self._registry = self.image.registry_repository()
        if self._registry is None and self.ref.remote_host is not None:
            tagged = self.ref.with_tag("latest")
            if tagged is not None:
                self._registry = (await tagged.open_source(self.session, self.opts)).registry_repository()
        return self._registry

    async def tag(self, tag: str) -> Optional[tuple[bytes, str]]:
        """The manifest tagged `tag` beside the image, or None."""
        ref = self.ref.with_tag(tag)
        if ref is None or await self._unlisted(tag):
            return None
        try:
            src = await ref.open_source(self.session, self.opts)
        except NotFound:
            return None
        try:
            return await src.get_manifest()
        except NotFound:
            return None
        finally:
            await src.close()

    async def listed(self) -> Optional[frozenset[str]]:
        """The repository's tags as `facts` listed them (None: no facts, not a registry, or not
        listable in one page)."""
        if self.facts is None or self.ref.remote_host is None:
            return None
        reg = await self.registry()
        return await self.facts.tags(*reg) if reg is not None else None

    async def _unlisted(self, tag: str) -> bool:
        listed = await self.listed()
        return listed is not None and tag not in listed

    async def has_none(self, subject: Digest, options: AttachmentOptions) -> bool:
        """True when the listing and the referrers API (asked at once) show no attachment of
        `subject` the options want; False when they show one or cannot tell."""
        listed, api = await asyncio.gather(self.listed(), self.api_entries(subject, options))
        if listed is None or api:
            return False
        wanted = {cosign_tag(subject, s) for s, kind in COSIGN_SUFFIXES if options.wants(kind, "")}
        return not (listed & (wanted | {fallback_tag(subject)}))

    async def head(self, tag: str) -> Optional[Digest]:
        """The digest tagged `tag`, by HEAD where the image is in a registry (no request for a tag
        the listing does not have)."""
        if await self._unlisted(tag):
            return None
        reg = await self.registry()
        if reg is not None:
            client, repo = reg
            return await client.head_manifest(repo, tag)
        got = await self.tag(tag)
        return manifest_digest(got[0]) if got is not None else None

    async def listing(self, subject: Digest, options: AttachmentOptions) -> list[dict[str, Any]]:
        """The referrers of `subject` (index entries) the options want: the registry's referrers API
        and the fallback tag are asked at once (one round); the API's answer wins when it has one."""
        api = asyncio.ensure_future(self.api_entries(subject, options))
        try:
            fallback = await self.fallback_entries(subject, options)
            answer = await api
        finally:
            if not api.done():
                api.cancel()
        return answer if answer is not None else fallback or []

    async def api_entries(self, subject: Digest, options: AttachmentOptions) -> Optional[list[dict[str, Any]]]:
        """What the registry's referrers API lists (None: not a registry, or one without the API)."""
        reg = await self.registry()
        if reg is None:
            return None
        one_type = options.types[0] if len(options.types) == 1 else None
        answer = await (self.facts.referrers(*reg, subject, one_type) if self.facts is not None
                        else reg[0].referrers(reg[1], subject, one_type))
        if answer is None:
            return None
        return _wanted(index_entries(answer[0], f"referrers of {subject} in {self.ref}"), options)

    async def fallback_entries(self, subject: Digest, options: AttachmentOptions) -> Optional[list[dict[str, Any]]]:
        """What the fallback index `sha256-HEX` lists (None: there is none)."""
        got = await self.tag(fallback_tag(subject))
        if got is None:
            return None
        return _wanted(index_entries(got[0], f"referrers index {fallback_tag(subject)} in {self.ref}"), options)

    async def manifest(self, digest: Digest) -> tuple[bytes, str]:
        if self.image is None:
            raise AttachmentError(f"{self.ref}: cannot read manifests by digest here")
        return await self.image.get_manifest(digest)


def _wanted(entries: list[dict[str, Any]], options: AttachmentOptions) -> list[dict[str, Any]]:
    return [e for e in entries if options.wants(REFERRER, str(e.get("artifactType") or ""))]


def index_entries(raw: bytes, what: str) -> list[dict[str, Any]]:
    """The `manifests` of an index document, each with a digest and a media type."""
    return index_document(raw, what)["manifests"]


def index_document(raw: bytes, what: str) -> dict[str, Any]:
    """An index document, parsed once, whose `manifests` each have a digest and a media type."""
    if len(raw) > MAX_MANIFEST:
        raise AttachmentError(f"{what}: {len(raw)} bytes, more than an index may have ({MAX_MANIFEST})")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttachmentError(f"{what}: not valid JSON: {exc}") from None
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or len(entries) > MAX_INDEX_ENTRIES:
        raise AttachmentError(f"{what}: not an OCI index (a list of at most {MAX_INDEX_ENTRIES} manifests)")
    for e in entries:
        try:
            if not isinstance(e, dict) or not isinstance(e.get("mediaType"), str):
                raise ValueError("no mediaType")
            Digest.parse(str(e.get("digest")))
        except (FastsyncError, ValueError) as exc:
            raise AttachmentError(f"{what}: malformed entry {e!r}: {exc}") from None
    return doc


def _parsed(raw: bytes, mt: str, what: str) -> Any:
    if len(raw) > MAX_MANIFEST:
        raise AttachmentError(f"{what}: {len(raw)} bytes, more than a manifest may have ({MAX_MANIFEST})")
    try:
        man = parse_manifest(raw, mt)
    except ManifestError as exc:
        raise AttachmentError(f"{what}: {exc}") from None
    if not is_manifest(man.media_type):
        raise AttachmentError(f"{what}: {man.media_type} is not an image manifest")
    return man


async def _cosign(reader: Reader, subject: Digest, suffix: str, kind: str, depth: int) -> Optional[Attachment]:
    tag = cosign_tag(subject, suffix)
    got = await reader.tag(tag)
    if got is None:
        return None
    man = _parsed(got[0], got[1], f"attachment {tag} in {reader.ref}")
    return Attachment(kind, man.digest, man.media_type, artifact_type(man.doc), subject, man.raw, tag, depth)


async def _referrer(reader: Reader, subject: Digest, entry: dict[str, Any], depth: int,
                    warn: Warn) -> Optional[Attachment]:
    digest = Digest.parse(entry["digest"])
    what = f"referrer {digest} of {subject} in {reader.ref}"
    if entry["mediaType"] in m.INDEX_TYPES:
        warn(f"{what}: an index referrer is not carried; skipped")
        return None
    raw, mt = await reader.manifest(digest)
    man = _parsed(raw, mt or entry["mediaType"], what)
    named = man.doc.get("subject")
    if not isinstance(named, dict) or named.get("digest") != str(subject):
        warn(f"{what}: its subject is {named.get('digest') if isinstance(named, dict) else 'missing'}, "
             "not the image; skipped")
        return None
    return Attachment(REFERRER, man.digest, man.media_type, str(entry.get("artifactType") or artifact_type(man.doc)),
                      subject, man.raw, None, depth)


async def level(reader: Reader, subject: Digest, options: AttachmentOptions, warn: Warn,
                depth: int = 1) -> list[Attachment]:
    """The attachments of `subject` itself: cosign tags and referrers, asked for at once."""
    wanted = options if depth == 1 else AttachmentOptions()     # what a carried attachment has travels too
    cosign = [_cosign(reader, subject, suffix, kind, depth) for suffix, kind in COSIGN_SUFFIXES
              if wanted.wants(kind, "")]
    got = await asyncio.gather(reader.listing(subject, wanted), *cosign)
    entries, tagged = got[0], [a for a in got[1:] if a is not None and wanted.wants(a.kind, a.artifact_type)]
    refs = await asyncio.gather(*(_referrer(reader, subject, e, depth, warn) for e in entries))
    return tagged + [a for a in refs if a is not None]


async def discover(reader: Reader, subject: Digest, options: AttachmentOptions, warn: Warn) -> list[Attachment]:
    """Every attachment of `subject`, level by level (parents before their own attachments)."""
    out: list[Attachment] = []
    seen = {subject}
    todo = [subject]
    for depth in range(1, MAX_DEPTH + 1):
        found = await asyncio.gather(*(level(reader, d, options, warn, depth) for d in todo))
        todo = []
        for atts in found:
            for a in atts:
                if a.digest not in seen:
                    seen.add(a.digest)
                    out.append(a)
                    todo.append(a.digest)
        if not todo:
            break
    return out
