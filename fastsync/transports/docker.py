"""The `docker://` transport: images in a registry speaking the OCI distribution API."""
from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator, Optional

from fastsync.errors import DigestMismatch, InvalidReference, Unsupported
from fastsync.manifest import manifest_digest
from fastsync.model import Descriptor, Digest
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.transports.base import Capabilities, ImageDestination, ImageReference, ImageSource

if TYPE_CHECKING:
    from fastsync.manifest import Manifest
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.registry.client import RegistryClient


class DockerImageReference(ImageReference):
    transport = "docker"

    def __init__(self, ref: DockerReference) -> None:
        self.ref = ref

    @classmethod
    def parse(cls, details: str) -> "DockerImageReference":
        if not details.startswith("//"):
            raise InvalidReference(f"invalid image name 'docker:{details}': docker: names must start with //")
        return cls(parse_docker_reference(details[2:], default_tag=True))

    @classmethod
    def parse_repository(cls, details: str) -> "DockerImageReference":
        """A repository without a tag (for list-tags and sync sources)."""
        if not details.startswith("//"):
            raise InvalidReference(f"invalid image name 'docker:{details}': docker: names must start with //")
        ref = parse_docker_reference(details[2:])
        if ref.tag or ref.digest:
            raise InvalidReference(f"invalid repository name 'docker:{details}': tag or digest not allowed here")
        return cls(ref)

    @property
    def details(self) -> str:
        return f"//{self.ref}"

    @property
    def docker_reference(self) -> DockerReference:
        return self.ref

    @property
    def manifest_ref(self) -> str:
        """What to ask /manifests/ for: the digest if there is one, else the tag."""
        return str(self.ref.digest) if self.ref.digest else (self.ref.tag or "latest")

    @property
    def remote_host(self) -> str:
        return self.ref.registry

    def with_tag(self, tag: str) -> "DockerImageReference":
        return DockerImageReference(self.ref.with_digest(None).with_tag(tag))

    def client(self, session: "Session", opts: "TransportOptions") -> "RegistryClient":
        return session.registry(self.ref.registry, opts)

    def prepare(self, session: "Session", opts: "TransportOptions") -> None:
        self.client(session, opts)

    def warm_up(self, session: "Session", opts: "TransportOptions") -> None:
        session.ping_early(self.ref.registry, opts)

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "DockerSource":
        return DockerSource(self, self.client(session, opts))

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "DockerDestination":
        return DockerDestination(self, self.client(session, opts))

    async def delete(self, session: "Session", opts: "TransportOptions") -> Digest:
        """Delete the manifest; returns its digest (its lookaside signatures go next, see the CLI)."""
        client = self.client(session, opts)
        digest = self.ref.digest or await client.head_manifest(self.ref.path, self.manifest_ref)
        if digest is None:
            from fastsync.errors import NotFound
            raise NotFound(f"Unable to delete {self.ref}. Image may not exist or is not stored with a v2 "
                           "Schema in a v2 registry (manifest unknown)")
        await client.delete_manifest(self.ref.path, digest)
        return digest


class DockerSource(ImageSource):
    downloads = True

    def __init__(self, ref: DockerImageReference, client: "RegistryClient") -> None:
        self.reference = ref
        self.client = client
        self.repo = ref.ref.path

    async def get_manifest(self, digest: Optional[Digest] = None) -> tuple[bytes, str]:
        """The manifest, verified against the digest asked for (or the registry's header); one that
        does not match was damaged on the way and is fetched again (the retry policy)."""
        want = str(digest) if digest else self.reference.manifest_ref

        async def once() -> tuple[bytes, str]:
            raw, mt, header = await self.client.get_manifest(self.repo, want)
            actual = manifest_digest(raw)
            expected = str(digest or self.reference.ref.digest or header or actual)
            if str(actual) != expected and Digest.of(raw) != Digest.parse(expected):
                raise DigestMismatch(f"manifest {want} of {self.reference.ref.name}", expected, str(actual),
                                     transient=True)
            return raw, mt
        return await self.client.retried(once)

    async def head_manifest(self) -> Optional[Digest]:
        return await self.client.head_manifest(self.repo, self.reference.manifest_ref)

    def registry_repository(self) -> tuple["RegistryClient", str]:
        return self.client, self.repo

    def blob_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        return self.client.blob_chunks(self.repo, desc)

    async def list_tags(self) -> list[str]:
        return await self.client.list_tags(self.repo)


class DockerDestination(ImageDestination):
    capabilities = Capabilities(can_mount=True, compress_layers=True)

    def __init__(self, ref: DockerImageReference, client: "RegistryClient") -> None:
        self.reference = ref
        self.client = client
        self.repo = ref.ref.path

    @property
    def blob_namespace(self) -> str:
        return f"docker://{self.reference.ref.registry}/{self.repo}"

    def registry_repository(self) -> tuple["RegistryClient", str]:
        return self.client, self.repo

    async def try_reuse_blob(self, desc: Descriptor, mount_from: Optional[DockerReference] = None) -> bool:
        # a repository found absent while planning holds only what this job put there (and the job
        # knows that): no HEAD
        if self.repo not in self.client.absent_repos and \
                await self.client.has_blob(self.repo, desc, scopes=(f"repository:{self.repo}:pull,push",)):
            return True
        if mount_from and mount_from.registry == self.reference.ref.registry and mount_from.path != self.repo:
            return await self.client.mount_blob(self.repo, desc, mount_from.path)
        return False

    async def put_blob(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        await self.client.upload_blob(self.repo, desc, chunks)

    async def manifest_digest(self) -> Optional[Digest]:
        # the push scope, so checking the tag and pushing share one token
        return await self.client.head_manifest(self.repo, self.reference.manifest_ref,
                                               scopes=(f"repository:{self.repo}:pull,push",))

    async def put_manifest(self, man: "Manifest", instance: bool = False) -> None:
        ref = self.reference.ref
        if instance or ref.digest:
            if ref.digest and not instance and ref.digest != man.digest:
                raise Unsupported(f"destination {ref} names digest {ref.digest}, but the manifest to write "
                                  f"is {man.digest}")
            target = str(man.digest)
        else:
            target = ref.tag or "latest"
        header = await self.client.put_manifest(self.repo, target, man.raw, man.media_type)
        if header and header != str(man.digest):
            raise DigestMismatch(f"manifest written to {ref.name}", str(man.digest), header)
