"""Layer encryption as ocicrypt does it with its JWE protocol, so that skopeo decrypts what fastsync
encrypted and the reverse.

A layer is encrypted with AES-256-CTR under a fresh symmetric key and nonce, an HMAC-SHA256 (same
key) of the ciphertext goes into the public options; the private options (key, nonce, the plain
layer's digest) are wrapped for each recipient in a JWE (A256GCM content encryption; the key wrapped
with RSA-OAEP for RSA keys, ECDH-ES+A256KW for EC keys). Both go into the layer's annotations and
the media type gains `+encrypted`."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from fastsync.errors import FastsyncError, UsageError

JWE_ANNOTATION = "org.opencontainers.image.enc.keys.jwe"
PUBOPTS_ANNOTATION = "org.opencontainers.image.enc.pubopts"
ENC_PREFIX = "org.opencontainers.image.enc."
CIPHER = "AES_256_CTR_HMAC_SHA256"
ENCRYPTED = "+encrypted"


class EncryptionError(FastsyncError):
    """A layer cannot be encrypted or decrypted (bad key, no usable key, corrupt data)."""


@dataclass(frozen=True)
class EncryptConfig:
    recipients: tuple[Any, ...] = field(hash=False, compare=False)   # public keys (RSA, EC)
    layers: Optional[tuple[int, ...]] = None                          # indexes (negative from the end); None: all


@dataclass(frozen=True)
class DecryptConfig:
    keys: tuple[Any, ...] = field(hash=False, compare=False)          # private keys (RSA, EC)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"{what} {path}: {(exc.strerror or str(exc)).lower()}") from None


def encryption_keys(specs: list[str]) -> tuple[Any, ...]:
    """--encryption-key values: `jwe:PUBKEY.pem` (PEM public key, RSA or EC)."""
    keys = []
    for spec in specs:
        proto, sep, path = spec.partition(":")
        if not sep or proto != "jwe":
            raise UsageError(f"Invalid encryption keys: unsupported protocol in {spec!r}: fastsync supports "
                             "jwe:PUBLIC-KEY.pem only (pgp, pkcs7 and pkcs11 are not implemented)")
        try:
            key = serialization.load_pem_public_key(_read(path, "Invalid encryption keys: reading"))
        except ValueError as exc:
            raise UsageError(f"Invalid encryption keys: {path} is not a PEM public key: {exc}") from None
        if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise UsageError(f"Invalid encryption keys: {path}: only RSA and EC keys can be used with jwe")
        keys.append(key)
    return tuple(keys)


def decryption_keys(specs: list[str]) -> tuple[Any, ...]:
    """--decryption-key values: `KEY.pem`, `KEY.pem:pass=PASSWORD` or `KEY.pem:filename=PASSFILE`."""
    keys = []
    for spec in specs:
        path, password = spec, None
        for marker in (":pass=", ":filename="):
            if marker in spec:
                path, _, value = spec.partition(marker)
                password = value.encode() if marker == ":pass=" else \
                    _read(value, "Invalid decryption keys: reading").split(b"\n")[0]
        data = _read(path, "Invalid decryption keys: reading")
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"Invalid decryption keys: {path} is not a usable PEM private key: {exc}") from None
        keys.append(key)
    return tuple(keys)


# ---- JWE (RFC 7516, JSON serialization) -------------------------------------------------------

def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _coord(n: int, curve: ec.EllipticCurve) -> str:
    return _b64u(n.to_bytes((curve.key_size + 7) // 8, "big"))


_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


def _kdf(shared: bytes, header: dict[str, Any]) -> bytes:
    def part(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b
    alg = header["alg"].encode()
    info = part(alg) + part(_unb64u(header.get("apu", ""))) + part(_unb64u(header.get("apv", ""))) + \
        (256).to_bytes(4, "big")
    return ConcatKDFHash(hashes.SHA256(), 32, info).derive(shared)


def _wrap(key: Any, cek: bytes) -> tuple[dict[str, Any], bytes]:
    if isinstance(key, rsa.RSAPublicKey):
        return {"alg": "RSA-OAEP"}, key.encrypt(cek, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
    eph = ec.generate_private_key(key.curve)
    nums = eph.public_key().public_numbers()
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
    header = {"alg": "ECDH-ES+A256KW",
              "epk": {"kty": "EC", "crv": crv, "x": _coord(nums.x, key.curve), "y": _coord(nums.y, key.curve)}}
    return header, aes_key_wrap(_kdf(eph.exchange(ec.ECDH(), key), header), cek)


def _unwrap(key: Any, header: dict[str, Any], encrypted_key: bytes) -> Optional[bytes]:
    alg = header.get("alg")
    try:
        if isinstance(key, rsa.RSAPrivateKey) and alg in ("RSA-OAEP", "RSA-OAEP-256"):
            h = hashes.SHA1() if alg == "RSA-OAEP" else hashes.SHA256()
            return key.decrypt(encrypted_key, padding.OAEP(padding.MGF1(h), h, None))
        if isinstance(key, ec.EllipticCurvePrivateKey) and alg == "ECDH-ES+A256KW":
            epk = header["epk"]
            curve = _CURVES[epk["crv"]]()
            if curve.name != key.curve.name:
                return None
            pub = ec.EllipticCurvePublicNumbers(int.from_bytes(_unb64u(epk["x"]), "big"),
                                                int.from_bytes(_unb64u(epk["y"]), "big"), curve).public_key()
            return aes_key_unwrap(_kdf(key.exchange(ec.ECDH(), pub), header), encrypted_key)
    except (ValueError, KeyError, TypeError, InvalidUnwrap):
        return None
    return None


def jwe_encrypt(plaintext: bytes, recipients: tuple[Any, ...]) -> bytes:
    """A JWE in JSON serialization (flattened for one recipient, as go-jose writes it)."""
    cek, iv = os.urandom(32), os.urandom(12)
    wrapped = [_wrap(k, cek) for k in recipients]
    if len(wrapped) == 1:
        protected = _b64u(json.dumps({**wrapped[0][0], "enc": "A256GCM"}, separators=(",", ":")).encode())
        doc: dict[str, Any] = {"protected": protected, "encrypted_key": _b64u(wrapped[0][1])}
    else:
        protected = _b64u(b'{"enc":"A256GCM"}')
        doc = {"protected": protected,
               "recipients": [{"header": h, "encrypted_key": _b64u(k)} for h, k in wrapped]}
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    doc.update(iv=_b64u(iv), ciphertext=_b64u(sealed[:-16]), tag=_b64u(sealed[-16:]))
    return json.dumps(doc, separators=(",", ":")).encode()


def jwe_decrypt(data: bytes, keys: tuple[Any, ...]) -> Optional[bytes]:
    """The plaintext of a JWE (JSON or compact serialization) for the first key that opens it."""
    try:
        text = data.decode().strip()
        if text.startswith("{"):
            doc = json.loads(text)
        else:
            p, k, iv, ct, tag = text.split(".")
            doc = {"protected": p, "encrypted_key": k, "iv": iv, "ciphertext": ct, "tag": tag}
        protected_b64 = doc.get("protected", "")
        shared = {**(json.loads(_unb64u(protected_b64)) if protected_b64 else {}), **doc.get("unprotected", {})}
        recipients = doc.get("recipients") or [{"header": {}, "encrypted_key": doc.get("encrypted_key", "")}]
        aad = protected_b64.encode() + (b"." + doc["aad"].encode() if doc.get("aad") else b"")
        iv, sealed = _unb64u(doc["iv"]), _unb64u(doc["ciphertext"]) + _unb64u(doc["tag"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise EncryptionError(f"malformed JWE: {exc}") from None
    if shared.get("enc") != "A256GCM":
        raise EncryptionError(f"unsupported JWE content encryption {shared.get('enc')!r}")
    for r in recipients:
        header = {**shared, **(r.get("header") or {})}
        for key in keys:
            cek = _unwrap(key, header, _unb64u(r.get("encrypted_key", "")))
            if cek is None:
                continue
            try:
                return AESGCM(cek).decrypt(iv, sealed, aad)
            except Exception:
                continue
    return None


# ---- the layer cipher -------------------------------------------------------------------------

@dataclass
class LayerCipher:
    """AES-256-CTR over a stream, with the HMAC-SHA256 of the ciphertext."""

    key: bytes
    nonce: bytes
    encrypting: bool

    def __post_init__(self) -> None:
        c = Cipher(algorithms.AES(self.key), modes.CTR(self.nonce))
        self._ctx = c.encryptor() if self.encrypting else c.decryptor()
        self._mac = hmac.new(self.key, digestmod=hashlib.sha256)

    def update(self, chunk: bytes) -> bytes:
        out = self._ctx.update(chunk)
        self._mac.update(out if self.encrypting else chunk)
        return out

    def finish(self) -> tuple[bytes, bytes]:
        return self._ctx.finalize(), self._mac.digest()


def new_layer_key(plain_digest: str) -> tuple[LayerCipher, dict[str, Any]]:
    key, nonce = os.urandom(32), os.urandom(16)
    private = {"symkey": base64.b64encode(key).decode(), "digest": plain_digest,
               "cipheroptions": {"nonce": base64.b64encode(nonce).decode()}}
    return LayerCipher(key, nonce, True), private


def annotations_for(private: dict[str, Any], mac: bytes, recipients: tuple[Any, ...]) -> dict[str, str]:
    jwe = jwe_encrypt(json.dumps(private, separators=(",", ":")).encode(), recipients)
    pub = {"cipher": CIPHER, "hmac": base64.b64encode(mac).decode(), "cipheroptions": {}}
    return {JWE_ANNOTATION: base64.b64encode(jwe).decode(),
            PUBOPTS_ANNOTATION: base64.b64encode(json.dumps(pub, separators=(",", ":")).encode()).decode()}


def open_layer(annotations: dict[str, str], keys: tuple[Any, ...], what: str) -> tuple[LayerCipher, bytes, str]:
    """(a decrypting cipher, the expected HMAC, the plain layer's digest) from a layer's annotations."""
    try:
        pub = json.loads(base64.b64decode(annotations[PUBOPTS_ANNOTATION]))
        if pub.get("cipher") != CIPHER:
            raise EncryptionError(f"{what}: unsupported layer cipher {pub.get('cipher')!r}")
        mac = base64.b64decode(pub["hmac"])
        jwes = [base64.b64decode(v) for v in annotations[JWE_ANNOTATION].split(",")]
    except (KeyError, ValueError, TypeError, AttributeError):
        raise EncryptionError(f"{what}: not a jwe-encrypted layer (its {JWE_ANNOTATION} or "
                              f"{PUBOPTS_ANNOTATION} annotation is missing or malformed)") from None
    for jwe in jwes:
        opened = jwe_decrypt(jwe, keys)
        if opened is None:
            continue
        try:
            private = json.loads(opened)
            key = base64.b64decode(private["symkey"])
            nonce = base64.b64decode(private["cipheroptions"]["nonce"])
            return LayerCipher(key, nonce, False), mac, private["digest"]
        except (KeyError, ValueError, TypeError) as exc:
            raise EncryptionError(f"{what}: malformed private layer options: {exc}") from None
    raise EncryptionError(f"{what}: no suitable key unwrapper found or none of the private keys could be used "
                          "for decryption")
