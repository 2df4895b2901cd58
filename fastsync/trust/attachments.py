"""Sigstore signatures as registry attachments (registries.d `use-sigstore-attachments: true`), as
containers/image keeps them: an OCI manifest tagged `sha256-HEX.sig` in the image's repository, one
layer per signature (the payload as the blob, the signature in the layer's annotations), and a
config whose rootfs lists the layers. Writing appends the signatures not there yet."""
from __future__ import annotations

import json
from typing import Any, AsyncIterator, Optional

from fastsync import model as m
from fastsync.errors import FastsyncError, NotFound
from fastsync.manifest import descriptor_json, parse_manifest
from fastsync.model import Descriptor, Digest
from fastsync.trust.formats import Sigstore

MAX_PAYLOAD = 4 << 20
MAX_CONFIG = 4 << 20


class AttachmentError(FastsyncError):
    """An attachment (a sigstore attachment, a cosign tag, a referrers index) or one of its blobs is
    unusable."""


def attachment_tag(digest: Digest) -> str:
    return f"{digest.algorithm}-{digest.hex}.sig"


async def _manifest(client: Any, repo: str, digest: Digest) -> Optional[Any]:
    tag = attachment_tag(digest)
    try:
        raw, mt, _ = await client.get_manifest(repo, tag)
    except NotFound:
        return None
    if mt != m.OCI_MANIFEST:
        raise AttachmentError(f"unexpected MIME type for sigstore attachment manifest {client.host}/{repo}:{tag}: "
                              f"{mt!r}")
    return parse_manifest(raw, mt)


async def _blob(client: Any, repo: str, desc: Descriptor, limit: int) -> bytes:
    return await small_blob(client.blob_chunks(repo, desc), desc, limit, f"sigstore attachment blob {desc.digest}")


async def small_blob(chunks: AsyncIterator[bytes], desc: Descriptor, limit: int, what: str) -> bytes:
    """A signature payload or config (`what`) read whole from `chunks`, refused beyond `limit` bytes
    and checked against its digest."""
    if desc.size > limit:
        raise AttachmentError(f"{what} is larger than {limit} bytes")
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise AttachmentError(f"{what} is larger than {limit} bytes")
    if Digest.of(bytes(data)) != desc.digest:
        raise AttachmentError(f"{what} does not match its digest")
    return bytes(data)


async def read_attachments(client: Any, repo: str, digest: Digest) -> list[Sigstore]:
    man = await _manifest(client, repo, digest)
    if man is None:
        return []
    return [Sigstore(d.media_type, await _blob(client, repo, d, MAX_PAYLOAD), dict(d.annotations))
            for d in man.layers]


def _matches(layer: Descriptor, sig: Sigstore) -> bool:
    return (layer.media_type == sig.mime_type and layer.size == len(sig.payload)
            and layer.digest == Digest.of(sig.payload) and dict(layer.annotations) == sig.annotations)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _put_blob(client: Any, repo: str, media_type: str, data: bytes) -> Descriptor:
    desc = Descriptor(media_type, Digest.of(data), len(data))
    if not await client.has_blob(repo, desc, scopes=(f"repository:{repo}:pull,push",)):
        await client.upload_blob(repo, desc, _one(data))
    return desc


async def write_attachments(client: Any, repo: str, digest: Digest, sigs: list[Sigstore]) -> None:
    man = await _manifest(client, repo, digest)
    layers: list[Descriptor] = list(man.layers) if man is not None else []
    if man is not None and man.config is not None:
        try:
            config = json.loads(await _blob(client, repo, man.config, MAX_CONFIG))
            if not isinstance(config, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise AttachmentError(f"parsing sigstore attachment config {man.config.digest} in {repo}: {exc}") from None
    else:
        config = {"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    rootfs = config.setdefault("rootfs", {"type": "layers"})
    diff_ids = rootfs.setdefault("diff_ids", [])
    added = False
    for sig in sigs:
        if any(_matches(layer, sig) for layer in layers):
            continue
        desc = await _put_blob(client, repo, sig.mime_type, sig.payload)
        layers.append(Descriptor(desc.media_type, desc.digest, desc.size, annotations=dict(sig.annotations)))
        diff_ids.append(str(desc.digest))
        added = True
    if man is not None and not added:
        return
    conf = await _put_blob(client, repo, m.OCI_CONFIG,
                           json.dumps(config, separators=(",", ":")).encode())
    doc = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": descriptor_json(conf),
           "layers": [descriptor_json(d) for d in layers]}
    await client.put_manifest(repo, attachment_tag(digest), json.dumps(doc, separators=(",", ":")).encode(),
                              m.OCI_MANIFEST)
