"""`docker-daemon:NAME:TAG`, `docker-daemon:NAME@DIGEST`, `docker-daemon:sha256:ID`: images of a local
Docker Engine (or anything serving its API: podman's `system service`), read with `docker save`'s
stream (GET /images/get) and written with `docker load`'s (POST /images/load).

Names are parsed as containers/image (docker/daemon) parses them: an `algo:hex` digest is an image ID
(config digest; sha256 only) and can only be read; anything else is a docker reference that must carry
a tag or a digest (not both); a destination must be NAME:TAG. The engine is chosen by the side's
--*daemon-host (default unix:///var/run/docker.sock, see client.py).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from fastsync.errors import FastsyncError, InvalidReference
from fastsync.model import Digest
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.transports.base import ImageReference

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.daemon.destination import DaemonImageDestination
    from fastsync.transports.daemon.source import DaemonImageSource

_DIGEST_FORM = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


class DaemonImageReference(ImageReference):
    transport = "docker-daemon"

    def __init__(self, named: Optional[DockerReference] = None, image_id: Optional[Digest] = None) -> None:
        if (named is None) == (image_id is None):
            raise InvalidReference("docker-daemon: a reference has exactly one of an image ID and a name")
        self.named = named
        self.image_id = image_id

    @classmethod
    def parse(cls, details: str) -> "DaemonImageReference":
        spelled = f"docker-daemon:{details}"
        if not details:
            raise InvalidReference(f"invalid image name {spelled!r}: a NAME:TAG, NAME@DIGEST or image ID is required")
        if _DIGEST_FORM.match(details) and not re.match(r"^[^:]*[./]", details):
            try:
                digest = Digest.parse(details)
            except FastsyncError:
                digest = None
            if digest is not None:
                if digest.algorithm != "sha256":
                    raise InvalidReference(f"Invalid docker-daemon: reference {details}: only digest algorithm "
                                           "sha256 accepted")
                return cls(image_id=digest)
        if _HEX64.match(details.split(":", 1)[0]):
            raise InvalidReference(f"invalid image name {spelled!r}: invalid repository name ({details}), cannot "
                                   "specify 64-byte hexadecimal strings")
        named = parse_docker_reference(details)
        if named.path == "library/sha256" and named.domain == "docker.io":
            raise InvalidReference(f"Invalid docker-daemon: reference {details}: The sha256 repository name is "
                                   "reserved for (non-shortened) digest references")
        if named.tag is None and named.digest is None:
            raise InvalidReference(f"docker-daemon: reference {named.familiar} has neither a tag nor a digest")
        if named.tag is not None and named.digest is not None:
            raise InvalidReference("docker-daemon: references with both a tag and digest are currently not supported")
        return cls(named=named)

    @property
    def details(self) -> str:
        """What the engine is asked for: the image ID, or the familiar name (`alpine:3.12`)."""
        return str(self.image_id) if self.image_id is not None else self.named.familiar  # type: ignore[union-attr]

    @property
    def docker_reference(self) -> Optional[DockerReference]:
        return self.named

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "DaemonImageSource":
        from fastsync.transports.daemon.source import open_source

        return await open_source(self, session, opts)

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "DaemonImageDestination":
        from fastsync.transports.daemon.destination import open_destination

        return await open_destination(self, session, opts)

    async def delete(self, session: "Session", opts: "TransportOptions") -> None:
        """Remove the image from the engine as `docker rmi NAME` does (containers/image refuses to delete
        docker-daemon: images; fastsync asks the engine)."""
        from fastsync.transports.daemon.client import DaemonClient, DaemonError

        client = DaemonClient(opts.daemon_host, opts)
        try:
            await client.delete_image(self.details)
        except DaemonError as exc:
            raise type(exc)(f"deleting image from docker engine: {exc}") from None
        finally:
            await client.close()


__all__ = ["DaemonImageReference"]
