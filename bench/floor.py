"""The floor: only the HTTP work a sync strictly needs, to measure fastsync against.

    python -m bench.floor copy SYNC_YAML docker://HOST/PREFIX [--jobs 64] [--timings FILE]
    python -m bench.floor copy SYNC_YAML dir:PATH [--pool DIR] [--jobs 64] [--timings FILE]
    python -m bench.floor copy SYNC_YAML registry-storage:ROOT [--pool DIR] [--timings FILE]
    python -m bench.floor noop SYNC_YAML docker://HOST/PREFIX [--timings FILE]

SYNC_YAML is the skopeo-sync YAML the harness gives skopeo and fastsync (registry -> ``images:``
{repo: [tags]}); images land where ``skopeo sync`` (not --scoped) puts them: ``PREFIX/<last
component of repo>:<tag>`` or ``PATH/<last component>:<tag>/``; into a registry-storage tree (the
filesystem layout docker-registry serves) under the full repository name, as fastsync's
``--dest registry-storage`` does.

``copy`` (bench/floor_mover.py, on aiohttp): GET every manifest (children of an index too), each
unique blob once per destination repository, a cross-repository mount once the first repository
holding it has committed it, otherwise a monolithic streamed upload (POST and the source GET sent
together, then one PUT whose body is the source response); manifests children first, tag last.
To ``dir:``: each unique blob downloaded once, hardlinked into every image directory; with
``--pool`` blobs already in the pool are only hardlinked (the warm-cache floor), new ones land in
the pool first. To registry-storage: the same, each blob linked once as ``blobs/.../data``, then
the ``_layers`` and revision links, the tag's links last. No verification, no cache of its own, no retries, no fsync; high concurrency,
keep-alive.

``noop``: the re-sync floor: a HEAD of each manifest at the source and at the destination, all at
once over keep-alive connections (raw HTTP/1.1 on asyncio streams, so the start-up is only the
interpreter, asyncio and PyYAML); exits 1 when any digest differs.

``--timings FILE`` writes {"work": seconds from just before the first request to the end} (the
figure without interpreter start-up and imports).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))


@dataclass(frozen=True)
class Item:
    src_repo: str   # repository at the source
    tag: str
    dest: str       # destination repository (docker) or directory name "name:tag" (dir)


@dataclass(frozen=True)
class Plan:
    src: str        # "http://HOST"
    items: tuple[Item, ...]


def read_yaml(path: Path, dest_kind: str, prefix: str) -> Plan:
    """The skopeo-sync YAML subset the harness writes: one registry, ``images: {repo: [tags]}``."""
    import yaml

    doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(doc, dict) or len(doc) != 1:
        raise SystemExit(f"floor: {path}: expected exactly one registry")
    (host, body), = doc.items()
    unknown = set(body) - {"images", "tls-verify"}
    if unknown:
        raise SystemExit(f"floor: {path}: keys the floor does not read: {', '.join(sorted(unknown))}")
    items = []
    for repo, tags in body["images"].items():
        name = repo.rsplit("/", 1)[-1]
        for tag in tags:
            dest = (f"{prefix}/{name}".lstrip("/") if dest_kind == "docker" else repo
                    if dest_kind == "registry-storage" else f"{name}:{tag}")
            items.append(Item(repo, str(tag), dest))
    return Plan(f"http://{host}", tuple(items))


def parse_dest(dest: str) -> tuple[str, str, str]:
    """docker://HOST/PREFIX -> ("docker", "http://HOST", "PREFIX"); dir:PATH -> ("dir", "", PATH)."""
    if dest.startswith("docker://"):
        host, _, prefix = dest[len("docker://"):].partition("/")
        return "docker", f"http://{host}", prefix
    for kind in ("dir", "registry-storage"):
        if dest.startswith(kind + ":"):
            return kind, "", dest[len(kind) + 1:]
    raise SystemExit(f"floor: destination must be docker://HOST/PREFIX, dir:PATH or registry-storage:ROOT, "
                     f"not {dest!r}")


# ---------------------------------------------------------------- the no-op floor
class HeadPool:
    """HEAD requests to one host over a few keep-alive HTTP/1.1 connections (raw asyncio streams)."""

    def __init__(self, base: str, size: int) -> None:
        u = urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.hostport = u.netloc
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.sem = asyncio.Semaphore(size)

    async def head(self, path: str) -> tuple[int, dict[str, str]]:
        async with self.sem:
            if self.idle:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(f"HEAD {path} HTTP/1.1\r\nHost: {self.hostport}\r\nAccept: {ACCEPT}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if sep:
                    headers[k.strip().lower()] = v.strip()
            if headers.get("connection", "").lower() == "close":
                writer.close()
            else:
                self.idle.append((reader, writer))
            return status, headers

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def noop(plan: Plan, dest_base: str) -> list[str]:
    """HEAD every manifest at both ends; the images whose digests differ (or are missing)."""
    src, dst = HeadPool(plan.src, 32), HeadPool(dest_base, 32)

    async def one(it: Item) -> str:
        (s, sh), (d, dh) = await asyncio.gather(src.head(f"/v2/{it.src_repo}/manifests/{it.tag}"),
                                                dst.head(f"/v2/{it.dest}/manifests/{it.tag}"))
        want, got = sh.get("docker-content-digest"), dh.get("docker-content-digest")
        return "" if s == d == 200 and want and want == got else f"{it.dest}:{it.tag} ({s} {want} / {d} {got})"

    try:
        return [r for r in await asyncio.gather(*(one(it) for it in plan.items)) if r]
    finally:
        src.close()
        dst.close()


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("copy", "noop"))
    ap.add_argument("yaml", type=Path)
    ap.add_argument("dest")
    ap.add_argument("--jobs", type=int, default=64, help="operations in flight (copy; default 64)")
    ap.add_argument("--pool", type=Path, help="dir:/registry-storage: blob pool by hex digest (link from it, fill it)")
    ap.add_argument("--timings", type=Path, help="write {'work': seconds without start-up} here")
    args = ap.parse_args(argv)
    kind, dest_base, prefix = parse_dest(args.dest)
    plan = read_yaml(args.yaml, kind, prefix)
    if args.mode == "noop":
        if kind != "docker":
            raise SystemExit("floor: noop needs a docker:// destination")
        t0 = time.perf_counter()
        changed = asyncio.run(noop(plan, dest_base))
        work = time.perf_counter() - t0
        if changed:
            print("floor: not a no-op, these differ: " + ", ".join(changed), file=sys.stderr)
    else:
        from .floor_mover import copy   # aiohttp only here: the no-op floor never imports it
        try:
            import uvloop   # the loop fastsync runs on
            run = uvloop.run
        except ImportError:  # pragma: no cover - depends on the machine
            run = asyncio.run
        t0 = time.perf_counter()
        try:
            run(copy(plan, kind, dest_base, Path(prefix) if kind != "docker" else None, args.pool, args.jobs))
        except Exception as e:   # no retries: the first failure ends the run, in one line
            print(f"floor: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        work = time.perf_counter() - t0
        changed = []
    if args.timings:
        args.timings.write_text(json.dumps({"work": work}))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
