"""Layer (re)compression for --dest-compress, --dest-decompress and --dest-compress-format.

A layer is streamed once through the native Recompressor (source digest checked on the way),
written to a temp file, then handed to the destination like any verified blob. With a store, the
result lands in the store, whose memo (fastsync.store.memo: source digest + format + level -> result)
makes a later run skip the work entirely.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Optional

from fastsync.core import native
from fastsync.errors import DigestMismatch, FastsyncError
from fastsync.model import Descriptor, Digest, compression_of

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import CopyOptions
    from fastsync.store.blobs import Store


@dataclass(frozen=True)
class LayerEdit:
    """Wanted compression of a layer: 'gzip', 'zstd' or None (uncompressed), at `level`."""

    format: Optional[str]
    level: Optional[int] = None

    @property
    def key(self) -> str:
        return f"{self.format or 'none'}-{self.level if self.level is not None else 'default'}"


def layer_edits(man: "Manifest", options: "CopyOptions",
                compress_uncompressed: bool = False) -> dict[Digest, LayerEdit]:
    """The layers of `man` whose compression must change under skopeo's --dest-compress* flags;
    `compress_uncompressed`: the destination wants uncompressed layers gzipped when no flag says
    otherwise (containers/image's oci: destination), unless digests are to be preserved."""
    implicit = (compress_uncompressed and not options.preserve_digests and not man.is_schema1
                and not (options.dest_compress_format or options.dest_compress))
    if options.dest_decompress:
        wanted = LayerEdit(None)
    elif options.dest_compress_format or options.dest_compress or implicit:
        wanted = LayerEdit(options.dest_compress_format or "gzip", options.dest_compress_level)
    else:
        return {}
    # --dest-compress alone compresses what is uncompressed; a format recompresses everything else too
    only_uncompressed = (options.dest_compress or implicit) and not options.dest_compress_format \
        and not options.dest_decompress
    edits = {}
    for d in man.layers:
        current = compression_of(d.media_type)
        if d.urls or current == wanted.format or (only_uncompressed and current is not None):
            continue                     # foreign layers (urls) are referenced, never moved or edited
        edits[d.digest] = wanted
    return edits


async def recompress_to_file(chunks: AsyncIterator[bytes], desc: Descriptor, edit: LayerEdit,
                             directory: str) -> tuple[Descriptor, str]:
    """Stream `chunks` (the layer `desc`) through the recompressor into a temp file in `directory`.

    Returns the new layer's descriptor (media type still the source's; the caller sets it) and the
    temp file's path. The source bytes are verified against `desc` in the same pass.
    """
    loop = asyncio.get_running_loop()
    try:
        rc = native.Recompressor(compression_of(desc.media_type), edit.format, edit.level)
    except ValueError as exc:
        raise FastsyncError(f"layer {desc.digest}: {exc}") from None
    fd, path = tempfile.mkstemp(prefix="layer-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                out = await loop.run_in_executor(None, rc.feed, chunk)
                if out:
                    await loop.run_in_executor(None, f.write, out)
            tail = await loop.run_in_executor(None, rc.finish)
            f.write(tail)
    except native.CompressionError as exc:
        os.unlink(path)
        raise FastsyncError(f"layer {desc.digest}: {exc}") from None
    except BaseException:
        os.unlink(path)
        raise
    if rc.input.digest != str(desc.digest) or (desc.size >= 0 and rc.input.size != desc.size):
        os.unlink(path)
        raise DigestMismatch(f"blob {desc.digest}", str(desc.digest), rc.input.digest)
    return Descriptor(desc.media_type, Digest.parse(rc.output.digest), rc.output.size), path


def scratch_dir(store: Optional["Store"], tmpdir: Optional[str]) -> str:
    return store.tmp if store else (tmpdir or tempfile.gettempdir())
