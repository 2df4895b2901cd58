"""`registry-storage:` — the on-disk tree that the registry binary (CNCF distribution 2.x) serves.

Image names are ``registry-storage:ROOT:NAME[:TAG]`` or ``registry-storage:ROOT:NAME@DIGEST``
(TAG defaults to ``latest``), where ROOT is the registry's ``storage.filesystem.rootdirectory``
(the directory holding ``docker/registry/v2``) and NAME the repository path as pushed
(``library/alpine``, no registry host). ``registry-storage:ROOT`` alone names the whole tree, for
sync. ROOT cannot contain ``:`` (as with ``oci:``).

Inside a tree that exists, ``registry-storage:ROOT/NAME[:TAG|@DIGEST]`` is accepted too: ROOT is then
the nearest enclosing directory holding ``docker/registry/v2`` (see `split_root`). A tree that does
not exist yet (a new destination) needs the colon form, which says where ROOT ends.

The layout (distribution's ``registry/storage/paths.go``), under ``ROOT/docker/registry/v2``:

    blobs/<alg>/<hex[:2]>/<hex>/data                              every blob and manifest, once
    repositories/<name>/_layers/<alg>/<hex>/link                  each blob the repository references
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link     each manifest (index children too)
    repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link        the tag (written last)

A link file holds the bare digest (``sha256:<hex>``, no newline). Schema 1 manifests are stored
as their signed payload without signatures (the registry re-signs them on every GET).
The layout lives in ``layout``, the source and destination in ``source`` and ``destination``.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from fastsync.errors import FastsyncError, InvalidReference, NotFound
from fastsync.model import Digest
from fastsync.reference import DEFAULT_TAG, _PATH_RE, _TAG_RE
from fastsync.transports.base import ImageReference
from fastsync.transports.storage.layout import V2, Layout, enclosing_root

if TYPE_CHECKING:
    from fastsync.options import TransportOptions
    from fastsync.session import Session
    from fastsync.transports.storage.destination import StorageDestination
    from fastsync.transports.storage.source import StorageSource

SPELLING = "registry-storage:ROOT:NAME[:TAG|@DIGEST]"
_NAME_MAX = 255


class StorageImageReference(ImageReference):
    transport = "registry-storage"

    def __init__(self, root: str, name: Optional[str] = None, tag: Optional[str] = None,
                 digest: Optional[Digest] = None, pool: Optional[str] = None,
                 spelled: Optional[str] = None) -> None:
        self.layout = Layout(root)
        self.name = name
        self.tag = tag if tag or digest or not name else DEFAULT_TAG
        self.digest = digest
        self.pool = Layout(pool) if pool else None     # link blobs from this tree when it has them
        self.spelled = spelled                          # the name as the user wrote it, for messages

    @property
    def root(self) -> str:
        return self.layout.root

    @classmethod
    def parse(cls, details: str) -> "StorageImageReference":
        full = f"registry-storage:{details}"
        root, rest = split_root(details)
        if not root:
            raise InvalidReference(f"invalid image name {full!r}: a storage root directory is required "
                                   f"({SPELLING})")
        if not rest:
            return cls(root, spelled=full)
        name, tag, digest = parse_image(rest, full)
        return cls(root, name, tag, digest, spelled=full)

    @property
    def details(self) -> str:
        if not self.name:
            return self.root
        return f"{self.root}:{self.name}" + (f"@{self.digest}" if self.digest else f":{self.tag}")

    def with_tag(self, tag: str) -> Optional["StorageImageReference"]:
        return StorageImageReference(self.root, self.name, tag, pool=self.pool.root if self.pool else None) \
            if self.name else None

    def _need_name(self, what: str) -> str:
        if not self.name:
            raise InvalidReference(f"{self}: name the image to {what} as {SPELLING}")
        return self.name

    def check_root_spelling(self) -> None:
        """A one-line hint when ROOT was written as a path inside a storage root (ROOT/NAME:TAG)."""
        if self.layout.exists():        # a root itself (the usual case: no walk up its ancestors)
            return
        outer = enclosing_root(self.root)
        if outer:
            raise InvalidReference(f"{self.spelled or self}: {self.root} is inside the storage root {outer}; ROOT "
                                   f"is the directory holding {V2}: write registry-storage:{outer}:NAME[:TAG] "
                                   f"(or registry-storage:{outer}/NAME[:TAG])")

    def resolve(self) -> Digest:
        """The manifest digest this reference names (the tag's current link, or the digest)."""
        self.check_root_spelling()
        name = self._need_name("read")
        if not self.layout.exists():
            raise NotFound(f"{self}: {self.root} is not a registry storage root (no {V2})")
        if self.digest:
            return self.digest
        assert self.tag
        digest = self.layout.read_link(self.layout.tag_current(name, self.tag))
        if digest is None:
            what = "tag" if os.path.isdir(self.layout.repo(name)) else "repository"
            raise NotFound(f"{self}: {what} not found ({name}:{self.tag} is not in {self.root})")
        return digest

    async def open_source(self, session: "Session", opts: "TransportOptions") -> "StorageSource":
        from fastsync.transports.storage.source import StorageSource

        return StorageSource(self, self.resolve())

    async def open_destination(self, session: "Session", opts: "TransportOptions") -> "StorageDestination":
        from fastsync.transports.storage.destination import StorageDestination

        self.check_root_spelling()
        self._need_name("write")
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise FastsyncError(f"{self}: {self.root} exists and is not a directory")
        if os.path.isdir(self.root) and not self.layout.exists() and os.listdir(self.root):
            if not os.path.isdir(os.path.join(self.root, "docker")):
                raise FastsyncError(f"{self}: {self.root} is not empty and not a registry storage root; "
                                    "refusing to write into it")
        if self.pool and not self.pool.exists():
            raise NotFound(f"pool {self.pool.root} is not a registry storage root (no {V2})")
        return StorageDestination(self)


def split_root(details: str) -> tuple[str, str]:
    """(ROOT, "NAME[:TAG|@DIGEST]" or "") of a registry-storage name.

    ``ROOT:REST`` when the text before the first colon is a storage root, or lies in no existing
    storage root (a new tree: the colon says where ROOT ends). Otherwise that text is a path inside
    an existing tree, ``ROOT/NAME[:TAG|@DIGEST]``: ROOT is the nearest enclosing directory holding
    ``docker/registry/v2`` (the longest such prefix) and the rest of the path, with whatever
    followed the colon, is the image -- when it parses as one; if not, the colon form is kept and
    `StorageImageReference.check_root_spelling` explains the mistake."""
    head, colon, tail = details.partition(":")
    if not head or Layout(head).exists():
        return head, tail
    outer = enclosing_root(head)
    if outer is None:
        return head, tail
    rel = os.path.relpath(os.path.abspath(head), outer).replace(os.sep, "/")
    if rel.startswith("..") or rel == "." or "docker/registry/v2/".startswith(rel + "/") or \
            rel.startswith("docker/registry/v2/"):
        return head, tail                        # a path into the tree's own layout is no image
    rest = rel + colon + tail
    try:
        parse_image(rest)
    except InvalidReference:
        return head, tail
    return outer, rest


def parse_image(text: str, full: str = "") -> tuple[str, Optional[str], Optional[Digest]]:
    """`NAME[:TAG|@DIGEST]` -> (name, tag or None, digest or None); errors quote `full` (default: text)."""
    full = full or text
    name, tag, digest = text, None, None
    if "@" in text:
        name, _, dpart = text.partition("@")
        try:
            digest = Digest.parse(dpart)
        except FastsyncError:
            raise InvalidReference(f"invalid image name {full!r}: bad digest {dpart!r}") from None
    elif ":" in text:
        name, _, tag = text.rpartition(":")
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid image name {full!r}: bad tag {tag!r}")
    if not _PATH_RE.match(name) or len(name) > _NAME_MAX:
        raise InvalidReference(f"invalid image name {full!r}: bad repository name {name!r} ({SPELLING}; "
                               "NAME is a lowercase repository path such as library/alpine)")
    return name, tag, digest


__all__ = ["Layout", "StorageImageReference", "SPELLING", "V2", "enclosing_root", "parse_image", "split_root"]
