"""Plan a sync, then run it: every image resolved first, then copied concurrently on one Job.

Planning reads each source's manifest (from the store when a HEAD shows the remembered digest is
still current), picks index instances by platform, and asks each destination what it holds: an image
whose destination already has the exact manifest is done without touching a blob. Running copies
the remaining images concurrently on one `engine.Job`, so blobs shared by many images move once per
destination repository (mounted elsewhere); blob transfers are limited per registry host by an
adaptive (AIMD) or fixed limit, and downloads resume with Range after a broken connection.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Optional

from fastsync import manifest as mf
from fastsync.engine.job import ImageResult, Job
from fastsync.errors import FastsyncError, NetworkError, RegistryError
from fastsync.registry.resume import resumable_chunks
from fastsync.manifest import Manifest, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.options import CopyOptions, TransportOptions
from fastsync.progress import Event, EventSink, emitter
from fastsync.session import Session
from fastsync.transports.base import ImageDestination, ImageReference, ImageSource

Probe = Callable[[Session], Awaitable[Optional[Digest]]]


@dataclass(frozen=True)
class SyncItem:
    """One image to sync; `probe` reads the digest the destination holds now (None: nothing/unknown)."""

    source: ImageReference
    destination: ImageReference
    src_opts: TransportOptions = TransportOptions()
    dst_opts: TransportOptions = TransportOptions()
    probe: Optional[Probe] = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return f"{self.source} -> {self.destination}"


@dataclass(frozen=True)
class SyncOptions:
    copy: CopyOptions = CopyOptions()
    jobs: Optional[int] = None        # fixed blob transfers per registry host; None: adaptive
    max_jobs: int = 32                # ceiling of the adaptive limit
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


@dataclass
class SyncResult:
    images: list[ImageResult]
    planned: int = 0
    seconds: float = 0.0
    aborted: bool = False             # a failure stopped the job (no keep_going)

    @property
    def failed(self) -> list[ImageResult]:
        return [r for r in self.images if r.error]


# ---- adaptive per-host limits ---------------------------------------------------------------------

class HostLimit:
    """A concurrency limit for one host. Fixed, or AIMD: after each window of `limit` completions,
    grow by one while throughput keeps up; halve on 429/5xx/connection failures."""

    def __init__(self, initial: int, maximum: int, fixed: bool = False) -> None:
        self.limit = float(initial)
        self.maximum = maximum
        self.fixed = fixed
        self.active = 0
        self._cond = asyncio.Condition()
        self._window_done = 0
        self._window_bytes = 0
        self._window_start = time.monotonic()
        self._best_rate = 0.0

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < int(self.limit))
            self.active += 1

    async def release(self, nbytes: int, overloaded: bool) -> None:
        async with self._cond:
            self.active -= 1
            if not self.fixed:
                self._adapt(nbytes, overloaded)
            self._cond.notify_all()

    def _adapt(self, nbytes: int, overloaded: bool) -> None:
        if overloaded:
            self.limit = max(1.0, self.limit / 2)
            self._reset_window()
            return
        self._window_done += 1
        self._window_bytes += nbytes
        if self._window_done < int(self.limit):
            return
        rate = self._window_bytes / max(1e-3, time.monotonic() - self._window_start)
        if rate >= self._best_rate * 0.9:
            self.limit = min(float(self.maximum), self.limit + 1)
        self._best_rate = max(self._best_rate * 0.95, rate)
        self._reset_window()

    def _reset_window(self) -> None:
        self._window_done = self._window_bytes = 0
        self._window_start = time.monotonic()


def overloaded(exc: Optional[BaseException]) -> bool:
    if isinstance(exc, NetworkError):
        return True
    return isinstance(exc, RegistryError) and (exc.status in (408, 429) or exc.status >= 500)


class Limits:
    """One HostLimit per registry host (local transports share one)."""

    def __init__(self, jobs: Optional[int], maximum: int) -> None:
        self.jobs = jobs
        self.maximum = maximum
        self._hosts: dict[str, HostLimit] = {}

    def host(self, ref: ImageReference) -> HostLimit:
        dref = ref.docker_reference
        key = dref.registry if dref is not None and ref.transport == "docker" else "local"
        lim = self._hosts.get(key)
        if lim is None:
            initial = self.jobs or (8 if key == "local" else 6)
            lim = self._hosts[key] = HostLimit(initial, self.jobs or self.maximum, fixed=bool(self.jobs) or key == "local")
        return lim

    @asynccontextmanager
    async def gate(self, src: ImageSource, dst: ImageDestination, desc: Descriptor) -> AsyncIterator[None]:
        hosts = sorted({id(h): h for h in (self.host(src.reference), self.host(dst.reference))}.values(),
                       key=id)
        for h in hosts:
            await h.acquire()
        error: Optional[BaseException] = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            for h in hosts:
                await h.release(0 if error else max(desc.size, 0), overloaded(error))


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

    async def open_source(self, session: Session, opts: TransportOptions) -> ImageSource:
        return PlannedSource(await self.inner.open_source(session, opts), self.manifests)

    async def open_destination(self, session: Session, opts: TransportOptions) -> ImageDestination:
        return await self.inner.open_destination(session, opts)


class PlannedSource(ImageSource):
    def __init__(self, inner: ImageSource, manifests: dict[Optional[Digest], tuple[bytes, str]]) -> None:
        self.inner = inner
        self.reference = inner.reference
        self.manifests = manifests

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        got = self.manifests.get(digest)
        return got if got is not None else await self.inner.get_manifest(digest)

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        client, repo = getattr(self.inner, "client", None), getattr(self.inner, "repo", None)
        if self.reference.transport == "docker" and client is not None and repo:
            return resumable_chunks(client, repo, desc)
        return self.inner.blob_chunks(desc)

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return self.inner.blob_path(desc)

    async def list_tags(self) -> list[str]:
        return await self.inner.list_tags()

    async def close(self) -> None:
        await self.inner.close()


# ---- planning -----------------------------------------------------------------------------------

class Planner:
    def __init__(self, session: Session, options: SyncOptions) -> None:
        self.session = session
        self.options = options
        self.store = session.store

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
        wanted = {}
        for item in items:
            for ref, opts in ((item.source, item.src_opts), (item.destination, item.dst_opts)):
                dref = ref.docker_reference
                if ref.transport == "docker" and dref is not None:
                    wanted[(dref.registry, opts)] = None
        await asyncio.gather(*(asyncio.to_thread(self.session.registry, host, opts) for host, opts in wanted))

    async def _plan(self, p: PlannedImage) -> None:
        item, copy = p.item, self.options.copy
        as_is = not (copy.format or copy.dest_compress or copy.dest_decompress or copy.dest_compress_format)
        # ask the destination while the source is read: both are a round trip or two away
        probe = asyncio.ensure_future(item.probe(self.session)) \
            if item.probe is not None and as_is and copy.multi_arch != "index-only" else None
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
                p.up_to_date = await probe == p.digest
        finally:
            if probe is not None and not probe.done():
                probe.cancel()
                await asyncio.gather(probe, return_exceptions=True)

    async def _top(self, item: SyncItem, src: ImageSource) -> tuple[bytes, str]:
        """The source's top manifest; a registry tag whose HEAD matches the remembered digest is read
        from the store (a HEAD is not a pull)."""
        store, name = self.store, str(item.source)
        dref = item.source.docker_reference
        client, repo = getattr(src, "client", None), getattr(src, "repo", None)
        if store is not None and dref is not None and client is not None and repo:
            if dref.digest is not None:
                cached = store.manifest(dref.digest)
                if cached is not None:
                    return cached, parse_manifest(cached).media_type
            else:
                known = store.recall(name)
                cached = store.manifest(known.digest) if known else None
                if known and cached is not None:
                    now = await client.head_manifest(repo, dref.tag or "latest")
                    if now == known.digest:
                        store.remember(name, known.digest, known.media_type)
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
            from fastsync.errors import DigestMismatch
            raise DigestMismatch(f"manifest {d.digest}", str(d.digest), str(man.digest))
        p.manifests[d.digest] = (raw, man.media_type)
        return man


# ---- running ------------------------------------------------------------------------------------

async def run_sync(session: Session, items: list[SyncItem], options: SyncOptions = SyncOptions(),
                   on_event: Optional[EventSink] = None) -> SyncResult:
    """Plan every item, then copy what is not up to date. Failures are recorded in the result (never
    raised); without `keep_going` the first one cancels what is still running (`aborted`)."""
    t0 = time.monotonic()
    emit = emitter(on_event)
    plan = await Planner(session, options).plan(items)
    todo = [p for p in plan if not p.up_to_date and not p.error]
    nbytes = sum(max(d.size, 0) for d in {d.digest: d for p in todo for d in p.blobs}.values())
    failed = sum(1 for p in plan if p.error)
    emit(Event("plan-done", size=len(plan), total=nbytes,
               message=f"{len(plan)} images: {len(plan) - len(todo) - failed} up to date, {failed} failed, "
                       f"{len(todo)} to {'copy' if not options.dry_run else 'copy (dry run)'}, "
                       f"up to {nbytes} bytes"))
    results: dict[int, ImageResult] = {}
    out = SyncResult([], planned=len(plan))
    for i, p in enumerate(plan):
        if p.error:
            results[i] = ImageResult(str(p.item.source), str(p.item.destination), error=p.error)
            emit(Event("image-failed", p.item.name, message=p.error))
            out.aborted = out.aborted or not options.keep_going
        elif p.up_to_date or options.dry_run:
            results[i] = ImageResult(str(p.item.source), str(p.item.destination), digest=p.digest,
                                     up_to_date=p.up_to_date,
                                     bytes_reused=sum(max(d.size, 0) for d in p.blobs) if p.up_to_date else 0)
            emit(Event("image-skipped" if p.up_to_date else "image-planned", p.item.name, str(p.digest or "")))
    if not options.dry_run and not out.aborted:
        await _copy_all(session, plan, results, options, on_event, out)
    out.images = [results[i] for i in sorted(results)]
    out.seconds = time.monotonic() - t0
    return out


async def _copy_all(session: Session, plan: list[PlannedImage], results: dict[int, ImageResult],
                    options: SyncOptions, on_event: Optional[EventSink], out: SyncResult) -> None:
    emit = emitter(on_event)
    limits = Limits(options.jobs, options.max_jobs)
    job = Job(session, options.copy, on_event, gate=limits.gate)
    sem = asyncio.Semaphore(options.images_at_once)
    failed = asyncio.Event()

    async def copy_one(i: int, p: PlannedImage) -> None:
        async with sem:
            if failed.is_set():
                return
            item = p.item
            try:
                results[i] = await job.copy(PlannedReference(item.source, p.manifests), item.destination,
                                            item.src_opts, item.dst_opts)
            except (FastsyncError, OSError) as exc:
                msg = str(exc) if isinstance(exc, FastsyncError) else \
                    f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
                results[i] = ImageResult(str(item.source), str(item.destination), error=msg)
                emit(Event("image-failed", item.name, message=msg))
                if not options.keep_going:
                    out.aborted = True
                    failed.set()

    tasks = [asyncio.ensure_future(copy_one(i, p)) for i, p in enumerate(plan) if i not in results]
    waiter = asyncio.ensure_future(failed.wait())
    try:
        pending = set(tasks)
        while pending and not failed.is_set():
            _, pending = await asyncio.wait(pending | {waiter}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(waiter)
    finally:
        waiter.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, waiter, return_exceptions=True)
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]   # a bug, not an image failure: never hide it
