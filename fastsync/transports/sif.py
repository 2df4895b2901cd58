"""`sif:PATH` (read only): a Singularity image (SIF) as a one-layer OCI image, as containers/image's sif
transport (v5.22, skopeo 1.9) builds it.

The SIF file (sylabs/sif v2) is a 128-byte little-endian global header (launch script, magic
`SIF_MAGIC`, version `01`, architecture code, UUID, times, descriptor table place), a table of
585-byte object descriptors, and the objects. The primary system partition (a squashfs) becomes
the layer (`application/vnd.oci.image.layer.v1.tar`, see sif_layer); the definition file's
`%environment` and `%runscript` sections, when not empty, become `/podman/runscript` and the
command, else the command is `bash`. The config, manifest and their JSON are byte for byte what
containers/image writes: created = the SIF's modification time, architecture = the SIF's, two
history entries ("imported from SIF, uuid: ..."). Only the layer's digest differs from skopeo's,
whose tar is not reproducible (sif_layer explains).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Optional

from fastsync.errors import FastsyncError, NotFound, Unsupported
from fastsync.model import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Descriptor, Digest
from fastsync.core.native import sha256_file
from fastsync.transports.base import ImageDestination, ImageSource, PathReference, file_chunks
from fastsync.transports.localfs import in_thread
from fastsync.transports.sif_layer import ConversionError, inject_script, unsquash, write_tar

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session

HEADER = struct.Struct("<32s10s3s3s16s8q")
DESCRIPTOR = struct.Struct("<i?IIIqqqqqqq128s384s")
PARTITION = struct.Struct("<ii3s")
DATA_DEFFILE, DATA_PARTITION = 0x4001, 0x4004
PART_PRIMSYS = 2
ARCHES = {b"01": "386", b"02": "amd64", b"03": "arm", b"04": "arm64", b"05": "ppc64", b"06": "ppc64le",
          b"07": "mips", b"08": "mipsle", b"09": "mips64", b"10": "mips64le", b"11": "s390x", b"12": "riscv64"}


class SifError(FastsyncError):
    """The file is not a SIF image containers/image could load."""


@dataclass(frozen=True)
class SifObject:
    data_type: int
    offset: int
    size: int
    extra: bytes


@dataclass(frozen=True)
class SifFile:
    arch: str
    uuid: str
    modified: int
    objects: tuple[SifObject, ...]

    def find(self, data_type: int, part_type: Optional[int] = None) -> SifObject:
        """sif.GetDescriptor: exactly one matching object, else `object not found` / `multiple objects found`."""
        if not self.objects:
            raise SifError("no objects in image")
        found = [o for o in self.objects if o.data_type == data_type
                 and (part_type is None or PARTITION.unpack_from(o.extra)[1] == part_type)]
        if not found:
            raise SifError("object not found")
        if len(found) > 1:
            raise SifError("multiple objects found")
        return found[0]


def read_sif(path: str) -> SifFile:
    """The global header and used descriptors (sif.LoadContainerFromPath), with sylabs/sif's errors."""
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
        if len(head) < HEADER.size:
            raise SifError("reading global header: " + ("EOF" if not head else "unexpected EOF"))
        _, magic, version, arch, uid, _, modified, _, total, offset, size, _, _ = HEADER.unpack(head)
        if magic != b"SIF_MAGIC\0":
            raise SifError("invalid SIF magic")
        if version != b"01\0":
            raise SifError("incompatible SIF version")
        if total < 0 or offset < 0 or size < total * DESCRIPTOR.size:
            raise SifError("reading descriptors: unexpected EOF")
        f.seek(offset)
        table = f.read(total * DESCRIPTOR.size)
        if len(table) < total * DESCRIPTOR.size:
            raise SifError("reading descriptors: " + ("EOF" if not table else "unexpected EOF"))
    objects = []
    for i in range(total):
        dtype, used, _, _, _, off, osize, _, _, _, _, _, _, extra = DESCRIPTOR.unpack_from(table, i * DESCRIPTOR.size)
        if used:
            objects.append(SifObject(dtype, off, osize, extra))
    return SifFile(ARCHES.get(arch[:2], "unknown") if arch[2:] == b"\0" else "unknown", str(uuid.UUID(bytes=uid)),
                   modified, tuple(objects))


def parse_deffile(text: str) -> tuple[list[str], list[str]]:
    """containers/image's parseDefFile: the non-trivial %environment lines and the %runscript lines."""
    environment: list[str] = []
    runscript: list[str] = []
    state = ""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()              # bufio.Scanner yields no empty line after a final newline
    for raw in lines:
        s = raw.strip()
        if s == "%environment":
            state = "env"
        elif s == "%runscript":
            state = "run"
        elif s.startswith("%"):
            state = ""
        elif state == "env":
            if s and not s.startswith("#"):
                environment.append(s)
        elif state == "run":
            runscript.append(s)
    return environment, runscript


def go_time(seconds: int) -> str:
    """time.Unix(seconds, 0) (local time, as containers/image) marshalled to JSON (RFC 3339)."""
    t = time.localtime(seconds)
    off = t.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'-' if off < 0 else '+'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + zone


def go_marshal(obj: object) -> bytes:
    """encoding/json.Marshal: compact, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def image_config(sif: SifFile, layer: Digest, command: str) -> bytes:
    created = go_time(sif.modified)
    return go_marshal({
        "created": created, "architecture": sif.arch, "os": "linux", "config": {"Cmd": [command]},
        "rootfs": {"type": "layers", "diff_ids": [str(layer)]},
        "history": [{"created": created, "created_by": f"/bin/sh -c #(nop) ADD file:{layer.hex} in /",
                     "comment": f"imported from SIF, uuid: {sif.uuid}"},
                    {"created": created, "created_by": '/bin/sh -c #(nop) CMD ["bash"]', "empty_layer": True}]})


def image_manifest(config: bytes, layer: Digest, layer_size: int) -> bytes:
    return go_marshal({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
                       "layers": [{"mediaType": OCI_LAYER, "digest": str(layer), "size": layer_size}]})


class SifImageReference(PathReference):
    transport = "sif"
    path_kind = "a SIF file path"

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "SifSource":
        return await in_thread(convert, self, session.options.tmpdir)

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> ImageDestination:
        raise Unsupported('"sif:" locations can only be read from, not written to')

    async def delete(self, session: "Session", opts: "TransportOptions") -> None:
        raise Unsupported("Deleting images not implemented for sif: images")


def convert(ref: SifImageReference, tmpdir: Optional[str]) -> "SifSource":
    """Load the SIF file and build the image in a private directory under `tmpdir`."""
    try:
        sif = read_sif(ref.path)
    except (SifError, OSError) as exc:
        text = f"open {ref.path}: {exc.strerror.lower()}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SifError(f"{ref}: loading SIF file: {text}") from None
    work = tempfile.mkdtemp(prefix="sif", dir=tmpdir or os.environ.get("TMPDIR") or "/var/tmp")   # as c/image
    try:
        command, script = "bash", None
        try:
            deffile = sif.find(DATA_DEFFILE)
        except SifError:
            deffile = None
        if deffile is not None:
            with open(ref.path, "rb") as f:
                f.seek(deffile.offset)
                env, run = parse_deffile(f.read(deffile.size).decode("utf-8", "replace"))
            if env or run:
                command = "/podman/runscript"
                script = ("#!/bin/bash\n" + "\n".join(env) + "\n" + "\n".join(run) + "\n").encode()
        try:
            rootfs = sif.find(DATA_PARTITION, PART_PRIMSYS)
            root, layer_path = os.path.join(work, "rootfs"), os.path.join(work, "rootfs.tar")
            if script is not None:
                inject_script(root, script, sif.modified)
            state = unsquash(ref.path, rootfs.offset, root, os.path.join(work, "fakeroot.state"))
            write_tar(root, layer_path, state)
            shutil.rmtree(root)
        except (SifError, ConversionError) as exc:
            raise SifError(f"{ref}: converting rootfs from SquashFS to Tarball: "
                           f"{'looking up rootfs from SIF file: ' if isinstance(exc, SifError) else ''}{exc}") \
                from None
        result = sha256_file(layer_path)
        layer, size = Digest.parse(result.digest), result.size
        config = image_config(sif, layer, command)
        return SifSource(ref, work, layer_path, Descriptor(OCI_LAYER, layer, size),
                         Descriptor(OCI_CONFIG, Digest.of(config), len(config)), config,
                         image_manifest(config, layer, size))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


class SifSource(ImageSource):
    def __init__(self, ref: SifImageReference, work: str, layer_path: str, layer: Descriptor, config_desc: Descriptor,
                 config: bytes, manifest: bytes) -> None:
        self.reference = ref
        self.work = work
        self.layer_path = layer_path
        self.layer = layer
        self.config_desc = config_desc
        self.config = config
        self.manifest = manifest

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        if digest is not None:
            raise Unsupported("manifest lists are not supported by the sif transport")
        return self.manifest, OCI_MANIFEST

    def blob_path(self, desc: Descriptor) -> Optional[str]:
        return self.layer_path if desc.digest == self.layer.digest else None

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        if desc.digest == self.layer.digest:
            return file_chunks(self.layer_path)
        if desc.digest == self.config_desc.digest:
            return _one(self.config)
        raise NotFound(f'no blob with digest "{desc.digest}" found')

    async def close(self) -> None:
        await in_thread(shutil.rmtree, self.work, True)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
