"""The registry storage tree's paths (distribution's registry/storage/paths.go); see the package
docstring of fastsync.transports.storage for the layout itself."""
from __future__ import annotations

import os
from typing import Iterator, Optional

from fastsync.errors import FastsyncError
from fastsync.model import Digest
from fastsync.transports.localfs import checked_file

V2 = os.path.join("docker", "registry", "v2")


class Layout:
    """Paths of one storage root (pure path arithmetic plus link reads; no writes)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.v2 = os.path.join(self.root, V2)

    def exists(self) -> bool:
        return os.path.isdir(self.v2)

    def blob_data(self, digest: Digest) -> str:
        return os.path.join(self.v2, "blobs", digest.algorithm, digest.hex[:2], digest.hex, "data")

    def repo(self, name: str) -> str:
        return os.path.join(self.v2, "repositories", *name.split("/"))

    def layer_link(self, name: str, digest: Digest) -> str:
        return os.path.join(self.repo(name), "_layers", digest.algorithm, digest.hex, "link")

    def revision_link(self, name: str, digest: Digest) -> str:
        return os.path.join(self.repo(name), "_manifests", "revisions", digest.algorithm, digest.hex, "link")

    def tag_dir(self, name: str, tag: str) -> str:
        return os.path.join(self.repo(name), "_manifests", "tags", tag)

    def tag_current(self, name: str, tag: str) -> str:
        return os.path.join(self.tag_dir(name, tag), "current", "link")

    def tag_index(self, name: str, tag: str, digest: Digest) -> str:
        return os.path.join(self.tag_dir(name, tag), "index", digest.algorithm, digest.hex, "link")

    def read_link(self, path: str) -> Optional[Digest]:
        """The digest a link file holds, or None when there is no such link."""
        try:
            if checked_file(path, self.root, "registry storage link") is None:
                return None
            with open(path, "rb") as f:
                text = f.read(200).decode("ascii", "replace").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return Digest.parse(text)
        except FastsyncError:
            raise FastsyncError(f"corrupt link file {path}: {text[:80]!r} is not a digest") from None

    def linked(self, path: str, digest: Digest) -> bool:
        return self.read_link(path) == digest

    def tags(self, name: str) -> list[str]:
        """The repository's tags (those with a current link), sorted."""
        tags_dir = os.path.join(self.repo(name), "_manifests", "tags")
        try:
            entries = os.listdir(tags_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(t for t in entries if os.path.isfile(self.tag_current(name, t)))

    def repositories(self) -> list[str]:
        """Every repository in the tree (a directory holding `_manifests`), sorted, as the catalog lists them."""
        base = os.path.join(self.v2, "repositories")
        return sorted(_walk_repos(base, ""))

    def images(self) -> list[tuple[str, str]]:
        """Every (repository, tag) in the tree."""
        return [(name, tag) for name in self.repositories() for tag in self.tags(name)]


def _walk_repos(base: str, prefix: str) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    names = {e.name for e in entries}
    if prefix and "_manifests" in names:
        yield prefix
    for e in entries:
        if not e.name.startswith("_") and e.is_dir(follow_symlinks=False):
            yield from _walk_repos(e.path, f"{prefix}/{e.name}" if prefix else e.name)


def enclosing_root(path: str) -> Optional[str]:
    """The nearest strict ancestor of `path` that is a storage root, if any (a misspelt name)."""
    cur = os.path.abspath(path)
    while True:
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent
        if os.path.isdir(os.path.join(cur, V2)):
            return cur
