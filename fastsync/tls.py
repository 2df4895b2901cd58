"""TLS settings per registry: --tls-verify, --cert-dir and the default certs.d directories."""
from __future__ import annotations

import glob
import os
import ssl

from .options import TransportOptions

CERT_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")


def ssl_context(host: str, opts: TransportOptions) -> "ssl.SSLContext | bool":
    """TLS settings for `host`: --tls-verify=false disables checks; cert dirs add CAs and client certs."""
    if opts.tls_verify is False:
        return False
    ctx = ssl.create_default_context()
    dirs = [opts.cert_dir] if opts.cert_dir else [os.path.join(d, host) for d in CERT_DIRS]
    for d in dirs:
        if not d or not os.path.isdir(d):
            continue
        for ca in sorted(glob.glob(os.path.join(d, "*.crt"))):
            ctx.load_verify_locations(cafile=ca)
        for cert in sorted(glob.glob(os.path.join(d, "*.cert"))):
            key = cert[:-len(".cert")] + ".key"
            if os.path.exists(key):
                ctx.load_cert_chain(cert, key)
    return ctx
