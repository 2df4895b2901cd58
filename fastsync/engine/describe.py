"""`inspect`: skopeo's JSON output (the same keys, values and layout) built from manifest + config."""
from __future__ import annotations

import json
import re
from typing import Any, Optional

import orjson

from fastsync import manifest as mf
from fastsync.errors import TooLarge
from fastsync.manifest import Manifest
from fastsync.model import Descriptor
from fastsync.registry.limits import MAX_CONFIG, size_text
from fastsync.model import Digest
from fastsync.transports.base import ImageSource
from fastsync.core.pipeline import verified


def go_json(obj: Any) -> str:
    """JSON as Go's json.MarshalIndent(v, "", "    ") writes it (HTML characters escaped)."""
    text = json.dumps(obj, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_time(value: Optional[str]) -> Optional[str]:
    """An RFC 3339 timestamp as Go's time.Time marshals it (trailing zeros of the fraction dropped)."""
    if not value:
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return value
    frac = (m.group(2) or "").rstrip("0")
    return m.group(1) + (f".{frac}" if frac else "") + m.group(3)


async def read_blob(src: ImageSource, desc: Descriptor, limit: int = MAX_CONFIG) -> bytes:
    """A small blob (an image config) in memory, verified; refused beyond `limit` bytes."""
    what = f"blob {desc.digest}"
    if desc.size > limit:
        raise TooLarge(f"{what}: {desc.size} bytes, more than the {size_text(limit)} allowed for a config")
    out = bytearray()
    async for chunk in verified(src.blob_chunks(desc), desc, what, transient=src.downloads):
        out += chunk
        if len(out) > limit:
            raise TooLarge(f"{what}: more than the {size_text(limit)} allowed for a config")
    return bytes(out)


async def image_config(src: ImageSource, man: Manifest) -> dict[str, Any]:
    """The image config as a dict; schema 1 images carry it in history[0].v1Compatibility."""
    if man.is_schema1:
        hist = man.doc.get("history") or [{}]
        return orjson.loads(hist[0].get("v1Compatibility") or "{}")
    assert man.config is not None
    return orjson.loads(await read_blob(src, man.config))


_OCI_CONFIG_KEYS = ("created", "author", "architecture", "variant", "os", "os.version", "os.features", "config",
                    "rootfs", "history")
_OCI_RUNTIME_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                     "StopSignal", "ArgsEscaped")


def oci_config_view(conf: dict[str, Any]) -> dict[str, Any]:
    """The config as skopeo's `inspect --config` shows it: the OCI image-config fields, in OCI order."""
    out = {k: conf[k] for k in _OCI_CONFIG_KEYS if conf.get(k) not in (None, "", [], {})}
    if "created" in out:
        out["created"] = go_time(out["created"])
    runtime = conf.get("config") or {}
    out["config"] = {k: _sorted_map(runtime[k]) for k in _OCI_RUNTIME_KEYS if runtime.get(k) not in (None, "", [], {})}
    if "rootfs" in out:
        out["rootfs"] = {"type": out["rootfs"].get("type", ""), "diff_ids": out["rootfs"].get("diff_ids") or []}
    return out


def _sorted_map(value: Any) -> Any:
    """A JSON object as Go marshals a map (keys sorted); other values as they are."""
    return dict(sorted(value.items())) if isinstance(value, dict) else value


def layer_infos(man: Manifest) -> list[dict[str, Any]]:
    if man.is_schema1:
        fs = man.doc.get("fsLayers") or []
        out = []
        for i in range(len(fs) - 1, -1, -1):
            out.append({"MIMEType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "Digest": fs[i]["blobSum"], "Size": -1, "Annotations": None})
        return out
    return [{"MIMEType": d.media_type, "Digest": str(d.digest), "Size": d.size,
             "Annotations": _sorted_map(dict(d.annotations)) or None} for d in man.layers]


def inspect_output(name: Optional[str], top_digest: Digest, tags: list[str], man: Manifest,
                   config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("config") or config.get("container_config") or {}
    layers = layer_infos(man)
    out: dict[str, Any] = {}
    if name:
        out["Name"] = name
    if man.is_schema1 and man.doc.get("tag"):
        out["Tag"] = man.doc["tag"]
    out.update({
        "Digest": str(top_digest),
        "RepoTags": tags,
        "Created": go_time(config.get("created")),
        "DockerVersion": config.get("docker_version", "") or "",
        "Labels": _sorted_map(inner.get("Labels")),
        "Architecture": config.get("architecture", "") or "",
    })
    if config.get("variant"):
        out["Variant"] = config["variant"]
    out.update({
        "Os": config.get("os", "") or "",
        "Layers": [item["Digest"] for item in layers],
        "LayersData": layers,
        "Env": inner.get("Env"),
    })
    return out


async def resolve_image(src: ImageSource, top: Manifest, platform) -> Manifest:
    """The image an inspect or single-image copy looks at: the platform's instance of an index."""
    if not top.is_index:
        return top
    return await src.get_instance(mf.choose_instance(top, platform))
