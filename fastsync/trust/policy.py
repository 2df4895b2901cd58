"""policy.json (containers-policy.json(5)): parsed as strictly as containers/image parses it (unknown
or duplicate keys refused), found where skopeo looks for it, and the requirements for one image
picked by scope: the image's own identity, then its namespaces (most specific first), then the
transport's "" scope, then the default."""
from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from fastsync.errors import FastsyncError, InvalidReference
from fastsync.reference import DockerReference, parse_docker_reference

SYSTEM_POLICY = "/etc/containers/policy.json"
USER_POLICY = ".config/containers/policy.json"
GPG_KEYS = "GPGKeys"
KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")
PATH_TRANSPORTS = ("dir", "oci", "oci-archive", "registry-storage")


class PolicyError(FastsyncError):
    """The policy file is missing or malformed."""


class PolicyRejected(FastsyncError):
    """The policy does not allow this image; the message is containers/image's."""


@dataclass(frozen=True)
class Identity:
    """A signedIdentity: matchRepoDigestOrExact, matchExact, matchRepository, exactReference
    (`value` is the reference), exactRepository (`value` the repository), remapIdentity (`value`
    the prefix, `signed_prefix` what signatures name instead)."""

    type: str = "matchRepoDigestOrExact"
    value: str = ""
    signed_prefix: str = ""


@dataclass(frozen=True)
class InsecureAcceptAnything:
    type = "insecureAcceptAnything"


@dataclass(frozen=True)
class Reject:
    type = "reject"


@dataclass(frozen=True)
class SignedBy:
    key_type: str
    key_paths: tuple[str, ...] = ()
    key_data: Optional[bytes] = None
    identity: Identity = Identity()
    type = "signedBy"


@dataclass(frozen=True)
class SigstoreSigned:
    key_path: str = ""
    key_data: Optional[bytes] = None
    identity: Identity = Identity()
    type = "sigstoreSigned"


Requirement = Union[InsecureAcceptAnything, Reject, SignedBy, SigstoreSigned]


@dataclass(frozen=True)
class Policy:
    default: tuple[Requirement, ...]
    transports: dict[str, dict[str, tuple[Requirement, ...]]] = field(default_factory=dict, hash=False)

    @classmethod
    def accept_anything(cls) -> "Policy":
        return cls((InsecureAcceptAnything(),))

    def requirements(self, transport: str, identity: str, namespaces: list[str]) -> tuple[Requirement, ...]:
        scopes = self.transports.get(transport)
        if scopes is not None:
            for name in ([identity] if identity else []) + namespaces + [""]:
                if name in scopes:
                    return scopes[name]
        return self.default


def default_policy_path(home: Optional[str] = None, system: str = SYSTEM_POLICY) -> str:
    """skopeo's choice: $HOME/.config/containers/policy.json when it exists, else the system file."""
    user = os.path.join(home if home is not None else os.path.expanduser("~"), USER_POLICY)
    return user if os.path.exists(user) else system


def load(path: str) -> Policy:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PolicyError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        return parse(data)
    except PolicyError as exc:
        raise PolicyError(f'invalid policy in "{path}": {exc}') from None


# ---- strict JSON ------------------------------------------------------------------------------

class _Obj(list):
    pass


def _obj(value: Any, fields: Optional[tuple[str, ...]] = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, _Obj):
        raise PolicyError(f"JSON object expected, got {_show(value)}")
    out: dict[str, Any] = {}
    for k, v in value:
        if k in out:
            raise PolicyError(f'Duplicate key "{k}"')
        if fields is not None and k not in fields:
            raise PolicyError(f'Unknown key "{k}"')
        out[k] = v
    for k in required:
        if k not in out:
            raise PolicyError(f'Key "{k}" missing in a JSON object')
    return out


def _show(value: Any) -> str:
    return "an array" if isinstance(value, list) and not isinstance(value, _Obj) else json.dumps(value)[:40]


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"json: cannot unmarshal {_show(value)} into a string ({what})")
    return value


def parse(data: bytes) -> Policy:
    try:
        doc = json.loads(data, object_pairs_hook=_Obj)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PolicyError(str(exc)) from None
    top = _obj(doc, ("default", "transports"))
    if "default" not in top or top["default"] is None:
        raise PolicyError("Default policy is missing")
    transports: dict[str, dict[str, tuple[Requirement, ...]]] = {}
    if top.get("transports") is not None:
        for name, scopes in _obj(top["transports"]).items():
            transports[name] = {}
            for scope, reqs in _obj(scopes).items():
                if scope and not _valid_scope(name, scope):
                    raise PolicyError(f'Unknown key "{scope}"')
                transports[name][scope] = _requirements(reqs)
    return Policy(_requirements(top["default"]), transports)


def _valid_scope(transport: str, scope: str) -> bool:
    if transport in PATH_TRANSPORTS:
        return scope.startswith("/") and scope != "/" and os.path.normpath(scope) == scope
    if transport == "docker-archive":
        return False
    return True


def _requirements(value: Any) -> tuple[Requirement, ...]:
    if not isinstance(value, list) or isinstance(value, _Obj):
        raise PolicyError(f"json: cannot unmarshal {_show(value)} into a list of requirements")
    if not value:
        raise PolicyError("List of verification policy requirements must not be empty")
    return tuple(_requirement(v) for v in value)


def _requirement(value: Any) -> Requirement:
    t = _obj(value).get("type")
    if t == "insecureAcceptAnything":
        _obj(value, ("type",), ("type",))
        return InsecureAcceptAnything()
    if t == "reject":
        _obj(value, ("type",), ("type",))
        return Reject()
    if t == "signedBy":
        o = _obj(value, ("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"))
        key_type = _str(o.get("keyType", ""), "keyType")
        if key_type not in KEY_TYPES:
            raise PolicyError(f'Unrecognized keyType value "{key_type}"' if "keyType" in o
                              else 'invalid keyType ""')
        sources = [k for k in ("keyPath", "keyPaths", "keyData") if k in o]
        if not sources:
            raise PolicyError("Exactly one of keyPath, keyPaths and keyData must be specified, none of them present")
        if len(sources) > 1:
            raise PolicyError("Exactly one of keyPath, keyPaths and keyData must be specified, more than one present")
        paths: tuple[str, ...] = ()
        data = None
        if "keyPath" in o:
            paths = (_str(o["keyPath"], "keyPath"),)
        elif "keyPaths" in o:
            if not isinstance(o["keyPaths"], list) or isinstance(o["keyPaths"], _Obj):
                raise PolicyError("keyPaths must be a list of paths")
            paths = tuple(_str(p, "keyPaths") for p in o["keyPaths"])
        else:
            data = _b64(o["keyData"])
        return SignedBy(key_type, paths, data, _identity(o.get("signedIdentity")))
    if t == "sigstoreSigned":
        o = _obj(value, ("type", "keyPath", "keyData", "signedIdentity"))
        if "keyPath" in o and "keyData" in o:
            raise PolicyError("keyPath and keyData cannot be used simultaneously")
        if "keyPath" not in o and "keyData" not in o:
            raise PolicyError("At least one of keyPath and keyData must be specified")
        return SigstoreSigned(_str(o.get("keyPath", ""), "keyPath"),
                              _b64(o["keyData"]) if "keyData" in o else None, _identity(o.get("signedIdentity")))
    if t == "signedBaseLayer":
        raise PolicyError('policy requirement type "signedBaseLayer" is not supported by fastsync')
    raise PolicyError(f'Unknown policy requirement type "{t if isinstance(t, str) else ""}"')


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(_str(value, "keyData"), validate=True)
    except ValueError as exc:
        raise PolicyError(f"keyData: illegal base64 data: {exc}") from None


_DOMAIN_RE = re.compile(r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
                        r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$")


def _identity(value: Any) -> Identity:
    if value is None:
        return Identity()
    t = _obj(value).get("type")
    if t in ("matchExact", "matchRepoDigestOrExact", "matchRepository"):
        _obj(value, ("type",), ("type",))
        return Identity(t)
    if t == "exactReference":
        ref = _str(_obj(value, ("type", "dockerReference"), ("type", "dockerReference"))["dockerReference"],
                   "dockerReference")
        parsed = _docker(ref, "dockerReference")
        if parsed.tag is None and parsed.digest is None:
            raise PolicyError(f"dockerReference {ref} contains neither a tag nor digest")
        return Identity(t, ref)
    if t == "exactRepository":
        repo = _str(_obj(value, ("type", "dockerRepository"), ("type", "dockerRepository"))["dockerRepository"],
                    "dockerRepository")
        _docker(repo, "dockerRepository")
        return Identity(t, repo)
    if t == "remapIdentity":
        o = _obj(value, ("type", "prefix", "signedPrefix"), ("type", "prefix", "signedPrefix"))
        prefix, signed = _str(o["prefix"], "prefix"), _str(o["signedPrefix"], "signedPrefix")
        for p in (prefix, signed):
            if not _DOMAIN_RE.match(p):
                try:
                    r = parse_docker_reference(p)
                except InvalidReference:
                    raise PolicyError(f"prefix {p} is not a valid image reference") from None
                if r.tag or r.digest or r.name != p:
                    raise PolicyError(f"prefix {p} is not a valid image reference")
        return Identity(t, prefix, signed)
    raise PolicyError(f'Unknown policy reference match type "{t if isinstance(t, str) else ""}"')


def _docker(text: str, what: str) -> DockerReference:
    try:
        return parse_docker_reference(text)
    except InvalidReference as exc:
        raise PolicyError(f"Invalid format of {what} {text}: {exc}") from None
