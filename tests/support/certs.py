"""Certificates for tests, generated with ``cryptography``.

Public API
----------
``CA.create(common_name="fastsync test CA")`` -> CA with ``cert``, ``key``, ``cert_pem``.
``CA.issue_server(names=("127.0.0.1", "localhost"))`` -> ``KeyPair`` (server auth; IP and DNS SANs).
``CA.issue_client(common_name="fastsync-client")`` -> ``KeyPair`` (client auth).
``KeyPair``: ``cert``, ``key``, ``cert_pem``, ``key_pem``, ``write(cert_path, key_path)``.
``self_signed_rsa(common_name)`` -> ``KeyPair`` (RSA 2048, for the token server's signing key).
``write_cert_dir(path, ca, client=None)``: a directory as skopeo's ``--cert-dir`` expects:
``ca.crt`` and, with a client pair, ``client.cert`` + ``client.key``.
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
_NOT_AFTER = datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fastsync tests")])


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: object  # a cryptography private key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption())

    def write(self, cert_path: Union[str, Path], key_path: Union[str, Path]) -> None:
        Path(cert_path).write_bytes(self.cert_pem)
        Path(key_path).write_bytes(self.key_pem)
        Path(key_path).chmod(0o600)


@dataclass(frozen=True)
class CA(KeyPair):
    @classmethod
    def create(cls, common_name: str = "fastsync test CA") -> "CA":
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _self_signed(common_name, key)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    def _issue(self, cn: str, eku, sans: Sequence[x509.GeneralName]) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.cert.public_key()), critical=False)  # type: ignore[arg-type]
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return KeyPair(cert=builder.sign(self.key, hashes.SHA256()), key=key)  # type: ignore[arg-type]

    def issue_server(self, names: Sequence[str] = ("127.0.0.1", "localhost")) -> KeyPair:
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        return self._issue(names[0], ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def issue_client(self, common_name: str = "fastsync-client") -> KeyPair:
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])


def self_signed_rsa(common_name: str = "fastsync token signer") -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(cert=_self_signed(common_name, key).sign(key, hashes.SHA256()), key=key)


def _self_signed(common_name: str, key) -> x509.CertificateBuilder:
    """A CA certificate builder whose subject and issuer are `common_name`, for `key`."""
    name = _name(common_name)
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))


def write_cert_dir(path: Union[str, Path], ca: KeyPair, client: Optional[KeyPair] = None) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    (p / "ca.crt").write_bytes(ca.cert_pem)
    if client is not None:
        client.write(p / "client.cert", p / "client.key")
    return p
