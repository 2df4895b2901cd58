"""Shared real-parts fixtures: docker-registry processes, a token server, proxies, sample images.

Session-scoped (started on first use, stopped at session end even on failure):
  skopeo              path of the skopeo binary (skips with a reason if missing; fails under CI=true)
  sample_images       support.images.sample_set(): {name: SampleImage}
  registry            plain-HTTP registry, anonymous read/write
  seeded_registry     another plain registry holding every sample image byte-exactly
                      at images.sample_repo(name) (pushed over HTTP, not via skopeo)
  auth_registry       htpasswd basic auth (.username / .password / .creds)
  tls_registry        HTTPS with a generated CA (.cert_dir for --cert-dir, .ca_path)
  client_cert_registry  HTTPS requiring a client certificate (.cert_dir has client.cert/.key)
  token_registry      bearer-token auth backed by .token_server (anonymous pull allowed)
  token_server        token_registry.token_server (TokenServer; .requests records each request)
Function-scoped:
  fresh_registry      an empty plain registry for this test only
  registry_factory    registry_factory(**Registry kwargs) -> started Registry, stopped after the test
                      (e.g. registry_factory(root=tree) to serve a storage tree a test wrote)
  tamper_proxy        TamperProxy in front of `registry` (switches reset per test)
  redirect_capture    RedirectCapture on 127.0.0.2 (or another 127.0.0.1 port)
  run_skopeo          run_skopeo(*args, check=True) -> CompletedProcess (bytes), --insecure-policy added,
                      with an empty private auth file so the host's logins never leak in
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from support import images
from support.faultproxy import FaultProxy
from support.proxy import RedirectCapture, TamperProxy
from support.registry import Registry
from support.tokenserver import TokenServer


def _require(binary: str, package: str) -> str:
    """Path of a required tool; skip without it locally, but fail under CI, where a skip
    would hide a missing install step."""
    path = shutil.which(binary)
    if path is None:
        reason = f"{binary} is not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _started(**kwargs: object) -> Registry:
    _require("docker-registry", "docker-registry")
    return Registry(**kwargs).start()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def skopeo() -> str:
    return _require("skopeo", "skopeo")


@pytest.fixture(scope="session")
def run_skopeo(skopeo: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    authfile = tmp_path_factory.mktemp("skopeo-auth") / "auth.json"
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(authfile)}

    def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([skopeo, "--insecure-policy", *args], capture_output=True, env=env,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"skopeo {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc
    return run


@pytest.fixture(scope="session")
def sample_images() -> dict[str, images.SampleImage]:
    return images.sample_set()


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    reg = _started()
    yield reg
    reg.cleanup()


@pytest.fixture(scope="session")
def seeded_registry(sample_images: dict[str, images.SampleImage]) -> Iterator[Registry]:
    reg = _started()
    try:
        for name, image in sample_images.items():
            repo, tag = images.sample_repo(name)
            reg.push_image(image, repo, tag)
        yield reg
    finally:
        reg.cleanup()


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[Registry]:
    reg = _started(auth="htpasswd", username="fastsync", password="s3cret-basic")
    yield reg
    reg.cleanup()


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[Registry]:
    reg = _started(tls=True)
    yield reg
    reg.cleanup()


@pytest.fixture(scope="session")
def client_cert_registry() -> Iterator[Registry]:
    reg = _started(tls=True, client_cert=True)
    yield reg
    reg.cleanup()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[Registry]:
    reg = _started(auth="token", username="fastsync", password="s3cret-token")
    yield reg
    reg.cleanup()


@pytest.fixture(scope="session")
def token_server(token_registry: Registry) -> TokenServer:
    assert token_registry.token_server is not None
    return token_registry.token_server


@pytest.fixture
def fresh_registry() -> Iterator[Registry]:
    reg = _started()
    yield reg
    reg.cleanup()


@pytest.fixture
def registry_factory() -> Iterator[Callable[..., Registry]]:
    made: list[Registry] = []

    def make(**kwargs: object) -> Registry:
        reg = _started(**kwargs)
        made.append(reg)
        return reg
    yield make
    for reg in made:
        reg.cleanup()


@pytest.fixture
def tamper_proxy(registry: Registry) -> Iterator[TamperProxy]:
    with TamperProxy(registry.url) as proxy:
        yield proxy


@pytest.fixture
def redirect_capture() -> Iterator[RedirectCapture]:
    with RedirectCapture() as capture:
        yield capture


@pytest.fixture
def dir_of(tmp_path: Path) -> Callable[[images.SampleImage], Path]:
    """dir_of(image) -> a fresh dir: layout of the image under tmp_path."""
    count = [0]

    def write(image: images.SampleImage) -> Path:
        count[0] += 1
        path = tmp_path / f"dir{count[0]}"
        images.write_dir(image, path)
        return path
    return write


# fault proxies in front of the module's own `source` registry and of a fresh destination
@pytest.fixture
def src_proxy(source: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(source.url) as proxy:
        yield proxy


@pytest.fixture
def dst_proxy(fresh_registry: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(fresh_registry.url) as proxy:
        yield proxy
