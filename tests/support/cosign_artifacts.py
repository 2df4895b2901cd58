"""Supply-chain artefacts made in the tests, as cosign and OCI 1.1 tools write them.

- `signature(subject, identity, key)`: cosign's `sha256-HEX.sig` manifest: one layer per signature
  (the simple-signing payload, `application/vnd.dev.cosign.simplesigning.v1+json`), the ECDSA P-256
  signature (SHA-256, DER, base64) in the `dev.cosignproject.cosign/signature` annotation, and a
  config whose rootfs lists the payload (go-containerregistry's empty image, appended to).
- `attestation(subject)`: cosign's `.att`: a DSSE envelope of an in-toto statement per layer.
- `referrer(subject, artifact_type, body)`: an OCI 1.1 artifact manifest with `subject`
  (an SBOM, a sigstore bundle, ...), the empty config and one layer.
- `push_tagged` / `push_referrers`: push them to a registry (`support.registry.Registry`) by
  cosign tag, or by digest plus the referrers fallback index `sha256-HEX`.
"""
from __future__ import annotations

import base64
import json
from typing import Any, Optional, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .images import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Blob, SampleImage, canonical_json, sha256_digest

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SPDX = "application/spdx+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ZERO_TIME = "0001-01-01T00:00:00Z"


def tag_of(digest: str, suffix: Optional[str] = None) -> str:
    return digest.replace(":", "-", 1) + (f".{suffix}" if suffix else "")


def _desc(blob: Blob, annotations: Optional[dict] = None) -> dict:
    d: dict[str, Any] = {"mediaType": blob.media_type, "size": blob.size, "digest": blob.digest}
    if annotations:
        d["annotations"] = annotations
    return d


def _layered(layers: Sequence[tuple[Blob, dict]]) -> SampleImage:
    """An OCI manifest over `layers` with cosign's config (rootfs listing them)."""
    config = canonical_json({"architecture": "", "config": {}, "created": ZERO_TIME,
                             "history": [{"created": ZERO_TIME} for _ in layers], "os": "",
                             "rootfs": {"type": "layers", "diff_ids": [b.digest for b, _ in layers]}})
    cblob = Blob(sha256_digest(config), config, OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _desc(cblob),
           "layers": [_desc(b, a) for b, a in layers]}
    raw = canonical_json(doc)
    return SampleImage(manifest=raw, media_type=OCI_MANIFEST, digest=sha256_digest(raw),
                       blobs=(cblob, *(b for b, _ in layers)))


def payload(subject: str, identity: str) -> bytes:
    return json.dumps({"critical": {"identity": {"docker-reference": identity},
                                    "image": {"docker-manifest-digest": subject},
                                    "type": "cosign container image signature"},
                       "optional": None}, separators=(",", ":")).encode()


def signature(subject: str, identity: str, keys: Sequence[ec.EllipticCurvePrivateKey],
              appended_to: Optional[SampleImage] = None) -> SampleImage:
    """A `.sig` manifest with one signature per key (after the layers of `appended_to`, as cosign
    signs an image that has signatures already)."""
    data = payload(subject, identity)
    layers: list[tuple[Blob, dict]] = []
    if appended_to is not None:
        blobs = {b.digest: b for b in appended_to.blobs}
        layers = [(blobs[d["digest"]], d.get("annotations") or {})
                  for d in json.loads(appended_to.manifest)["layers"]]
    for key in keys:
        sig = base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()
        layers.append((Blob(sha256_digest(data), data, SIMPLESIGNING), {"dev.cosignproject.cosign/signature": sig}))
    return _layered(layers)


def attestation(subject: str, predicate_type: str = "https://slsa.dev/provenance/v0.2") -> SampleImage:
    statement = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate_type,
                 "subject": [{"name": "image", "digest": {"sha256": subject.split(":", 1)[1]}}],
                 "predicate": {"builder": {"id": "fastsync-tests"}}}
    envelope = json.dumps({"payloadType": "application/vnd.in-toto+json",
                           "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
                           "signatures": [{"keyid": "", "sig": ""}]}).encode()
    return _layered([(Blob(sha256_digest(envelope), envelope, DSSE),
                      {"dev.cosignproject.cosign/signature": "", "predicateType": predicate_type})])


def referrer(subject: SampleImage | tuple[str, str, int], artifact_type: str = SPDX,
             body: bytes = b'{"spdxVersion":"SPDX-2.3"}', annotations: Optional[dict] = None) -> SampleImage:
    mt, digest, size = (subject.media_type, subject.digest, len(subject.manifest)) \
        if isinstance(subject, SampleImage) else subject
    empty = Blob(sha256_digest(b"{}"), b"{}", EMPTY)
    layer = Blob(sha256_digest(body), body, artifact_type)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                           "config": _desc(empty), "layers": [_desc(layer)],
                           "subject": {"mediaType": mt, "digest": digest, "size": size}}
    if annotations:
        doc["annotations"] = annotations
    raw = canonical_json(doc)
    return SampleImage(manifest=raw, media_type=OCI_MANIFEST, digest=sha256_digest(raw), blobs=(empty, layer))


def entry(ref: SampleImage) -> dict:
    doc = json.loads(ref.manifest)
    out = {"mediaType": ref.media_type, "digest": ref.digest, "size": len(ref.manifest),
           "artifactType": doc.get("artifactType") or doc["config"]["mediaType"]}
    if doc.get("annotations"):
        out["annotations"] = doc["annotations"]
    return out


def fallback_index(refs: Sequence[SampleImage]) -> SampleImage:
    raw = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(r) for r in refs]})
    return SampleImage(manifest=raw, media_type=OCI_INDEX, digest=sha256_digest(raw), blobs=())


def push_tagged(registry: Any, repo: str, subject: str, suffix: str, art: SampleImage) -> None:
    registry.push_image(art, repo, tag_of(subject, suffix))


def push_referrers(registry: Any, repo: str, subject: str, refs: Sequence[SampleImage]) -> SampleImage:
    """Each referrer by digest, then the fallback index listing them (as oras and cosign do on a
    registry without the referrers API)."""
    for r in refs:
        registry.push_image(r, repo)
    index = fallback_index(refs)
    registry.push_image(index, repo, tag_of(subject))
    return index


def manifest_at(registry: Any, repo: str, ref: str) -> Optional[bytes]:
    resp = registry.request("GET", f"/v2/{repo}/manifests/{ref}",
                            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    return resp.body if resp.status == 200 else None
