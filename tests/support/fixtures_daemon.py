"""Fixtures for the docker-daemon: tests (import with `from support.fixtures_daemon import *`).

  podman_service   session-scoped PodmanService (tests/support/podman.py): podman's Docker-compatible API
                   on a private socket, private --root/--runroot, vfs; skips without podman (fails under CI)
  daemon_host      its socket as --*daemon-host spells it
  fake_engine      a FakeEngine (tests/support/fake_engine.py) on a private unix socket, per test
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import Iterator

import pytest

from support.fake_engine import FakeEngine
from support.podman import PodmanService

__all__ = ["podman_service", "daemon_host", "fake_engine", "unique_name"]


@pytest.fixture(scope="session")
def podman_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    if shutil.which("podman") is None:
        reason = "podman is not installed (apt-get install podman)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    service = PodmanService(tmp_path_factory.mktemp("podman"))
    try:
        service.start()
        yield service
    finally:
        service.cleanup()


@pytest.fixture(scope="session")
def daemon_host(podman_service: PodmanService) -> str:
    return podman_service.host


@pytest.fixture
def fake_engine() -> Iterator[FakeEngine]:
    d = tempfile.mkdtemp(prefix="fastsync-fe-")     # short: a unix socket path has at most 107 bytes
    try:
        with FakeEngine(socket_path=os.path.join(d, "engine.sock")) as engine:
            yield engine
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unique_name(prefix: str = "fs") -> str:
    """A repository name no other test uses (the podman service is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
