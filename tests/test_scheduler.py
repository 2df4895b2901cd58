"""Scheduler parts: adaptive limits, retry timing, Range resume, cross-image dedup, Ctrl-C."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastsync.retry import retry_delay
from fastsync.errors import NetworkError, RegistryError
from fastsync.retry import parse_retry_after
from fastsync.options import CopyOptions, TransportOptions
from fastsync.retry import overloaded
from fastsync.sync.limits import HostLimit
from fastsync.sync.run import SyncItem, SyncOptions, run_sync
from fastsync.session import Session
from support import images
from support.proxy import DelayProxy, TamperProxy
from support.registry import Registry
from fastsync.transports.docker import DockerImageReference

from helpers import ROOT

PLAIN = TransportOptions(tls_verify=False)


def test_aimd_grows_while_throughput_holds_and_halves_on_overload() -> None:
    async def go() -> None:
        lim = HostLimit(initial=4, maximum=10)
        for _ in range(4 + 5 + 6):           # three full windows at a steady rate
            await lim.acquire()
            await lim.release(1 << 20, overloaded=False)
        assert lim.limit == 7
        await lim.acquire()
        await lim.release(0, overloaded=True)
        assert lim.limit == 3.5
        fixed = HostLimit(initial=3, maximum=3, fixed=True)
        await fixed.acquire()
        await fixed.release(0, overloaded=True)
        assert fixed.limit == 3
    asyncio.run(go())


def test_limit_is_enforced() -> None:
    async def go() -> int:
        lim = HostLimit(initial=2, maximum=2, fixed=True)
        peak = 0

        async def work() -> None:
            nonlocal peak
            await lim.acquire()
            peak = max(peak, lim.active)
            await asyncio.sleep(0.01)
            await lim.release(0, False)
        await asyncio.gather(*(work() for _ in range(10)))
        return peak
    assert asyncio.run(go()) == 2


def test_overloaded_means_429_5xx_and_connection_failures() -> None:
    assert overloaded(RegistryError("x", 429)) and overloaded(RegistryError("x", 503))
    assert overloaded(NetworkError("reset"))
    assert not overloaded(RegistryError("x", 404)) and not overloaded(None)


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    assert 5.0 <= retry_delay(0, 5) < 5.2
    assert 120.0 <= retry_delay(3, 100000) < 120.2
    delays = [retry_delay(3) for _ in range(50)]
    assert all(2.0 <= d < 6.0 for d in delays) and len(set(delays)) > 1     # 4 s +-50 % jitter
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def _copy(src_host: str, dst_host: str, repos: list[tuple[str, str]], **kw) -> list:
    async def go() -> list:
        async with Session() as session:
            items = [SyncItem(DockerImageReference.parse(f"//{src_host}/{r}:{t}"),
                              DockerImageReference.parse(f"//{dst_host}/copy/{r}:{t}"), PLAIN, PLAIN)
                     for r, t in repos]
            res = await run_sync(session, items, SyncOptions(**kw))
            return res.images
    return asyncio.run(go())


def test_broken_download_resumes_with_range(seeded_registry: Registry, fresh_registry: Registry) -> None:
    image = images.sample_set()["v2s2"]
    with TamperProxy(seeded_registry.url) as proxy:
        proxy.truncate_blobs(20000)          # every full (200) blob body is cut after 20000 bytes
        results = _copy(proxy.host, fresh_registry.host, [("samples/v2s2", "latest")])
        ranged = [r for r in proxy.requests if r.headers.get("Range")]
    assert not results[0].error, results[0].error
    big = [b for b in image.layers if b.size > 20000]
    assert big and {r.path.rsplit("/", 1)[-1] for r in ranged} >= {b.digest for b in big}
    assert all(r.status == 206 and r.headers["Range"] == "bytes=20000-" for r in ranged)


def test_blob_shared_by_many_images_is_fetched_once(seeded_registry: Registry, fresh_registry: Registry) -> None:
    shared_layer = images.sample_set()["shared"].layers[0].digest      # also a layer of samples/v2s2
    with TamperProxy(seeded_registry.url) as proxy:
        results = _copy(proxy.host, fresh_registry.host, [("samples/v2s2", "latest"), ("samples/shared", "latest")])
        gets = [r for r in proxy.requests if r.method == "GET" and r.path.endswith(shared_layer)]
    assert [r.error for r in results] == ["", ""]
    assert len(gets) == 1
    mounted = sum(r.blobs_reused for r in results)
    assert mounted >= 1


def test_ctrl_c_stops_cleanly(seeded_registry: Registry, tmp_path: Path) -> None:
    with DelayProxy("127.0.0.1", seeded_registry.port, 300) as slow:
        proc = subprocess.Popen([sys.executable, "-m", "fastsync", "sync", "--cache", str(tmp_path / "c"),
                                 "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                                 f"{slow.host}/samples/oci", str(tmp_path / "out")],
                                cwd=ROOT, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"})
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err.decode() and "interrupted" in err.decode()
    leftovers = [p for p in (tmp_path / "out").rglob("*")] if (tmp_path / "out").exists() else []
    assert not any(".tmp-" in p.name for p in leftovers), leftovers
    assert not os.path.exists(tmp_path / "c" / "tmp") or os.listdir(tmp_path / "c" / "tmp") == []


@pytest.mark.parametrize("side", ["blob-get", "upload"])
def test_429_is_retried_after_the_servers_retry_after(side: str, seeded_registry: Registry,
                                                      fresh_registry: Registry) -> None:
    """A 429 on a blob download (source) or on starting an upload (destination) is retried for
    that blob alone, no sooner than the Retry-After the registry asked for."""
    target = seeded_registry if side == "blob-get" else fresh_registry
    with TamperProxy(target.url) as proxy:
        proxy.throttle(side, 1, "2")
        src, dst = (proxy.host, fresh_registry.host) if side == "blob-get" else (seeded_registry.host, proxy.host)
        results = _copy(src, dst, [("samples/v2s2", "latest")], copy=CopyOptions(retry_times=3))
        seen = list(proxy.requests)
    assert [r.error for r in results] == [""]
    refused = [r for r in seen if r.status == 429]
    assert len(refused) == 1
    # the same request again (for uploads: the last POST, as other blobs' uploads go on meanwhile)
    again = [r for r in seen if (r.method, r.path) == (refused[0].method, refused[0].path) and r.status != 429
             and r.at > refused[0].at]
    retried = again[0] if side == "blob-get" else again[-1]
    assert retried.at - refused[0].at >= 2.0


ABANDON = """
import asyncio, sys
from fastsync.options import TransportOptions
from fastsync.core.pipeline import verified
from fastsync.session import Session
from support import images

async def main(host, image, resumable):
    async with Session() as s:
        client = s.registry(host, TransportOptions(tls_verify=False))
        desc = max(image.layers, key=lambda d: d.size)
        chunks = client.blob_chunks("samples/v2s2", desc) if resumable else \\
            client.blob_chunks_at("samples/v2s2", desc, 0)
        async for _ in verified(chunks, desc, "x"):
            raise RuntimeError("destination failed")

try:
    asyncio.run(main(sys.argv[1], images.sample_set()["v2s2"], sys.argv[2] == "1"))
except RuntimeError as exc:
    print(exc)
"""


@pytest.mark.parametrize("resumable", ["0", "1"])
def test_a_blob_stream_abandoned_mid_way_closes_quietly(resumable: str, seeded_registry: Registry) -> None:
    """A destination failing mid-blob leaves the registry stream half-read; closing it late (at
    event loop shutdown) prints nothing -- no 'generator didn't stop after athrow()' traceback."""
    proc = subprocess.run([sys.executable, "-c", ABANDON, seeded_registry.host, resumable], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}, timeout=60)
    assert proc.stdout.strip() == "destination failed"
    assert proc.stderr == "", proc.stderr
