"""Local destinations make what a commit names durable by fsync (fastsync.transports.durable), in
one batch at the commit, never by syncfs and never with an fsync on the event loop per file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from fastsync.api import copy_image
from fastsync.options import CopyOptions
from fastsync.store.blobs import Store
from fastsync.transports import durable
from helpers import assert_dir_holds


def test_ancestors_stop_at_the_root(tmp_path: Path) -> None:
    root = str(tmp_path / "r")
    assert durable.ancestors(f"{root}/a/b/f", root) == [f"{root}/a/b", f"{root}/a", root]
    assert durable.ancestors(f"{root}/f", root) == [root]
    assert durable.ancestors(f"{tmp_path}/rx/f", root) == []       # a sibling sharing the prefix is outside


def test_pending_flush_syncs_files_then_directories_up_to_the_root_and_empties(monkeypatch, tmp_path: Path) -> None:
    seen: list[tuple[str, bool]] = []
    real = durable.fsync_path
    monkeypatch.setattr(durable, "fsync_path", lambda p, directory=False: (seen.append((p, directory)),
                                                                            real(p, directory)))
    (tmp_path / "a/b").mkdir(parents=True)
    for p in ("a/b/f", "a/g"):
        (tmp_path / p).write_bytes(b"x")
    pending = durable.Pending(str(tmp_path))
    pending.add(str(tmp_path / "a/b/f"), str(tmp_path / "a/g"), str(tmp_path / "a/g"))
    pending.flush()
    assert seen[:2] == [(str(tmp_path / "a/b/f"), False), (str(tmp_path / "a/g"), False)]
    assert seen[2:] == [(str(tmp_path / "a/b"), True), (str(tmp_path / "a"), True), (str(tmp_path), True)]
    seen.clear()
    pending.flush()
    assert seen == []
    pending.add(str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError):      # a commit must not name a file that is not there
        pending.flush()


def test_dir_image_is_fsynced_whole_before_its_rename_and_its_parent_after(monkeypatch, sample_images, dir_of,
                                                                          tmp_path: Path) -> None:
    from fastsync.transports import localfs

    events: list[tuple[str, str]] = []
    real_fsync, real_commit = durable.fsync_path, localfs.StagedDir.commit

    def fsync_path(path: str, directory: bool = False) -> None:
        events.append(("fsync", os.path.abspath(path)))
        real_fsync(path, directory)

    def commit(self) -> None:  # noqa: ANN001
        events.append(("rename", self.path))
        real_commit(self)
    monkeypatch.setattr(durable, "fsync_path", fsync_path)
    monkeypatch.setattr(localfs.StagedDir, "commit", commit)
    loop_fsyncs: list[int] = []
    real_os_fsync = os.fsync
    import threading
    main = threading.main_thread()

    def os_fsync(fd: int) -> None:
        if threading.current_thread() is main:
            loop_fsyncs.append(fd)
        real_os_fsync(fd)
    monkeypatch.setattr(os, "fsync", os_fsync)
    image = sample_images["multiarch"]
    out = (tmp_path / "parent" / "out").resolve()
    copy_image(f"dir:{dir_of(image)}", f"dir:{out}", CopyOptions(multi_arch="all"),
               store=Store(str(tmp_path / "cache")))
    assert_dir_holds(out, image)
    at = next(i for i, (kind, _) in enumerate(events) if kind == "rename")
    stage = events[at][1]
    before = {p for kind, p in events[:at] if kind == "fsync"}
    after = {p for kind, p in events[at:] if kind == "fsync"}
    written = sorted(p.name for p in out.iterdir() if p.name == "version" or p.name.endswith("manifest.json"))
    assert "manifest.json" in written and len(written) == 2 + len(image.children)
    assert {os.path.join(stage, f) for f in written} | {stage} <= before
    linked = [p for p in out.iterdir() if p.stat().st_nlink > 1]       # the store's blobs: synced before
    assert linked and not {os.path.join(stage, p.name) for p in linked} & before
    assert str(out.parent) in after
    assert loop_fsyncs == []        # the event loop never waits for the disk
