"""Value objects of the image model: digests, descriptors, platforms, media types. No I/O."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from fastsync.errors import FastsyncError

# Media types
DOCKER_V2S1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V2S1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
SCHEMA1_TYPES = frozenset({DOCKER_V2S1, DOCKER_V2S1_SIGNED})
IMAGE_TYPES = frozenset({DOCKER_V2S2, OCI_MANIFEST}) | SCHEMA1_TYPES
ALL_MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES

# What we ask registries for (order matters little; all must be listed or some registries
# answer MANIFEST_UNKNOWN for an OCI manifest).
MANIFEST_ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_V2S2, DOCKER_LIST, DOCKER_V2S1_SIGNED, DOCKER_V2S1)

_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_HEX_LEN = {"sha256": 64, "sha512": 128, "sha384": 96}


class InvalidDigest(FastsyncError):
    exit_code = 1


@dataclass(frozen=True, order=True)
class Digest:
    """A content digest such as ``sha256:ab12...``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> "Digest":
        m = _DIGEST_RE.match(text or "")
        if not m:
            raise InvalidDigest(f"invalid digest {text!r}")
        algo, hexpart = m.group(1), m.group(2)
        want = _HEX_LEN.get(algo)
        if want is None:
            raise InvalidDigest(f"unsupported digest algorithm {algo!r} in {text!r}")
        if len(hexpart) != want or not re.fullmatch(r"[0-9a-f]+", hexpart):
            raise InvalidDigest(f"invalid {algo} digest {text!r}")
        return cls(algo, hexpart)

    @classmethod
    def of(cls, data: bytes) -> "Digest":
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def encoded(self) -> str:
        return self.hex


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Optional["Platform"]:
        if not obj:
            return None
        return cls(obj.get("os", ""), obj.get("architecture", ""), obj.get("variant", "") or "",
                   obj.get("os.version", "") or "")

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Optional[Platform] = None
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], default_type: str = "") -> "Descriptor":
        try:
            return cls(media_type=obj.get("mediaType") or default_type, digest=Digest.parse(obj["digest"]),
                       size=int(obj.get("size", -1)), platform=Platform.from_json(obj.get("platform")),
                       urls=tuple(obj.get("urls") or ()), annotations=dict(obj.get("annotations") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDigest(f"malformed descriptor {dict(obj)!r}: {exc}") from None

    @classmethod
    def for_bytes(cls, media_type: str, data: bytes) -> "Descriptor":
        return cls(media_type, Digest.of(data), len(data))


def compression_of(media_type: str) -> Optional[str]:
    """'gzip', 'zstd' or None (uncompressed/unknown) for a layer media type."""
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith("gzip") or media_type in (DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN):
        return "gzip"
    return None
