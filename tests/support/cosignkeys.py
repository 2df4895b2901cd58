"""cosign-format key pairs made in the test (ECDSA P-256, the encrypted private key file cosign
writes), through fastsync's own writer: skopeo reading them is part of what the tests check."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from fastsync.trust.sigstore import encrypt_private_key, public_pem


@dataclass(frozen=True)
class CosignKey:
    private: Path
    public: Path
    passphrase: str
    passphrase_file: Path


def make_cosign_key(root: Path, name: str = "cosign", passphrase: str = "sigstore pass") -> CosignKey:
    key = ec.generate_private_key(ec.SECP256R1())
    root.mkdir(parents=True, exist_ok=True)
    private, public, pwfile = root / f"{name}.key", root / f"{name}.pub", root / f"{name}.pass"
    private.write_bytes(encrypt_private_key(key, passphrase.encode()))
    public.write_bytes(public_pem(key))
    pwfile.write_text(passphrase + "\n")
    return CosignKey(private, public, passphrase, pwfile)
