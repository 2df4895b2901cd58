"""skopeo's `containers-storage:` transport: the local image store of podman, buildah and CRI-O.

Image names, as containers/image's storage transport parses them:

    containers-storage:[DRIVER@GRAPHROOT+RUNROOT:OPT,OPT]NAME[:TAG|@DIGEST][@IMAGEID]
    containers-storage:NAME            the store storage.conf names (see config.py)
    containers-storage:IMAGEID         a full id, or a prefix (3+ characters) of an image's id
    containers-storage:@IMAGEID

NAME is normalised as Docker does (`busybox` -> `docker.io/library/busybox:latest`). Every part
of the spec is optional (`[/graph]name`, `[vfs@/graph+/run]name`); what it leaves out comes from
storage.conf. The drivers are `vfs` and `overlay`; overlay layers are written and read without
mounting anything.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from fastsync.errors import FastsyncError, InvalidReference, NotFound, Unsupported
from fastsync.model import Digest
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.transports.base import ImageReference
from fastsync.transports.cstorage import layout as L
from fastsync.transports.cstorage.config import default_store

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.cstorage.destination import StorageDestination
    from fastsync.transports.cstorage.source import StorageSource
    from fastsync.transports.cstorage.store import Store

MIN_ID_PREFIX = 3
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class StoreSpec:
    driver: str = ""
    graphroot: str = ""
    runroot: str = ""
    options: tuple[str, ...] = ()


def parse_spec(text: str, name: str) -> StoreSpec:
    """The inside of `[...]`: DRIVER@GRAPHROOT+RUNROOT:OPTIONS, each part optional."""
    driver = ""
    if "@" in text:
        driver, _, text = text.partition("@")
        if not driver or not text:
            raise InvalidReference(f"invalid image name {name!r}: invalid store specification")
    elif not text:
        raise InvalidReference(f"invalid image name {name!r}: empty store specification")
    text, sep, opts = text.partition(":")
    options = tuple(opts.split(",")) if sep else ()
    graphroot, _, runroot = text.partition("+")
    for path in (graphroot, runroot):
        if path and not os.path.isabs(path):
            raise InvalidReference(f"invalid image name {name!r}: path name {path!r} is not absolute")
    if driver == "overlay2":
        driver = "overlay"
    return StoreSpec(driver, graphroot, runroot, options)


class StorageReference(ImageReference):
    transport = "containers-storage"

    def __init__(self, spec: StoreSpec, named: Optional[DockerReference], image_id: str = "",
                 id_prefix: str = "", maybe_prefix: str = "") -> None:
        conf = default_store() if not (spec.driver and spec.graphroot and spec.runroot) else None
        self.paths = L.StorePaths(spec.driver or (conf.driver if conf else ""),
                                  os.path.abspath(spec.graphroot or (conf.graphroot if conf else "")),
                                  os.path.abspath(spec.runroot or (conf.runroot if conf else "")))
        self.options = spec.options or (conf.options if conf else ())
        self.named = named
        self.image_id = image_id
        self.id_prefix = id_prefix            # NAME@PREFIX: a truncated image id, checked against the store
        self.maybe_prefix = maybe_prefix      # a bare hex NAME: an id prefix if the store has one

    @classmethod
    def parse(cls, details: str) -> "StorageReference":
        name = f"containers-storage:{details}"
        spec = StoreSpec()
        ref = details
        if ref.startswith("["):
            close = ref.find("]")
            if close < 1:
                raise InvalidReference(f"invalid image name {name!r}: the store specification does not end")
            spec = parse_spec(ref[1:close], name)
            ref = ref[close + 1:]
        if not ref:
            raise InvalidReference(f"invalid image name {name!r}: an image name or ID is required")
        image_id, prefix, maybe = "", "", ""
        at = ref.rfind("@")
        if at != -1:
            tail = ref[at + 1:]
            if not tail:
                raise InvalidReference(f"invalid image name {name!r}: empty trailing digest or ID")
            if digest_of(tail) is None:
                if L.ID_RE.match(tail):
                    image_id = tail
                elif len(tail) >= MIN_ID_PREFIX and _HEX.match(tail):
                    prefix = tail
                else:
                    raise InvalidReference(f"invalid image name {name!r}: {tail!r} does not look like an "
                                           "image ID or digest")
                ref = ref[:at]
        if ref and not image_id and not prefix and L.ID_RE.match(ref):
            image_id, ref = ref, ""
        elif ref and not image_id and not prefix and len(ref) >= MIN_ID_PREFIX and _HEX.match(ref):
            maybe = ref                        # an image ID prefix when the store has one, else a name
        named = None
        if ref:
            try:
                named = parse_docker_reference(ref, default_tag=True)
            except InvalidReference as exc:
                raise InvalidReference(f"invalid image name {name!r}: {exc}") from None
        if spec.driver and spec.driver not in L.DRIVERS:
            raise Unsupported(f"{name}: storage driver {spec.driver!r} is not supported (vfs, overlay)")
        return cls(spec, named, image_id, prefix, maybe)

    @property
    def details(self) -> str:
        opts = ":" + ",".join(self.options) if self.options else ""
        out = f"[{self.paths.driver}@{self.paths.graphroot}+{self.paths.runroot}{opts}]"
        if self.named is not None:
            out += str(self.named)
        if self.image_id:
            out += "@" + self.image_id
        elif self.id_prefix:
            out += "@" + self.id_prefix
        return out

    @property
    def docker_reference(self) -> Optional[DockerReference]:
        return self.named

    def store(self) -> "Store":
        from fastsync.transports.cstorage.store import Store
        if self.paths.driver not in L.DRIVERS:
            raise Unsupported(f"{self}: storage driver {self.paths.driver!r} is not supported (vfs, overlay)")
        return Store(self.paths)

    def resolve(self, images: list[dict[str, Any]]) -> dict[str, Any]:
        """The image record this reference names (containers/image's resolveImage)."""
        want_id = self.image_id
        for prefix, required in ((self.id_prefix, True), (self.maybe_prefix, False)):
            if want_id or not prefix:
                continue
            hits = [r for r in images if r["id"].startswith(prefix)]
            if len(hits) > 1:
                raise InvalidReference(f"{self}: image ID prefix {prefix!r} is ambiguous")
            if hits:
                if not required:
                    return hits[0]
                want_id = hits[0]["id"]
            elif required:
                raise InvalidReference(f"{self}: {prefix!r} does not look like an image ID or digest")
        if want_id:
            rec = next((r for r in images if r["id"] == want_id), None)
            if rec is None:
                raise NotFound(f'reference "{self.details}" does not resolve to an image ID: '
                               "identifier is not an image")
            if self.named is not None and str(self.named) not in (rec.get("names") or ()) \
                    and not (self.named.digest and str(self.named.digest) in L.image_digests(rec)):
                raise NotFound(f'reference "{self.details}" does not resolve to an image ID: '
                               f"image {want_id} is not named {self.named}")
            return rec
        assert self.named is not None
        wanted = str(self.named)
        for rec in images:
            if wanted in (rec.get("names") or ()):
                return rec
        if self.named.digest is not None:
            digest = str(self.named.digest)
            for rec in images:
                if digest in L.image_digests(rec) and any(
                        _repo_of(n) == self.named.name for n in rec.get("names") or ()):
                    return rec
        raise NotFound(f'reference "{self.details}" does not resolve to an image ID: identifier is not an image')

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "StorageSource":
        from fastsync.transports.cstorage.source import open_source
        return await open_source(self, session)

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "StorageDestination":
        from fastsync.transports.cstorage.destination import open_destination
        return await open_destination(self, session)

    async def delete(self, session: "Session", opts: "TransportOptions") -> None:
        from fastsync.transports.localfs import in_thread
        store = self.store()

        def run() -> None:
            store.check(create=False, what=str(self))
            _, images = store.snapshot()
            rec = self.resolve(images)
            store.delete_image(rec["id"], str(self))
        await in_thread(run)


def _repo_of(name: str) -> str:
    try:
        return parse_docker_reference(name).name
    except FastsyncError:
        return ""


def digest_of(text: str) -> Optional[Digest]:
    try:
        return Digest.parse(text)
    except FastsyncError:
        return None
