"""Fault injection on `sync`: transient faults on the first attempt of every request leave every image
copied with the right digests (and a sound cache); a persistent fault fails one image cleanly, naming
the digest, while --keep-going completes the others, and no tag points at missing content."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from faultcheck import cache_is_sound, transient_faults, registry_holds, registry_lacks
from helpers import assert_one_line_error, fastsync, ok
from support import images
from support.faultproxy import Fault, FaultProxy
from support.registry import Registry

A = images.make_image(911, layers=2, layer_size=200_000)
B = images.make_image(912, layers=2, layer_size=200_000, base_seed=911, base_layers=1)   # shares a layer
C = images.make_image(913, layers=2, layer_size=200_000, base_seed=911, base_layers=1)   # another repository
IMAGES = {"t/a:one": A, "t/a:two": B, "t/c:one": C}
FAST = ("--retry-times", "3", "--read-idle-timeout", "2")
FAULTS = transient_faults("0", with_500=False)


@pytest.fixture(scope="module")
def source() -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = Registry().start()
    try:
        for name, image in IMAGES.items():
            repo, tag = name.split(":")
            reg.push_image(image, repo, tag)
        yield reg
    finally:
        reg.cleanup()


@pytest.fixture
def proxies(source: Registry, fresh_registry: Registry) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    with FaultProxy(source.url) as src, FaultProxy(fresh_registry.url) as dst:
        yield src, dst


def sync_list(src: FaultProxy, dst: FaultProxy, tmp_path: Path, *extra: str) -> "object":
    """Sync the three images by list, with the cache (`extra` flags win over FAST)."""
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{n}\n" for n in IMAGES))
    return fastsync("sync", "-q", *FAST, *extra, "--cache", str(tmp_path / "cache"), "--src", "list",
                    "--dest", "docker", "--src-registry", src.host, "--src-tls-verify=false",
                    "--dest-tls-verify=false", str(lst), f"{dst.host}/mirror")


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_sync_survives_a_fault_on_the_first_attempt_of_every_request(name: str, proxies, fresh_registry: Registry,
                                                                     tmp_path: Path) -> None:
    src, dst = proxies
    src.add(FAULTS[name])
    dst.add(FAULTS[name])
    ok(sync_list(src, dst, tmp_path, *(("--read-idle-timeout", "0.5") if name == "stall" else ())))
    for n, image in IMAGES.items():
        repo, tag = n.split(":")
        registry_holds(fresh_registry, f"mirror/{repo}", tag, image)
    assert cache_is_sound(tmp_path / "cache") == len({d for i in IMAGES.values() for d in i.all_blobs()})
    assert src.hits and (dst.hits or name == "corrupt")
    assert any(m == "POST" and "mount=" in p for m, p, _ in dst.requests)      # mounts were faulted too


@pytest.mark.parametrize("name", ["reset", "503", "429"])
def test_sync_of_a_repository_survives_faults_on_its_tag_list(name: str, proxies, fresh_registry: Registry,
                                                              tmp_path: Path) -> None:
    src, dst = proxies
    fault = FAULTS[name]
    src.add(Fault(fault.kind, "tags", status=fault.status, retry_after=fault.retry_after))
    ok(fastsync("sync", "-q", *FAST, "--no-cache", "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
                "--dest-tls-verify=false", f"{src.host}/t/a", f"{dst.host}/mirror"))
    registry_holds(fresh_registry, "mirror/a", "one", A)
    registry_holds(fresh_registry, "mirror/a", "two", B)
    assert [k for k, _, p in src.hits] == [fault.kind]


def test_a_persistent_fault_fails_one_image_and_keep_going_completes_the_others(
        proxies, fresh_registry: Registry, tmp_path: Path) -> None:
    src, dst = proxies
    bad = C.layers[1].digest                            # only t/c:one has it
    src.add(Fault("corrupt", "blob-get", times=-1, digest=bad))
    proc = sync_list(src, dst, tmp_path, "--keep-going", "--report", str(tmp_path / "report.json"))
    assert_one_line_error(proc, "failed for 1 of 3 images", bad, code=1)
    registry_holds(fresh_registry, "mirror/t/a", "one", A)
    registry_holds(fresh_registry, "mirror/t/a", "two", B)
    registry_lacks(fresh_registry, "mirror/t/c", "one")
    report = json.loads((tmp_path / "report.json").read_bytes())
    assert sorted(i["status"] for i in report["images"]) == ["copied", "copied", "failed"]
    assert cache_is_sound(tmp_path / "cache") > 0


def test_a_persistent_fault_without_keep_going_names_the_image_and_digest(proxies, tmp_path: Path) -> None:
    src, dst = proxies
    bad = C.layers[1].digest
    src.add(Fault("corrupt", "blob-get", times=-1, digest=bad))
    proc = sync_list(src, dst, tmp_path, "--retry-times", "1")
    line = assert_one_line_error(proc, "copying ref", "t/c:one", "digest mismatch", bad, code=1)
    assert not line.startswith("Error: Error")
    assert cache_is_sound(tmp_path / "cache") >= 0
