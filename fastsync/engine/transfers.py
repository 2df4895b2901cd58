"""Work shared by the images of one job, and how an image lets go of it.

A `Transfer` is one running task (a blob moving to one destination namespace, say) that any number
of images may await. An image *holds* a transfer while it awaits it; when the last holder lets go
before the task is done (its image failed, or was cancelled), the task is cancelled. Nothing polls:
each holder's exit decides.

`SharedTransfers` is the job-wide table, by key: `join` starts the transfer for the first image that
needs it and hands later ones the same result. A transfer that failed is forgotten, so a later image
may try again; one that was cancelled under an image that still wants it is started again for it.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, Hashable, Iterable, TypeVar

T = TypeVar("T")


class Transfer(Generic[T]):
    def __init__(self, key: Hashable, task: "asyncio.Task[T]") -> None:
        self.key = key
        self.task = task
        self.holders = 0

    def hold(self) -> None:
        self.holders += 1

    def release(self) -> None:
        self.holders -= 1
        if self.holders <= 0 and not self.task.done():
            self.task.cancel()

    @property
    def failed(self) -> bool:
        return self.task.done() and (self.task.cancelled() or self.task.exception() is not None)


class SharedTransfers:
    """Key -> the Transfer every image of the job joins."""

    def __init__(self) -> None:
        self._table: dict[Hashable, Transfer[Any]] = {}

    async def join(self, key: Hashable, start: Callable[[], Awaitable[T]],
                   mine: set[Transfer[Any]]) -> tuple[T, bool]:
        """The result of transfer `key`, started with `start()` when nobody has; returns (result, whether
        this call started it). `mine` collects the image's transfers, for `settle`."""
        while True:
            t = self._table.get(key)
            owner = t is None or t.task.cancelled()
            if owner:
                t = self._table[key] = Transfer(key, asyncio.ensure_future(start()))
            assert t is not None
            mine.add(t)
            t.hold()
            try:
                return await asyncio.shield(t.task), owner
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise                        # this image was cancelled, not only the transfer
                self._forget(t)                  # cancelled under us by its last other holder: again
            except BaseException:
                self._forget(t)
                raise
            finally:
                t.release()

    def _forget(self, t: Transfer[Any]) -> None:
        if self._table.get(t.key) is t and t.task.done():
            del self._table[t.key]

    async def settle(self, mine: Iterable[Transfer[Any]]) -> None:
        """Wait until every transfer of a failed image has ended -- cancelled, because nobody else held
        it, or finished for the images that do -- so none still writes into its destination; forget
        the failed ones. A cancellation meanwhile is re-raised once they have ended."""
        tasks = [t.task for t in mine]
        cancelled = False
        while not all(task.done() for task in tasks):
            try:
                await asyncio.wait([task for task in tasks if not task.done()])
            except asyncio.CancelledError:
                cancelled = True
        for t in mine:
            if t.failed:
                self._forget(t)
        if cancelled:
            raise asyncio.CancelledError


async def gather_or_cancel(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Like asyncio.gather, but the first failure (or a cancellation) cancels the others and waits
    for them before it propagates: nothing of the caller keeps running behind its back."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        await _stop(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        await _stop(tasks)
        raise failed.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]


async def _stop(tasks: list["asyncio.Future[Any]"]) -> None:
    for t in tasks:
        t.cancel()
    try:
        await asyncio.wait(tasks)
    finally:
        for t in tasks:                     # retrieved, so none is logged as "never retrieved"
            if t.done() and not t.cancelled():
                t.exception()
