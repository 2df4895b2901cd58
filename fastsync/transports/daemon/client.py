"""A small Docker Engine API client: HTTP over a unix socket, plain TCP or TLS, with aiohttp.

The host is spelled as Docker spells it: `unix:///var/run/docker.sock` (the default), `tcp://HOST:PORT`
(TLS, as containers/image sets up every host that is neither unix:// nor http://), `https://HOST:PORT`
or `http://HOST:PORT` (plain). As skopeo 1.9 does, `DOCKER_HOST` is not read: only --*daemon-host
chooses the engine. TLS settings come from the side's --cert-dir (`ca.pem`, `cert.pem`, `key.pem`, as
docker's tlsconfig reads them) and --tls-verify=false (no verification).

The API version is negotiated: `GET /_ping` answers with the engine's `API-Version`, and requests use
the lower of it and MAX_API (an engine too old for /images/get and /images/load is refused).
"""
from __future__ import annotations

import asyncio
import errno
import json
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterable, AsyncIterator, Optional
from urllib.parse import quote

from fastsync.errors import FastsyncError, NotFound, UsageError, body_snippet

if TYPE_CHECKING:
    import aiohttp

    from fastsync.options import TransportOptions

DEFAULT_HOST = "unix:///var/run/docker.sock"
MAX_API = (1, 41)
MIN_API = (1, 22)          # the version skopeo 1.9 pins; /images/get?names= and /images/load exist there
CHUNK = 1 << 20


class DaemonError(FastsyncError):
    """The engine could not be reached, or answered with an error."""


class DaemonNotFound(DaemonError, NotFound):
    """The engine has no such image."""


@dataclass(frozen=True)
class Endpoint:
    """Where the engine listens: `scheme` is unix, http or https; `address` a socket path or HOST:PORT."""

    spelled: str
    scheme: str
    address: str

    @property
    def base_url(self) -> str:
        return "http://docker" if self.scheme == "unix" else f"{self.scheme}://{self.address}"


def parse_host(text: Optional[str]) -> Endpoint:
    """An engine address as the docker client parses it (dockerclient.ParseHostURL)."""
    spelled = text or DEFAULT_HOST
    proto, sep, addr = spelled.partition("://")
    if not sep or not addr:
        raise UsageError(f"unable to parse docker host {spelled!r}")
    if proto == "unix":
        return Endpoint(spelled, "unix", addr)
    if proto not in ("tcp", "http", "https"):
        raise UsageError(f"unable to parse docker host {spelled!r}: protocol {proto!r} not supported "
                         "(unix, tcp, http, https)")
    addr = addr.rstrip("/")
    host, colon, port = addr.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise UsageError(f"unable to parse docker host {spelled!r}: HOST:PORT expected")
    return Endpoint(spelled, "http" if proto == "http" else "https", addr)


def tls_context(opts: "TransportOptions") -> ssl.SSLContext:
    """docker's tlsconfig.Client: system CAs or CERT_DIR/ca.pem, CERT_DIR/cert.pem + key.pem as the client
    certificate, no verification with --tls-verify=false."""
    ctx = ssl.create_default_context()
    if opts.tls_verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.cert_dir:
        ca, cert, key = (os.path.join(opts.cert_dir, n) for n in ("ca.pem", "cert.pem", "key.pem"))
        try:
            if opts.tls_verify is not False:
                ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise DaemonError(f"Could not read CA certificate {ca!r}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise DaemonError(f"Could not load X509 key pair ({cert}, {key}): "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    return ctx


def _version(text: str) -> Optional[tuple[int, int]]:
    major, dot, minor = text.strip().partition(".")
    if not dot or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


class DaemonClient:
    """One engine connection pool; `await client.close()` when done."""

    def __init__(self, host: Optional[str], opts: "TransportOptions") -> None:
        self.endpoint = parse_host(host)
        self.opts = opts
        self.api: Optional[tuple[int, int]] = None
        self._http: Optional["aiohttp.ClientSession"] = None

    def _session(self) -> "aiohttp.ClientSession":
        if self._http is None:
            import aiohttp

            if self.endpoint.scheme == "unix":
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=self.endpoint.address)
            elif self.endpoint.scheme == "https":
                connector = aiohttp.TCPConnector(ssl=tls_context(self.opts))
            else:
                connector = aiohttp.TCPConnector()
            # an engine may think long before the first byte of a save (it exports first) or the answer
            # to a load (it imports first): no read timeout
            timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=None)
            self._http = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                               headers={"User-Agent": "fastsync"})
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- requests ----------------------------------------------------------------------------------

    def _connect_error(self, exc: BaseException) -> DaemonError:
        import aiohttp

        where = self.endpoint.spelled
        cause = getattr(exc, "os_error", None) or exc
        if getattr(cause, "errno", None) == errno.EACCES:
            return DaemonError(f"permission denied while trying to connect to the Docker daemon socket at {where}")
        if isinstance(exc, (ssl.SSLError, aiohttp.ClientSSLError)):
            return DaemonError(f"TLS handshake with the Docker daemon at {where} failed: {' '.join(str(exc).split())}")
        return DaemonError(f"Cannot connect to the Docker daemon at {where}. Is the docker daemon running?")

    async def _open(self, method: str, path: str, versioned: bool = True, **kw: Any) -> "aiohttp.ClientResponse":
        import aiohttp

        if versioned:
            api = await self.negotiate()
            path = f"/v{api[0]}.{api[1]}{path}"
        try:
            return await self._session().request(method, self.endpoint.base_url + path, **kw)
        except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError, ConnectionError, FileNotFoundError) as exc:
            raise self._connect_error(exc) from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise DaemonError(f"error talking to the Docker daemon at {self.endpoint.spelled}: "
                              f"{' '.join(str(exc).split()) or type(exc).__name__}") from None

    async def negotiate(self) -> tuple[int, int]:
        """The API version to speak: min(the engine's, MAX_API) (GET /_ping's API-Version header)."""
        if self.api is not None:
            return self.api
        resp = await self._open("GET", "/_ping", versioned=False)
        try:
            await resp.read()
            if resp.status >= 400:
                raise await self._failed(resp, b"")
            server = _version(resp.headers.get("API-Version", "")) or MIN_API
        finally:
            resp.release()
        if server < MIN_API:
            raise DaemonError(f"the Docker daemon at {self.endpoint.spelled} speaks API {server[0]}.{server[1]}; "
                              f"at least {MIN_API[0]}.{MIN_API[1]} is needed")
        self.api = min(server, MAX_API)
        return self.api

    async def _failed(self, resp: "aiohttp.ClientResponse", body: Optional[bytes] = None) -> DaemonError:
        """An error answer as the docker client words it: `Error response from daemon: MESSAGE`."""
        if body is None:
            try:
                body = await resp.content.read(1 << 16)
            except Exception:      # noqa: BLE001 - the status says enough
                body = b""
        message = ""
        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                message = str(doc.get("message") or "")
        except ValueError:
            pass
        message = " ".join((message or body.decode("utf-8", "replace")).split()) or \
            f"HTTP {resp.status} {body_snippet(body)}"
        cls = DaemonNotFound if resp.status == 404 else DaemonError
        return cls(f"Error response from daemon: {message}")

    # -- the two calls a transport needs ---------------------------------------------------------------

    async def save(self, name: str) -> AsyncIterator[bytes]:
        """`GET /images/get?names=NAME`: the `docker save` tar of one image, as it streams."""
        resp = await self._open("GET", f"/images/get?names={quote(name, safe='')}")
        try:
            if resp.status != 200:
                raise await self._failed(resp)
            async for chunk in resp.content.iter_chunked(CHUNK):
                yield chunk
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.TimeoutError) as exc:
            raise DaemonError(f"reading the image from the Docker daemon: {exc}") from None
        except FastsyncError:
            raise
        except Exception as exc:      # aiohttp's payload errors: the engine broke the stream
            raise DaemonError(f"reading the image from the Docker daemon: {' '.join(str(exc).split())}") from None
        finally:
            resp.release()

    async def load(self, body: AsyncIterable[bytes]) -> list[str]:
        """`POST /images/load?quiet=1` with a tar streamed from `body`; returns the engine's messages
        (`Loaded image: ...`). An error in the JSON message stream raises with the engine's words."""
        resp = await self._open("POST", "/images/load?quiet=1", data=body,
                                headers={"Content-Type": "application/x-tar"})
        try:
            if resp.status != 200:
                raise await self._failed(resp)
            text = (await resp.read()).decode("utf-8", "replace")
        finally:
            resp.release()
        return parse_messages(text)


    async def delete_image(self, name: str) -> None:
        """`DELETE /images/NAME` (docker rmi, without --force): untags NAME, and removes the image when
        that was its last name and no container uses it."""
        resp = await self._open("DELETE", f"/images/{quote(name, safe='/:@')}")
        try:
            if resp.status != 200:
                raise await self._failed(resp)
            await resp.read()
        finally:
            resp.release()


def parse_messages(text: str) -> list[str]:
    """The engine's JSON message stream (one object after another): the `stream` texts; raises on the
    first `error` / `errorDetail` (or a podman-style `{"message": ..., "response": 500}`)."""
    dec = json.JSONDecoder()
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        try:
            doc, i = dec.raw_decode(text, i)
        except ValueError:
            rest = " ".join(text[i:].split())
            if rest:
                out.append(rest)
            break
        if not isinstance(doc, dict):
            continue
        detail = doc.get("errorDetail")
        error = doc.get("error") or (detail.get("message") if isinstance(detail, dict) else None)
        status = doc.get("response")
        if error is None and isinstance(status, int) and status >= 400 and doc.get("message"):
            error = doc["message"]
        if error:
            raise DaemonError(f"Error response from daemon: {' '.join(str(error).split())}")
        if doc.get("stream"):
            out.append(str(doc["stream"]).strip())
    return out
