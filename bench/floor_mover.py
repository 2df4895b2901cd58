"""The floor's raw mover on aiohttp (see bench/floor.py): registry -> registry or -> dir:.

No verification, no cache, no retries: any unexpected status aborts the run (exit 1), which the
harness then reports as a failed cell, never as a number.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Optional
from urllib.parse import urljoin

import aiohttp

from .floor import ACCEPT, Item, Plan

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
CHUNK = 1 << 20


class FloorError(Exception):
    pass


def _expect(resp: aiohttp.ClientResponse, *ok: int) -> None:
    if resp.status not in ok:
        raise FloorError(f"{resp.method} {resp.url}: HTTP {resp.status}")


class Mover:
    def __init__(self, session: aiohttp.ClientSession, src: str, dest: str, out: Optional[Path],
                 pool: Optional[Path]) -> None:
        self.s, self.src, self.dest, self.out, self.pool = session, src, dest, out, pool
        self.manifests: dict[tuple[str, str], asyncio.Task] = {}     # (src repo, ref) -> (bytes, type)
        self.blobs: dict[tuple[str, str], asyncio.Task] = {}         # (dest repo or "", digest) -> done
        self.first: dict[str, tuple[str, asyncio.Task]] = {}         # digest -> (first dest repo, its upload)
        self.linked: set[Path] = set()                               # dir: files linked or being linked

    # ---- source
    def manifest(self, repo: str, ref: str) -> asyncio.Task:
        key = (repo, ref)
        if key not in self.manifests:
            self.manifests[key] = asyncio.ensure_future(self._get_manifest(repo, ref))
        return self.manifests[key]

    async def _get_manifest(self, repo: str, ref: str) -> tuple[bytes, str]:
        async with self.s.get(f"{self.src}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}) as r:
            _expect(r, 200)
            body = await r.read()
            return body, r.headers.get("Content-Type", "").split(";")[0]

    def _blob_get(self, repo: str, digest: str):  # noqa: ANN202 - aiohttp's request context manager
        return self.s.get(f"{self.src}/v2/{repo}/blobs/{digest}")

    # ---- registry destination
    def blob_in_repo(self, repo: str, src_repo: str, desc: dict) -> asyncio.Task:
        key = (repo, desc["digest"])
        if key not in self.blobs:
            first = self.first.get(desc["digest"])
            if first is None:
                task = asyncio.ensure_future(self._upload(repo, src_repo, desc, None))
                self.first[desc["digest"]] = (repo, task)
            else:
                task = asyncio.ensure_future(self._mount(repo, src_repo, desc, *first))
            self.blobs[key] = task
        return self.blobs[key]

    async def _upload(self, repo: str, src_repo: str, desc: dict, location: Optional[str]) -> None:
        get = self._blob_get(src_repo, desc["digest"])
        if location is None:   # the POST and the source GET go out together
            post_task = asyncio.ensure_future(self._post(repo, ""))
            src = await get
            location = await post_task
        else:
            src = await get
        try:
            _expect(src, 200)
            sep = "&" if "?" in location else "?"
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(desc["size"])}
            async with self.s.put(f"{location}{sep}digest={desc['digest']}", data=src.content, headers=headers) as r:
                _expect(r, 201)
        finally:
            src.release()

    async def _post(self, repo: str, query: str) -> str:
        async with self.s.post(f"{self.dest}/v2/{repo}/blobs/uploads/{query}") as r:
            _expect(r, 202)
            return urljoin(self.dest + "/", r.headers["Location"])

    async def _mount(self, repo: str, src_repo: str, desc: dict, from_repo: str, uploaded: asyncio.Task) -> None:
        await uploaded
        async with self.s.post(f"{self.dest}/v2/{repo}/blobs/uploads/",
                               params={"mount": desc["digest"], "from": from_repo}) as r:
            _expect(r, 201, 202)
            if r.status == 201:
                return
            location = urljoin(self.dest + "/", r.headers["Location"])
        await self._upload(repo, src_repo, desc, location)   # mount refused: upload after all

    async def _put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> None:
        async with self.s.put(f"{self.dest}/v2/{repo}/manifests/{ref}", data=body,
                              headers={"Content-Type": media_type}) as r:
            _expect(r, 201)

    async def to_registry(self, it: Item) -> None:
        body, media_type = await self.manifest(it.src_repo, it.tag)
        doc = json.loads(body)
        if media_type in INDEX_TYPES or "manifests" in doc:
            await asyncio.gather(*(self._child_to_registry(it, d) for d in doc["manifests"]))
        else:
            await self._blobs_to_registry(it, doc)
        await self._put_manifest(it.dest, it.tag, body, media_type or doc.get("mediaType", ""))

    async def _child_to_registry(self, it: Item, desc: dict) -> None:
        body, media_type = await self.manifest(it.src_repo, desc["digest"])
        await self._blobs_to_registry(it, json.loads(body))
        await self._put_manifest(it.dest, desc["digest"], body, media_type or desc["mediaType"])

    async def _blobs_to_registry(self, it: Item, doc: dict) -> None:
        await asyncio.gather(*(self.blob_in_repo(it.dest, it.src_repo, d) for d in [doc["config"], *doc["layers"]]))

    # ---- dir: destination
    async def to_dir(self, it: Item) -> None:
        assert self.out is not None
        d = self.out / it.dest
        d.mkdir(parents=True, exist_ok=True)
        body, media_type = await self.manifest(it.src_repo, it.tag)
        doc = json.loads(body)
        work = []
        if media_type in INDEX_TYPES or "manifests" in doc:
            for child in doc["manifests"]:
                work.append(self._child_to_dir(it, d, child["digest"]))
        else:
            work.append(self._blobs_to_dir(it, d, doc))
        await asyncio.gather(*work)
        (d / "version").write_text("Directory Transport Version: 1.1\n")
        (d / "manifest.json").write_bytes(body)

    async def _child_to_dir(self, it: Item, d: Path, digest: str) -> None:
        body, _ = await self.manifest(it.src_repo, digest)
        await self._blobs_to_dir(it, d, json.loads(body))
        (d / f"{digest.split(':', 1)[1]}.manifest.json").write_bytes(body)

    async def _blobs_to_dir(self, it: Item, d: Path, doc: dict) -> None:
        async def link(desc: dict) -> None:
            hexd = desc["digest"].split(":", 1)[1]
            target = d / hexd
            if target in self.linked:   # children of one index share blobs in one directory
                return
            self.linked.add(target)
            path = await self._blob_file(it.src_repo, desc, d)
            if path != target:            # without a pool the first directory holds the file itself
                os.link(path, target)
        await asyncio.gather(*(link(x) for x in [doc["config"], *doc["layers"]]))

    # ---- registry-storage: destination (docker/registry/v2 as distribution's filesystem driver lays it out)
    async def to_storage(self, it: Item) -> None:
        assert self.out is not None
        v2 = self.out / "docker" / "registry" / "v2"
        repo = v2 / "repositories" / it.dest
        body, media_type = await self.manifest(it.src_repo, it.tag)
        doc = json.loads(body)
        top = "sha256:" + hashlib.sha256(body).hexdigest()
        manifests = [(top, body)]
        if media_type in INDEX_TYPES or "manifests" in doc:
            kids = await asyncio.gather(*(self.manifest(it.src_repo, c["digest"]) for c in doc["manifests"]))
            manifests += [(c["digest"], k[0]) for c, k in zip(doc["manifests"], kids)]
            images = [json.loads(k[0]) for k in kids]
        else:
            images = [doc]
        descs = {d["digest"]: d for im in images for d in [im["config"], *im["layers"]]}
        await asyncio.gather(*(self._storage_blob(v2, it.src_repo, d) for d in descs.values()))
        for digest in descs:
            _write(repo / "_layers" / "sha256" / digest[7:] / "link", digest)
        for digest, data in manifests:
            blob = v2 / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
            if not blob.exists():
                _write_bytes(blob, data)
            _write(repo / "_manifests" / "revisions" / "sha256" / digest[7:] / "link", digest)
        tag = repo / "_manifests" / "tags" / it.tag
        _write(tag / "index" / "sha256" / top[7:] / "link", top)
        _write(tag / "current" / "link", top)   # the tag last

    def _storage_blob(self, v2: Path, src_repo: str, desc: dict) -> asyncio.Task:
        key = ("storage", desc["digest"])
        if key not in self.blobs:
            self.blobs[key] = asyncio.ensure_future(self._link_storage_blob(v2, src_repo, desc))
        return self.blobs[key]

    async def _link_storage_blob(self, v2: Path, src_repo: str, desc: dict) -> None:
        hexd = desc["digest"].split(":", 1)[1]
        data = v2 / "blobs" / "sha256" / hexd[:2] / hexd / "data"
        data.parent.mkdir(parents=True, exist_ok=True)
        if self.pool is None:
            await self._download(src_repo, desc, data)
        else:
            os.link(await self._download(src_repo, desc, self.pool / hexd), data)

    async def _blob_file(self, src_repo: str, desc: dict, first_dir: Path) -> Path:
        """The one file holding this blob (in the pool, or in the first image directory wanting it)."""
        hexd = desc["digest"].split(":", 1)[1]
        key = ("", desc["digest"])
        if key not in self.blobs:
            path = (self.pool or first_dir) / hexd
            self.blobs[key] = asyncio.ensure_future(self._download(src_repo, desc, path))
        return await self.blobs[key]

    async def _download(self, src_repo: str, desc: dict, path: Path) -> Path:
        if self.pool is not None and path.exists():
            return path                       # warm: link only
        tmp = path.with_name(path.name + ".part")
        async with self._blob_get(src_repo, desc["digest"]) as r:
            _expect(r, 200)
            with open(tmp, "wb") as f:
                async for chunk in r.content.iter_chunked(CHUNK):
                    f.write(chunk)
        os.replace(tmp, path)
        return path


def _write(path: Path, text: str) -> None:
    _write_bytes(path, text.encode())


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def copy(plan: Plan, kind: str, dest: str, out: Optional[Path], pool: Optional[Path], jobs: int) -> None:
    if pool is not None:
        pool.mkdir(parents=True, exist_ok=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    conn = aiohttp.TCPConnector(limit=0, limit_per_host=jobs, force_close=False, enable_cleanup_closed=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as s:
        m = Mover(s, plan.src, dest, out, pool)
        step = {"docker": m.to_registry, "dir": m.to_dir, "registry-storage": m.to_storage}[kind]
        await asyncio.gather(*(step(it) for it in plan.items))
