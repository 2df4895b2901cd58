"""The JSON payloads a container signature signs: "atomic container signature" (simple signing)
and "cosign container image signature" (sigstore). Built as containers/image marshals them, parsed
as strictly as it parses them: exactly the critical fields, unknown optional fields ignored."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Optional

from fastsync.errors import FastsyncError

SIMPLE_SIGNING_TYPE = "atomic container signature"
SIGSTORE_TYPE = "cosign container image signature"
CREATOR = "fastsync"


class InvalidSignature(FastsyncError):
    """A signature (or its payload) is malformed, does not verify, or does not match."""


@dataclass(frozen=True)
class Payload:
    """The claims of a signature: this manifest digest is the image named by this reference."""

    manifest_digest: str
    docker_reference: str
    creator: Optional[str] = None
    timestamp: Optional[int] = None


def go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, map keys sorted, <>& and U+2028/9 escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode()


def build(manifest_digest: str, docker_reference: str, sig_type: str = SIMPLE_SIGNING_TYPE,
          creator: str = CREATOR, timestamp: Optional[int] = None) -> bytes:
    """The payload bytes for a new signature (creator and the current time as optional fields)."""
    if not manifest_digest or not docker_reference:
        raise InvalidSignature("Unexpected empty signature content")
    return go_json({
        "critical": {"type": sig_type,
                     "image": {"docker-manifest-digest": manifest_digest},
                     "identity": {"docker-reference": docker_reference}},
        "optional": {"creator": creator, "timestamp": int(time.time()) if timestamp is None else timestamp},
    })


def _pairs(pairs: list[tuple[str, Any]]) -> "_Object":
    return _Object(pairs)


class _Object(list):
    """A JSON object kept as its (key, value) pairs, so duplicate keys can be refused."""


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, _Object):
        raise InvalidSignature(f"JSON object expected in {what}")
    out: dict[str, Any] = {}
    for key, v in value:
        if key in out:
            raise InvalidSignature(f'Duplicate key "{key}"')
        out[key] = v
    return out


def _exact(value: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    obj = _object(value, what)
    for key in obj:
        if key not in fields:
            raise InvalidSignature(f'Unknown key "{key}"')
    for key in fields:
        if key not in obj:
            raise InvalidSignature(f'Key "{key}" missing in a JSON object')
    return obj


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidSignature(f"json: cannot unmarshal {_kind(value)} into Go value of type string ({field})")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "string"


def parse(data: bytes, sig_type: str = SIMPLE_SIGNING_TYPE) -> Payload:
    """Parse a payload strictly: exactly `critical` and `optional`; in `critical` exactly type, image
    and identity; the type must be `sig_type`. Raises InvalidSignature."""
    try:
        doc = json.loads(data, object_pairs_hook=_pairs)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSignature(f"invalid signature payload: {exc}") from None
    top = _exact(doc, ("critical", "optional"), "the signature")
    creator: Optional[str] = None
    timestamp: Optional[int] = None
    optional = top["optional"]
    if optional is not None or sig_type == SIMPLE_SIGNING_TYPE:
        opt = _object(optional, "optional")
        if "creator" in opt:
            creator = _string(opt["creator"], "optional.creator")
        if "timestamp" in opt:
            ts = opt["timestamp"]
            if isinstance(ts, bool) or not isinstance(ts, (int, float)):
                raise InvalidSignature("json: cannot unmarshal into Go value of type float64 (optional.timestamp)")
            if isinstance(ts, float) and not ts.is_integer():
                raise InvalidSignature("Field optional.timestamp is not is not an integer")
            timestamp = int(ts)
    critical = _exact(top["critical"], ("type", "image", "identity"), "critical")
    t = _string(critical["type"], "critical.type")
    if t != sig_type:
        raise InvalidSignature(f"Unrecognized signature type {t}")
    image = _exact(critical["image"], ("docker-manifest-digest",), "critical.image")
    identity = _exact(critical["identity"], ("docker-reference",), "critical.identity")
    return Payload(_string(image["docker-manifest-digest"], "docker-manifest-digest"),
                   _string(identity["docker-reference"], "docker-reference"), creator, timestamp)
