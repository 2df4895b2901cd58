"""The retry policy itself: what is transient, the count, the deadline, and no retry of a retry."""
from __future__ import annotations

import asyncio
import time

import pytest

from fastsync.errors import DigestMismatch, NetworkError, NotFound, RegistryError, Unauthorized
from fastsync.retry import is_retryable, next_delay, overloaded, retrying


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


@pytest.mark.parametrize("exc, transient", [
    (NetworkError("reset"), True),
    (RegistryError("x", 500), True), (RegistryError("x", 503), True), (RegistryError("x", 429), True),
    (RegistryError("x", 408), True), (RegistryError("x", 425), True),
    (RegistryError("x", 400), False), (Unauthorized("x", 401), False), (Unauthorized("x", 403), False),
    (NotFound("x"), False),
    (DigestMismatch("blob", "a", "b", transient=True), True),    # downloaded: fetch again from the start
    (DigestMismatch("blob", "a", "b"), False),                   # a local file, or the registry's check
])
def test_what_is_transient(exc: Exception, transient: bool) -> None:
    assert is_retryable(exc) is transient


def test_retry_after_is_the_wait() -> None:
    exc = RegistryError("slow down", 429)
    exc.retry_after = 7
    assert 7 <= next_delay(exc, 0, 3) < 7.2       # type: ignore[operator]


def test_a_request_is_tried_at_most_one_plus_retry_times() -> None:
    calls = []

    async def once() -> None:
        calls.append(1)
        exc = NetworkError("reset")
        exc.retry_after = 0
        raise exc
    with pytest.raises(NetworkError) as info:
        run(retrying(once, 2))
    assert len(calls) == 3
    assert info.value.exhausted and not is_retryable(info.value) and overloaded(info.value)


def test_an_outer_loop_does_not_retry_what_an_inner_one_gave_up_on() -> None:
    inner_calls = []

    async def inner() -> None:
        inner_calls.append(1)
        exc = RegistryError("down", 503)
        exc.retry_after = 0
        raise exc

    async def outer() -> None:
        await retrying(inner, 2)
    with pytest.raises(RegistryError):
        run(retrying(outer, 2))
    assert len(inner_calls) == 3                  # not 3 x 3


def test_no_retry_starts_after_the_deadline() -> None:
    calls = []

    async def once() -> None:
        calls.append(time.monotonic())
        exc = RegistryError("busy", 429)
        exc.retry_after = 0.4
        raise exc
    t0 = time.monotonic()
    with pytest.raises(RegistryError):
        run(retrying(once, 100, deadline=1.0))
    assert 2 <= len(calls) <= 3
    assert time.monotonic() - t0 < 1.5


def test_what_is_not_transient_is_not_retried_and_not_marked() -> None:
    calls = []

    async def once() -> None:
        calls.append(1)
        raise Unauthorized("denied", 403)
    with pytest.raises(Unauthorized) as info:
        run(retrying(once, 5))
    assert len(calls) == 1 and not info.value.exhausted
