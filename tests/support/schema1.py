"""Signed Docker schema 1 manifests (libtrust JWS, ECDSA P-256), as docker produced them.

``make_schema1``, ``sign_schema1``, ``manifest_digest`` (signatures stripped, as distribution computes it),
``libtrust_key_id`` (also the ``kid`` distribution's token auth matches).
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Optional

from .imagemodel import (
    CREATED,
    DOCKER_LAYER_GZIP,
    DOCKER_V2S1_SIGNED,
    EMPTY_GZIP_LAYER,
    SCHEMA1_NAME,
    SCHEMA1_TAG,
    Blob,
    SampleImage,
    layer_seed,
    make_layer,
    sha256_digest,
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def libtrust_key_id(public_key) -> str:
    """libtrust's key ID: base32 of the first 240 bits of sha256(PKIX DER), in 4-char groups."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def _schema1_payload_and_tail(manifest: bytes) -> tuple[bytes, Optional[dict]]:
    """Strip libtrust signatures: return the signed payload (what the digest is of)."""
    try:
        obj = json.loads(manifest)
    except ValueError:
        return manifest, None
    if not isinstance(obj, dict) or obj.get("schemaVersion") != 1 or "signatures" not in obj:
        return manifest, None
    protected = json.loads(_b64url_decode(obj["signatures"][0]["protected"]))
    n = protected["formatLength"]
    tail = _b64url_decode(protected["formatTail"])
    return manifest[:n] + tail, protected


def manifest_digest(manifest: bytes) -> str:
    """The digest a registry (and ``skopeo manifest-digest``) computes for these bytes."""
    payload, _ = _schema1_payload_and_tail(manifest)
    return sha256_digest(payload)


def make_schema1(seed: int, name: str = SCHEMA1_NAME, tag: str = SCHEMA1_TAG,
                 arch: str = "amd64", layer_size: int = 32 * 1024) -> SampleImage:
    # Layers bottom-up: a real layer, an ENV (empty layer), a second real layer, a CMD (empty).
    raw1, l1 = make_layer(layer_seed(seed, 0), layer_size, "gzip")
    raw2, l2 = make_layer(layer_seed(seed, 1), layer_size, "gzip")
    steps = [
        (l1, "/bin/sh -c #(nop) ADD file:" + hashlib.sha256(raw1).hexdigest() + " in / "),
        (EMPTY_GZIP_LAYER, f"/bin/sh -c #(nop)  ENV FASTSYNC_SAMPLE={seed}"),
        (l2, "/bin/sh -c #(nop) ADD file:" + hashlib.sha256(raw2).hexdigest() + " in /usr "),
        (EMPTY_GZIP_LAYER, '/bin/sh -c #(nop)  CMD ["/bin/sh"]'),
    ]
    ids = [hashlib.sha256(f"fastsync-v1-id:{seed}:{i}".encode()).hexdigest() for i in range(len(steps))]
    v1: list[str] = []
    for i, (_blob, created_by) in enumerate(steps):
        entry: dict = {}
        if i == len(steps) - 1:
            entry["architecture"] = arch
            entry["config"] = {"Hostname": "", "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                                      f"FASTSYNC_SAMPLE={seed}"],
                               "Cmd": ["/bin/sh"], "Image": "sha256:" + ids[i - 1], "Labels": {}}
            entry["container"] = hashlib.sha256(f"container:{seed}".encode()).hexdigest()
        entry["container_config"] = {"Cmd": [created_by]}
        entry["created"] = f"2023-01-01T00:00:0{i}.000000000Z"
        if i == len(steps) - 1:
            entry["docker_version"] = "20.10.23"
        entry["id"] = ids[i]
        if i == len(steps) - 1:
            entry["os"] = "linux"
        if i > 0:
            entry["parent"] = ids[i - 1]
        if _blob is EMPTY_GZIP_LAYER:
            entry["throwaway"] = True
        v1.append(json.dumps(entry, separators=(",", ":")))
    manifest = {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": arch,
        "fsLayers": [{"blobSum": sha256_digest(b)} for b, _ in reversed(steps)],
        "history": [{"v1Compatibility": s} for s in reversed(v1)],
    }
    data, digest = sign_schema1(manifest, seed)
    blobs: dict[str, Blob] = {}
    for b, _ in steps:
        blobs.setdefault(sha256_digest(b), Blob(sha256_digest(b), b, DOCKER_LAYER_GZIP))
    return SampleImage(manifest=data, media_type=DOCKER_V2S1_SIGNED, digest=digest,
                       blobs=tuple(blobs.values()), platform=("linux", arch, None),
                       diff_ids=(sha256_digest(raw1), sha256_digest(raw2)))


def sign_schema1(manifest: dict, seed: int) -> tuple[bytes, str]:
    """``manifest`` (a schema 1 document without signatures) signed as docker signed it, with a key
    derived from ``seed``; returns (the signed bytes, the registry's digest of them)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    payload = json.dumps(manifest, indent=3).encode()  # Go's MarshalIndent(m, "", "   ")
    # libtrust: formatLength = index after the last non-space char before the final '}'
    close = payload.rstrip().rfind(b"}")
    format_length = len(payload[:close].rstrip())
    format_tail = payload[format_length:]

    secret = int.from_bytes(hashlib.sha256(f"fastsync-schema1-key:{seed}".encode()).digest(), "big")
    key = ec.derive_private_key(secret % (2**255) + 1, ec.SECP256R1())
    pub = key.public_key().public_numbers()
    protected = _b64url(json.dumps({"formatLength": format_length, "formatTail": _b64url(format_tail),
                                    "time": CREATED}, separators=(",", ":")).encode())
    sign_input = (protected + "." + _b64url(payload)).encode()
    der = key.sign(sign_input, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    signature = _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    jwk = {"crv": "P-256", "kid": libtrust_key_id(key.public_key()), "kty": "EC",
           "x": _b64url(pub.x.to_bytes(32, "big")), "y": _b64url(pub.y.to_bytes(32, "big"))}
    sigs = [{"header": {"jwk": jwk, "alg": "ES256"}, "signature": signature, "protected": protected}]
    # libtrust PrettySignature: payload[:formatLength] + ',\n   "signatures": '
    #                           + MarshalIndent(sigs, "   ", "   ") + "\n}"
    marshalled = json.dumps(sigs, indent=3).replace("\n", "\n   ")
    data = payload[:format_length] + b',\n   "signatures": ' + marshalled.encode() + b"\n}"
    return data, sha256_digest(payload)
