"""A signature as stored (dir: signature-N files, lookaside, containers-storage): a simple signing
signature is the binary OpenPGP message itself; other formats are a zero byte, the format name, a
newline and the format's own bytes (sigstore: JSON with mimeType, payload and annotations)."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Union

from fastsync.errors import FastsyncError

SIMPLE_SIGNING = "simple-signing"
SIGSTORE_JSON = "sigstore-json"
SIGSTORE_MIME_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGSTORE_ANNOTATION = "dev.cosignproject.cosign/signature"

# first bytes of an OpenPGP compressed-data, one-pass-signature or signature packet
_OPENPGP_STARTS = frozenset({0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x3D, 0xC4,
                             0x88, 0x89, 0x8A, 0x8B, 0xC2})


@dataclass(frozen=True)
class SimpleSigning:
    message: bytes                      # the OpenPGP signed message

    format = SIMPLE_SIGNING


@dataclass(frozen=True)
class Sigstore:
    mime_type: str
    payload: bytes
    annotations: dict[str, str] = field(default_factory=dict, hash=False)

    format = SIGSTORE_JSON


Signature = Union[SimpleSigning, Sigstore]


class SignatureFormatError(FastsyncError):
    """Stored signature bytes are in no format we know."""


def to_blob(sig: Signature) -> bytes:
    if isinstance(sig, SimpleSigning):
        return sig.message
    chunk = json.dumps({"mimeType": sig.mime_type, "payload": base64.b64encode(sig.payload).decode(),
                        "annotations": dict(sorted(sig.annotations.items()))}, separators=(",", ":")).encode()
    return b"\x00" + SIGSTORE_JSON.encode() + b"\n" + chunk


def from_blob(blob: bytes) -> Signature:
    if not blob:
        raise SignatureFormatError("empty signature blob")
    if blob[0] in _OPENPGP_STARTS:
        return SimpleSigning(blob)
    if blob[0] != 0:
        raise SignatureFormatError(f"unrecognized signature format, starting with binary {blob[0]:#x}")
    name, nl, chunk = blob[1:].partition(b"\n")
    if not nl:
        raise SignatureFormatError("invalid signature format, missing newline")
    if any(b < 32 or b >= 0x7F for b in name):
        raise SignatureFormatError("invalid signature format, non-ASCII byte in the format name")
    if name == SIMPLE_SIGNING.encode():
        return SimpleSigning(chunk)
    if name != SIGSTORE_JSON.encode():
        raise SignatureFormatError(f"unrecognized signature format {name.decode()!r}")
    try:
        doc = json.loads(chunk)
        payload = base64.b64decode(doc.get("payload") or "", validate=True)
        annotations = doc.get("annotations") or {}
        mime = doc.get("mimeType") or ""
        if not isinstance(annotations, dict) or not isinstance(mime, str) or \
                not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
            raise ValueError("bad field types")
    except (ValueError, TypeError, AttributeError) as exc:
        raise SignatureFormatError(f"invalid sigstore signature: {exc}") from None
    return Sigstore(mime, payload, dict(annotations))
