"""The hooks a copy calls, so the engine needs no knowledge of signatures:

    carried = await trust.check(session, src_ref, src, dst_ref, options)   # once the source is open
    src = await trust.layers(session, src, options)                       # encryption, decryption
    ...                                                                   # blobs and manifests move
    await trust.put_signatures(session, dst_ref, dst, final, carried)   # before dst.commit()

`check` reads the image's signatures and evaluates the policy for each single image the copy will
write (an index's chosen instance, or with --all every instance) before any blob moves; it raises
PolicyRejected. `put_signatures` writes the carried signatures (unless --remove-signatures) and the
new ones (--sign-by, --sign-by-sigstore-private-key) where the destination transport keeps them.

Making a Trust (before anything moves: the policy is read then) imports no more of trust/ than the
policy: evaluation, signature formats, lookaside, attachments and GPG are imported by the hooks that
use them, so a sync whose images need no check (insecureAcceptAnything) never loads them."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from fastsync.errors import FastsyncError, Unsupported
from fastsync.manifest import Manifest, choose_instance, host_platform, manifest_digest, parse_manifest, target_type_for
from fastsync.model import Digest
from fastsync.transports.base import ForwardingSource, RememberedSource
from fastsync.trust.policy import InsecureAcceptAnything, Policy, PolicyRejected

if TYPE_CHECKING:
    from fastsync.trust.evaluate import Scope
    from fastsync.trust.formats import Signature
    from fastsync.trust.registries_d import RegistriesD


@dataclass(frozen=True)
class Signer:
    """What to sign a copied image with: a GPG key (fingerprint) and/or a cosign private key file."""

    gpg_key: Optional[str] = None
    gpg_passphrase: str = field(default="", repr=False)
    sigstore_key_file: Optional[str] = None
    sigstore_passphrase: bytes = field(default=b"", repr=False)
    identity: Optional[str] = None          # --sign-identity; default: the destination's reference
    sigstore_key: Any = field(default=None, repr=False, compare=False)   # the decrypted key, once loaded

    @property
    def signs(self) -> bool:
        return bool(self.gpg_key or self.sigstore_key_file)


@dataclass(frozen=True)
class Carried:
    """The signatures a copy carries: of the manifest it writes at the top (whose source digest is
    `digest`), and of each index instance (--all)."""

    digest: Digest
    top: tuple[Signature, ...] = ()
    instances: dict[Digest, tuple[Signature, ...]] = field(default_factory=dict, hash=False)
    manifests: dict[Optional[Digest], tuple[bytes, str]] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Trust:
    policy: Policy
    registries_d: Optional[str] = None      # None: skopeo's default lookup
    remove_signatures: bool = False
    signer: Signer = Signer()
    encrypt: Optional[Any] = None           # encryption.EncryptConfig (--encryption-key, --encrypt-layer)
    decrypt: Optional[Any] = None           # encryption.DecryptConfig (--decryption-key)
    _loaded: dict = field(default_factory=dict, compare=False, repr=False)   # registries.d, read once

    @property
    def needs_every_image(self) -> bool:
        """Whether every image must go through `check`/`put_signatures` even when its destination
        is already up to date: the policy requires more than insecureAcceptAnything somewhere, or
        the copy signs, encrypts or decrypts."""
        if self.signer.signs or self.encrypt is not None or self.decrypt is not None:
            return True
        reqs = list(self.policy.default) + [r for scopes in self.policy.transports.values()
                                            for rs in scopes.values() for r in rs]
        return any(not isinstance(r, InsecureAcceptAnything) for r in reqs)

    @staticmethod
    def carries_signatures(carried: Optional[Carried]) -> bool:
        """Whether signatures travel with the copy (then its manifests must stay as they are)."""
        return carried is not None and bool(carried.top or any(carried.instances.values()))

    async def layers(self, session: Any, src: Any, options: Any, carried: Optional[Carried] = None) -> Any:
        """`src` as the copy should read it (called after `check`): the manifests `check` read are
        served again without a second request, and layers are encrypted or decrypted on the way."""
        from fastsync.trust.layers import CryptSource

        if carried is not None and carried.manifests:
            src = RememberedSource(src, carried.manifests)
        if self.encrypt is None and self.decrypt is None:
            return src

        return CryptSource(src, self.encrypt, self.decrypt, getattr(options, "multi_arch", "system"),
                           getattr(options, "platform", None), session.options.tmpdir)

    def _config(self) -> RegistriesD:
        from fastsync.trust import registries_d

        if "config" not in self._loaded:
            self._loaded["config"] = registries_d.load(self.registries_d)
        return self._loaded["config"]

    async def _read(self, session: Any, scope: Scope, src: Any, digest: Digest,
                    instance: Optional[Digest]) -> tuple[Signature, ...]:
        from fastsync.trust.attachments import read_attachments
        from fastsync.trust.formats import from_blob
        from fastsync.trust.lookaside import read_lookaside

        attached: list[Signature] = []
        if scope.transport == "docker" and scope.docker_reference is not None:
            config = self._config()
            blobs = await read_lookaside(session, config, scope.docker_reference, scope.identity,
                                         scope.namespaces, digest)
            if config.use_sigstore_attachments(scope.identity, scope.namespaces):
                where = src.registry_repository()
                if where is not None:
                    attached = list(await read_attachments(*where, digest))
        else:
            blobs = await src.get_signatures(instance)
        try:
            return tuple(from_blob(b) for b in blobs) + tuple(attached)
        except FastsyncError as exc:
            raise FastsyncError(f"reading signatures: {exc}") from None

    async def _checked(self, session: Any, scope: Scope, src: Any, man: Manifest,
                       instance: Optional[Digest]) -> tuple[Signature, ...]:
        from fastsync.trust.evaluate import check_image

        sigs = await self._read(session, scope, src, man.digest, instance)
        check_image(self.policy, scope, man.raw, sigs)
        return () if self.remove_signatures else sigs

    async def check(self, session: Any, src_ref: Any, src: Any, dst_ref: Any, options: Any) -> Carried:
        """Evaluate the policy for what the copy will write; returns the signatures to carry. Fails
        early, too, when the copy could not sign or store its signatures at `dst_ref`."""
        from fastsync.trust.formats import Sigstore
        from fastsync.trust.lookaside import UNSUPPORTED, unsupported

        carried = await self._check(session, src_ref, src, options)
        self._unmodified(carried, options)
        wanted = self.signer.signs or carried.top or any(carried.instances.values())
        if self.signer.signs:
            self._identity(dst_ref)
        transport = getattr(dst_ref, "transport", "")
        if wanted and transport in UNSUPPORTED:
            raise Unsupported(f"Can not copy signatures to {dst_ref}: {unsupported(transport)}")
        sigstore_sigs = self.signer.sigstore_key_file or any(
            isinstance(sig, Sigstore) for sigs in (carried.top, *carried.instances.values()) for sig in sigs)
        if sigstore_sigs and transport == "docker" and not self._attachments(dst_ref):
            raise FastsyncError("writing signatures: writing sigstore attachments is disabled by configuration")
        return carried

    def _unmodified(self, carried: Carried, options: Any) -> None:
        """Signatures are carried only over the manifests they sign: refuse, before anything moves, a
        copy that would rewrite a signed manifest (skopeo would keep the manifest and ignore --format
        and the compression flags; fastsync says so instead)."""
        from fastsync.core.recompress import layer_edits

        signed = ([carried.digest] if carried.top else []) + [d for d, sigs in carried.instances.items() if sigs]
        for digest in signed:
            got = carried.manifests.get(digest) or carried.manifests.get(None)
            if got is None:
                continue
            man = parse_manifest(*got)
            if man.digest != digest:
                continue
            reason = ' but we cannot modify it: "Would invalidate signatures" (add --remove-signatures)'
            if self.encrypt is not None or (self.decrypt is not None and
                                            any(d.media_type.endswith("+encrypted") for d in man.layers)):
                raise Unsupported('Internal error: copy needs an updated manifest but that was known to be '
                                  'forbidden: "Would invalidate signatures"')
            target = target_type_for(man.media_type, getattr(options, "format", None))
            if target and target != man.media_type:
                raise Unsupported(f'Manifest must be converted to type "{target}" to be written to destination,'
                                  + reason)
            if not man.is_index and not man.is_schema1 and layer_edits(man, options):
                raise Unsupported("Layers must be recompressed to be written to destination," + reason)

    def _attachments(self, ref: Any) -> bool:
        from fastsync.trust.evaluate import scope_of

        scope = scope_of(ref)
        return self._config().use_sigstore_attachments(scope.identity, scope.namespaces)

    def _identity(self, dst_ref: Any) -> str:
        if self.signer.identity:
            return self.signer.identity
        if dst_ref.docker_reference is not None:
            return str(dst_ref.docker_reference)
        raise FastsyncError(f"Cannot determine canonical Docker reference for destination {dst_ref}")

    async def _check(self, session: Any, src_ref: Any, src: Any, options: Any) -> Carried:
        read: dict[Optional[Digest], tuple[bytes, str]] = {}
        carried = await self._check_read(session, src_ref, _Recording(src, read), options)
        carried.manifests.update(read)
        return carried

    async def _check_read(self, session: Any, src_ref: Any, src: Any, options: Any) -> Carried:
        from fastsync.trust.evaluate import scope_of

        raw, mt = await src.get_manifest()
        top = parse_manifest(raw, mt)
        scope = scope_of(src_ref)
        mode = getattr(options, "multi_arch", "system")
        if top.is_index and mode == "system":
            child = await src.get_instance(choose_instance(top, getattr(options, "platform", None) or host_platform()))
            return Carried(child.digest, await self._checked(session, scope, src, child, child.digest))
        if top.is_index and mode == "all":
            instances = {}
            for i, d in enumerate(top.manifests):
                child = await src.get_instance(d)
                try:
                    instances[d.digest] = await self._checked(session, scope, src, child, d.digest)
                except PolicyRejected as exc:
                    raise PolicyRejected(f"copying image {i + 1}/{len(top.manifests)} from manifest list: {exc}") \
                        from None
            sigs = () if self.remove_signatures else await self._read(session, scope, src, top.digest, None)
            return Carried(top.digest, sigs, instances)
        return Carried(top.digest, await self._checked(session, scope, src, top, None))

    async def _new(self, dst_ref: Any, final: Manifest) -> list[Signature]:
        s = self.signer
        if not s.signs:
            return []
        from fastsync.trust import payload as pl
        from fastsync.trust.formats import SimpleSigning
        from fastsync.trust.gpg import Keyring

        identity = self._identity(dst_ref)
        digest = str(manifest_digest(final.raw))
        out: list[Signature] = []
        if s.gpg_key:
            data = pl.build(digest, identity, pl.SIMPLE_SIGNING_TYPE)
            try:
                message = await asyncio.to_thread(Keyring().sign, data, s.gpg_key, s.gpg_passphrase)
            except FastsyncError as exc:
                raise FastsyncError(f"creating signature: {exc}") from None
            out.append(SimpleSigning(message))
        if s.sigstore_key_file:
            key = s.sigstore_key or await asyncio.to_thread(load_signing_key, s.sigstore_key_file, s.sigstore_passphrase)
            from fastsync.trust import sigstore      # cryptography: only when sigstore is used

            out.append(sigstore.sign(key, pl.build(digest, identity, pl.SIGSTORE_TYPE)))
        return out

    async def _put_registry(self, scope: Scope, dst: Any, by_digest: list[tuple[Digest, list[Signature]]]) -> None:
        """Sigstore signatures become attachments (when registries.d enables them, else an error, as in
        containers/image); the others go to the lookaside."""
        from fastsync.trust.attachments import write_attachments
        from fastsync.trust.formats import Sigstore, to_blob
        from fastsync.trust.lookaside import write_lookaside

        config = self._config()
        for digest, sigs in by_digest:
            attached = [s for s in sigs if isinstance(s, Sigstore)]
            others = [s for s in sigs if not isinstance(s, Sigstore)]
            if attached:
                if not config.use_sigstore_attachments(scope.identity, scope.namespaces):
                    raise FastsyncError("writing signatures: writing sigstore attachments is disabled by "
                                        "configuration")
                where = dst.registry_repository()
                if where is None:
                    raise FastsyncError(f"writing signatures: {dst.reference} is not a registry repository")
                await write_attachments(*where, digest, attached)
            if others:
                await asyncio.to_thread(write_lookaside, config, scope.docker_reference, scope.identity,
                                        scope.namespaces, digest, [to_blob(s) for s in others])

    async def put_signatures(self, session: Any, dst_ref: Any, dst: Any, final: Manifest, carried: Carried) -> None:
        """Write the carried and the new signatures of `final` (the manifest written at the top)."""
        top = list(carried.top)
        instances = {d: list(s) for d, s in carried.instances.items() if s}
        if (top or instances) and final.digest != carried.digest:
            raise Unsupported(f'Manifest must be converted to type "{final.media_type}" to be written to '
                              'destination, but we cannot modify it: "Would invalidate signatures"')
        top += await self._new(dst_ref, final)
        if not top and not instances:
            return
        from fastsync.trust.evaluate import scope_of
        from fastsync.trust.formats import to_blob
        from fastsync.trust.lookaside import unsupported

        scope = scope_of(dst_ref)
        try:
            if scope.transport == "docker" and scope.docker_reference is not None:
                await self._put_registry(scope, dst, [(final.digest, top), *instances.items()])
                return
            from fastsync.transports.base import ImageDestination

            if type(dst).put_signatures is ImageDestination.put_signatures:
                raise unsupported(scope.transport)
            if top:
                await dst.put_signatures([to_blob(s) for s in top], None)
            for digest, sigs in instances.items():
                await dst.put_signatures([to_blob(s) for s in sigs], digest)
        except Unsupported as exc:
            raise Unsupported(f"Can not copy signatures to {dst_ref}: {exc}") from None


def load_signing_key(path: str, passphrase: bytes) -> Any:
    """The decrypted private key of a cosign key file, errors worded as containers/image's."""
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as exc:
        raise FastsyncError(f"creating signature: reading private key from {path}: "
                            f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        from fastsync.trust import sigstore

        return sigstore.decrypt_private_key(pem, passphrase)
    except FastsyncError as exc:
        raise FastsyncError(f"creating signature: initializing private key: {exc}") from None


def check_gpg_key(key: str) -> None:
    """Fail before anything moves when the GPG signing key is not in the keyring."""
    from fastsync.trust.gpg import Keyring

    if not Keyring().has_secret_key(key):
        raise FastsyncError(f"creating signature: signing: no secret key {key} in the GPG keyring")


class _Recording(ForwardingSource):
    """Reads manifests through `src` and remembers them (what `check` read, for the copy)."""

    def __init__(self, src: Any, read: dict) -> None:
        super().__init__(src)
        self.read = read

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        got = await self.inner.get_manifest(digest)
        self.read[digest] = got
        return got
