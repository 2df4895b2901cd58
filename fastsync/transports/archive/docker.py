"""`docker-archive:PATH[:NAME[:TAG]|:@N]`: the tar `docker save` writes and `docker load` reads.

As containers/image (docker/archive, docker/internal/tarfile) does it:

- writing: one Docker v2s2 image (OCI manifests are converted by the engine; an index cannot be
  stored). Layers are stored decompressed as `<diff_id hex>.tar`, the config as `<hex>.json`, then
  the legacy per-layer directories (`<id>/layer.tar` symlink, `VERSION`, `json`), `manifest.json`
  (`[{"Config", "RepoTags", "Layers"}]`) and `repositories`. NAME[:TAG] becomes the RepoTag
  (`docker.io/library/x:latest` for `x`). A non-empty existing file is refused, as skopeo does.
- reading: the image named by NAME:TAG among the RepoTags, the `@N`th entry of manifest.json, or
  the only one. Layers may be plain or gzip/zstd compressed; they are served decompressed, under
  their diff_ids, in a v2s2 manifest built as containers/image builds it (labelled `.tar.gzip`
  although plain, so the manifest digest is the one `skopeo inspect` shows; the engine is told
  the truth by `layer_compression`, and gzips them for destinations that want compressed layers).
"""
from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from fastsync import model as m
from fastsync.core import native
from fastsync.errors import FastsyncError, InvalidReference, ManifestError, NotFound, Unsupported
from fastsync.manifest import dumps
from fastsync.model import Descriptor, Digest
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.transports.archive.tar import ArchiveError, Decoder, TarReader, TarWriter
from fastsync.transports.base import CHUNK, Capabilities, ImageDestination, ImageReference, ImageSource
from fastsync.transports.localfs import in_thread

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.session import Session

_LEGACY_ATTRS = ("architecture", "config", "container", "container_config", "created", "docker_version", "os")


class DockerArchiveReference(ImageReference):
    transport = "docker-archive"

    def __init__(self, path: str, ref: Optional[DockerReference] = None, index: int = -1) -> None:
        self.path = os.path.abspath(path)
        self.ref = ref
        self.index = index

    @classmethod
    def parse(cls, details: str) -> "DockerArchiveReference":
        path, sep, rest = details.partition(":")
        if not path:
            raise InvalidReference(f"invalid image name 'docker-archive:{details}': an archive path is required")
        if not sep:
            return cls(path)
        if rest.startswith("@"):
            if not rest[1:].isdigit():
                raise InvalidReference(f"invalid image name 'docker-archive:{details}': invalid source index {rest!r}")
            return cls(path, index=int(rest[1:]))
        ref = parse_docker_reference(rest, default_tag=True)
        if ref.digest is not None:
            raise InvalidReference(f"invalid image name 'docker-archive:{details}': docker-archive doesn't support "
                                   "digest references")
        return cls(path, ref)

    @property
    def local_path(self) -> str:
        return self.path

    @property
    def details(self) -> str:
        if self.ref is not None:
            return f"{self.path}:{self.ref}"
        return f"{self.path}:@{self.index}" if self.index >= 0 else self.path

    @property
    def docker_reference(self) -> Optional[DockerReference]:
        return self.ref

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "DockerArchiveSource":
        loop = asyncio.get_running_loop()
        reader = await loop.run_in_executor(None, TarReader, self.path, str(self), session.options.tmpdir)
        try:
            src = DockerArchiveSource(self, reader)
            await loop.run_in_executor(None, src.load)
        except BaseException:
            reader.close()
            raise
        return src

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "DockerArchiveDestination":
        if self.index >= 0:
            raise InvalidReference(f"{self}: a destination cannot name a manifest index (@{self.index})")
        if os.path.isdir(self.path):
            raise FastsyncError(f"{self}: is a directory")
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            raise FastsyncError(f"{self}: docker-archive doesn't support modifying existing images "
                                "(the file is not empty)")
        return DockerArchiveDestination(self, tuple(parse_docker_reference(t) for t in opts.additional_tags))


def archive_tags(ref: DockerArchiveReference, tmpdir: Optional[str] = None) -> list[str]:
    """skopeo list-tags docker-archive:PATH: every image's RepoTags in manifest.json order, `@N`
    for an untagged image N (containers/image's archive Reader.List)."""
    reader = TarReader(ref.path, str(ref), tmpdir)
    try:
        try:
            items = json.loads(reader.read("manifest.json"))
        except NotFound:
            raise ArchiveError(f"{ref}: not a docker archive (no manifest.json)") from None
        except ValueError as exc:
            raise ManifestError(f"{ref}: manifest.json is not valid JSON: {exc}") from None
    finally:
        reader.close()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ManifestError(f"{ref}: manifest.json is not a list of images")
    tags = []
    for i, item in enumerate(items):
        tags += [str(parse_docker_reference(t, default_tag=True)) for t in item.get("RepoTags") or ()] or [f"@{i}"]
    return tags


def choose_item(items: list[dict[str, Any]], ref: DockerArchiveReference) -> dict[str, Any]:
    """The manifest.json entry `ref` names (containers/image's ChooseManifestItem)."""
    if ref.ref is not None:
        want = str(ref.ref)
        for i, item in enumerate(items):
            for tag in item.get("RepoTags") or ():
                try:
                    parsed = parse_docker_reference(tag, default_tag=True)
                except FastsyncError:
                    raise ManifestError(f"{ref}: invalid tag {tag!r} in manifest.json item @{i}") from None
                if str(parsed) == want:
                    return item
        raise NotFound(f'{ref}: Tag "{want}" not found in the archive')
    if ref.index >= 0:
        if ref.index >= len(items):
            raise NotFound(f"{ref}: Invalid source index @{ref.index}, only {len(items)} manifest items available")
        return items[ref.index]
    if len(items) != 1:
        raise NotFound(f"{ref}: Unexpected tar manifest.json: expected 1 item, got {len(items)} (the archive "
                       "holds several images; name one as docker-archive:PATH:NAME:TAG or docker-archive:PATH:@N)")
    return items[0]


class DockerArchiveSource(ImageSource):
    def __init__(self, ref: DockerArchiveReference, reader: TarReader) -> None:
        self.reference = ref
        self.reader = reader
        self.config = b""
        self.config_digest: Optional[Digest] = None
        self.layers: dict[Digest, tuple[str, int]] = {}   # diff_id -> (member, uncompressed size)
        self.manifest = b""

    def load(self) -> None:
        """Read manifest.json and the config; size the layers (compressed ones are decompressed once
        to count, as containers/image does); build the v2s2 manifest."""
        what = str(self.reference)
        try:
            items = json.loads(self.reader.read("manifest.json"))
        except NotFound:
            raise ArchiveError(f"{what}: not a docker archive (no manifest.json)") from None
        except ValueError as exc:
            raise ManifestError(f"{what}: manifest.json is not valid JSON: {exc}") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ManifestError(f"{what}: manifest.json is not a list of images")
        item = self.choose(items)
        try:
            self.config = self.reader.read(item["Config"])
            config = json.loads(self.config)
            diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"] or ()]
            paths = list(item.get("Layers") or ())
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{what}: malformed image entry or config: {exc}") from None
        if len(paths) != len(diff_ids):
            raise ManifestError(f"{what}: inconsistent layer count: {len(paths)} in manifest.json, "
                                f"{len(diff_ids)} in the config")
        self.config_digest = Digest.of(self.config)
        layers = []
        for path, diff_id in zip(paths, diff_ids):
            if diff_id not in self.layers:
                self.layers[diff_id] = (path, self._uncompressed_size(path))
            layers.append({"mediaType": m.DOCKER_LAYER_GZIP, "size": self.layers[diff_id][1],
                           "digest": str(diff_id)})
        # labelled gzip although served uncompressed, as containers/image does (so the manifest
        # digest is skopeo's); layer_compression() tells the engine what the bytes really are
        self.manifest = dumps({"schemaVersion": 2, "mediaType": m.DOCKER_V2S2,
                               "config": {"mediaType": m.DOCKER_CONFIG, "size": len(self.config),
                                          "digest": str(self.config_digest)},
                               "layers": layers})

    def choose(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The manifest.json entry to read (a subclass reading another container of the format may
        choose differently)."""
        return choose_item(items, self.reference)

    def _uncompressed_size(self, path: str) -> int:
        ti = self.reader.member(path)
        if native.detect_compression(self.reader.head(path, 4)) is None:
            return ti.size
        decoder = Decoder(f"{self.reference}: layer {path}")
        size, offset, left = 0, ti.offset_data, ti.size
        while left:
            data = os.pread(self.reader.fd, min(CHUNK, left), offset)
            if not data:
                raise ArchiveError(f"{self.reference}: layer {path} is truncated")
            offset += len(data)
            left -= len(data)
            size += len(decoder.feed(data))
        return size + len(decoder.finish())

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        if digest is not None and digest != Digest.of(self.manifest):
            raise NotFound(f"{self.reference}: manifest {digest} not found")
        return self.manifest, m.DOCKER_V2S2

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        if desc.digest == self.config_digest:
            return _one(self.config)
        found = self.layers.get(desc.digest)
        if found is None:
            raise NotFound(f"{self.reference}: blob {desc.digest} not found")
        return _decompressed(self.reader.chunks(found[0]), Decoder(f"{self.reference}: layer {found[0]}"))

    def layer_compression(self, desc: Descriptor) -> Optional[str]:
        return None   # every layer is served decompressed

    async def list_tags(self) -> list[str]:
        return []     # skopeo inspect shows no RepoTags for archives

    async def close(self) -> None:
        self.reader.close()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _decompressed(chunks: AsyncIterator[bytes], decoder: Decoder) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    async for chunk in chunks:
        out = await loop.run_in_executor(None, decoder.feed, chunk)
        if out:
            yield out
    tail = decoder.finish()
    if tail:
        yield tail


class DockerArchiveDestination(ImageDestination):
    capabilities = Capabilities(manifest_types=frozenset({m.DOCKER_V2S2}), supports_index=False)

    def __init__(self, ref: DockerArchiveReference, additional_tags: tuple[DockerReference, ...] = ()) -> None:
        self.reference = ref
        self.additional_tags = additional_tags      # skopeo copy --additional-tag: more RepoTags
        self.tar = TarWriter(ref.path, str(ref))
        self.stored: dict[Digest, str] = {}     # blob digest -> member name
        self.man: Optional["Manifest"] = None
        self.done = False

    async def try_reuse_blob(self, desc: Descriptor, mount_from=None) -> bool:
        return desc.digest in self.stored

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        if desc.media_type in (m.DOCKER_CONFIG, m.OCI_CONFIG):
            name = await self.tar.add_stream(chunks, lambda: f"{desc.digest.hex}.json")
        else:
            decoder = Decoder(f"{self.reference}: layer {desc.digest}")
            name = await self.tar.add_stream(chunks, lambda: f"{decoder.diff_id.split(':', 1)[1]}.tar", decoder)
        self.stored[desc.digest] = name

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        if man.media_type != m.DOCKER_V2S2 or instance:
            raise Unsupported(f"{self.reference}: a docker archive holds one Docker v2s2 image, "
                              f"not a {man.media_type} manifest")
        self.man = man

    async def commit(self) -> None:
        if self.man is None:
            raise FastsyncError(f"{self.reference}: nothing to commit (no manifest was written)")
        assert self.man.config is not None
        missing = [d.digest for d in self.man.blobs() if d.digest not in self.stored]
        if missing:
            raise FastsyncError(f"{self.reference}: blob {missing[0]} was not written")
        config_name = self.stored[self.man.config.digest]
        if not config_name.endswith(".json"):
            raise FastsyncError(f"{self.reference}: the config has media type {self.man.config.media_type}")
        layers = [self.stored[d.digest] for d in self.man.layers]
        tags = [self.reference.ref] if self.reference.ref is not None else []
        tags += [t for t in self.additional_tags if str(t) not in {str(x) for x in tags}]
        config = self.tar.read(config_name)
        repositories: dict[str, dict[str, str]] = {}
        top = write_legacy_layers(self.tar, layers, config)
        if top:
            for t in tags:
                repositories.setdefault(t.name, {})[t.tag or "latest"] = top
        item = {"Config": config_name, "RepoTags": [f"{t.name}:{t.tag}" for t in tags], "Layers": layers}
        self.tar.add_bytes("manifest.json", dumps([item]))
        self.tar.add_bytes("repositories", dumps(repositories))
        await in_thread(self.tar.finish)
        self.done = True

    async def close(self) -> None:
        if not self.done:
            self.tar.abort()


def write_legacy_layers(tar: TarWriter, layers: list[str], config: bytes) -> str:
    """Docker's pre-1.10 per-layer directories, with IDs computed as containers/image computes them
    (chain IDs, Go's JSON); returns the top layer's ID ('' without layers)."""
    raw = raw_fields(config)
    chain, last, written = "", "", set()
    for i, path in enumerate(layers):
        diff_id = "sha256:" + path[:-len(".tar")]
        layer: dict[str, str] = {}
        if last:
            layer["parent"] = json.dumps(last)
        if i == len(layers) - 1:
            for attr in _LEGACY_ATTRS:
                layer[attr] = raw.get(attr, "null")
        chain = diff_id if not chain else str(Digest.of(f"{chain} {diff_id}".encode()))
        layer_id = Digest.of(_go_object({**layer, "layer_id": json.dumps(chain)})).hex
        if layer_id not in written:
            tar.add_symlink(f"{layer_id}/layer.tar", f"../{path}")
            tar.add_bytes(f"{layer_id}/VERSION", b"1.0")
            tar.add_bytes(f"{layer_id}/json", _go_object({**layer, "id": json.dumps(layer_id)}))
            written.add(layer_id)
        last = layer_id
    return last


def _go_object(fields: dict[str, str]) -> bytes:
    """A JSON object from raw JSON values, keys sorted, as Go marshals a map."""
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in sorted(fields.items())) + "}").encode()


def raw_fields(doc: bytes) -> dict[str, str]:
    """The top-level fields of a JSON object as compact raw JSON text (Go's json.RawMessage, compacted
    with HTML escaping as json.Marshal does)."""
    text = doc.decode("utf-8", "replace")
    dec = json.JSONDecoder()
    out: dict[str, str] = {}
    ws = " \t\n\r"
    i = 0
    while i < len(text) and text[i] in ws:
        i += 1
    if text[i:i + 1] != "{":
        return out
    i += 1
    while True:
        while i < len(text) and text[i] in ws + ",":
            i += 1
        if i >= len(text) or text[i] == "}":
            return out
        key, i = json.decoder.scanstring(text, i + 1)
        while text[i] in ws + ":":
            i += 1
        _, end = dec.raw_decode(text, i)
        out[key] = _compact(text[i:end])
        i = end


def _compact(raw: str) -> str:
    out, in_str, esc = [], False, False
    for c in raw:
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c in " \t\n\r":
            continue
        elif c == '"':
            in_str = True
        out.append({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                    "\u2029": "\\u2029"}.get(c, c))
    return "".join(out)
