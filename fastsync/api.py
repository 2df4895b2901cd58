"""The library API: plain functions over the async engine. Never prints, never exits."""
from __future__ import annotations

import asyncio

from typing import Any, Optional, TypeVar, Union

from fastsync.engine.job import ImageResult, Job
from fastsync.errors import FastsyncError, InvalidReference
from fastsync.engine.describe import image_config, inspect_output, oci_config_view, resolve_image
from fastsync.manifest import host_platform, manifest_digest as _manifest_digest, parse_manifest
from fastsync.model import Digest, Platform
from fastsync.options import CopyOptions, GlobalOptions, TransportOptions
from fastsync.progress import EventSink
from fastsync.reference import DEFAULT_DOMAIN
from fastsync.registry.stats import TrafficStats
from fastsync.transports import parse_image_name
from fastsync.session import Session, run
from fastsync.store.blobs import Store
from fastsync.transports.base import ImageReference

T = TypeVar("T")
Ref = Union[str, ImageReference]


def _ref(name: Ref) -> ImageReference:
    return parse_image_name(name) if isinstance(name, str) else name


def copy_image(src: Ref, dst: Ref, options: Optional[CopyOptions] = None,
               src_opts: TransportOptions = TransportOptions(), dst_opts: TransportOptions = TransportOptions(),
               global_options: Optional[GlobalOptions] = None, store: Optional[Store] = None,
               on_event: Optional[EventSink] = None, traffic: Optional[TrafficStats] = None) -> ImageResult:
    """Copy one image (or, with multi_arch='all', a whole index) from `src` to `dst`; with `traffic`,
    the per-host figures of the copy are counted into it."""
    s, d = _ref(src), _ref(dst)
    return run(lambda session: Job(session, options, on_event).copy(s, d, src_opts, dst_opts),
               global_options, store, traffic)


def inspect_image(name: Ref, opts: TransportOptions = TransportOptions(), raw: bool = False,
                  config: bool = False, tags: bool = True, platform: Optional[Platform] = None,
                  global_options: Optional[GlobalOptions] = None) -> Union[bytes, dict[str, Any]]:
    """skopeo inspect: raw manifest bytes (`raw`), the config (`config`), or the summary dict."""
    ref = _ref(name)

    async def go(session: Session) -> Union[bytes, dict[str, Any]]:
        src = await ref.open_source(session, opts)
        try:
            raw_top, mt = await src.inspect_manifest()
            if raw and not config:
                return raw_top
            top = parse_manifest(raw_top, mt)
            man = await resolve_image(src, top, platform or host_platform())
            if config and raw:
                if man.is_schema1:
                    raise FastsyncError("schema 1 images have no config blob")
                from fastsync.engine.describe import read_blob
                assert man.config is not None
                return await read_blob(src, man.config)
            conf = await image_config(src, man)
            if config:
                return oci_config_view(conf)
            dref = ref.docker_reference
            repo_tags = await src.list_tags() if tags and dref is not None else []
            return inspect_output(dref.name if dref else None, top.digest, repo_tags, man, conf)
        finally:
            await src.close()

    return run(go, global_options)


def list_tags(name: Ref, opts: TransportOptions = TransportOptions(),
              global_options: Optional[GlobalOptions] = None) -> dict[str, Any]:
    """skopeo list-tags: {"Repository": name, "Tags": [...]}."""
    if isinstance(name, str) and name.startswith("docker:"):
        from fastsync.transports.docker import DockerImageReference

        ref: ImageReference = DockerImageReference.parse_repository(name[len("docker:"):])
    else:
        ref = _ref(name)

    async def go(session: Session) -> dict[str, Any]:
        if ref.transport == "docker-archive":         # the archive's tags, as skopeo lists them
            from fastsync.transports.archive.docker import archive_tags

            return {"Tags": await asyncio.get_running_loop().run_in_executor(
                None, archive_tags, ref, session.options.tmpdir)}
        src = await ref.open_source(session, opts)
        try:
            tags = await src.list_tags()
        finally:
            await src.close()
        dref = ref.docker_reference
        return {"Repository": dref.name if dref else ref.details, "Tags": tags}

    return run(go, global_options)


def delete_image(name: Ref, opts: TransportOptions = TransportOptions(),
                 global_options: Optional[GlobalOptions] = None) -> Optional[Digest]:
    """Delete an image; returns the digest of the manifest deleted when the transport tells it."""
    ref = _ref(name)
    return run(lambda session: ref.delete(session, opts), global_options)


def verify_credentials(host: str, opts: TransportOptions, global_options: Optional[GlobalOptions] = None) -> None:
    """Check `opts.creds` against the registry `host` (GET /v2/ through the challenge flow), as login
    does before saving them. Raises Unauthorized when the registry or its token server rejects them."""
    target = "registry-1.docker.io" if host == DEFAULT_DOMAIN else host

    async def go(session: Session) -> None:
        client = session.registry(target, opts)
        async with client.request("GET", "/v2/", (), what=f"pinging container registry {host}"):
            return

    run(go, global_options)


def manifest_digest(path: str) -> Digest:
    """skopeo manifest-digest: the digest of a manifest file (schema 1: signatures stripped)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FastsyncError(f"reading manifest from {path}: {exc.strerror}") from None
    return _manifest_digest(data)


__all__ = ["copy_image", "inspect_image", "list_tags", "delete_image", "manifest_digest", "run", "TrafficStats",
           "verify_credentials",
           "ImageResult", "InvalidReference"]


def backend() -> str:
    """'native' when the compiled core is in use, else 'python'."""
    try:
        from fastsync.core.native import BACKEND
    except ImportError:
        return "python"
    return BACKEND
