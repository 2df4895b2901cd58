"""`standalone-sign` and `standalone-verify` as skopeo has them, and the trust flags of copy/sync
(--policy and --registries.d are global; --sign-by, --sign-identity, --sign-passphrase-file,
--sign-by-sigstore-private-key, --remove-signatures per command) turned into a `Trust`.

`register(main)` adds the commands when cli.py asks for them (this module never imports cli.py at
import time)."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

import click

from fastsync.errors import FastsyncError, InvalidReference, UsageError
from fastsync.options import GlobalOptions
from fastsync.reference import parse_docker_reference


def _go_read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise FastsyncError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None


def _wrap(prefix: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except FastsyncError as exc:
        raise FastsyncError(f"{prefix}: {exc}") from None


def load_policy(gopts: GlobalOptions) -> Any:
    """The policy skopeo would use: accept anything with --insecure-policy, else --policy FILE, else
    $HOME/.config/containers/policy.json, else /etc/containers/policy.json (missing: an error)."""
    from fastsync.trust.policy import Policy, default_policy_path, load

    if gopts.insecure_policy:
        return Policy.accept_anything()
    return _wrap("Error loading trust policy", lambda: load(gopts.policy_path or default_policy_path()))


def make_trust(ctx: click.Context, remove_signatures: bool, sign_by: Optional[str] = None,
               sign_identity: Optional[str] = None, passphrase_file: Optional[str] = None,
               sigstore_key: Optional[str] = None, encryption_keys: tuple[str, ...] = (),
               encrypt_layers: tuple[str, ...] = (), decryption_keys: tuple[str, ...] = ()) -> Any:
    """The Trust a copy or sync runs with (policy loaded and signing inputs read before anything moves)."""
    from fastsync.trust.copying import Signer, Trust

    gopts: GlobalOptions = ctx.obj["global"]
    policy = load_policy(gopts)
    if passphrase_file and sign_by and sigstore_key:
        raise UsageError("Only one of --sign-by and sign-by-sigstore-private-key can be used with sign-passphrase-file")
    passphrase = ""
    if passphrase_file:
        from fastsync.trust.gpg import read_passphrase_file

        passphrase = read_passphrase_file(passphrase_file)
    elif sigstore_key:
        if not sys.stdin.isatty():
            raise FastsyncError(f"Cannot prompt for a passphrase for key {sigstore_key}, standard input is not a TTY")
        import getpass
        passphrase = getpass.getpass(f"Passphrase for key {sigstore_key}: ")
    if sign_identity is not None:
        try:
            ref = parse_docker_reference(sign_identity)
        except InvalidReference as exc:
            raise UsageError(f"Could not parse --sign-identity: {exc}") from None
        if ref.tag is None and ref.digest is None:
            raise UsageError(f"Sign identity must be a fully specified reference {ref}")
        sign_identity = str(ref)
    from fastsync.trust.copying import check_gpg_key, load_signing_key

    if sign_by:
        check_gpg_key(sign_by)
    key = load_signing_key(sigstore_key, passphrase.encode()) if sigstore_key else None
    signer = Signer(sign_by or None, passphrase, sigstore_key or None, passphrase.encode(), sign_identity, key)
    return Trust(policy, gopts.registries_d, remove_signatures, signer,
                 *_crypt_configs(encryption_keys, encrypt_layers, decryption_keys))


def _crypt_configs(encryption_keys: tuple[str, ...], encrypt_layers: tuple[str, ...],
                   decryption_keys: tuple[str, ...]) -> tuple[Any, Any]:
    """skopeo's checks of --encryption-key, --encrypt-layer and --decryption-key, then the keys read."""
    if encryption_keys and decryption_keys:
        raise UsageError("--encryption-key and --decryption-key cannot be specified together")
    if encrypt_layers and not encryption_keys:
        raise UsageError("--encrypt-layer can only be used with --encryption-key")
    layers: list[int] = []
    for text in encrypt_layers:
        for part in text.split(","):
            try:
                layers.append(int(part))
            except ValueError:
                raise UsageError(f'invalid argument "{text}" for "--encrypt-layer" flag: not an integer') from None
    if not encryption_keys and not decryption_keys:
        return None, None                 # (the cipher modules load only when a key is given)
    from fastsync.trust.encryption import DecryptConfig, EncryptConfig, decryption_keys as dkeys, encryption_keys as ekeys

    encrypt = EncryptConfig(ekeys(list(encryption_keys)), tuple(layers) if layers else None) \
        if encryption_keys else None
    decrypt = DecryptConfig(dkeys(list(decryption_keys))) if decryption_keys else None
    return encrypt, decrypt


def encryption_flags(f: Callable) -> Callable:
    for opt in reversed([
        click.option("--encryption-key", "encryption_keys", multiple=True, metavar="jwe:PUBKEY.pem",
                     help="encrypt layers for this key (repeatable; ocicrypt's jwe protocol)"),
        click.option("--encrypt-layer", "encrypt_layers", multiple=True, metavar="N",
                     help="0-based index of a layer to encrypt, negative from the end (default: all)"),
        click.option("--decryption-key", "decryption_keys", multiple=True, metavar="KEY.pem[:pass=PW]",
                     help="decrypt layers with this private key (repeatable)"),
    ]):
        f = opt(f)
    return f


def delete_signatures(image: str, digest: Any, gopts: GlobalOptions) -> None:
    """After `delete` of a registry image: remove its lookaside signatures, as skopeo does."""
    from fastsync.transports import parse_image_name
    from fastsync.trust import registries_d
    from fastsync.trust.evaluate import scope_of
    from fastsync.trust.lookaside import delete_lookaside

    scope = scope_of(parse_image_name(image))
    if scope.transport == "docker" and scope.docker_reference is not None:
        delete_lookaside(registries_d.load(gopts.registries_d), scope.docker_reference, scope.identity,
                         scope.namespaces, digest)


def signing_flags(identity: bool) -> Callable:
    def deco(f: Callable) -> Callable:
        opts = [
            click.option("--sign-by", metavar="FINGERPRINT", help="sign the image with this GPG key"),
            click.option("--sign-by-sigstore-private-key", "sigstore_key", metavar="PATH",
                         help="sign the image with this sigstore (cosign) private key"),
            click.option("--sign-passphrase-file", metavar="PATH", help="read the signing key's passphrase from PATH"),
        ]
        if identity:
            opts.append(click.option("--sign-identity", metavar="REFERENCE",
                                     help="identity of the signed image (default: the destination's reference)"))
        for opt in reversed(opts):
            f = opt(f)
        return f
    return deco


def register(main: click.Group) -> None:
    from fastsync.cli.errors import handle_errors

    @main.command("standalone-sign")
    @click.argument("args", nargs=-1)
    @click.option("-o", "--output", metavar="SIGNATURE", help="output the signature to SIGNATURE")
    @click.option("--passphrase-file", metavar="PATH", help="file that contains a passphrase for the key")
    @handle_errors
    def standalone_sign(args: tuple[str, ...], output: Optional[str], passphrase_file: Optional[str]) -> None:
        """Create a signature of MANIFEST for DOCKER-REFERENCE with the GPG key KEY-FINGERPRINT."""
        from fastsync.manifest import manifest_digest
        from fastsync.trust import payload
        from fastsync.trust.gpg import Keyring, read_passphrase_file

        if len(args) != 3 or not output:
            raise FastsyncError("Usage: skopeo standalone-sign manifest docker-reference key-fingerprint -o signature")
        manifest_path, reference, fingerprint = args
        manifest = _wrap(f"Error reading {manifest_path}", lambda: _go_read(manifest_path))
        passphrase = read_passphrase_file(passphrase_file)
        data = payload.build(str(manifest_digest(manifest)), reference)
        sig = _wrap("Error creating signature", lambda: Keyring().sign(data, fingerprint, passphrase))
        tmp = f"{output}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(sig)
            os.chmod(tmp, 0o644)
            os.replace(tmp, output)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise FastsyncError(f"Error writing signature to {output}: open {output}: "
                                f"{(exc.strerror or str(exc)).lower()}") from None

    @main.command("standalone-verify")
    @click.argument("args", nargs=-1)
    @click.option("--public-key-file", metavar="PATH", help="file with the public keys (default: the local GPG keys)")
    @handle_errors
    def standalone_verify(args: tuple[str, ...], public_key_file: Optional[str]) -> None:
        """Verify SIGNATURE of MANIFEST for DOCKER-REFERENCE by KEY-FINGERPRINTS (comma-separated, or
        "any" key of --public-key-file)."""
        if len(args) != 4:
            raise FastsyncError("Usage: skopeo standalone-verify manifest docker-reference key-fingerprint signature")
        manifest_path, reference, fingerprints, signature_path = args
        expected = fingerprints.split(",")
        if public_key_file is None and expected == ["any"]:
            raise FastsyncError("Cannot use any fingerprint without a public key file")
        manifest = _wrap(f"Error reading manifest from {manifest_path}", lambda: _go_read(manifest_path))
        sig = _wrap(f"Error reading signature from {signature_path}", lambda: _go_read(signature_path))
        fpr, digest = _wrap("Error verifying signature",
                            lambda: _verify(manifest, reference, expected, sig, public_key_file))
        if public_key_file is None and len(expected) == 1:
            click.echo(f"Signature verified, digest {digest}")            # skopeo 1.9's line
        else:
            click.echo(f"Signature verified using fingerprint {fpr}, digest {digest}")


def _verify(manifest: bytes, reference: str, expected: list[str], sig: bytes,
            public_key_file: Optional[str]) -> tuple[str, str]:
    """containers/image's VerifyDockerManifestSignature (with a key list): returns (fingerprint, digest)."""
    from fastsync.trust.evaluate import digest_matches, verify_simple
    from fastsync.trust.gpg import Keyring
    from fastsync.trust.payload import InvalidSignature

    try:
        want = parse_docker_reference(reference)
    except InvalidReference as exc:
        raise FastsyncError(str(exc)) from None
    if public_key_file is not None:
        keys = _wrap(f"Error reading public keys from {public_key_file}", lambda: _go_read(public_key_file))
        keyring, imported = Keyring.ephemeral([keys])
        if expected == ["any"]:
            expected = imported
    else:
        keyring = Keyring()
    got: dict[str, str] = {}

    def trusted(fpr: str) -> None:
        got["fpr"] = fpr
        if fpr not in expected:
            if len(expected) == 1 and public_key_file is None:
                raise InvalidSignature(f"Signature by {fpr} does not match expected fingerprint {expected[0]}")
            raise InvalidSignature(f"Signature by {fpr} does not match expected fingerprints [{' '.join(expected)}]")

    def digest(d: str) -> None:
        got["digest"] = d
        if not digest_matches(manifest, d):
            raise InvalidSignature(f'Signature for docker digest "{d}" does not match')

    def ref(r: str) -> None:
        try:
            signed = parse_docker_reference(r)
        except InvalidReference:
            raise InvalidSignature(f"Invalid docker reference {r} in signature") from None
        if str(signed) != str(want):
            raise InvalidSignature(f"Docker reference {r} does not match {reference}")

    with keyring:
        verify_simple(sig, keyring, trusted, digest, ref)
    return got["fpr"], got["digest"]
