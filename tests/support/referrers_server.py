"""A small in-memory OCI 1.1 registry that has the referrers API (CNCF distribution 2.8 has not).

It serves what a copy needs and no more: `/v2/` (no auth), blob HEAD/GET and monolithic uploads
(POST then PUT ?digest=, verified; mounts are declined with an upload session), manifest
HEAD/GET/PUT by tag or digest (a PUT with `subject` is answered with `OCI-Subject` and indexed),
and `GET /v2/<name>/referrers/<digest>` (an OCI index; `?artifactType=` filters and is named in
`OCI-Filters-Applied`). `requests` records (method, path with query) of every request.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from typing import Awaitable, Callable, Optional

from aiohttp import web

from .httpproxy import _HTTPServer

INDEX = "application/vnd.oci.image.index.v1+json"
_ROUTE = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>blobs|manifests|referrers)/(?P<ref>[^/]+)$")
_UPLOAD = re.compile(r"^/v2/(?P<name>.+?)/blobs/uploads/(?P<id>[^/]*)$")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ReferrersRegistry(_HTTPServer):
    _name = "fastsync-referrers-registry"

    def __init__(self) -> None:
        super().__init__("127.0.0.1")
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}     # (repo, tag or digest)
        self.referrers: dict[tuple[str, str], dict[str, dict]] = {}      # (repo, subject) -> digest -> entry
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            with self._lock:
                self.requests.append((request.method, request.path_qs))
            if request.path == "/v2/":
                return web.json_response({})
            up = _UPLOAD.match(request.path)
            if up:
                return await self._upload(request, up.group("name"), up.group("id"))
            mm = _ROUTE.match(request.path)
            if mm is None:
                return _error(404, "NAME_UNKNOWN")
            name, kind, ref = mm.group("name"), mm.group("kind"), mm.group("ref")
            if kind == "blobs":
                data = self.blobs.get(ref)
                if data is None:
                    return _error(404, "BLOB_UNKNOWN")
                return web.Response(body=b"" if request.method == "HEAD" else data,
                                    headers={"Content-Length": str(len(data)), "Docker-Content-Digest": ref})
            if kind == "referrers":
                return self._list(request, name, ref)
            if request.method == "PUT":
                return self._put(name, ref, await request.read(), request.headers.get("Content-Type", ""))
            got = self.manifests.get((name, ref))
            if got is None:
                return _error(404, "MANIFEST_UNKNOWN")
            raw, mt = got
            return web.Response(body=b"" if request.method == "HEAD" else raw,
                                headers={"Content-Type": mt, "Docker-Content-Digest": _digest(raw),
                                         "Content-Length": str(len(raw))})
        return handle

    async def _upload(self, request: web.Request, name: str, upload: str) -> web.StreamResponse:
        if request.method == "POST":
            return web.Response(status=202, headers={"Location": f"/v2/{name}/blobs/uploads/{next(self._ids)}"})
        data = await request.read()
        want = request.query.get("digest", "")
        if _digest(data) != want:
            return _error(400, "DIGEST_INVALID")
        self.blobs[want] = data
        return web.Response(status=201, headers={"Docker-Content-Digest": want})

    def _put(self, name: str, ref: str, raw: bytes, mt: str) -> web.StreamResponse:
        digest = _digest(raw)
        doc = json.loads(raw)
        self.manifests[(name, ref)] = self.manifests[(name, digest)] = (raw, mt)
        headers = {"Docker-Content-Digest": digest}
        subject = doc.get("subject") if isinstance(doc, dict) else None
        if isinstance(subject, dict) and subject.get("digest"):
            entry = {"mediaType": mt, "digest": digest, "size": len(raw),
                     "artifactType": doc.get("artifactType") or doc.get("config", {}).get("mediaType", "")}
            if doc.get("annotations"):
                entry["annotations"] = doc["annotations"]
            self.referrers.setdefault((name, subject["digest"]), {})[digest] = entry
            headers["OCI-Subject"] = subject["digest"]
        return web.Response(status=201, headers=headers)

    def _list(self, request: web.Request, name: str, subject: str) -> web.StreamResponse:
        entries = list(self.referrers.get((name, subject), {}).values())
        wanted: Optional[str] = request.query.get("artifactType")
        headers = {"Content-Type": INDEX}
        if wanted:
            entries = [e for e in entries if e["artifactType"] == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        return web.Response(body=json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode(),
                            headers=headers)


def _error(status: int, code: str) -> web.Response:
    return web.json_response({"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}, status=status)
