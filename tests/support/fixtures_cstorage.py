"""pytest fixtures for the containers-storage tests (`from support.fixtures_cstorage import *`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from support import images

from support.podman_store import PodmanStore, overlay_usable

__all__ = ["store", "overlay_store", "store_factory", "dir_image"]


def _root_required() -> None:
    if os.geteuid() != 0:
        pytest.skip("writing a containers-storage store needs root (or `podman unshare`)")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PodmanStore]:
    """An empty private vfs store."""
    _root_required()
    s = PodmanStore(tmp_path / "store", "vfs")
    yield s
    s.cleanup()


@pytest.fixture
def store_factory(tmp_path: Path) -> Iterator[Callable[..., PodmanStore]]:
    _root_required()
    made: list[PodmanStore] = []

    def make(driver: str = "vfs") -> PodmanStore:
        made.append(PodmanStore(tmp_path / f"store{len(made) + 1}", driver))
        return made[-1]
    yield make
    for s in made:
        s.cleanup()


@pytest.fixture
def overlay_store(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanStore]:
    """An empty private overlay store; skipped (with podman's reason) where overlay cannot run."""
    _root_required()
    ok, reason = overlay_usable(tmp_path_factory.mktemp("overlay-probe"))
    if not ok:
        pytest.skip(f"podman cannot use overlay here: {reason}")
    s = PodmanStore(tmp_path / "ostore", "overlay")
    yield s
    s.cleanup()


@pytest.fixture
def dir_image(tmp_path: Path) -> Callable[..., Path]:
    """Write a SampleImage as a skopeo dir: (returns its path)."""
    count = [0]

    def write(image: images.SampleImage) -> Path:
        count[0] += 1
        path = tmp_path / f"img{count[0]}"
        images.write_dir(image, str(path))
        return path
    return write
