"""The Docker reference grammar (distribution/reference): parsing and normalising `[host/]path[:tag][@digest]`."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from fastsync.errors import InvalidReference
from fastsync.model import Digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_NAME_MAX = 255


@dataclass(frozen=True)
class DockerReference:
    """A normalised docker reference: domain/path[:tag][@digest]."""

    domain: str
    path: str
    tag: Optional[str] = None
    digest: Optional[Digest] = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def registry(self) -> str:
        """Host to contact (docker.io is served by registry-1.docker.io)."""
        return "registry-1.docker.io" if self.domain == DEFAULT_DOMAIN else self.domain

    def with_tag(self, tag: Optional[str]) -> "DockerReference":
        return DockerReference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: Optional[Digest]) -> "DockerReference":
        return DockerReference(self.domain, self.path, self.tag, digest)

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def familiar(self) -> str:
        """Docker's short form (alpine:3 for docker.io/library/alpine:3)."""
        s = str(self)
        if self.domain == DEFAULT_DOMAIN:
            s = s[len(DEFAULT_DOMAIN) + 1:]
            if s.startswith(OFFICIAL_PREFIX) and "/" not in self.path[len(OFFICIAL_PREFIX):]:
                s = s[len(OFFICIAL_PREFIX):]
        return s


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or not any(c in name[:i] for c in ".:") and name[:i] != "localhost" and name[:i].lower() == name[:i]:
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest


def parse_docker_reference(text: str, default_tag: bool = False) -> DockerReference:
    """Parse and normalise `text` as Docker does (`alpine` -> `docker.io/library/alpine`).

    With `default_tag`, a name without tag or digest gets `:latest`.
    """
    if not text:
        raise InvalidReference("empty docker reference")
    rest, digest = text, None
    if "@" in rest:
        rest, _, dpart = rest.partition("@")
        try:
            digest = Digest.parse(dpart)
        except Exception:
            raise InvalidReference(f"invalid docker reference {text!r}: bad digest {dpart!r}") from None
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid docker reference {text!r}: bad tag {tag!r}")
    domain, path = _split_domain(rest)
    if not _DOMAIN_RE.match(domain):
        raise InvalidReference(f"invalid docker reference {text!r}: bad registry host {domain!r}")
    if not _PATH_RE.match(path):
        if path.lower() != path and _PATH_RE.match(path.lower()):
            raise InvalidReference(f"invalid docker reference {text!r}: repository name must be lowercase")
        raise InvalidReference(f"invalid docker reference {text!r}: bad repository name {path!r}")
    if len(domain) + 1 + len(path) > _NAME_MAX:
        raise InvalidReference(f"invalid docker reference {text!r}: repository name longer than {_NAME_MAX}")
    if default_tag and tag is None and digest is None:
        tag = DEFAULT_TAG
    return DockerReference(domain, path, tag, digest)
