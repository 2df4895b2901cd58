"""Attachments as values: what was found beside an image, and which of them a copy carries."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from fastsync import model as m
from fastsync.model import Digest

SIGNATURE, ATTESTATION, SBOM, REFERRER = "signature", "attestation", "sbom", "referrer"
COSIGN_SUFFIXES = (("sig", SIGNATURE), ("att", ATTESTATION), ("sbom", SBOM))
MAX_DEPTH = 4                 # attachments of attachments of ... (a signature of an SBOM is depth 2)
# tags that hold attachments, not images: cosign's and the referrers fallback index
ATTACHMENT_TAG = re.compile(r"^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$")


def cosign_tag(digest: Digest, suffix: str) -> str:
    return f"{digest.algorithm}-{digest.hex}.{suffix}"


def fallback_tag(digest: Digest) -> str:
    """The referrers tag schema: the index of `digest`'s referrers, for registries without the API."""
    return f"{digest.algorithm}-{digest.hex}"


def artifact_type(doc: Mapping[str, Any]) -> str:
    """A manifest's artifact type as the referrers API reports it: `artifactType`, else the config's
    media type."""
    at = doc.get("artifactType")
    if isinstance(at, str) and at:
        return at
    config = doc.get("config")
    return str(config.get("mediaType", "")) if isinstance(config, dict) else ""


@dataclass(frozen=True)
class Attachment:
    """One manifest that travels with `subject`: by cosign tag (`tag` set) or as a referrer."""

    kind: str                       # signature | attestation | sbom (cosign tags) | referrer (OCI subject)
    digest: Digest                  # of the attachment's manifest
    media_type: str
    artifact_type: str
    subject: Digest
    raw: bytes = field(repr=False, compare=False)
    tag: Optional[str] = None
    depth: int = 1                  # 1: of the image itself; 2: of one of its attachments; ...

    def entry(self) -> dict[str, Any]:
        """The descriptor the referrers index lists for it."""
        import json

        doc = json.loads(self.raw)
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": len(self.raw)}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if isinstance(doc.get("annotations"), dict) and doc["annotations"]:
            out["annotations"] = doc["annotations"]
        return out


@dataclass(frozen=True)
class AttachmentOptions:
    """Whether a copy carries attachments, and which. `types` keeps only attachments whose artifact
    type or kind (signature, attestation, sbom, referrer) is listed; () keeps all. `required`: a
    destination that cannot hold them is an error (copy --attachments) rather than a warning (sync)."""

    enabled: bool = True
    types: tuple[str, ...] = ()
    required: bool = False

    def wants(self, kind: str, artifact: str) -> bool:
        return not self.types or kind in self.types or artifact in self.types


def applying(own: Optional[AttachmentOptions], default: Optional[AttachmentOptions]) -> Optional[AttachmentOptions]:
    """The attachment options a copy goes by: its own (an image's or registry's setting), else the
    job's; None when they carry nothing."""
    atts = own if own is not None else default
    return atts if atts is not None and atts.enabled else None


def is_manifest(media_type: str) -> bool:
    return media_type in (m.OCI_MANIFEST, m.DOCKER_V2S2)
