"""Plan a sync: every image resolved before any blob moves.

Planning reads each source's manifest (from the store when a HEAD shows the remembered digest is
still current), picks index instances by platform, and asks each destination what it holds: an image
whose destination already has the exact manifest is done without touching a blob. The plan's
manifests are handed to the copy (`PlannedReference`), so nothing is read twice.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from fastsync import manifest as mf
from fastsync.attachments.model import applying
from fastsync.errors import DigestMismatch, FastsyncError
from fastsync.manifest import Manifest, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.options import CopyOptions, TransportOptions
from fastsync.session import Session
from fastsync.transports.base import ImageDestination, ImageReference, ImageSource, RememberedSource

if TYPE_CHECKING:
    from fastsync.engine.job import Probed      # the engine is imported once the plan is made (sync.run)

# reads the digest the destination holds now (None: nothing there); raises FastsyncError when it cannot
# tell (unreachable, no rights): the copy then asks again and says why
Probe = Callable[[Session], Awaitable[Optional[Digest]]]


@dataclass(frozen=True)
class SyncItem:
    """One image to sync; `probe` reads the digest the destination holds now (None: nothing/unknown)."""

    source: ImageReference
    destination: ImageReference
    src_opts: TransportOptions = TransportOptions()
    dst_opts: TransportOptions = TransportOptions()
    probe: Optional[Probe] = field(default=None, compare=False)
    attachments: Optional[Any] = None     # AttachmentOptions for this image (YAML, per registry); None: the job's

    @property
    def name(self) -> str:
        return f"{self.source} -> {self.destination}"


@dataclass(frozen=True)
class SyncOptions:
    copy: CopyOptions = CopyOptions()
    jobs: Optional[int] = None        # fixed blob transfers per registry host; None: adaptive
    max_jobs: int = 64                # ceiling of the adaptive limit
    images_at_once: int = 64
    keep_going: bool = False
    dry_run: bool = False


@dataclass
class PlannedImage:
    item: SyncItem
    manifests: dict[Optional[Digest], tuple[bytes, str]] = field(default_factory=dict)  # None: the top one
    digest: Optional[Digest] = None           # what the destination will hold (when known up front)
    up_to_date: bool = False
    blobs: tuple[Descriptor, ...] = ()
    error: str = ""
    probed: Optional[Probed] = None           # what the destination held when planned (None: unknown)


# ---- a source whose manifests were read while planning --------------------------------------------

class PlannedReference(ImageReference):
    """Wraps a source reference: manifests come from the plan, registry blobs resume with Range."""

    def __init__(self, inner: ImageReference, manifests: dict[Optional[Digest], tuple[bytes, str]]) -> None:
        self.inner = inner
        self.transport = inner.transport  # type: ignore[misc]
        self.manifests = manifests

    @property
    def details(self) -> str:
        return self.inner.details

    @property
    def docker_reference(self):  # type: ignore[override]
        return self.inner.docker_reference

    @property
    def remote_host(self) -> Optional[str]:
        return self.inner.remote_host

    @property
    def local_path(self) -> Optional[str]:
        return self.inner.local_path

    def with_tag(self, tag: str) -> Optional[ImageReference]:
        return self.inner.with_tag(tag)

    async def open_source(self, session: Session, opts: TransportOptions) -> ImageSource:
        return RememberedSource(await self.inner.open_source(session, opts), self.manifests)

    async def open_destination(self, session: Session, opts: TransportOptions) -> ImageDestination:
        return await self.inner.open_destination(session, opts)


# ---- planning -----------------------------------------------------------------------------------

class Planner:
    def __init__(self, session: Session, options: SyncOptions) -> None:
        self.session = session
        self.options = options
        self.store = session.store
        self._source_facts: Any = None     # attachments.discover.SourceFacts, made by the first probe

    async def plan(self, items: list[SyncItem]) -> list[PlannedImage]:
        sem = asyncio.Semaphore(self.options.images_at_once)
        await self._clients(items)

        async def one(item: SyncItem) -> PlannedImage:
            async with sem:
                p = PlannedImage(item)
                try:
                    await self._plan(p)
                except FastsyncError as exc:
                    p.error = str(exc)
                return p
        return list(await asyncio.gather(*(one(i) for i in items)))

    async def _clients(self, items: list[SyncItem]) -> None:
        """Create every registry client (TLS contexts load CA files: slow) in threads, at once."""
        wanted: dict[tuple[str, TransportOptions], ImageReference] = {}
        for item in items:
            for ref, opts in ((item.source, item.src_opts), (item.destination, item.dst_opts)):
                if ref.remote_host is not None:
                    wanted.setdefault((ref.remote_host, opts), ref)
        for (_, opts), ref in wanted.items():
            ref.warm_up(self.session, opts)   # pings on the wire while aiohttp is imported, in a thread
        await self.session.open_http()        # the connection pool is made on the loop; the clients share it
        await asyncio.gather(*(asyncio.to_thread(ref.prepare, self.session, opts)
                               for (_, opts), ref in wanted.items()))

    async def _plan(self, p: PlannedImage) -> None:
        item, copy = p.item, self.options.copy
        as_is = not (copy.format or copy.dest_compress or copy.dest_decompress or copy.dest_compress_format)
        # ask the destination while the source is read: both are a round trip or two away
        # an image the trust policy must see (or that gets signed) is never skipped before its copy
        as_is = as_is and not getattr(copy.trust, "needs_every_image", False)
        probe = asyncio.ensure_future(item.probe(self.session)) \
            if item.probe is not None and as_is and copy.multi_arch != "index-only" else None
        atts = applying(item.attachments, copy.attachments)
        known = self._known(item) if probe is not None and atts is not None else None
        # the destination's attachments are asked for with its manifest, for the digest last seen
        att_probe = asyncio.ensure_future(self._attachments_in_step(item, known, atts)) \
            if known is not None else None
        try:
            src = await item.source.open_source(self.session, item.src_opts)
            try:
                raw, mt = await self._top(item, src)
                p.manifests[None] = (raw, mt)
                top = parse_manifest(raw, mt)
                chosen: list[Manifest] = [top]
                if top.is_index and copy.multi_arch == "system":
                    d = mf.choose_instance(top, copy.platform or mf.host_platform())
                    chosen = [await self._instance(src, d, p)]
                elif top.is_index and copy.multi_arch == "all":
                    chosen = list(await asyncio.gather(*(self._instance(src, d, p) for d in top.manifests)))
            finally:
                await src.close()
            seen: dict[Digest, Descriptor] = {}
            for man in chosen:
                for d in man.blobs():
                    seen.setdefault(d.digest, d)
            p.blobs = tuple(seen.values())
            if probe is not None:
                p.digest = top.digest if (top.is_index and copy.multi_arch == "all") else chosen[0].digest
                from fastsync.engine.job import Probed

                try:
                    p.probed = Probed(await probe)
                except FastsyncError:
                    p.probed = None        # unreachable or no rights to look: the copy will say why
                p.up_to_date = p.probed is not None and p.probed.digest == p.digest
            if p.up_to_date and atts is not None:
                assert p.digest is not None
                in_step = await att_probe if att_probe is not None and known == p.digest else \
                    await self._attachments_in_step(item, p.digest, atts)
                p.up_to_date = in_step
        finally:
            for task in (probe, att_probe):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    def _known(self, item: SyncItem) -> Optional[Digest]:
        """The source's digest before it is read: pinned by the name, or what the store saw last."""
        dref = item.source.docker_reference
        if dref is not None and dref.digest is not None:
            return dref.digest
        known = self.store.recall(str(item.source)) if self.store is not None else None
        return known.digest if known is not None else None

    async def _attachments_in_step(self, item: SyncItem, digest: Digest, atts: Any) -> bool:
        from fastsync.attachments.discover import SourceFacts
        from fastsync.attachments.probe import in_step

        if self._source_facts is None:
            self._source_facts = SourceFacts()
        return await in_step(self.session, item.source, item.src_opts, item.destination, item.dst_opts, digest, atts,
                             self._source_facts)

    async def _top(self, item: SyncItem, src: ImageSource) -> tuple[bytes, str]:
        """The source's top manifest; a registry tag whose HEAD matches the remembered digest is read
        from the store (a HEAD is not a pull)."""
        store, name = self.store, str(item.source)
        dref = item.source.docker_reference
        if store is not None and dref is not None:
            if dref.digest is not None:
                cached = store.manifest(dref.digest)
                if cached is not None:
                    return cached, parse_manifest(cached).media_type
            else:
                known = store.recall(name)
                cached = store.manifest(known.digest) if known else None
                if known and cached is not None:
                    now = await src.head_manifest()
                    if now == known.digest:       # when it was last checked (cache ls --refs), off the loop
                        await asyncio.to_thread(store.remember, name, known.digest, known.media_type)
                        return cached, known.media_type or parse_manifest(cached).media_type
        raw, mt = await src.get_manifest()
        if store is not None and dref is not None:
            digest = mf.manifest_digest(raw)
            await asyncio.to_thread(self._keep, name, digest, raw, mt, dref.digest is None)
        return raw, mt

    def _keep(self, name: str, digest: Digest, raw: bytes, mt: str, tagged: bool) -> None:
        assert self.store is not None
        self.store.put_manifest(digest, raw)
        if tagged:
            self.store.remember(name, digest, mt)

    async def _instance(self, src: ImageSource, d: Descriptor, p: PlannedImage) -> Manifest:
        raw = self.store.manifest(d.digest) if self.store is not None else None
        if raw is None:
            raw, mt = await src.get_manifest(d.digest)
            if self.store is not None and src.reference.docker_reference is not None:
                self.store.put_manifest(d.digest, raw)
        else:
            mt = d.media_type
        man = parse_manifest(raw, mt or d.media_type)
        if man.digest != d.digest:
            raise DigestMismatch(f"manifest {d.digest}", str(d.digest), str(man.digest))
        p.manifests[d.digest] = (raw, man.media_type)
        return man
