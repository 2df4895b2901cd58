"""Run a sync: plan every image, then copy what is not up to date concurrently on one engine Job.

Blob transfers are limited per registry host (fastsync.sync.limits); blobs shared by many images move
once per destination repository (the Job's shared transfers), mounted elsewhere.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from fastsync.errors import FastsyncError
from fastsync.progress import Event, EventSink, emitter
from fastsync.session import Session
from fastsync.sync.limits import Limits
from fastsync.sync.plan import PlannedImage, PlannedReference, Planner, SyncItem, SyncOptions

if TYPE_CHECKING:
    from fastsync.engine.job import ImageResult


@dataclass
class SyncResult:
    images: list[ImageResult]
    planned: int = 0
    seconds: float = 0.0
    aborted: bool = False             # a failure stopped the job (no keep_going)

    @property
    def failed(self) -> list[ImageResult]:
        return [r for r in self.images if r.error]


async def run_sync(session: Session, items: list[SyncItem], options: SyncOptions = SyncOptions(),
                   on_event: Optional[EventSink] = None) -> SyncResult:
    """Plan every item, then copy what is not up to date. Failures are recorded in the result (never
    raised); without `keep_going` the first one cancels what is still running (`aborted`)."""
    t0 = time.monotonic()
    emit = emitter(on_event)
    plan = await Planner(session, options).plan(items)
    from fastsync.engine.job import ImageResult       # not needed before the first requests are out

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
    from fastsync.engine.job import ImageResult, Job

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
                                            item.src_opts, item.dst_opts, probed=p.probed,
                                            attachments=item.attachments)
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
        if session.traffic is not None:
            for host, (final, peak) in limits.settled().items():
                session.traffic.limit(host, final, peak)
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]   # a bug, not an image failure: never hide it
