"""Evaluate a policy's requirements for one image: its scope, its signatures checked against the
trusted keys, then the signed digest and identity; rejections in containers/image's wording."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from fastsync.errors import FastsyncError, InvalidReference
from fastsync.manifest import manifest_digest
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.trust import payload as pl
from fastsync.trust.formats import SIGSTORE_ANNOTATION, SIGSTORE_MIME_TYPE, Signature, SimpleSigning, Sigstore
from fastsync.trust.gpg import Keyring
from fastsync.trust.policy import (PATH_TRANSPORTS, Identity, InsecureAcceptAnything, Policy, PolicyRejected, Reject,
                     SignedBy, SigstoreSigned)


@dataclass(frozen=True)
class Scope:
    """How the policy sees an image: transport, identity and namespaces (containers/image's
    PolicyConfigurationIdentity/Namespaces), its docker reference, and its full name."""

    transport: str
    identity: str
    namespaces: tuple[str, ...]
    docker_reference: Optional[DockerReference]
    name: str


def _resolved(path: str) -> str:
    """Symlinks resolved (the whole path when it exists, else its parent), as containers/image does."""
    if os.path.exists(path):
        return os.path.realpath(path)
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(head), tail) if tail else os.path.realpath(head)


def _path_namespaces(path: str, include_self: bool) -> tuple[str, ...]:
    out = [path] if include_self else []
    while True:
        i = path.rfind("/")
        if i <= 0:
            break
        path = path[:i]
        out.append(path)
    return tuple(out)


def docker_identity(ref: DockerReference) -> str:
    return f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag or 'latest'}"


def docker_namespaces(ref: DockerReference) -> tuple[str, ...]:
    out, name = [], ref.name
    while True:
        out.append(name)
        i = name.rfind("/")
        if i == -1:
            break
        name = name[:i]
    host = name.split(":", 1)[0]
    while "." in host:
        host = host[host.index(".") + 1:]
        out.append("*." + host)
    return tuple(out)


def scope_of(ref: Any) -> Scope:
    """The policy scope of a fastsync ImageReference."""
    transport = ref.transport
    dref = ref.docker_reference
    name = f"{transport}:{ref.details}"
    if transport == "docker" and dref is not None:
        return Scope(transport, docker_identity(dref), docker_namespaces(dref), dref, f"docker://{dref.familiar}")
    path = ref.local_path
    if transport in PATH_TRANSPORTS and path:
        resolved = _resolved(path)
        return Scope(transport, resolved, _path_namespaces(resolved, transport != "dir"), dref, name)
    return Scope(transport, "", (), dref, name)


# ---- signedIdentity ---------------------------------------------------------------------------

def _named(text: str) -> Optional[DockerReference]:
    try:
        return parse_docker_reference(text)
    except InvalidReference:
        return None


def _name_only(r: DockerReference) -> bool:
    return r.tag is None and r.digest is None


def _repo_digest_or_exact(intended: DockerReference, signed: DockerReference) -> bool:
    if _name_only(signed):
        return False
    if intended.tag is not None:
        return str(signed) == str(intended)
    if intended.digest is not None:
        return signed.name == intended.name
    return False


def identity_matches(identity: Identity, intended: Optional[DockerReference], signed_text: str) -> bool:
    signed = _named(signed_text)
    if signed is None:
        return False
    t = identity.type
    if t in ("exactReference", "exactRepository"):
        want = _named(identity.value)
        if want is None:
            return False
        if t == "exactRepository":
            return signed.name == want.name
        return not _name_only(want) and not _name_only(signed) and str(signed) == str(want)
    if intended is None:
        return False
    if t == "matchExact":
        return not _name_only(intended) and not _name_only(signed) and str(signed) == str(intended)
    if t == "matchRepository":
        return signed.name == intended.name
    if t == "remapIdentity":
        prefix, name = identity.value, intended.name
        if name == prefix or name.startswith(prefix + "/"):
            remapped = _named(str(intended).replace(prefix, identity.signed_prefix, 1))
            if remapped is None:
                return False
            intended = remapped
    return _repo_digest_or_exact(intended, signed)


# ---- one signature ----------------------------------------------------------------------------

def verify_simple(message: bytes, keyring: Keyring, trusted: Callable[[str], None],
                  check_digest: Callable[[str], None], check_reference: Callable[[str], None]) -> pl.Payload:
    """containers/image's order: the cryptographic check and the signer first, then the payload
    parsed strictly, then the digest, then the reference. The checks raise to reject."""
    verified = keyring.verify(message)
    trusted(verified.fingerprint)
    claims = pl.parse(verified.content, pl.SIMPLE_SIGNING_TYPE)
    check_digest(claims.manifest_digest)
    check_reference(claims.docker_reference)
    return claims


def digest_matches(manifest: bytes, digest_text: str) -> bool:
    return str(manifest_digest(manifest)) == digest_text


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise PolicyRejected(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None


def _checks(identity: Identity, scope: Scope, manifest: bytes) -> tuple[Callable[[str], None], Callable[[str], None]]:
    def digest(d: str) -> None:
        if not digest_matches(manifest, d):
            raise PolicyRejected(f"Signature for digest {d} does not match")

    def reference(r: str) -> None:
        if not identity_matches(identity, scope.docker_reference, r):
            raise PolicyRejected(f"Signature for identity {r} is not accepted")
    return digest, reference


def _signed_by(req: SignedBy, scope: Scope, manifest: bytes, sig: SimpleSigning) -> None:
    if req.key_type != "GPGKeys":
        raise PolicyRejected(f'Unimplemented "keyType" value "{req.key_type}"')
    blobs = [req.key_data] if req.key_data is not None else [_read(p) for p in req.key_paths]
    keyring, fingerprints = Keyring.ephemeral(blobs)
    with keyring:
        if not fingerprints:
            raise PolicyRejected("No public keys imported")

        def trusted(fpr: str) -> None:
            if fpr not in fingerprints:
                raise PolicyRejected(f"Signature by key {fpr} is not accepted")
        verify_simple(sig.message, keyring, trusted, *_checks(req.identity, scope, manifest))


def _sigstore_signed(req: SigstoreSigned, scope: Scope, manifest: bytes, sig: Sigstore) -> None:
    from fastsync.trust import sigstore      # cryptography: only when a policy asks for sigstore

    key = sigstore.load_public_key(req.key_data if req.key_data is not None else _read(req.key_path))
    b64 = sig.annotations.get(SIGSTORE_ANNOTATION)
    if b64 is None:
        raise PolicyRejected(f"missing {SIGSTORE_ANNOTATION} annotation")
    sigstore.verify(key, sig.payload, b64)
    claims = pl.parse(sig.payload, pl.SIGSTORE_TYPE)
    digest, reference = _checks(req.identity, scope, manifest)
    digest(claims.manifest_digest)
    reference(claims.docker_reference)


def _summary(rejections: list[str], none: str) -> str:
    if not rejections:
        return none
    if len(rejections) == 1:
        return rejections[0]
    return "None of the signatures were accepted, reasons: " + "; ".join(rejections)


def _allowed(req: Any, scope: Scope, manifest: bytes, sigs: Sequence[Signature]) -> None:
    if isinstance(req, InsecureAcceptAnything):
        return
    if isinstance(req, Reject):
        raise PolicyRejected(f"Running image {scope.name} is rejected by policy.")
    rejections: list[str] = []
    if isinstance(req, SignedBy):
        for sig in sigs:
            if not isinstance(sig, SimpleSigning):
                continue
            try:
                _signed_by(req, scope, manifest, sig)
                return
            except FastsyncError as exc:
                rejections.append(str(exc))
        raise PolicyRejected(_summary(rejections, "A signature was required, but no signature exists"))
    others = attachments = 0
    for sig in sigs:
        if not isinstance(sig, Sigstore):
            others += 1
            continue
        if sig.mime_type != SIGSTORE_MIME_TYPE:
            attachments += 1
            continue
        try:
            _sigstore_signed(req, scope, manifest, sig)
            return
        except FastsyncError as exc:
            rejections.append(str(exc))
    none = "A signature was required, but no signature exists"
    if others or attachments:
        none += f" ({others} non-sigstore signatures, {attachments} sigstore non-signature attachments)"
    raise PolicyRejected(_summary(rejections, none))


def check_image(policy: Policy, scope: Scope, manifest: bytes, sigs: Sequence[Signature]) -> None:
    """Raise PolicyRejected("Source image rejected: ...") unless every requirement for the image's
    scope allows it (the image is one manifest: an index's chosen instance, not the index)."""
    reqs = policy.requirements(scope.transport, scope.identity, list(scope.namespaces))
    try:
        for req in reqs:
            _allowed(req, scope, manifest, sigs)
    except PolicyRejected as exc:
        raise PolicyRejected(f"Source image rejected: {exc}") from None
