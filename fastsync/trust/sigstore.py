"""Sigstore (cosign) signing with a key file: the encrypted private key format cosign writes and
containers/image reads (PEM "ENCRYPTED COSIGN PRIVATE KEY": JSON with scrypt parameters and a NaCl
secretbox of the PKCS#8 key), signing a payload, and verifying one with a PEM public key."""
from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalid
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from fastsync.errors import FastsyncError
from fastsync.trust.formats import SIGSTORE_ANNOTATION, SIGSTORE_MIME_TYPE, Sigstore
from fastsync.trust.payload import InvalidSignature

PEM_TYPES = ("ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED SIGSTORE PRIVATE KEY")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1


class SigstoreKeyError(FastsyncError):
    """A sigstore key file cannot be read, decrypted or used."""


def _pem_body(text: bytes) -> tuple[str, bytes]:
    lines = text.decode(errors="replace").strip().splitlines()
    if not lines or not lines[0].startswith("-----BEGIN ") or not lines[0].endswith("-----"):
        raise SigstoreKeyError("invalid pem block")
    kind = lines[0][len("-----BEGIN "):-5]
    end = f"-----END {kind}-----"
    if end not in lines:
        raise SigstoreKeyError("invalid pem block")
    body = "".join(lines[1:lines.index(end)])
    try:
        return kind, base64.b64decode(body, validate=True)
    except ValueError:
        raise SigstoreKeyError("invalid pem block") from None


def _secretbox():
    from nacl.secret import SecretBox
    return SecretBox


def decrypt_private_key(pem: bytes, passphrase: bytes) -> Any:
    """The private key of a cosign key file (ECDSA, RSA or Ed25519)."""
    kind, body = _pem_body(pem)
    if kind not in PEM_TYPES:
        raise SigstoreKeyError(f"unsupported pem type: {kind}")
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
            raise ValueError(f"unsupported kdf {kdf.get('name')!r} or cipher {cipher.get('name')!r}")
        params = kdf["params"]
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(doc["ciphertext"])
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SigstoreKeyError(f"decrypt: malformed encrypted key: {exc}") from None
    key = hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + (1 << 20), dklen=32)
    from nacl.exceptions import CryptoError
    try:
        der = _secretbox()(key).decrypt(ciphertext, nonce)
    except CryptoError:
        raise SigstoreKeyError("decrypt: encrypted: decryption failed") from None
    try:
        return serialization.load_der_private_key(der, password=None)
    except ValueError as exc:
        raise SigstoreKeyError(f"parsing private key: {exc}") from None


def encrypt_private_key(private_key: Any, passphrase: bytes) -> bytes:
    """A cosign key file for `private_key` (what `cosign generate-key-pair` writes)."""
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    key = hashlib.scrypt(passphrase, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=256 * SCRYPT_R * SCRYPT_N, dklen=32)
    sealed = _secretbox()(key).encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n" + "\n".join(lines) +
            "\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n").encode()


def public_pem(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(private_key: Any, payload: bytes) -> Sigstore:
    """A sigstore signature of `payload` (SHA-256; ECDSA signatures DER-encoded), base64 in the
    cosign annotation."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        raw = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        raw = private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.sign(payload)
    else:
        raise SigstoreKeyError("unsupported key type")
    return Sigstore(SIGSTORE_MIME_TYPE, payload, {SIGSTORE_ANNOTATION: base64.b64encode(raw).decode()})


def load_public_key(pem: bytes) -> Any:
    try:
        return serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise InvalidSignature(f"parsing public key: {exc}") from None


def verify(public_key: Any, payload: bytes, b64_signature: str) -> None:
    """Check a sigstore signature cryptographically; raises InvalidSignature."""
    try:
        raw = base64.b64decode(b64_signature, validate=True)
    except ValueError as exc:
        raise InvalidSignature(f"base64 decoding: {exc}") from None
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(raw, payload)
        else:
            raise InvalidSignature("creating verifier: unsupported public key type")
    except _CryptoInvalid:
        raise InvalidSignature("cryptographic signature verification failed: invalid signature") from None
