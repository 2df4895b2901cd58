"""fastsync: a fast, skopeo-compatible container image mover.

    import fastsync
    fastsync.copy_image("docker://127.0.0.1:5000/app:1", "oci:/srv/images:app-1")

The API is imported lazily, so `import fastsync` and the CLI's --help stay cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "copy_image": "api", "delete_image": "api", "inspect_image": "api", "list_tags": "api",
    "manifest_digest": "api", "FastsyncError": "errors", "BACKEND": "core.native",
    "sync_images": "sync.inputs", "SyncRequest": "sync.inputs",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'fastsync' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
