"""Simple signing through the `gpg` binary: sign a payload into an OpenPGP signed message, verify a
message and return its content and signer, and ephemeral keyrings made of public-key files.

Verification reads gpg's machine-readable status lines: exactly one signature, good and valid
(VALIDSIG), by a key neither expired nor revoked; its fingerprint is what a policy or a caller
compares with the keys it trusts (as containers/image's gpgme mechanism does)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Optional

from fastsync.errors import FastsyncError
from fastsync.trust.payload import InvalidSignature

GPG = "gpg"
_BAD = {"BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "TRUST_NEVER", "ENC_TO", "BEGIN_DECRYPTION",
        "DECRYPTION_OKAY", "NO_PUBKEY"}


class GPGError(FastsyncError):
    """gpg is missing or failed for a reason other than a bad signature."""


@dataclass(frozen=True)
class Verified:
    content: bytes
    fingerprint: str


def read_passphrase_file(path: Optional[str]) -> str:
    """The first line of a passphrase file (as gpg and skopeo read it); '' without a file."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            line = f.readline()
    except OSError as exc:
        raise FastsyncError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    return line.decode(errors="replace").removesuffix("\n")


class Keyring:
    """A gpg home directory: the user's (GNUPGHOME or ~/.gnupg) or a temporary one (`ephemeral`)."""

    def __init__(self, home: Optional[str] = None, temporary: bool = False) -> None:
        self.home = home
        self.temporary = temporary

    @classmethod
    def ephemeral(cls, key_blobs: list[bytes]) -> tuple["Keyring", list[str]]:
        """A throwaway keyring holding `key_blobs` (armored or binary public keys); returns it and
        the fingerprints of the keys imported."""
        home = tempfile.mkdtemp(prefix="fsgpg-")
        os.chmod(home, 0o700)
        ring = cls(home, temporary=True)
        fingerprints: list[str] = []
        try:
            for blob in key_blobs:
                status, _, _ = ring._run(["--import"], stdin=blob, check=False)
                for line in status:
                    if line[:1] == ["IMPORT_OK"] and len(line) >= 3 and line[2] not in fingerprints:
                        fingerprints.append(line[2])
        except BaseException:
            ring.close()
            raise
        return ring, fingerprints

    def close(self) -> None:
        if self.temporary and self.home and os.path.isdir(self.home):
            if any(n.startswith("S.gpg-agent") for n in os.listdir(self.home)):
                subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True)
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> "Keyring":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, args: list[str], stdin: bytes = b"", check: bool = True,
             files: Optional[dict[str, bytes]] = None) -> tuple[list[list[str]], bytes, str]:
        """Run gpg with a status file; returns (status lines split into words, stdout, stderr)."""
        work = tempfile.mkdtemp(prefix="fsgpg-run-")
        try:
            status_path = os.path.join(work, "status")
            for name, data in (files or {}).items():
                with open(os.path.join(work, name), "wb") as f:
                    f.write(data)
            cmd = [GPG, "--batch", "--no-tty", "--status-file", status_path]
            if self.home:
                cmd += ["--homedir", self.home]
            cmd += [a.replace("{work}", work) for a in args]
            try:
                proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
            except FileNotFoundError:
                raise GPGError(f"{GPG} not found: install GnuPG to sign or verify simple signatures") from None
            except subprocess.TimeoutExpired:
                raise GPGError(f"{GPG} did not finish within 120s") from None
            try:
                with open(status_path, "rb") as f:
                    status = [ln.split()[1:] for ln in f.read().decode(errors="replace").splitlines()
                              if ln.startswith("[GNUPG:] ")]
            except FileNotFoundError:
                status = []
            err = " ".join(proc.stderr.decode(errors="replace").split())
            if check and proc.returncode != 0:
                raise GPGError(f"gpg failed: {_gpg_reason(err, status)}")
            out = b""
            out_path = os.path.join(work, "out")
            if os.path.exists(out_path):
                with open(out_path, "rb") as f:
                    out = f.read()
            return status, out, err
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def has_secret_key(self, key: str) -> bool:
        """Whether `key` names a secret (signing) key of this keyring."""
        cmd = [GPG, "--batch", "--no-tty", "--with-colons", "--list-secret-keys", "--", key]
        if self.home:
            cmd[1:1] = ["--homedir", self.home]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
        except FileNotFoundError:
            raise GPGError(f"{GPG} not found: install GnuPG to sign or verify simple signatures") from None
        except subprocess.TimeoutExpired:
            raise GPGError(f"{GPG} did not finish within 60s") from None

    def sign(self, data: bytes, key: str, passphrase: str = "") -> bytes:
        """A non-detached, binary OpenPGP signed message of `data` by `key` (a fingerprint)."""
        if "\n" in passphrase:
            raise FastsyncError("invalid passphrase: must not contain a line break")
        args = ["--local-user", key, "--sign", "--output", "{work}/out"]
        stdin = b""
        if passphrase:
            args[:0] = ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
            stdin = passphrase.encode() + b"\n"
        status, out, err = self._run(args + ["{work}/in"], stdin=stdin, check=False, files={"in": data})
        if not out or not any(s[:1] == ["SIG_CREATED"] for s in status):
            raise GPGError(f"signing: {_gpg_reason(err, status)}")
        return out

    def verify(self, message: bytes) -> Verified:
        """Check `message` cryptographically; returns its signed content and the signer's fingerprint.
        Raises InvalidSignature when it is not exactly one good, valid signature."""
        status, out, err = self._run(["--output", "{work}/out", "--decrypt", "{work}/in"], check=False,
                                     files={"in": message})
        words = [s[0] for s in status if s]
        count = words.count("NEWSIG")
        bad = [w for w in words if w in _BAD]
        valid = [s for s in status if s[:1] == ["VALIDSIG"] and len(s) >= 2]
        if count != 1 and valid:
            raise InvalidSignature(f"Unexpected GPG signature count {count}")
        if bad or len(valid) != 1 or "GOODSIG" not in words:
            raise InvalidSignature(f"Invalid GPG signature: {_gpg_reason(err, status)}")
        return Verified(out, valid[0][1])


def _gpg_reason(err: str, status: list[list[str]]) -> str:
    for s in status:
        if s[:1] == ["NO_PUBKEY"] and len(s) > 1:
            return f"no public key {s[1]} to check the signature"
        if s[:1] == ["BADSIG"]:
            return "bad signature (the signed data was modified)"
        if s[:1] in (["EXPKEYSIG"], ["EXPSIG"]):
            return "the signature or its key has expired"
        if s[:1] == ["REVKEYSIG"]:
            return "the signing key was revoked"
        if s[:1] == ["INV_SGNR"] and len(s) > 2:
            return f"no secret key {s[2]} usable for signing"
        if s[:1] == ["NODATA"]:
            return "no OpenPGP data found"
    return err or "gpg gave no reason"
