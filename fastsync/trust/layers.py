"""Source wrappers the copy reads through. `CryptSource` encrypts or decrypts layers (see
`encryption`) on the way: the layers are transformed into temporary files first (their digests go
into the manifest), then served to the copy like any local blob; other blobs pass through.
`RememberedSource` serves the manifests the policy check read already."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import tempfile
from typing import Any, AsyncIterator, Optional

from fastsync import manifest as mf
from fastsync import model as m
from fastsync.errors import DigestMismatch, Unsupported
from fastsync.manifest import Manifest, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.transports.base import ForwardingSource, ImageSource, file_chunks
from fastsync.trust.encryption import (ENC_PREFIX, ENCRYPTED, DecryptConfig, EncryptConfig, EncryptionError, annotations_for,
                         new_layer_key, open_layer)


def _is_encrypted(desc: Descriptor) -> bool:
    return desc.media_type.endswith(ENCRYPTED)


class CryptSource(ForwardingSource):
    def __init__(self, inner: ImageSource, encrypt: Optional[EncryptConfig], decrypt: Optional[DecryptConfig],
                 multi_arch: str, platform: Any, tmpdir: Optional[str]) -> None:
        super().__init__(inner)
        self.encrypt, self.decrypt = encrypt, decrypt
        self.multi_arch, self.platform = multi_arch, platform
        self.dir = tempfile.mkdtemp(prefix="fastsync-crypt-", dir=tmpdir)
        self.files: dict[Digest, str] = {}
        self.manifests: dict[Optional[Digest], tuple[bytes, str]] = {}
        self._ready: Optional[asyncio.Future] = None

    async def _prepare(self) -> None:
        raw, mt = await self.inner.get_manifest()
        top = parse_manifest(raw, mt)
        if not top.is_index:
            new = await self._image(top)
            self.manifests[None] = (new.raw, new.media_type)
            return
        if self.multi_arch == "system":
            child = await self.inner.get_instance(mf.choose_instance(top, self.platform or mf.host_platform()))
            new = await self._image(child)
            self.manifests[None] = (new.raw, new.media_type)    # the chosen image, as the copy would pick it
            return
        changed = {}
        for d in top.manifests:
            new = await self._image(await self.inner.get_instance(d))
            self.manifests[new.digest] = (new.raw, new.media_type)
            changed[d.digest] = new.descriptor()
        index = mf.rewrite_index(top, changed, m.OCI_INDEX if self.encrypt else top.media_type)
        self.manifests[None] = (index.raw, index.media_type)

    def _chosen(self, man: Manifest) -> set[int]:
        n = len(man.layers)
        if self.encrypt is None:
            return {i for i, d in enumerate(man.layers) if _is_encrypted(d)}
        if self.encrypt.layers is None:
            return set(range(n))
        out = set()
        for i in self.encrypt.layers:
            if not -n <= i < n:
                raise Unsupported(f"--encrypt-layer {i}: the image has {n} layers")
            out.add(i % n)
        return out

    async def _image(self, man: Manifest) -> Manifest:
        if man.is_schema1:
            raise Unsupported("schema 1 images cannot be encrypted or decrypted")
        chosen = self._chosen(man)
        edits: dict[Digest, Descriptor] = {}
        for i, d in enumerate(man.layers):
            if i in chosen and d.digest not in edits and not (self.encrypt and _is_encrypted(d)):
                edits[d.digest] = await (self._encrypted(d) if self.encrypt else self._decrypted(d))
        if not edits:
            return man
        return mf.rewrite_image(man, m.OCI_MANIFEST if self.encrypt else None, edits)

    def _source(self, d: Descriptor) -> AsyncIterator[bytes]:
        local = self.inner.blob_path(d)
        return file_chunks(local) if local and os.path.exists(local) else self.inner.blob_chunks(d)

    async def _transform(self, d: Descriptor, cipher: Any) -> tuple[Digest, int, str, bytes]:
        """Run the layer through `cipher` into a temporary file; returns (its digest, its size, the
        digest of what was read, the HMAC)."""
        loop = asyncio.get_running_loop()
        fd, path = tempfile.mkstemp(dir=self.dir)
        out_hash, in_hash, size = hashlib.sha256(), hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as f:
            async for chunk in self._source(d):
                in_hash.update(chunk)
                data = cipher.update(chunk)
                out_hash.update(data)
                size += len(data)
                await loop.run_in_executor(None, f.write, data)
            tail, mac = cipher.finish()
            out_hash.update(tail)
            size += len(tail)
            f.write(tail)
        digest = Digest("sha256", out_hash.hexdigest())
        final = os.path.join(self.dir, digest.hex)
        os.replace(path, final)
        self.files[digest] = final
        return digest, size, "sha256:" + in_hash.hexdigest(), mac

    async def _encrypted(self, d: Descriptor) -> Descriptor:
        assert self.encrypt is not None
        cipher, private = new_layer_key(str(d.digest))
        digest, size, read, mac = await self._transform(d, cipher)
        if read != str(d.digest):
            raise DigestMismatch(f"layer {d.digest}", str(d.digest), read)
        mt = mf.layer_media_type(m.OCI_MANIFEST, m.compression_of(d.media_type),
                                 foreign="foreign" in d.media_type or "nondistributable" in d.media_type) + ENCRYPTED
        return Descriptor(mt, digest, size, urls=d.urls,
                          annotations={**d.annotations, **annotations_for(private, mac, self.encrypt.recipients)})

    async def _decrypted(self, d: Descriptor) -> Descriptor:
        assert self.decrypt is not None
        what = f"decrypting layer {d.digest}"
        cipher, want_mac, plain = open_layer(dict(d.annotations), self.decrypt.keys, what)
        digest, size, read, mac = await self._transform(d, cipher)
        if read != str(d.digest):
            raise DigestMismatch(f"layer {d.digest}", str(d.digest), read)
        if mac != want_mac:
            raise EncryptionError(f"{what}: could not properly decrypt byte stream; exp hmac: "
                                  f"{base64.b64encode(want_mac).decode()}, got hmac: {base64.b64encode(mac).decode()}")
        if str(digest) != plain:
            raise DigestMismatch(f"decrypted layer {d.digest}", plain, str(digest))
        return Descriptor(d.media_type[:-len(ENCRYPTED)], digest, size, urls=d.urls,
                          annotations={k: v for k, v in d.annotations.items() if not k.startswith(ENC_PREFIX)})

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._prepare())
        await asyncio.shield(self._ready)
        if digest in self.manifests:
            return self.manifests[digest]
        return await self.inner.get_manifest(digest)

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return self.files.get(desc.digest) or self.inner.blob_path(desc)

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        path = self.files.get(desc.digest)
        return file_chunks(path) if path else self.inner.blob_chunks(desc)

    def layer_compression(self, desc: Descriptor) -> Optional[str]:
        if _is_encrypted(desc):           # ciphertext: what its media type says lies beneath
            return m.compression_of(desc.media_type[:-len(ENCRYPTED)])
        return self.inner.layer_compression(desc) if desc.digest not in self.files \
            else super().layer_compression(desc)

    async def head_manifest(self) -> Optional[Digest]:
        return None                       # its manifests are made here, not the source's


    async def close(self) -> None:
        try:
            if self._ready is not None and not self._ready.done():
                self._ready.cancel()
                await asyncio.gather(self._ready, return_exceptions=True)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            await self.inner.close()
