"""Real ``docker-registry`` (CNCF distribution 2.8) processes on loopback, for tests and benchmarks.

Public API
----------
``Registry(auth=None, tls=False, client_cert=False, root=None, username="fastsync",
           password="fastsync-secret", token_server=None, token_users=None,
           allow_anonymous_pull=True, extra_config=None, binary="docker-registry")``
    ``auth``: None (anonymous), "htpasswd" (basic auth, bcrypt htpasswd file) or "token"
    (bearer tokens from a ``TokenServer``; one is created and owned when not given,
    with ``{username: password}`` or ``token_users``). ``tls``: serve HTTPS with a
    server certificate for 127.0.0.1/localhost signed by a generated CA;
    ``client_cert``: also require a client certificate signed by that CA
    (``http.tls.clientcas``). ``root``: use this existing storage root directory
    (kept on stop) instead of a fresh temporary one. ``extra_config``: dict merged
    into the generated config.
    ``start()`` / ``stop()`` (process only; ``start()`` again reuses the port when free) /
    ``restart()`` / ``cleanup()`` (stop and delete the temp dir, never a caller's root) /
    context manager (exit = cleanup).
    Attributes: ``url`` ("http(s)://127.0.0.1:PORT"), ``host`` ("127.0.0.1:PORT"),
    ``port``, ``pid`` (of the running process, else None), ``root``, ``workdir``, ``config_path``, ``log_path``, ``ca_path`` (CA
    PEM or None), ``cert_dir`` (skopeo --cert-dir layout: ca.crt [+ client.cert,
    client.key]; None without TLS), ``client_cert_path``/``client_key_path``,
    ``username``/``password`` (None without auth), ``creds`` ("user:pass" or None),
    ``token_server``, ``tls_verify`` (True for TLS).
    ``log_tail(n=40)`` -> str. ``skopeo_args(side="dest"|"src"|None, creds=True)`` -> flags
    for skopeo (``--dest-tls-verify``, ``--dest-cert-dir``, ``--dest-creds``).
    ``push_image(image, repo, ref=None)``: upload blobs (POST + monolithic PUT) and PUT the
    manifests (children first) with plain HTTP requests, checking the registry's digest.
    Byte-exact for everything but schema 1: distribution stores the signed payload only
    and re-signs it with its own key on every GET (the digest is stable, the bytes are not).
    ``request(method, path, headers=None, data=None, auth=True)`` ->
    ``Response(status, headers, body)``: an HTTP request with the registry's TLS setup,
    basic auth or the bearer-token dance done for you; redirects are not followed.
``free_port(host="127.0.0.1")`` -> int.
``htpasswd_line(user, password)`` -> bcrypt "user:$2y$..." line.
"""
from __future__ import annotations

import atexit
import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import yaml

from .certs import CA, write_cert_dir
from .tokenserver import TokenServer

if TYPE_CHECKING:
    from .images import SampleImage


# Safety net: docker-registry processes still running when the interpreter exits are
# terminated, even when their Registry object was dropped without stop() (a failed
# test), so a test session never leaves registries behind. Strong references on purpose.
_LIVE: "set[subprocess.Popen]" = set()


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.terminate()
    for proc in list(_LIVE):
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    _LIVE.clear()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def htpasswd_line(user: str, password: str) -> str:
    exe = shutil.which("htpasswd")
    if exe:
        out = subprocess.run([exe, "-Bbn", user, password], check=True, capture_output=True, text=True)
        return out.stdout.strip()
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError("need `htpasswd` (apt apache2-utils) or the `bcrypt` package") from e
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}"


def _merge(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v
    return dst


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


class Registry:
    def __init__(
        self,
        auth: Optional[str] = None,
        tls: bool = False,
        client_cert: bool = False,
        root: Optional[Union[str, os.PathLike]] = None,
        username: str = "fastsync",
        password: str = "fastsync-secret",
        token_server: Optional[TokenServer] = None,
        token_users: Optional[dict[str, str]] = None,
        allow_anonymous_pull: bool = True,
        extra_config: Optional[dict] = None,
        binary: str = "docker-registry",
    ) -> None:
        if auth not in (None, "htpasswd", "token"):
            raise ValueError(f"auth must be None, 'htpasswd' or 'token', not {auth!r}")
        self.auth = auth
        self.tls = tls or client_cert
        self.client_cert = client_cert
        self.username = username if auth else None
        self.password = password if auth else None
        self.extra_config = extra_config or {}
        self.binary = binary
        self._tmp = tempfile.TemporaryDirectory(prefix="fastsync-registry-")
        self.workdir = Path(self._tmp.name)
        self.root = Path(root) if root is not None else self.workdir / "storage"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.port = 0
        self._proc: Optional[subprocess.Popen] = None
        self._log_file = None
        self.ca_path: Optional[Path] = None
        self.cert_dir: Optional[Path] = None
        self.client_cert_path: Optional[Path] = None
        self.client_key_path: Optional[Path] = None
        self._owns_token_server = False
        self.token_server = token_server
        if auth == "token" and token_server is None:
            self.token_server = TokenServer(users=token_users or {username: password},
                                            allow_anonymous=allow_anonymous_pull,
                                            workdir=str(self.workdir))
            self._owns_token_server = True
        if self.tls:
            self._make_certs()

    # ---- set-up
    def _make_certs(self) -> None:
        ca = CA.create("fastsync registry test CA")
        server = ca.issue_server(("127.0.0.1", "localhost"))
        server.write(self.workdir / "server.crt", self.workdir / "server.key")
        self.ca_path = self.workdir / "ca.crt"
        self.ca_path.write_bytes(ca.cert_pem)
        client = ca.issue_client("fastsync-client") if self.client_cert else None
        self.cert_dir = write_cert_dir(self.workdir / "certs.d", ca, client)
        if client is not None:
            self.client_cert_path = self.cert_dir / "client.cert"
            self.client_key_path = self.cert_dir / "client.key"

    def _config(self) -> dict:
        cfg: dict = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "fastsync-test-secret",
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
            "compatibility": {"schema1": {"enabled": True}},
        }
        if self.tls:
            tls: dict = {"certificate": str(self.workdir / "server.crt"),
                         "key": str(self.workdir / "server.key")}
            if self.client_cert:
                tls["clientcas"] = [str(self.ca_path)]
            cfg["http"]["tls"] = tls
        if self.auth == "htpasswd":
            path = self.workdir / "htpasswd"
            path.write_text(htpasswd_line(self.username, self.password) + "\n")  # type: ignore[arg-type]
            cfg["auth"] = {"htpasswd": {"realm": "fastsync-registry", "path": str(path)}}
        elif self.auth == "token":
            assert self.token_server is not None
            cfg["auth"] = {"token": self.token_server.registry_config()}
        return _merge(cfg, self.extra_config)

    # ---- properties
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def creds(self) -> Optional[str]:
        return f"{self.username}:{self.password}" if self.auth else None

    @property
    def tls_verify(self) -> bool:
        return self.tls

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        """The docker-registry process id while it runs (the benchmark reads its CPU time)."""
        return self._proc.pid if self.running and self._proc is not None else None

    # ---- lifecycle
    def start(self, timeout: float = 20) -> "Registry":
        if self.running:
            return self
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} not found (apt-get install docker-registry)")
        if self.token_server is not None and self._owns_token_server:
            self.token_server.start()
        last_error = ""
        for attempt in range(5):
            if attempt or not self.port:
                self.port = free_port()
            self.config_path.write_text(yaml.safe_dump(self._config(), sort_keys=False))
            self._log_file = open(self.log_path, "ab")
            self._proc = subprocess.Popen([self.binary, "serve", str(self.config_path)],
                                          stdin=subprocess.DEVNULL, stdout=self._log_file,
                                          stderr=subprocess.STDOUT, start_new_session=True)
            _LIVE.add(self._proc)
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError as e:
                last_error = str(e)
                self._kill()
                if "address already in use" not in last_error:
                    break
        self.stop()
        raise RuntimeError(last_error)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                status = self.request("GET", "/v2/", auth=False, timeout=2).status
                if status in (200, 401):
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer /v2/ within {timeout}s:\n{self.log_tail()}")

    def _kill(self) -> None:
        if self._proc is not None:
            _LIVE.discard(self._proc)
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        self._kill()
        if self._owns_token_server and self.token_server is not None:
            self.token_server.stop()

    def restart(self) -> "Registry":
        self._kill()
        return self.start()

    def cleanup(self) -> None:
        """Stop and remove the temporary directory (not a caller-provided root)."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])

    # ---- helpers for tests
    def skopeo_args(self, side: Optional[str] = "dest", creds: bool = True) -> list[str]:
        pre = f"--{side}-" if side else "--"
        args = [f"{pre}tls-verify={'true' if self.tls else 'false'}"]
        if self.cert_dir is not None:
            args.append(f"{pre}cert-dir={self.cert_dir}")
        if creds and self.creds:
            args.append(f"{pre}creds={self.creds}")
        return args

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        if self.client_cert_path is not None:
            ctx.load_cert_chain(str(self.client_cert_path), str(self.client_key_path))
        return ctx

    def _open(self, method: str, url: str, headers: dict, data: Optional[bytes], timeout: float) -> Response:
        handlers: list = [_NoRedirect()]
        ctx = self.ssl_context()
        if ctx is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        opener = urllib.request.build_opener(*handlers)
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def request(self, method: str, path: str, headers: Optional[dict] = None, data: Optional[bytes] = None,
                auth: bool = True, timeout: float = 30) -> Response:
        headers = dict(headers or {})
        url = path if path.startswith(("http://", "https://")) else self.url + path
        if auth and self.auth == "htpasswd":
            headers["Authorization"] = "Basic " + base64.b64encode(self.creds.encode()).decode()  # type: ignore[union-attr]
        resp = self._open(method, url, headers, data, timeout)
        challenge = resp.headers.get("WWW-Authenticate", "") if resp.status == 401 else ""
        if auth and self.auth == "token" and challenge.startswith("Bearer "):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            query = {"service": params.get("service", "")}
            if params.get("scope"):
                query["scope"] = params["scope"]
            token_url = params["realm"] + "?" + urllib.parse.urlencode(query)
            basic = "Basic " + base64.b64encode(self.creds.encode()).decode()  # type: ignore[union-attr]
            with urllib.request.urlopen(urllib.request.Request(token_url, headers={"Authorization": basic}),
                                        timeout=timeout) as tok:
                token = json.loads(tok.read())["token"]
            headers["Authorization"] = "Bearer " + token
            resp = self._open(method, url, headers, data, timeout)
        return resp

    def push_image(self, image: "SampleImage", repo: str, ref: Optional[str] = None) -> None:
        """Push ``image`` byte-exactly: blobs, then child manifests by digest, then the
        top manifest by ``ref`` (a tag; default: by digest). Raises RuntimeError on failure."""
        for digest, data in image.all_blobs().items():
            if self.request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200:
                continue
            resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", data=b"")
            if resp.status != 202:
                raise RuntimeError(f"POST upload {repo}: {resp.status} {resp.body[:300]!r}")
            location = resp.headers["Location"]
            sep = "&" if "?" in location else "?"
            resp = self.request("PUT", f"{location}{sep}digest={digest}", data=data,
                                headers={"Content-Type": "application/octet-stream"})
            if resp.status != 201:
                raise RuntimeError(f"PUT blob {digest}: {resp.status} {resp.body[:300]!r}")
        for child in image.children:
            self._put_manifest(repo, child.digest, child)
        self._put_manifest(repo, ref or image.digest, image)

    def _put_manifest(self, repo: str, ref: str, image: "SampleImage") -> None:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", data=image.manifest,
                            headers={"Content-Type": image.media_type})
        if resp.status != 201:
            raise RuntimeError(f"PUT manifest {repo}:{ref}: {resp.status} {resp.body[:500]!r}")
        got = resp.headers.get("Docker-Content-Digest")
        if got != image.digest:
            raise RuntimeError(f"registry computed {got} for {repo}:{ref}, expected {image.digest}")
