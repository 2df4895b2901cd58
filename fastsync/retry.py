"""The one retry policy: what is transient, how long to wait, and the loop that applies it.

An error is retried when it says so (`FastsyncError.retryable`: connection failures, idle bodies,
408/425/429/5xx answers, a downloaded body that does not match its digest); the wait is the server's
Retry-After when the error carries one (capped), else exponential backoff with jitter. Retries are
bounded by a count (--retry-times) and a deadline (no retry starts later than `deadline` seconds
after the first attempt). An error a retry loop gave up on is marked `exhausted`, so a loop around it
(the engine's around a registry request, the CLI's around a command) does not retry it again: one
request is tried at most 1 + retry_times times. The registry client's requests, the engine's blob
transfers and the CLI's whole-command --retry-times all use these functions.
"""
from __future__ import annotations

import email.utils
import itertools
import random
import time
from typing import Awaitable, Callable, Optional, TypeVar

from fastsync.errors import FastsyncError

T = TypeVar("T")
MAX_RETRY_AFTER = 120.0


def retry_delay(attempt: int, retry_after: Optional[float] = None) -> float:
    """Seconds before retry number `attempt + 1`: the server's Retry-After when given (capped),
    else exponential backoff (0.5 s doubling, at most 30 s) with full jitter in [0.5x, 1.5x)."""
    if retry_after is not None and retry_after >= 0:
        return min(MAX_RETRY_AFTER, float(retry_after)) + random.random() * 0.1
    return min(30.0, 0.5 * 2 ** attempt) * (0.5 + random.random())


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def is_retryable(exc: Optional[BaseException]) -> bool:
    """Transient, and not already retried to exhaustion by an inner retry loop."""
    return isinstance(exc, FastsyncError) and exc.retryable and not exc.exhausted


def overloaded(exc: Optional[BaseException]) -> bool:
    """An answer that says the far side is overloaded or unreachable: what the adaptive limits back
    off on. The same set of failures that is retried (whether or not retries remain)."""
    return isinstance(exc, FastsyncError) and exc.retryable


def next_delay(exc: BaseException, attempt: int, retry_times: int, started: Optional[float] = None,
               deadline: Optional[float] = None) -> Optional[float]:
    """The wait before trying again after `exc` failed attempt number `attempt` (0-based) of at most
    `retry_times` retries, or None when it must not be retried: not transient, no retries left, or
    the retry would start more than `deadline` seconds after `started` (time.monotonic())."""
    if attempt >= retry_times or not is_retryable(exc):
        return None
    assert isinstance(exc, FastsyncError)
    delay = retry_delay(attempt, exc.retry_after)
    if deadline is not None and started is not None and time.monotonic() + delay - started > deadline:
        return None
    return delay


def _give_up(exc: FastsyncError, retry_times: int) -> None:
    """Mark a transient error that a loop with retries stopped retrying, for the loops around it."""
    if retry_times > 0 and exc.retryable:
        exc.exhausted = True


def _wait_after(exc: FastsyncError, attempt: int, retry_times: int,
                on_retry: Optional[Callable[[BaseException, float], None]],
                started: float, deadline: Optional[float]) -> float:
    """The wait before the next attempt after `exc`; re-raises it (marked exhausted) when it must
    not be retried."""
    delay = next_delay(exc, attempt, retry_times, started, deadline)
    if delay is None:
        _give_up(exc, retry_times)
        raise exc
    if on_retry is not None:
        on_retry(exc, delay)
    return delay


async def retrying(attempt_once: Callable[[], Awaitable[T]], retry_times: int,
                   on_retry: Optional[Callable[[BaseException, float], None]] = None,
                   deadline: Optional[float] = None) -> T:
    """Run `attempt_once()`, again after each retryable failure, at most `retry_times` more times
    and not after `deadline` seconds."""
    import asyncio               # here, not at the top: the CLI imports this module before any loop runs
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            return await attempt_once()
        except FastsyncError as exc:
            delay = _wait_after(exc, attempt, retry_times, on_retry, started, deadline)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def retrying_sync(attempt_once: Callable[[], T], retry_times: int,
                  on_retry: Optional[Callable[[BaseException, float], None]] = None,
                  deadline: Optional[float] = None) -> T:
    """`retrying` for a blocking call (a whole command run on its own event loop)."""
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            return attempt_once()
        except FastsyncError as exc:
            delay = _wait_after(exc, attempt, retry_times, on_retry, started, deadline)
        time.sleep(delay)
    raise AssertionError("unreachable")
