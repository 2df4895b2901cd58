"""Throwaway GnuPG homes with generated keys (ed25519, made in milliseconds), for signing tests."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GPGHome:
    path: Path
    trusted: str            # fingerprint of a key the tests' policies trust
    untrusted: str          # fingerprint of a second key in the same home, trusted by nobody
    protected: str          # fingerprint of a passphrase-protected key
    passphrase: str
    passphrase_file: Path
    trusted_pub: Path       # the trusted key's public key (binary)
    protected_pub: Path
    untrusted_pub: Path

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.path)}

    def gpg(self, *args: str, input: bytes = b"") -> bytes:
        proc = subprocess.run(["gpg", "--batch", "--no-tty", *args], input=input, capture_output=True,
                              env={**os.environ, **self.env}, check=True)
        return proc.stdout

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, **self.env}, capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


def _fingerprint(home: Path, uid: str) -> str:
    out = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys", uid], capture_output=True,
                         env={**os.environ, "GNUPGHOME": str(home)}, check=True).stdout.decode()
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def make_gpg_home(passphrase: str = "correct horse") -> GPGHome:
    """A new GNUPGHOME (short path under /tmp: gpg-agent's socket must fit) with three keys."""
    home = Path(tempfile.mkdtemp(prefix="fsgpgt-", dir="/tmp"))
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    fprs = {}
    for uid, pw in (("Trusted Signer <trusted@example.com>", ""), ("Untrusted Signer <untrusted@example.com>", ""),
                    ("Protected Signer <protected@example.com>", passphrase)):
        subprocess.run(["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", pw,
                        "--quick-gen-key", uid, "ed25519", "sign", "never"], env=env, capture_output=True, check=True)
        fprs[uid.split()[0]] = _fingerprint(home, uid)
    pubs = {}
    for name, fpr in fprs.items():
        path = home / f"{name.lower()}.gpg"
        path.write_bytes(subprocess.run(["gpg", "--batch", "--export", fpr], env=env, capture_output=True,
                                        check=True).stdout)
        pubs[name] = path
    pwfile = home / "passphrase"
    pwfile.write_text(passphrase + "\n")
    return GPGHome(home, fprs["Trusted"], fprs["Untrusted"], fprs["Protected"], passphrase, pwfile,
                   pubs["Trusted"], pubs["Protected"], pubs["Untrusted"])
