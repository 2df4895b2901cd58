"""The recompression memo: which blob in the store a layer became under a compression edit.

`recompressed/<algo>-<hex>.<format>-<level>.json` holds the result's digest and size; an entry counts only
while the result blob is still in the store. Written atomically like every small store file.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Optional

from fastsync.model import Descriptor, Digest
from fastsync.store.blobs import Store, write_small

if TYPE_CHECKING:
    from fastsync.core.recompress import LayerEdit


def _memo_path(store: Store, desc: Descriptor, edit: LayerEdit) -> str:
    return os.path.join(store.root, "recompressed", f"{desc.digest.algorithm}-{desc.digest.hex}.{edit.key}.json")


def memo_get(store: Store, desc: Descriptor, edit: LayerEdit) -> Optional[Descriptor]:
    """A remembered result of this edit whose blob is still in the store."""
    try:
        with open(_memo_path(store, desc, edit), "rb") as f:
            doc = json.load(f)
        new = Descriptor(desc.media_type, Digest.parse(doc["digest"]), int(doc["size"]))
    except (OSError, ValueError, KeyError):
        return None
    return new if store.lookup(new) else None


def memo_put(store: Store, desc: Descriptor, edit: LayerEdit, new: Descriptor) -> None:
    path = _memo_path(store, desc, edit)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_small(path, json.dumps({"digest": str(new.digest), "size": new.size}).encode(), store.tmp)
