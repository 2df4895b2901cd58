"""The vocabulary of sync's inputs: what the command line asked for, the images a source kind finds,
and what a destination kind is; plus the docker helpers every registry-backed source kind uses."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional, Protocol

from fastsync.errors import InvalidReference
from fastsync.options import TransportOptions
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.session import Session
from fastsync.sync.plan import Probe, SyncOptions
from fastsync.transports.base import ImageReference


@dataclass(frozen=True)
class SyncRequest:
    """One `sync`: every image of `source` (read as a `src_kind`) to `destination` (a `dest_kind`)."""

    source: str
    destination: str
    src_kind: str = "docker"
    dest_kind: str = "docker"
    options: SyncOptions = SyncOptions()
    src_opts: TransportOptions = TransportOptions()
    dst_opts: TransportOptions = TransportOptions()
    scoped: bool = False
    append_suffix: str = ""
    src_registry: Optional[str] = None     # list: prefix for lines without a registry
    auth_file: Optional[str] = None        # image-syncer: its auth file


@dataclass(frozen=True)
class SyncInput(SyncRequest):
    """The request as the source and destination kinds read it, with what resolving it collects."""

    keep_going: bool = False
    warnings: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def of(cls, request: SyncRequest) -> "SyncInput":
        return cls(**{f.name: getattr(request, f.name) for f in fields(SyncRequest)},
                   keep_going=request.options.keep_going)


@dataclass(frozen=True)
class SourceImage:
    ref: ImageReference
    opts: TransportOptions
    suffix: str                       # skopeo's destination suffix (the --scoped form)
    plain: Optional[str] = None       # the unscoped suffix, when not the last element of `suffix`
    dest: Optional[str] = None        # an explicit destination name (image-syncer), no suffix logic
    attachments: Optional[Any] = None  # AttachmentOptions of its registry (YAML `attachments:`); None: the job's


class SourceKind(Protocol):
    async def __call__(self, session: Session, inp: SyncInput) -> list[SourceImage]: ...


def _as_written(destination: str) -> str:
    return destination


@dataclass(frozen=True)
class DestKind:
    name: str
    reference: Callable[[str], ImageReference]        # the joined name -> reference
    probe: Callable[[ImageReference, TransportOptions], Optional[Probe]]
    local: bool = False                               # a filesystem path (dir -> dir is refused)
    # DESTINATION as written -> as image names are joined to it (registry-storage: a bare ROOT is ROOT:)
    destination: Callable[[str], str] = _as_written


def docker_image(ref: DockerReference) -> ImageReference:
    from fastsync.transports.docker import DockerImageReference

    return DockerImageReference(ref)


async def repository_images(session: Session, repo: DockerReference, opts: TransportOptions) -> list[DockerReference]:
    """Every tag of a repository as a reference (tags that are not valid references are skipped)."""
    tags = await session.registry(repo.registry, opts).list_tags(repo.path)
    out = []
    for tag in tags:
        try:
            out.append(parse_docker_reference(f"{repo.name}:{tag}"))
        except InvalidReference:
            continue
    return out
