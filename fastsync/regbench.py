"""`fastsync bench REGISTRY`: a registry's push and pull throughput and manifest latency.

At each concurrency level and for each blob size, `count` generated blobs are pushed (POST, then one
streamed PUT with the digest) and pulled back (GET, digest and size verified), then `count` small
OCI manifests are written and read by digest, all in one repository. Blobs are generated from a
per-run nonce: deterministic given it, unique per blob, produced a chunk at a time (nothing holds a
whole blob), their digests computed before the clock starts. Afterwards every manifest written is
deleted through the API; the blobs stay until the registry's garbage collection runs (the API has
no way to free them), and a registry that refuses deletes is reported, not an error.
Library code: results are values, rows are handed to `on_row` as they are measured; nothing prints.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterator, Optional

import orjson

from fastsync import model as m
from fastsync.core.pipeline import verified
from fastsync.errors import DigestMismatch, FastsyncError
from fastsync.manifest import descriptor_json
from fastsync.model import Descriptor, Digest
from fastsync.options import GlobalOptions, TransportOptions
from fastsync.registry.stats import MB, Latency

if TYPE_CHECKING:
    from fastsync.registry.client import RegistryClient

CHUNK = 1 << 20
OPS = ("push", "pull", "manifest-put", "manifest-get")


@dataclass(frozen=True)
class BenchPlan:
    sizes: tuple[int, ...] = (1 << 20, 32 << 20)
    levels: tuple[int, ...] = (1, 4, 16)
    count: int = 16                         # blobs of each size, and manifests, at each level
    repository: str = ""                    # "" : fastsync-bench-<random>

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes) * self.count * len(self.levels)

    def named(self) -> "BenchPlan":
        """This plan with its repository chosen: `fastsync-bench-<random>` unless given."""
        return self if self.repository else replace(self, repository=f"fastsync-bench-{os.urandom(4).hex()}")


@dataclass(frozen=True)
class BenchRow:
    op: str                  # push | pull | manifest-put | manifest-get
    size: int                # bytes of each blob (of each manifest, for the manifest rows)
    concurrency: int
    count: int
    seconds: float           # wall time of all `count` operations
    latency: Latency         # of each operation

    @property
    def mb_per_s(self) -> float:
        return self.size * self.count / MB / self.seconds if self.seconds > 0 else 0.0

    @property
    def ops_per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "size": self.size, "concurrency": self.concurrency, "count": self.count,
                "seconds": round(self.seconds, 4), "mb_per_s": round(self.mb_per_s, 3),
                "ops_per_s": round(self.ops_per_s, 2), "latency_ms": self.latency.to_json()}


@dataclass(frozen=True)
class Cleanup:
    manifests_deleted: int
    manifests_left: int
    refused: str             # the registry's answer to a delete it refused ("" when none was)
    blobs_left: int          # pushed blobs: freed only by the registry's garbage collection
    blob_bytes_left: int

    def to_json(self) -> dict[str, Any]:
        return {"manifests_deleted": self.manifests_deleted, "manifests_left": self.manifests_left,
                "deletes_refused": self.refused or None, "blobs_left_for_gc": self.blobs_left,
                "blob_bytes_left_for_gc": self.blob_bytes_left}


@dataclass(frozen=True)
class BenchResult:
    registry: str
    repository: str
    plan: BenchPlan
    rows: tuple[BenchRow, ...]
    cleanup: Cleanup

    def to_json(self) -> dict[str, Any]:
        return {"registry": self.registry, "repository": self.repository, "count": self.plan.count,
                "sizes": list(self.plan.sizes), "concurrency": list(self.plan.levels),
                "rows": [r.to_json() for r in self.rows], "cleanup": self.cleanup.to_json()}


class GeneratedBlob:
    """`size` bytes made of 1 MiB pieces of one random block, each piece starting with the blob's
    own 24-byte seed and the piece's number: unique, and as fast to make as a memory copy."""

    def __init__(self, block: bytes, seed: bytes, size: int) -> None:
        assert len(seed) == 24 and len(block) == CHUNK
        self.block, self.seed, self.size = block, seed, size
        self.digest = Digest("sha256", "0" * 64)

    def pieces(self) -> Iterator[bytes]:
        tail = self.block[32:]
        for n, start in enumerate(range(0, self.size, CHUNK)):
            piece = self.seed + n.to_bytes(8, "big") + tail
            yield piece[:min(CHUNK, self.size - start)]

    def compute_digest(self) -> "GeneratedBlob":
        h = hashlib.sha256()
        for piece in self.pieces():
            h.update(piece)
        self.digest = Digest("sha256", h.hexdigest())
        return self

    async def stream(self) -> AsyncIterator[bytes]:
        for piece in self.pieces():
            yield piece

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(m.OCI_LAYER, self.digest, self.size)


class _Run:
    """One benchmark against one repository: what was pushed, for the cleanup."""

    def __init__(self, client: "RegistryClient", plan: BenchPlan, on_row: Callable[[BenchRow], None]) -> None:
        self.client, self.plan, self.on_row = client, plan, on_row
        self.repo = plan.repository
        self.nonce = os.urandom(12)
        self.block = random.Random(self.nonce).randbytes(CHUNK)
        self.blobs = 0
        self.blob_bytes = 0
        self.manifests: list[Digest] = []
        self.rows: list[BenchRow] = []

    def blob(self, size: int, level: int, index: int) -> GeneratedBlob:
        seed = self.nonce + level.to_bytes(4, "big") + index.to_bytes(4, "big") + (size % 2**32).to_bytes(4, "big")
        return GeneratedBlob(self.block, seed, size)

    async def timed(self, op: str, size: int, level: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
        """Run `jobs` at most `level` at once; record the row."""
        gate = asyncio.Semaphore(level)
        took: list[float] = []

        async def one(job: Callable[[], Awaitable[None]]) -> None:
            async with gate:
                t0 = time.perf_counter()
                await job()
                took.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(one(job)) for job in jobs]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        latency = Latency.of(took)
        assert latency is not None
        row = BenchRow(op, size, level, len(jobs), time.perf_counter() - t0, latency)
        self.rows.append(row)
        self.on_row(row)

    async def push(self, blob: GeneratedBlob) -> None:
        await self.client.upload_blob(self.repo, blob.descriptor, blob.stream())
        self.blobs += 1
        self.blob_bytes += blob.size

    async def pull(self, blob: GeneratedBlob) -> None:
        desc = blob.descriptor
        async for _ in verified(self.client.blob_chunks(self.repo, desc), desc,
                                f"blob {blob.digest} read back from {self.client.host}/{self.repo}"):
            pass

    async def blobs_at(self, size: int, level: int) -> Descriptor:
        """Push and pull `count` blobs of `size`; the first one's descriptor."""
        blobs = [self.blob(size, level, i) for i in range(self.plan.count)]
        await asyncio.gather(*(asyncio.to_thread(b.compute_digest) for b in blobs))
        await self.timed("push", size, level, [lambda b=b: self.push(b) for b in blobs])
        await self.timed("pull", size, level, [lambda b=b: self.pull(b) for b in blobs])
        return blobs[0].descriptor

    async def manifests_at(self, level: int, config: Descriptor, layer: Descriptor) -> None:
        docs = [orjson.dumps({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": descriptor_json(config),
                              "layers": [descriptor_json(layer)],
                              "annotations": {"org.fastsync.bench": f"{self.nonce.hex()}-{level}-{i}"}})
                for i in range(self.plan.count)]
        digests = [Digest.of(raw) for raw in docs]

        async def put(raw: bytes, digest: Digest) -> None:
            await self.client.put_manifest(self.repo, str(digest), raw, m.OCI_MANIFEST)
            self.manifests.append(digest)

        async def get(raw: bytes, digest: Digest) -> None:
            got, _, _ = await self.client.get_manifest(self.repo, str(digest))
            if got != raw:
                raise DigestMismatch(f"manifest {digest} read back from {self.client.host}/{self.repo}",
                                     str(digest), str(Digest.of(got)))
        size = max(len(raw) for raw in docs)
        pairs = list(zip(docs, digests))
        await self.timed("manifest-put", size, level, [lambda p=p: put(*p) for p in pairs])
        await self.timed("manifest-get", size, level, [lambda p=p: get(*p) for p in pairs])

    async def config_blob(self) -> Descriptor:
        raw = orjson.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                            "config": {"Labels": {"org.fastsync.bench": self.nonce.hex()}}})
        desc = Descriptor.for_bytes(m.OCI_CONFIG, raw)

        async def body() -> AsyncIterator[bytes]:
            yield raw
        await self.client.upload_blob(self.repo, desc, body())
        self.blobs += 1
        self.blob_bytes += len(raw)
        return desc

    async def cleanup(self) -> Cleanup:
        deleted, refused = 0, ""
        for digest in self.manifests:
            try:
                await self.client.delete_manifest(self.repo, digest)
            except FastsyncError as exc:
                refused = str(exc)
                break
            deleted += 1
        return Cleanup(deleted, len(self.manifests) - deleted, refused, self.blobs, self.blob_bytes)

    async def run(self) -> BenchResult:
        await self.client.ping()
        try:
            config = await self.config_blob()
            layers = [await self.blobs_at(size, level) for size in self.plan.sizes for level in self.plan.levels]
            for level in self.plan.levels:
                await self.manifests_at(level, config, layers[0])
        finally:
            done = await asyncio.shield(self.cleanup())
        return BenchResult(self.client.host, self.repo, self.plan, tuple(self.rows), done)


def check_plan(plan: BenchPlan) -> None:
    from fastsync.errors import UsageError
    from fastsync.reference import parse_docker_reference

    if not plan.sizes or any(s <= 0 for s in plan.sizes):
        raise UsageError("--blob-size: give one or more sizes above zero (e.g. 1MiB,32MiB)")
    if not plan.levels or any(c < 1 for c in plan.levels):
        raise UsageError("--concurrency: give one or more levels of at least 1 (e.g. 1,4,16)")
    if plan.count < 1:
        raise UsageError("--count must be at least 1")
    try:
        ref = parse_docker_reference(f"localhost/{plan.repository}")
    except FastsyncError:
        ref = None
    if ref is None or ref.tag or ref.digest or ref.path != plan.repository:
        raise UsageError(f"--repository {plan.repository!r} is not a repository name (e.g. fastsync-bench)")


def bench_registry(host: str, opts: TransportOptions, plan: BenchPlan,
                   global_options: Optional[GlobalOptions] = None,
                   on_row: Callable[[BenchRow], None] = lambda row: None) -> BenchResult:
    """Benchmark the registry at `host` (see the module's docstring); `plan.repository` "" picks
    `fastsync-bench-<random>`."""
    from fastsync.session import run

    plan = plan.named()
    check_plan(plan)
    gopts = global_options or GlobalOptions()
    # one connection per operation in flight: the pool must not be what limits the highest level
    gopts = replace(gopts, connections_per_host=max(gopts.connections_per_host, max(plan.levels)))
    return run(lambda session: _Run(session.registry(host, opts), plan, on_row).run(), gopts)
