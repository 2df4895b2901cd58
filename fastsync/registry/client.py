"""HTTP client for one registry (OCI distribution API v2): ping, auth retry, manifests, blobs, tags."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Optional, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

from fastsync import model as m
from fastsync.registry.auth import Authenticator, Challenge, credentials_for, parse_challenge, registry_credentials
from fastsync.errors import FastsyncError, NetworkError, NotFound, RegistryError, Unauthorized
from fastsync.retry import parse_retry_after, retrying
from fastsync.model import Descriptor, Digest
from fastsync.options import NetworkOptions
from fastsync.registry.limits import MAX_MANIFEST, MAX_TAG_LIST, read_capped, read_start
from fastsync.registry import ranged
from fastsync.registry.pings import FAILING_STATUSES, PingMemo, PingResult
from fastsync.registry.watch import Offered, guarded, upload_timeout
from fastsync.registry.tls import ssl_context
from fastsync.registry.wire import (REDIRECTS, body_error, describe, error_text, loggable, next_link, origin,
                                    parse_tag_list, pull, push, repo_of)

if TYPE_CHECKING:
    import aiohttp

    from fastsync.options import Credentials, TransportOptions
    from fastsync.registry.stats import TrafficStats

ACCEPT = ", ".join(m.MANIFEST_ACCEPT)
CHUNK = 256 << 10                  # at most this much of a body read at once (memory per transfer)
log = logging.getLogger("fastsync")
MAX_RESUMES = 20                   # Range resumptions of one blob stream before giving up
T = TypeVar("T")


class RegistryClient:
    """Talks to one registry host with one set of options. Created and cached by `Session.registry`."""

    def __init__(self, http: "aiohttp.ClientSession", host: str, opts: "TransportOptions",
                 net: NetworkOptions = NetworkOptions(), pings: Optional[PingMemo] = None,
                 traffic: Optional["TrafficStats"] = None) -> None:
        self.http = http
        self.pings = pings
        self.host = host
        self.opts = opts
        self.net = net
        self.traffic = traffic            # counts this client's retries when given
        self.ssl = ssl_context(host.split("/")[0], opts)
        self.base: Optional[str] = None
        self._ping_lock = asyncio.Lock()
        self._challenge: Optional[Challenge] = None
        self._guessed = False              # base and challenge are a remembered answer, not yet confirmed
        # Credentials are looked up once for the registry; only when an auth file has keys naming
        # namespaces of this host (host/org/...) may they differ per repository: then resolved once
        # per repository. One Authenticator (and token cache) per distinct set of credentials.
        self._registry_creds: Optional["asyncio.Future[tuple[bool, Optional[Credentials]]]"] = None
        self._creds: dict[Optional[str], "asyncio.Future[Optional[Credentials]]"] = {}
        self._auths: dict[Optional["Credentials"], Authenticator] = {}
        # repositories found not to exist (probe_repository): they hold no blob but what this session
        # puts there, so a destination uploads without a HEAD first
        self.absent_repos: set[str] = set()

    async def authenticator(self, repo: Optional[str]) -> Authenticator:
        """The Authenticator holding the credentials that apply to `repo` (None: the registry itself)."""
        if self._registry_creds is None:
            self._registry_creds = asyncio.ensure_future(asyncio.to_thread(registry_credentials, self.host, self.opts))
        per_repository, creds = await asyncio.shield(self._registry_creds)
        if per_repository:
            fut = self._creds.get(repo)
            if fut is None:
                fut = self._creds[repo] = asyncio.ensure_future(
                    asyncio.to_thread(credentials_for, self.host, repo, self.opts))
            creds = await asyncio.shield(fut)
        auth = self._auths.get(creds)
        if auth is None:
            auth = self._auths[creds] = Authenticator(self.http, self.host, creds, self.ssl,
                                                      self.opts.registry_token)
            auth.challenge = self._challenge
        return auth

    # ---- plumbing -----------------------------------------------------------------------------

    def retried(self, attempt_once: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """One whole request (answer and body read) under the retry policy: connection failures, idle
        bodies, 408/425/429/5xx are tried again, at most --retry-times more times and not after
        --retry-deadline; anything else fails at once."""
        def warn(exc: BaseException, delay: float) -> None:
            log.info("%s; retrying in %.1fs", exc, delay)
            self._count_retry()
        return retrying(attempt_once, self.net.retry_times, warn, self.net.retry_deadline)

    def _count_retry(self) -> None:
        if self.traffic is not None:
            self.traffic.retried(self.host)

    def describe(self, exc: Optional[BaseException]) -> str:
        """`describe`, naming the timeout that fired and the flag that sets it."""
        import aiohttp

        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return f"no connection within {self.net.connect_timeout:g}s (--connect-timeout)"
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return f"nothing received for {self.net.read_idle_timeout:g}s (--read-idle-timeout)"
        return describe(exc)

    async def ping(self, guess: bool = True) -> str:
        """Find the scheme (https, or http when TLS verification is off) and the auth challenge: this
        session's answer for the host, else (when `guess`) a recent run's from the cache directory,
        else GET /v2/ in skopeo's order."""
        if self.base:
            return self.base
        async with self._ping_lock:
            if self.base:
                return self.base
            known = self.pings.get(self.host, self.ssl) if self.pings is not None else None
            early = self.pings.take_early(self.host, self.ssl) if known is None and self.pings is not None else None
            if early is not None and (known := await early) is not None:
                assert self.pings is not None   # an answer of this run (sent before aiohttp was imported)
                self.pings.put(self.host, self.ssl, known, self.opts.tls_verify is False)
            if known is None and guess and self.pings is not None:
                known = self.pings.recall(self.host, self.opts.tls_verify is False)
                if known is not None:
                    self.pings.put(self.host, self.ssl, known)
            if known is not None and (guess or not known.remembered):
                self._challenge = known.challenge      # another client of this session pinged it, same TLS
                self.base = known.base                 # settings, or a recent run did (`remembered`)
                self._guessed = known.remembered
                return self.base
            return await self._ping_now()

    async def _ping_now(self) -> str:
        import aiohttp

        schemes = ["https", "http"] if self.opts.tls_verify is False else ["https"]
        last: Optional[BaseException] = None
        self.base, self._challenge, self._guessed = None, None, False
        for scheme in schemes:
            url = f"{scheme}://{self.host}/v2/"
            try:
                async with self.http.get(url, ssl=self.ssl if scheme == "https" else None,
                                         allow_redirects=False) as resp:
                    await read_start(resp)
                    log.debug("GET %s -> %d", url, resp.status)
                    if resp.status == 401:
                        self._challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                    elif resp.status >= 500 or resp.status in FAILING_STATUSES:
                        exc = RegistryError(f"pinging container registry {self.host}: unexpected status "
                                            f"{resp.status}", resp.status)
                        exc.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        raise exc
                self.base = f"{scheme}://{self.host}"
                if self.pings is not None:
                    self.pings.put(self.host, self.ssl, PingResult(self.base, self._challenge),
                                   self.opts.tls_verify is False)
                return self.base
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                last = exc
        hint = " (use --tls-verify=false for a plain-http registry)" \
            if isinstance(last, aiohttp.ClientSSLError) and self.opts.tls_verify is not False else ""
        raise NetworkError(f"pinging container registry {self.host}: {self.describe(last)}{hint}")

    async def _ping_again(self, tried: PingResult) -> bool:
        """A request on a remembered ping answer (`tried`) failed as a wrong guess would: forget it and
        ping for real. True when the answer differs now (the request is worth sending again)."""
        async with self._ping_lock:
            if self._guessed and self.base == tried.base:
                if self.pings is not None:
                    self.pings.forget(self.host, self.ssl, self.opts.tls_verify is False)
                await self._ping_now()            # its failure is the error to show
                for auth in self._auths.values():
                    auth.challenge = self._challenge
            assert self.base is not None
            return not tried.same_answer(PingResult(self.base, self._challenge))

    @asynccontextmanager
    async def request(self, method: str, path_or_url: str, scopes: Iterable[str], *,
                      headers: Optional[dict[str, str]] = None, data: Any = None,
                      params: Optional[dict[str, str]] = None, ok: tuple[int, ...] = (200,),
                      what: str = "", allow_redirects: bool = True,
                      timeout: Optional["aiohttp.ClientTimeout"] = None) -> AsyncIterator["aiohttp.ClientResponse"]:
        """One request with auth (see `send`), released when the block ends."""
        resp = await self.send(method, path_or_url, scopes, headers=headers, data=data, params=params, ok=ok,
                               what=what, allow_redirects=allow_redirects, timeout=timeout)
        try:
            yield resp
        finally:
            resp.release()

    async def send(self, method: str, path_or_url: str, scopes: Iterable[str], *,
                   headers: Optional[dict[str, str]] = None, data: Any = None,
                   params: Optional[dict[str, str]] = None, ok: tuple[int, ...] = (200,),
                   what: str = "", allow_redirects: bool = True,
                   timeout: Optional["aiohttp.ClientTimeout"] = None) -> "aiohttp.ClientResponse":
        """One request with auth: on 401, answer the challenge and retry once (replayable bodies only).
        Returns a response whose status is in `ok`; the caller releases it. A replayable request sent
        on a remembered ping answer that fails as a wrong guess would (no connection, TLS or plain
        HTTP refused, a 400, refused authorization) is sent again after a real ping that answers
        differently."""
        replayable = data is None or isinstance(data, (bytes, bytearray))
        await self.ping(guess=replayable)
        if not self._guessed:
            return await self._send(method, path_or_url, scopes, headers, data, params, ok, what, allow_redirects,
                                    timeout)
        tried = PingResult(self.base or "", self._challenge)
        try:
            resp = await self._send(method, path_or_url, scopes, headers, data, params, ok, what, allow_redirects,
                                    timeout)
        except (NetworkError, Unauthorized, RegistryError) as exc:
            if isinstance(exc, RegistryError) and not isinstance(exc, Unauthorized) and exc.status != 400:
                raise
            if not await self._ping_again(tried):
                raise
            return await self._send(method, path_or_url, scopes, headers, data, params, ok, what, allow_redirects,
                                    timeout)
        if self.base == tried.base:
            self._guessed = False          # an answer on it: the remembered scheme holds
        return resp

    async def _send(self, method: str, path_or_url: str, scopes: Iterable[str], headers: Optional[dict[str, str]],
                    data: Any, params: Optional[dict[str, str]], ok: tuple[int, ...], what: str, allow_redirects: bool,
                    timeout: Optional["aiohttp.ClientTimeout"]) -> "aiohttp.ClientResponse":
        import aiohttp

        base = self.base or await self.ping(guess=False)
        url = path_or_url if "://" in path_or_url else base + path_or_url
        scopes = tuple(scopes)
        authn = await self.authenticator(repo_of(scopes))
        replayable = data is None or isinstance(data, (bytes, bytearray))
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            auth = await authn.header(scopes)
            if auth:
                hdrs["Authorization"] = auth
            try:
                extra = {"timeout": timeout} if timeout is not None else {}
                resp = await self.http.request(method, url, headers=hdrs, data=data, params=params,
                                                       ssl=self.ssl if url.startswith("https:") else None,
                                                       allow_redirects=allow_redirects, **extra)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                inner = body_error(exc)
                if inner is not None:      # the streamed body (a source blob) failed, not this request
                    raise inner from None
                raise NetworkError(f"{what or method + ' ' + loggable(url)}: {self.describe(exc)}") from None
            log.debug("%s %s -> %d", method, loggable(str(resp.url)), resp.status)
            try:
                if resp.status == 401 and attempt == 0 and replayable and \
                        authn.on_challenge(resp.headers.get("WWW-Authenticate", ""), scopes):
                    await resp.read()
                    resp.release()
                    continue
                if resp.status not in ok:
                    body = await read_start(resp) if method != "HEAD" else b""
                    raise self._error(resp.status, body, what or f"{method} {urlsplit(url).path}", authn.creds,
                                      resp.headers.get("Retry-After"))
            except BaseException:
                resp.release()
                raise
            return resp
        raise AssertionError("unreachable")

    def _error(self, status: int, body: bytes, what: str, creds: Optional["Credentials"] = None,
               retry_after: Optional[str] = None) -> FastsyncError:
        """The error for a failed response; 429/503 carry the server's Retry-After (seconds) for the
        per-blob retry loop."""
        code, msg = error_text(status, body)
        if status == 401:
            if not creds:
                msg = f"authentication required ({msg})" if msg != "authentication required" else msg
            return Unauthorized(f"{what}: unauthorized: {msg}", status, code)
        if status == 403:
            return Unauthorized(f"{what}: denied: {msg}", status, code)
        if code:       # as containers/image prints an OCI error: "manifest unknown: manifest unknown"
            msg = f"{code.lower().replace('_', ' ')}: {msg}"
        if status == 404:
            return NotFound(f"{what}: {msg}")
        exc = RegistryError(f"{what}: {msg} (HTTP {status})", status, code)
        exc.retry_after = parse_retry_after(retry_after)
        return exc

    # ---- manifests ----------------------------------------------------------------------------

    async def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, Optional[str]]:
        """(bytes, media type, Docker-Content-Digest header) of a manifest by tag or digest; refused
        beyond 4 MiB."""
        what = f"reading manifest {ref} in {self.host}/{repo}"

        async def once() -> tuple[bytes, str, Optional[str]]:
            async with self.request("GET", f"/v2/{repo}/manifests/{ref}", (pull(repo),), headers={"Accept": ACCEPT},
                                    what=what) as resp:
                raw = await read_capped(resp, MAX_MANIFEST, what, self.describe)
                mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
                return raw, mt, resp.headers.get("Docker-Content-Digest")
        return await self.retried(once)

    async def head_manifest(self, repo: str, ref: str, scopes: Optional[tuple[str, ...]] = None) -> Optional[Digest]:
        """The digest a tag/digest resolves to, or None when it does not exist (HEAD: no pull counted).
        A destination passes its push scope, so one token serves the whole push."""
        async def once() -> Optional[Digest]:
            try:
                async with self.request("HEAD", f"/v2/{repo}/manifests/{ref}", scopes or (pull(repo),),
                                        headers={"Accept": ACCEPT}, ok=(200,),
                                        what=f"checking manifest {ref} in {self.host}/{repo}") as resp:
                    dcd = resp.headers.get("Docker-Content-Digest")
                    return Digest.parse(dcd) if dcd else None
            except NotFound:
                return None
        return await self.retried(once)

    async def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> Optional[str]:
        """PUT a manifest, again after a transient failure (the bytes are replayable); a registry
        refusing it (400, 403...) fails at once with its message. Returns Docker-Content-Digest."""
        return (await self.put_manifest_headers(repo, ref, raw, media_type)).get("docker-content-digest")

    async def put_manifest_headers(self, repo: str, ref: str, raw: bytes, media_type: str) -> dict[str, str]:
        """`put_manifest`, answering the response's headers, names in lower case (a referrer's PUT:
        `oci-subject`)."""
        async def once() -> dict[str, str]:
            async with self.request("PUT", f"/v2/{repo}/manifests/{ref}", (push(repo),), data=raw,
                                    headers={"Content-Type": media_type}, ok=(200, 201, 202),
                                    what=f"writing manifest {ref} to {self.host}/{repo}") as resp:
                return {k.lower(): v for k, v in resp.headers.items()}
        return await self.retried(once)

    async def referrers(self, repo: str, digest: Digest, artifact_type: Optional[str] = None
                        ) -> Optional[tuple[bytes, bool]]:
        """The OCI 1.1 referrers API: (the index of manifests whose subject is `digest`, whether the
        registry applied the `artifactType` filter); None when the registry has no such API (404, or
        405 from one that routes no such path).
        Pages (`Link: rel="next"`) are merged into one index."""
        import json

        what = f"listing referrers of {digest} in {self.host}/{repo}"
        path = f"/v2/{repo}/referrers/{digest}" + \
            (f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else "")
        entries: list[Any] = []
        filtered = True
        try:
            async for body, headers in self._pages(path, repo, what, MAX_MANIFEST, {"Accept": m.OCI_INDEX}):
                try:
                    doc = json.loads(body)
                    got = doc["manifests"] if isinstance(doc, dict) else None
                    if not isinstance(got, list):
                        raise ValueError("no manifests list")
                except (ValueError, KeyError) as exc:
                    raise RegistryError(f"{what}: the answer is not an OCI index: {exc}") from None
                entries.extend(got)
                filtered = filtered and "artifacttype" in headers.get("OCI-Filters-Applied", "").lower()
        except NotFound:
            return None
        except RegistryError as exc:      # a registry that routes no such path at all
            if exc.status == 405:
                return None
            raise
        doc = {"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": entries}
        return json.dumps(doc, separators=(",", ":")).encode(), bool(artifact_type) and filtered

    async def delete_manifest(self, repo: str, digest: Digest) -> None:
        async def once() -> None:
            async with self.request("DELETE", f"/v2/{repo}/manifests/{digest}", (f"repository:{repo}:delete",
                                                                                  push(repo)),
                                    ok=(200, 202), what=f"deleting {self.host}/{repo}@{digest}"):
                return
        await self.retried(once)

    # ---- blobs --------------------------------------------------------------------------------

    async def has_blob(self, repo: str, desc: Descriptor, scopes: Optional[tuple[str, ...]] = None) -> bool:
        async def once() -> bool:
            try:
                async with self.request("HEAD", f"/v2/{repo}/blobs/{desc.digest}", scopes or (pull(repo),),
                                        what=f"checking blob {desc.digest} in {self.host}/{repo}") as resp:
                    size = resp.headers.get("Content-Length")
                    return desc.size < 0 or size is None or int(size) == desc.size
            except NotFound:
                return False
        return await self.retried(once)

    async def probe_repository(self, repo: str, scopes: Optional[tuple[str, ...]] = None) -> bool:
        """Whether `repo` exists (tags/list does not answer 404 NAME_UNKNOWN); one that does not is
        remembered in `absent_repos`. Anything else (an error, another registry's way) counts as
        existing: the blobs are then asked for one by one, as always."""
        async def once() -> bool:
            async with self.request("GET", f"/v2/{repo}/tags/list?n=1", scopes or (pull(repo),), ok=(200, 404),
                                    what=f"listing tags of {self.host}/{repo}") as resp:
                return resp.status != 404 or error_text(404, await read_start(resp))[0] != "NAME_UNKNOWN"
        try:
            exists = await self.retried(once)
        except FastsyncError:
            return True
        if not exists:
            self.absent_repos.add(repo)
        return exists

    def blob_chunks(self, repo: str, desc: Descriptor) -> AsyncIterator[bytes]:
        """A blob's bytes as one continuous stream: a big blob from a source that takes Range
        requests is fetched in parallel parts (`ranged.parallel_chunks`), any other in one GET."""
        if ranged.wanted(desc):
            return ranged.parallel_chunks(self, repo, desc)
        return self.blob_range(repo, desc)

    async def blob_range(self, repo: str, desc: Descriptor, start: int = 0, end: Optional[int] = None,
                         answered: Optional[Callable[[int], None]] = None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a blob (to its end when `end` is None) as one stream that survives
        broken connections: when the connection breaks after some bytes arrived, the rest is asked
        for again with Range (`blob_chunks_at`). Failures without progress are raised (the caller's
        retry policy takes over). The digest check downstream sees the whole stream, so a resumed blob
        is verified like any other. `answered` hears the first answer's status (200 or 206)."""
        offset, resumes = start, 0
        while True:
            first = offset
            chunks = self.blob_chunks_at(repo, desc, offset, end, answered)
            answered = None
            try:
                async for chunk in chunks:
                    offset += len(chunk)
                    yield chunk
                return
            except FastsyncError as exc:
                exc.host = exc.host or self.host        # for the engine's retry of the whole blob
                if offset == first or resumes >= MAX_RESUMES or not exc.retryable:
                    raise
                resumes += 1
                self._count_retry()
                log.debug("reading blob %s from %s/%s: broken after %d bytes (%s); resuming with Range",
                          desc.digest, self.host, repo, offset, exc)
            finally:
                await chunks.aclose()

    async def blob_chunks_at(self, repo: str, desc: Descriptor, offset: int, end: Optional[int] = None,
                             answered: Optional[Callable[[int], None]] = None) -> AsyncIterator[bytes]:
        """Stream a blob (bytes [offset, end), with Range), following redirects by hand so
        credentials never leave the registry host. A server that ignores Range answers 200: the first
        `offset` bytes are skipped and the stream stops at `end`; 429/5xx raise errors carrying
        Retry-After.

        One flat async generator (no context managers or generators inside): abandoned half-read and
        closed late, at event loop shutdown, it only releases its response."""
        import aiohttp

        what = f"reading blob {desc.digest} from {self.host}/{repo}"
        headers = {"Range": f"bytes={offset}-{'' if end is None else end - 1}"} if offset or end is not None else {}
        left = -1 if end is None else end - offset
        resp = await self.send("GET", f"/v2/{repo}/blobs/{desc.digest}", (pull(repo),), headers=headers,
                               ok=(200, 206) + REDIRECTS, what=what, allow_redirects=False)
        try:
            location = urljoin(str(resp.url), resp.headers.get("Location", "")) if resp.status in REDIRECTS else None
            home = origin(self.base or "")
            for _ in range(11):
                if location is not None:
                    resp.release()
                    hdrs = dict(headers)
                    if origin(location) == home:
                        auth = await (await self.authenticator(repo)).header((pull(repo),))
                        if auth:
                            hdrs["Authorization"] = auth
                    else:  # blob storage elsewhere (S3-like): never hand it the registry's credentials
                        log.debug("blob %s redirected to %s (no Authorization sent)", desc.digest,
                                  loggable(location))
                    try:
                        resp = await self.http.get(location, headers=hdrs, allow_redirects=False,
                                                           ssl=self.ssl if location.startswith("https:") else None)
                    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                        raise NetworkError(f"{what}: {self.describe(exc)}") from None
                    log.debug("GET %s -> %d", loggable(location), resp.status)
                    if resp.status in REDIRECTS:
                        location = urljoin(location, resp.headers.get("Location", ""))
                        continue
                    if resp.status not in (200, 206):
                        raise self._error(resp.status, await read_start(resp), what, None,
                                          resp.headers.get("Retry-After"))
                skip = offset if resp.status == 200 else 0
                if resp.status == 206 and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                    raise RegistryError(f"{what}: unexpected Content-Range {resp.headers.get('Content-Range')!r}")
                if answered is not None:
                    answered(resp.status)
                try:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        if 0 <= left < len(chunk):      # past `end` (a 200 answer): done
                            if left:
                                yield chunk[:left]
                            return
                        if left > 0:
                            left -= len(chunk)
                        yield chunk
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    raise NetworkError(f"{what}: {self.describe(exc)}") from None
                return
            raise RegistryError(f"{what}: too many redirects")
        finally:
            resp.release()

    async def mount_blob(self, repo: str, desc: Descriptor, from_repo: str) -> bool:
        """Cross-repository mount; True when the registry mounted it (201)."""
        q = urlencode({"mount": str(desc.digest), "from": from_repo})

        async def once() -> tuple[bool, Optional[str]]:
            async with self.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", (push(repo), pull(from_repo)),
                                    ok=(201, 202), what=f"mounting {desc.digest} into {self.host}/{repo}") as resp:
                return resp.status == 201, resp.headers.get("Location")
        mounted, loc = await self.retried(once)
        if mounted:
            return True
        if loc:  # an upload session was opened instead; close it
            try:
                async with self.request("DELETE", urljoin(self.base or "", loc), (push(repo),), ok=(204, 200, 202, 404)):
                    pass
            except FastsyncError:
                pass
        return False

    async def upload_blob(self, repo: str, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        """POST an upload session, then one streamed PUT with the digest (the registry verifies it).
        The stream's first chunk (the source's GET) is asked for while the POST is on its way."""
        what = f"writing blob {desc.digest} to {self.host}/{repo}"

        async def start() -> Optional[str]:
            async with self.request("POST", f"/v2/{repo}/blobs/uploads/", (push(repo),), ok=(202,), what=what) as resp:
                return resp.headers.get("Location")
        pre = ranged.Primed(chunks)
        try:
            await self._upload(repo, desc, pre, start, what)
        finally:
            await pre.stop()

    async def _upload(self, repo: str, desc: Descriptor, chunks: AsyncIterator[bytes],
                      start: Callable[[], Awaitable[Optional[str]]], what: str) -> None:
        loc = await self.retried(start)
        if not loc:
            raise RegistryError(f"{what}: the registry gave no upload location")
        url = urljoin(self.base or "", loc)
        url += ("&" if "?" in url else "?") + urlencode({"digest": str(desc.digest)})
        headers = {"Content-Type": "application/octet-stream"}
        if desc.size >= 0:
            headers["Content-Length"] = str(desc.size)
        # the streamed body is not replayable: a failure here is retried by the engine, from the start;
        # a registry that stops taking it for --read-idle-timeout is given up on as one that stops answering
        watch, idle = Offered(), self.net.read_idle_timeout
        body = watch.wrap(chunks)

        async def put() -> None:
            async with self.request("PUT", url, (push(repo),), data=body, headers=headers, ok=(201, 204), what=what,
                                    timeout=upload_timeout(self.net)):
                pass
        try:
            await guarded(put(), watch, idle, lambda: NetworkError(
                f"{what}: the registry took nothing for {idle:g}s (--read-idle-timeout)"))
        except FastsyncError as exc:
            exc.host = exc.host or self.host            # for the engine's retry of the whole blob
            raise
        finally:
            try:
                await body.aclose()
            except RuntimeError:      # still held by aiohttp's writer, which is being cancelled
                pass

    # ---- tags ---------------------------------------------------------------------------------

    async def list_tags(self, repo: str, page_size: int = 0) -> list[str]:
        """Every tag of `repo`, following `Link: <...>; rel="next"` pagination."""
        tags: list[str] = []
        path = f"/v2/{repo}/tags/list" + (f"?n={page_size}" if page_size else "")
        what = f"listing tags of {self.host}/{repo}"
        try:
            async for body, headers in self._pages(path, repo, what, MAX_TAG_LIST):
                tags.extend(parse_tag_list(body, what, headers.get("Content-Type", "")))
        except NotFound as exc:    # and containers/image's words for it
            raise NotFound(f"{exc} (fetching tags list: invalid status code from registry 404 (Not Found))") \
                from None
        return tags

    async def tags_if_one_page(self, repo: str, page_size: int) -> Optional[list[str]]:
        """`repo`'s tags when the first page (of at most `page_size`) holds them all, else None
        (a lookup that must not cost one round trip per page)."""
        what = f"listing tags of {self.host}/{repo}"
        pages = self._pages(f"/v2/{repo}/tags/list?n={page_size}", repo, what, MAX_TAG_LIST)
        try:
            async for body, headers in pages:
                if next_link(headers.get("Link", ""), self.base or ""):
                    return None
                return parse_tag_list(body, what, headers.get("Content-Type", ""))
        finally:
            await pages.aclose()
        return None

    async def _pages(self, path: str, repo: str, what: str, cap: int, headers: Optional[dict[str, str]] = None
                     ) -> AsyncIterator[tuple[bytes, Mapping[str, str]]]:
        """GET `path` and the pages after it (`Link: <...>; rel="next"`), each read whole up to `cap`
        bytes and retried on its own: (body, the answer's headers) per page."""
        next_path: Optional[str] = path
        while next_path:
            async def page(path: str = next_path) -> tuple[bytes, Mapping[str, str]]:
                async with self.request("GET", path, (pull(repo),), headers=headers, what=what) as resp:
                    return await read_capped(resp, cap, what, self.describe), resp.headers.copy()
            body, answer = await self.retried(page)
            yield body, answer
            next_path = next_link(answer.get("Link", ""), self.base or "")


