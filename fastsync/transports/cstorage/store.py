"""One containers/storage store: its records read and changed under containers/storage's locks.

Every change follows containers/storage's order and habits: `storage.lock` is taken briefly first
(as its startUsingGraphDriver does), then `layers.lock`, then `images.lock`; the records are read
again under the lock (nothing is cached, so another process's writes are always seen); a writer
records a new last-writer token, then replaces the JSON atomically (temp file, fsync, rename).

A new layer is recorded with the `incomplete` flag before its files are written and loses it only
when they and its tar-split metadata are complete; whoever next loads the layers for writing
(fastsync or containers/storage) deletes incomplete layers, so a killed copy leaves nothing that
podman trips over.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any, Callable, Optional

from fastsync.errors import FastsyncError, NotFound
from fastsync.transports.localfs import atomic_write
from fastsync.transports.cstorage import layout as L
from fastsync.transports.cstorage.apply import Applied, Extractor
from fastsync.transports.cstorage.locks import locked
from fastsync.transports.cstorage.tarsplit import TarSplitWriter

Record = dict[str, Any]


class StoreError(FastsyncError):
    """The store is unusable (not a store, unreadable records, a failed change)."""


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None


def _sweep_temps(directory: str) -> None:
    """Remove the temp files (atomic_write's / mkstemp's `.tmp-*`) a killed writer left in `directory`;
    called with the directory's lock held for writing, so nobody else is writing one."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(".tmp-"):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


class Store:
    def __init__(self, paths: L.StorePaths) -> None:
        self.paths = paths

    # ---- opening ------------------------------------------------------------------------------

    def check(self, create: bool, what: str) -> None:
        """Refuse a graph root that is not a store; with `create`, make the store's skeleton (the
        directories and lock files containers/storage would make) where there is none yet."""
        root = self.paths.graphroot
        if os.path.lexists(root) and not os.path.isdir(root):
            raise StoreError(f"{what}: {root} is not a directory")
        if os.path.isdir(root):
            try:
                names = set(os.listdir(root))
            except OSError as exc:
                raise StoreError(f"{what}: cannot read {root}: {exc.strerror}") from None
            store_marks = {"storage.lock", f"{self.paths.driver}-layers", f"{self.paths.driver}-images"}
            other_driver = {f"{d}-layers" for d in L.DRIVERS if d != self.paths.driver}
            if names and not names & store_marks:
                if names & other_driver:
                    raise StoreError(f"{what}: {root} holds a store of another driver than {self.paths.driver}")
                raise StoreError(f"{what}: {root} is not a containers-storage store (refusing to write into it)")
        elif not create:
            raise NotFound(f"{what}: no containers-storage store at {root}")
        if create:
            self._skeleton()

    def _skeleton(self) -> None:
        p = self.paths
        try:
            for d in (p.graphroot, p.layers_dir, p.images_dir, p.driver_dir, os.path.join(p.graphroot, "tmp")):
                os.makedirs(d, 0o700, exist_ok=True)
            if p.driver == "vfs":
                os.makedirs(os.path.join(p.driver_dir, "dir"), 0o700, exist_ok=True)
            else:
                os.makedirs(os.path.join(p.driver_dir, "l"), 0o755, exist_ok=True)
            for lock in (p.storage_lock, p.layers_lock, p.images_lock):
                if not os.path.exists(lock):
                    os.close(os.open(lock, os.O_RDWR | os.O_CREAT, 0o644))
        except OSError as exc:
            raise StoreError(f"cannot create the store at {p.graphroot}: {exc.strerror}") from None

    # ---- records ------------------------------------------------------------------------------

    def _layers(self) -> list[Record]:
        try:
            return L.load_records(_read(self.paths.layers_json), self.paths.layers_json)
        except ValueError as exc:
            raise StoreError(str(exc)) from None

    def _images(self) -> list[Record]:
        try:
            return L.load_records(_read(self.paths.images_json), self.paths.images_json)
        except ValueError as exc:
            raise StoreError(str(exc)) from None

    def _save(self, path: str, lock: str, records: list[Record]) -> None:
        from fastsync.transports.cstorage.locks import lock_file
        lock_file(lock).record_write()
        atomic_write(path, L.go_json(records), 0o600)

    def _save_layers(self, layers: list[Record]) -> None:
        self._save(self.paths.layers_json, self.paths.layers_lock, layers)

    def _save_images(self, images: list[Record]) -> None:
        self._save(self.paths.images_json, self.paths.images_lock,
                   [L.ordered_image(r) for r in images])

    def _graph(self) -> None:
        """containers/storage's startUsingGraphDriver: storage.lock, briefly."""
        with locked((self.paths.storage_lock, True)):
            pass

    def snapshot(self) -> tuple[list[Record], list[Record]]:
        """(layers, images) read under shared locks."""
        if not os.path.isdir(self.paths.layers_dir):
            return [], []
        with locked((self.paths.layers_lock, False), (self.paths.images_lock, False)):
            return self._layers(), self._images()

    def big_data(self, image_id: str, key: str) -> bytes:
        path = self.paths.big_data(image_id, key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"image {image_id} has no {key!r} data item") from None

    # ---- layers -------------------------------------------------------------------------------

    def _drop_incomplete(self, layers: list[Record]) -> list[Record]:
        """Delete the layers an interrupted writer left (called with layers.lock held for writing)."""
        bad = [r for r in layers if L.is_incomplete(r)]
        if not bad:
            return layers
        for rec in bad:
            self._remove_layer_files(rec)
        keep = [r for r in layers if not L.is_incomplete(r)]
        self._save_layers(keep)
        return keep

    def _remove_layer_files(self, rec: Record) -> None:
        lid = rec["id"]
        home = self.paths.layer_home(lid)
        if self.paths.driver == "overlay":
            try:
                with open(os.path.join(home, "link")) as f:
                    short = f.read().strip()
                if short and "/" not in short:
                    os.unlink(os.path.join(self.paths.driver_dir, "l", short))
            except OSError:
                pass
        shutil.rmtree(home, ignore_errors=True)
        for path in (self.paths.tar_split(lid),):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def find_layers(self, pred: Callable[[Record], bool]) -> list[Record]:
        return [r for r in self.snapshot()[0] if not L.is_incomplete(r) and pred(r)]

    def put_layer(self, lid: str, parent: str, tar_path: str, diff: tuple[str, int],
                  compressed: Optional[tuple[str, int]], compression: Optional[str], what: str) -> Record:
        """Create layer `lid` on `parent` from the uncompressed tar at `tar_path` (or return the one
        already there)."""
        self._graph()
        with locked((self.paths.layers_lock, True)):
            layers = self._drop_incomplete(self._layers())
            for rec in layers:
                if rec["id"] == lid:
                    return rec
            _sweep_temps(self.paths.layers_dir)       # a killed writer's tar-split (no writer runs now)
            if parent and not any(r["id"] == parent for r in layers):
                raise StoreError(f"{what}: parent layer {parent} is not in the store")
            rec = L.layer_record(lid, parent, compressed, diff, compression, (), (), incomplete=True)
            layers.append(rec)
            self._save_layers(layers)
            try:
                applied = self._write_layer(lid, parent, tar_path, what)
            except BaseException as exc:
                self._remove_layer_files(rec)
                self._save_layers([r for r in layers if r is not rec])
                if isinstance(exc, OSError):
                    where = f" ({exc.filename})" if exc.filename else ""
                    raise StoreError(f"{what}: writing layer {lid}: {exc.strerror or exc}{where}") from None
                raise
            L.set_ids(rec, applied.uids, applied.gids)
            L.mark_complete(rec)
            self._save_layers(layers)
            return rec

    def _write_layer(self, lid: str, parent: str, tar_path: str, what: str) -> Applied:
        p = self.paths
        home, root = p.layer_home(lid), p.layer_root(lid)
        shutil.rmtree(home, ignore_errors=True)           # a directory no record owns: a killed writer's
        if p.driver == "vfs":
            os.mkdir(home, 0o555)
            if parent:
                proc = subprocess.run(["cp", "-a", "--", p.layer_root(parent) + "/.", root],
                                      capture_output=True)
                if proc.returncode:
                    raise StoreError(f"{what}: copying parent layer {parent}: "
                                     f"{proc.stderr.decode(errors='replace').strip()}")
        else:
            self._overlay_dirs(lid, parent)
        fd, split_tmp = tempfile.mkstemp(prefix=".tmp-", dir=p.layers_dir)
        os.close(fd)
        split = TarSplitWriter(split_tmp)
        try:
            applied = Extractor(tar_path, root, p.driver, split, what).run()
            split.close()
            os.chmod(split_tmp, 0o600)
            os.replace(split_tmp, p.tar_split(lid))
        except BaseException:
            split.abort()
            if os.path.exists(split_tmp):
                os.unlink(split_tmp)
            raise
        return applied

    def _overlay_dirs(self, lid: str, parent: str) -> None:
        p = self.paths
        home = p.layer_home(lid)
        os.mkdir(home, 0o700)
        os.mkdir(os.path.join(home, "diff"), 0o555)
        short = "".join(L.LINK_CHARS[b % len(L.LINK_CHARS)] for b in os.urandom(L.LINK_LEN))
        os.symlink(f"../{lid}/diff", os.path.join(p.driver_dir, "l", short))
        atomic_write(os.path.join(home, "link"), short.encode(), 0o644)
        if parent:
            parent_home = p.layer_home(parent)
            with open(os.path.join(parent_home, "link")) as f:
                lower = f"l/{f.read().strip()}"
            try:
                with open(os.path.join(parent_home, "lower")) as f:
                    lower += ":" + f.read().strip()
            except FileNotFoundError:
                pass
            atomic_write(os.path.join(home, "lower"), lower.encode(), 0o644)
        else:
            os.mkdir(os.path.join(home, "empty"), 0o700)
        os.mkdir(os.path.join(home, "work"), 0o700)
        os.mkdir(os.path.join(home, "merged"), 0o700)

    # ---- images -------------------------------------------------------------------------------

    def put_image(self, iid: str, top: str, created: Optional[str], items: list[tuple[str, bytes, str]],
                  metadata: str, names: list[str], what: str) -> None:
        """Create image `iid` on layer `top` (or update the one there: same top layer required),
        store its data items (key, bytes, digest) and metadata, and give it `names`."""
        self._graph()
        with locked((self.paths.layers_lock, False), (self.paths.images_lock, True)):
            if top and not any(r["id"] == top and not L.is_incomplete(r) for r in self._layers()):
                raise StoreError(f"{what}: layer {top} vanished from the store")
            images = self._images()
            rec = next((r for r in images if r["id"] == iid), None)
            if rec is not None and rec.get("layer", "") != top:
                raise StoreError(f"{what}: image with ID {iid} already exists, but uses a different top layer")
            _sweep_temps(self.paths.images_dir)
            os.makedirs(self.paths.image_dir(iid), 0o700, exist_ok=True)
            for key, data, _ in items:
                atomic_write(self.paths.big_data(iid, key), data, 0o600)
            if rec is None:
                rec = L.image_record(iid, top, created)
                images.append(rec)
            for key, data, dig in items:
                L.set_big_data(rec, key, len(data), dig)
            if metadata:
                rec["metadata"] = metadata
            L.add_names(images, rec, names)
            self._save_images(images)

    def delete_image(self, iid: str, what: str) -> list[str]:
        """containers/storage's DeleteImage(id, commit=true): the image, then its layers from the top
        down while no other image, layer or container uses them. Returns the layers deleted."""
        self._graph()
        with locked((self.paths.layers_lock, True), (self.paths.images_lock, True)):
            layers = self._drop_incomplete(self._layers())
            images = self._images()
            rec = next((r for r in images if r["id"] == iid), None)
            if rec is None:
                raise NotFound(f"{what}: image {iid} is not in the store")
            users = self._containers(iid)
            if users:
                raise StoreError(f"{what}: image used by {len(users)} container(s): {', '.join(users[:3])}")
            rest = [r for r in images if r is not rec]
            used = {r.get("layer") for r in rest} | {m for r in rest for m in r.get("mapped-layers") or ()}
            by_id = {r["id"]: r for r in layers}
            doomed: list[str] = []
            lid = rec.get("layer", "")
            while lid and lid in by_id and lid not in used:
                if any(r.get("parent") == lid and r["id"] not in doomed for r in layers):
                    break
                doomed.append(lid)
                lid = by_id[lid].get("parent", "")
            self._save_images(rest)
            shutil.rmtree(self.paths.image_dir(iid), ignore_errors=True)
            if doomed:
                self._save_layers([r for r in layers if r["id"] not in doomed])
                for d in doomed:
                    self._remove_layer_files(by_id[d])
            return doomed

    def _containers(self, iid: str) -> list[str]:
        """The ids of the containers made from image `iid` (containers/storage refuses to delete it)."""
        path = os.path.join(self.paths.graphroot, f"{self.paths.driver}-containers", "containers.json")
        try:
            records = L.load_records(_read(path), path)
        except ValueError:
            return []
        return [r["id"] for r in records if r.get("image") == iid]
