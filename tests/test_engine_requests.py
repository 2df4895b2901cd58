"""The requests a copy makes, counted at a proxy: no HEAD the plan already answered, big blobs in
parallel Range parts (and in one GET from a source without Range), one waiter woken per release, the
source's first chunk asked for before the upload session is open, the cache written behind the
stream."""
from __future__ import annotations

import asyncio
from typing import Any
import math

import pytest

from fastsync.core.pipeline import tee
from fastsync.errors import NetworkError
from fastsync.model import Descriptor, Digest
from fastsync.options import TransportOptions
from fastsync.registry import ranged
from fastsync.session import Session
from fastsync.sync.limits import HostLimit
from fastsync.sync.run import SyncItem, SyncOptions, run_sync
from fastsync.transports.docker import DockerImageReference
from support import images
from support.proxy import TamperProxy
from support.registry import Registry

PLAIN = TransportOptions(tls_verify=False)


def _sync(pairs: list[tuple[str, str]]) -> list:
    async def go() -> list:
        async with Session() as session:
            items = [SyncItem(DockerImageReference.parse(f"//{s}"), DockerImageReference.parse(f"//{d}"), PLAIN, PLAIN,
                              probe=_probe(d)) for s, d in pairs]
            return (await run_sync(session, items, SyncOptions())).images
    return asyncio.run(go())


def _probe(dest: str):  # noqa: ANN202   the docker destination's planner probe, as `fastsync sync` makes it
    from fastsync.sync.inputs import DOCKER_DEST

    return DOCKER_DEST.probe(DockerImageReference.parse(f"//{dest}"), PLAIN)


def _digest_at(reg: Registry, repo: str, tag: str, media_type: str) -> str:
    return reg.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": media_type}).headers[
        "Docker-Content-Digest"]


def test_fresh_sync_into_new_repositories_heads_no_blob_and_each_tag_once(seeded_registry: Registry,
                                                                          fresh_registry: Registry) -> None:
    v2s2, shared = images.sample_set()["v2s2"], images.sample_set()["shared"]
    with TamperProxy(fresh_registry.url) as dest:
        results = _sync([(f"{seeded_registry.host}/samples/v2s2:latest", f"{dest.host}/new/v2s2:latest"),
                         (f"{seeded_registry.host}/samples/shared:latest", f"{dest.host}/new/shared:latest")])
        seen = list(dest.requests)
    assert [r.error for r in results] == ["", ""]
    assert [r for r in seen if r.method == "HEAD" and "/blobs/" in r.path] == []
    heads = sorted(r.path for r in seen if r.method == "HEAD" and "/manifests/" in r.path)
    assert heads == ["/v2/new/shared/manifests/latest", "/v2/new/v2s2/manifests/latest"]     # the plan's only
    assert sorted(r.status for r in seen if r.path.split("?")[0].endswith("/tags/list")) == [404, 404]
    for repo, image in (("new/v2s2", v2s2), ("new/shared", shared)):
        assert _digest_at(fresh_registry, repo, "latest", image.media_type) == image.digest
    # the layer both images share is uploaded once and mounted into the other repository
    assert sum(r.blobs_reused for r in results) == 1


def test_sync_into_an_existing_repository_asks_for_each_blob(seeded_registry: Registry,
                                                            fresh_registry: Registry) -> None:
    src = f"{seeded_registry.host}/samples/v2s2:latest"
    assert _sync([(src, f"{fresh_registry.host}/there/v2s2:one")])[0].error == ""
    with TamperProxy(fresh_registry.url) as dest:
        results = _sync([(src, f"{dest.host}/there/v2s2:two")])
        seen = list(dest.requests)
    image = images.sample_set()["v2s2"]
    assert results[0].error == "" and results[0].blobs_reused == len(image.layers) + 1
    assert len([r for r in seen if r.method == "HEAD" and "/blobs/" in r.path]) == len(image.layers) + 1
    assert [r for r in seen if r.method in ("POST", "PUT") and "/blobs/" in r.path] == []


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Blobs of 20000 bytes and more are fetched in parts of 8192 bytes, and every source counts
    as slow (loopback is not)."""
    monkeypatch.setattr(ranged, "RANGE_MIN", 20000)
    monkeypatch.setattr(ranged, "PART", 8192)
    monkeypatch.setattr(ranged, "FAST", 1e18)
    return 8192


def _sync_v2s2(seeded_registry: Registry, fresh_registry: Registry) -> tuple[Any, dict[str, list[Any]]]:
    """Sync the sample v2s2 image through a recording proxy; check it arrived whole; the source GETs
    of each layer, by digest."""
    image = images.sample_set()["v2s2"]
    with TamperProxy(seeded_registry.url) as src:
        results = _sync([(f"{src.host}/samples/v2s2:latest", f"{fresh_registry.host}/m/v2s2:latest")])
        seen = list(src.requests)
    assert results[0].error == ""
    assert _digest_at(fresh_registry, "m/v2s2", "latest", image.media_type) == image.digest
    return image, {layer.digest: [r for r in seen if r.method == "GET" and r.path.endswith(layer.digest)]
                   for layer in image.layers}


def test_big_blobs_are_fetched_in_parallel_ranges_and_verified(small_parts: int, seeded_registry: Registry,
                                                               fresh_registry: Registry) -> None:
    image, layer_gets = _sync_v2s2(seeded_registry, fresh_registry)
    for layer in image.layers:
        gets = layer_gets[layer.digest]
        want = [f"bytes={s}-{min(s + small_parts, layer.size) - 1}" for s in range(0, layer.size, small_parts)]
        assert sorted(r.headers.get("Range", "") for r in gets) == sorted(want)
        assert {r.status for r in gets} == {206} and len(gets) == math.ceil(layer.size / small_parts)


def test_a_fast_source_sends_the_rest_in_one_more_get(small_parts: int, monkeypatch: pytest.MonkeyPatch,
                                                     seeded_registry: Registry, fresh_registry: Registry) -> None:
    monkeypatch.setattr(ranged, "FAST", 0.0)
    image, layer_gets = _sync_v2s2(seeded_registry, fresh_registry)
    for layer in image.layers:
        gets = layer_gets[layer.digest]
        assert [(r.headers.get("Range"), r.status) for r in gets] == [(f"bytes=0-{small_parts - 1}", 206),
                                                                       (f"bytes={small_parts}-", 206)]


def test_a_source_without_range_support_is_read_in_one_get(small_parts: int, seeded_registry: Registry,
                                                          fresh_registry: Registry) -> None:
    image = images.sample_set()["v2s2"]
    with TamperProxy(seeded_registry.url) as src:
        src.ignore_ranges()
        results = _sync([(f"{src.host}/samples/v2s2:latest", f"{fresh_registry.host}/m/v2s2:latest")])
        seen = list(src.requests)
    assert results[0].error == ""
    assert _digest_at(fresh_registry, "m/v2s2", "latest", image.media_type) == image.digest
    for layer in image.layers:
        gets = [r for r in seen if r.method == "GET" and r.path.endswith(layer.digest)]
        # the first part's request, answered 200 (no Range), then the whole blob in one GET
        assert [(r.headers.get("Range"), r.status) for r in gets] == [(f"bytes=0-{small_parts - 1}", 200), (None, 200)]


class _FlakyClient:
    """Serves `data` as blob_range does; the first request for the part starting at `fail_at` breaks
    before any byte arrives."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self.data, self.fail_at = data, fail_at
        self.asked: list[tuple[int, int]] = []

    async def blob_range(self, repo: str, desc: Descriptor, start: int = 0, end=None, answered=None):  # noqa: ANN001
        self.asked.append((start, end))
        if start == self.fail_at and self.asked.count((start, end)) == 1:
            raise NetworkError("connection reset")
        if answered is not None:
            answered(206)
        await asyncio.sleep(0)
        stop = len(self.data) if end is None else end
        for i in range(start, stop, 1000):
            yield self.data[i:min(i + 1000, stop)]

    async def retried(self, once):  # noqa: ANN001, ANN201
        for attempt in range(3):
            try:
                return await once()
            except NetworkError:
                if attempt == 2:
                    raise


@pytest.mark.parametrize("fail_at", [0, 16384])
def test_a_part_that_fails_is_fetched_again_alone(small_parts: int, fail_at: int) -> None:
    data = bytes(range(256)) * 200
    desc = Descriptor("application/octet-stream", Digest.of(data), len(data))
    client = _FlakyClient(data, fail_at)

    async def go() -> bytes:
        return b"".join([c async for c in ranged.parallel_chunks(client, "r", desc)])  # type: ignore[arg-type]
    assert asyncio.run(go()) == data
    parts = [(s, min(s + small_parts, len(data))) for s in range(0, len(data), small_parts)]
    assert sorted(client.asked) == sorted(parts + [(fail_at, fail_at + small_parts)])


def test_slow_start_doubles_the_limit_then_adds_one() -> None:
    async def go() -> list[float]:
        lim = HostLimit(initial=4, maximum=64, slow_start=True)
        seen = []
        for window in range(3):
            for _ in range(int(lim.limit)):
                await lim.acquire()
                await lim.release(1 << 20, overloaded=False)
            seen.append(lim.limit)
        await lim.acquire()
        await lim.release(0, overloaded=True)
        seen.append(lim.limit)
        for _ in range(int(lim.limit)):
            await lim.acquire()
            await lim.release(1 << 30, overloaded=False)
        seen.append(lim.limit)
        return seen
    assert asyncio.run(go()) == [8, 16, 32, 16, 17]


def test_a_release_wakes_one_waiter_and_a_cancelled_waiter_keeps_no_slot() -> None:
    async def go() -> None:
        lim = HostLimit(initial=2, maximum=2, fixed=True)
        await lim.acquire()
        await lim.acquire()
        woken: list[int] = []

        async def waiter(i: int) -> None:
            await lim.acquire()
            woken.append(i)
        tasks = [asyncio.ensure_future(waiter(i)) for i in range(5)]
        await asyncio.sleep(0)
        tasks[0].cancel()                      # gives up while waiting
        await lim.release(0, False)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert woken == [1] and lim.active == 2
        await lim.release(0, False)
        tasks[2].cancel()                      # granted, cancelled before it ran: the slot passes on
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert woken == [1, 3] and lim.active == 2
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    asyncio.run(go())


def test_the_first_chunk_is_asked_for_at_once_and_stop_ends_it() -> None:
    async def go() -> None:
        events: list[str] = []

        async def source():  # noqa: ANN202
            events.append("asked")
            try:
                await asyncio.sleep(10)
                yield b"x"
            finally:
                events.append("closed")
        pre = ranged.Primed(source())
        await asyncio.sleep(0)
        assert events == ["asked"]             # before anything read it (the upload POST is on its way)
        await pre.stop()
        assert events == ["asked", "closed"]

        async def two():  # noqa: ANN202
            yield b"a"
            yield b"b"
        assert [c async for c in ranged.Primed(two())] == [b"a", b"b"]
    asyncio.run(go())


def test_the_cache_write_runs_behind_the_stream_in_order() -> None:
    import threading

    written: list[bytes] = []
    gate = threading.Event()

    def sink(batch: list[bytes]) -> None:
        gate.wait(5)
        written.extend(batch)

    async def go() -> list[bytes]:
        async def chunks():  # noqa: ANN202
            for i in range(5):
                yield bytes([i]) * 10
        out, stream = [], tee(chunks(), sink, lag=1000, batch=20)
        for _ in range(5):
            out.append(await stream.__anext__())      # handed on while the sink has written nothing
        assert written == []
        gate.set()
        out += [c async for c in stream]               # the stream ends once everything is written
        assert written == out
        return out

    assert len(asyncio.run(go())) == 5


def test_a_consumer_that_stops_at_the_last_byte_leaves_the_cache_copy_whole(tmp_path):
    """aiohttp ends a request when the answer comes and cancels its body writer then: the stream is
    never asked past its last chunk. With the blob's size known, the tee writes every chunk before
    passing the last one on, and verification checks the digest before it, so the writer holds the
    whole verified blob and commits it."""
    from fastsync.core.pipeline import verified
    from fastsync.store.blobs import Store

    data = bytes(range(256)) * 9000                      # ~2.2 MiB: several batches and a tail
    desc = Descriptor("application/octet-stream", Digest.of(data), len(data))
    store = Store(str(tmp_path / "cache"))

    async def source():
        for at in range(0, len(data), 65536):
            yield data[at:at + 65536]

    async def go() -> str:
        writer = store.writer(desc, verified=True)
        stream = tee(verified(source(), desc, "blob"), writer.write_many, size=desc.size)
        got = 0
        async for chunk in stream:
            got += len(chunk)
            if got == len(data):
                break                                    # no anext after the last chunk
        await stream.aclose()
        return await asyncio.get_running_loop().run_in_executor(None, writer.commit)

    path = asyncio.run(go())
    assert open(path, "rb").read() == data


def test_verification_fails_before_the_last_chunk_is_passed_on(tmp_path):
    from fastsync.core.pipeline import verified
    from fastsync.errors import DigestMismatch

    data = b"a" * 100_000
    desc = Descriptor("application/octet-stream", Digest.of(b"b" * 100_000), len(data))

    async def source():
        yield data[:50_000]
        yield data[50_000:]

    async def go() -> int:
        passed = 0
        with pytest.raises(DigestMismatch):
            async for chunk in verified(source(), desc, "blob"):
                passed += len(chunk)
        return passed

    assert asyncio.run(go()) == 50_000


def test_a_verified_writer_refuses_to_commit_fewer_bytes_than_the_blob_has(tmp_path):
    import os

    from fastsync.errors import DigestMismatch
    from fastsync.store.blobs import Store

    data = b"z" * 10_000
    desc = Descriptor("application/octet-stream", Digest.of(data), len(data))
    store = Store(str(tmp_path / "cache"))
    writer = store.writer(desc, verified=True)
    writer.write_many([data[:6000]])
    with pytest.raises(DigestMismatch, match="6000 bytes"):
        writer.commit()
    assert store.lookup(desc) is None and os.listdir(store.tmp) == []
