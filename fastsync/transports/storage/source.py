"""Reading images straight from a registry storage tree, as the registry would serve them.

The registry keeps schema 1 manifests as their unsigned payload and signs them with its own key on
every GET; this source does the same with a key of its own (libtrust JWS, ES256), so the bytes
can be pushed to another registry. The digest, taken over the payload, does not change.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from fastsync.errors import DigestMismatch, NotFound
from fastsync.manifest import manifest_digest, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.transports.base import ImageSource, file_chunks
from fastsync.transports.localfs import checked_file

if TYPE_CHECKING:
    from fastsync.transports.storage.reference import StorageImageReference


class StorageSource(ImageSource):
    def __init__(self, ref: StorageImageReference, top: Digest) -> None:
        assert ref.name
        self.reference = ref
        self.layout = ref.layout
        self.name = ref.name
        self.top = top
        self._key: Any = None

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        digest = digest or self.top
        # Like the registry: a manifest is in a repository only through its revision link.
        if not self.layout.linked(self.layout.revision_link(self.name, digest), digest):
            raise NotFound(f"{self.reference}: manifest {digest} is not in repository {self.name}")
        path = self.layout.blob_data(digest)
        try:
            checked_file(path, self.layout.root, f"{self.reference}: manifest {digest}")
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"{self.reference}: manifest {digest} is linked but its data is missing ({path})") \
                from None
        actual = manifest_digest(raw)
        if actual != digest:
            raise DigestMismatch(f"manifest {digest} in {self.layout.root}", str(digest), str(actual))
        man = parse_manifest(raw)
        if man.is_schema1 and not man.doc.get("signatures"):
            if self._key is None:
                self._key = new_signing_key()
            raw = sign_schema1(raw, self._key)
            return raw, parse_manifest(raw).media_type
        return raw, man.media_type

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return checked_file(self.layout.blob_data(desc.digest), self.layout.root,
                            f"{self.reference}: blob {desc.digest}")

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        path = self.blob_path(desc)
        if path is None:
            raise NotFound(f"{self.reference}: blob {desc.digest} not found ({self.layout.blob_data(desc.digest)})")
        return file_chunks(path)

    async def list_tags(self) -> list[str]:
        return self.layout.tags(self.name)


# ---- schema 1 signing (libtrust JWS with an ES256 key, as distribution does on GET) ------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_signing_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_id(public_key: Any) -> str:
    """libtrust's key ID: base32 of the first 240 bits of sha256(PKIX DER), in 4-character groups."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def sign_schema1(payload: bytes, key: Any) -> bytes:
    """The payload as a signed schema 1 manifest (v1+prettyjws) whose signed payload is `payload`."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    close = payload.rstrip().rfind(b"}")
    length = len(payload[:close].rstrip())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    protected = _b64url(json.dumps({"formatLength": length, "formatTail": _b64url(payload[length:]),
                                    "time": stamp}, separators=(",", ":")).encode())
    der = key.sign(f"{protected}.{_b64url(payload)}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    pub = key.public_key().public_numbers()
    jwk = {"crv": "P-256", "kid": _key_id(key.public_key()), "kty": "EC",
           "x": _b64url(pub.x.to_bytes(32, "big")), "y": _b64url(pub.y.to_bytes(32, "big"))}
    signature = _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    sigs = [{"header": {"jwk": jwk, "alg": "ES256"}, "signature": signature, "protected": protected}]
    indent = "   "
    body = json.dumps(sigs, indent=3).replace("\n", "\n" + indent)
    return payload[:length] + f',\n{indent}"signatures": {body}\n}}'.encode()
