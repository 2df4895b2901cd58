"""TLS settings per registry: --tls-verify, --cert-dir and the default certs.d directories.

As containers/image does it: one certificate directory per registry -- --cert-dir when given, else
the first that exists of ~/.config/containers/certs.d/HOST:PORT, /etc/containers/certs.d/HOST:PORT
and /etc/docker/certs.d/HOST:PORT. In it, `*.crt` files are extra CAs (added to the system ones)
and each `NAME.cert` must come with `NAME.key` (a client certificate). --tls-verify=false turns
verification off (and lets the registry client fall back to plain HTTP) but still presents a client
certificate when the directory has one.

The system CA bundle costs ~20-30 ms to parse, so a verifying context loads it at its first TLS
handshake (`LazyCAContext`), not when it is built; a context for --tls-verify=false never loads it
(it checks nothing). `import_aiohttp()` imports aiohttp without the two CA loads its connector
module does at import time, and puts a lazy context in place of its default verifying one.
"""
from __future__ import annotations

import logging
import os
import ssl
import sys
import threading
from types import ModuleType
from typing import Any, Optional

from fastsync.errors import FastsyncError
from fastsync.options import TransportOptions

log = logging.getLogger("fastsync")

CERT_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
HOME_CERT_DIR = os.path.join(".config", "containers", "certs.d")


class CertificateError(FastsyncError):
    """A certificate directory holds something unusable (a .cert without .key, a bad PEM file)."""


def cert_dir_for(host: str, opts: TransportOptions) -> Optional[str]:
    """The one directory whose certificates apply to `host` (HOST:PORT), or None."""
    if opts.cert_dir:
        return opts.cert_dir
    candidates = [os.path.join(os.path.expanduser("~"), HOME_CERT_DIR)] + list(CERT_DIRS)
    for base in candidates:
        d = os.path.join(base, host)
        if os.path.isdir(d):
            return d
    return None


def _load_dir(ctx: ssl.SSLContext, d: str, verify: bool) -> None:
    try:
        names = sorted(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        log.debug("no certificates read from %s", d)
        return
    except OSError as exc:
        raise CertificateError(f"reading certificate directory {d}: {exc.strerror or exc}") from None
    log.debug("looking for TLS certificates and private keys in %s", d)
    for name in names:
        path = os.path.join(d, name)
        try:
            if name.endswith(".crt"):
                if verify:
                    ctx.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = name[:-len(".cert")] + ".key"
                if key not in names:
                    raise CertificateError(f"missing key {key} for client certificate {name} in {d}. Note that "
                                           f"CA certificates should use the extension .crt")
                ctx.load_cert_chain(path, os.path.join(d, key))
            elif name.endswith(".key"):
                cert = name[:-len(".key")] + ".cert"
                if cert not in names:
                    raise CertificateError(f"missing client certificate {cert} for key {name} in {d}")
        except ssl.SSLError as exc:
            raise CertificateError(f"loading {path}: {exc.reason or exc}") from None
        except OSError as exc:
            raise CertificateError(f"loading {path}: {exc.strerror or exc}") from None


_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _dir_state(d: Optional[str]) -> tuple:
    """What a certificate directory holds (names, sizes, mtimes): a changed file makes a new context."""
    if not d:
        return ()
    try:
        return tuple((e.name, st.st_size, st.st_mtime_ns) for e in sorted(os.scandir(d), key=lambda e: e.name)
                     for st in (e.stat(),))
    except OSError:
        return ("?",)


def ssl_context(host: str, opts: TransportOptions) -> "ssl.SSLContext":
    """TLS settings for `host`: system CAs plus the cert dir's; --tls-verify=false disables checks.

    Contexts are shared by every registry using the same settings and directory contents (loading
    the system CAs costs ~20 ms a context, which adds up over hundreds of registry clients)."""
    verify = opts.tls_verify is not False
    d = cert_dir_for(host, opts)
    key = (verify, d, _dir_state(d))
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _new_context(verify, d)
        with _CONTEXTS_LOCK:
            ctx = _CONTEXTS.setdefault(key, ctx)
    return ctx


_PATCHING = threading.Lock()          # held while import_aiohttp has SSLContext's CA loads switched off


class LazyCAContext(ssl.SSLContext):
    """A client context that loads the system CAs just before its first handshake (asyncio and
    uvloop both start TLS through wrap_bio; blocking sockets through wrap_socket)."""

    _cas_lock = threading.Lock()
    _cas_loaded = False

    def load_system_cas(self) -> None:
        if self._cas_loaded:
            return
        with self._cas_lock, _PATCHING:     # not while import_aiohttp has the CA loads switched off
            if not self._cas_loaded:
                ssl.SSLContext.load_default_certs(self)
                self._cas_loaded = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self.load_system_cas()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.load_system_cas()
        return super().wrap_socket(*args, **kwargs)


def _new_context(verify: bool, d: Optional[str]) -> "ssl.SSLContext":
    if verify:     # what ssl.create_default_context() sets up, the CA bundle deferred
        ctx: ssl.SSLContext = LazyCAContext(ssl.PROTOCOL_TLS_CLIENT)
    else:          # nothing is verified: no CA bundle at all
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if d:
        _load_dir(ctx, d, verify)
    return ctx


def import_aiohttp() -> ModuleType:
    """`import aiohttp`, without the ~50 ms its connector spends loading the CA bundle twice at import.

    While it imports, loading default CAs is a no-op; then its default verifying context (used by
    a request that passes no ``ssl=``) is replaced by a `LazyCAContext`. Its default non-verifying
    context checks nothing, so it needs no CAs. An aiohttp without those module globals keeps
    whatever it built (a context without CAs fails verification: it never accepts more)."""
    def skip(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        return None

    with _PATCHING:                    # it may run in a thread while the loop starts TLS (early pings)
        mod = sys.modules.get("aiohttp")
        if mod is not None:
            return mod
        cls = ssl.SSLContext
        names = ("load_default_certs", "set_default_verify_paths")
        saved = {name: cls.__dict__.get(name) for name in names}     # None: inherited from _ssl._SSLContext
        for name in names:
            setattr(cls, name, skip)
        try:
            import aiohttp
            import aiohttp.connector as connector
        finally:
            for name, method in saved.items():
                if method is None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, method)
        if isinstance(getattr(connector, "_SSL_CONTEXT_VERIFIED", None), ssl.SSLContext):
            lazy = LazyCAContext(ssl.PROTOCOL_TLS_CLIENT)
            lazy.set_alpn_protocols(("http/1.1",))
            connector._SSL_CONTEXT_VERIFIED = lazy   # type: ignore[attr-defined]
        return aiohttp
