"""Hostile input is refused cleanly: local layouts whose blobs are symlinks leaving the layout, FIFOs or
devices; archives with such members; manifests over 4 MiB (with or without Content-Length);
malformed auth challenges; and a full disk says whether the cache or the destination is full."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from helpers import assert_one_line_error, fastsync, ok
from support import images
from support.httpproxy import _HTTPServer

IMAGE = images.make_image(931, layers=2, layer_size=50_000)
OCI_IMAGE = images.make_image(932, layers=2, layer_size=50_000, fmt="oci")
BIG = images.make_image(933, layers=2, layer_size=300_000)          # ~220 kB of layers: more than 64 kB


def layer_file(layout: Path, digest: str, oci: bool = False) -> Path:
    hexpart = digest.split(":", 1)[1]
    return layout / "blobs" / "sha256" / hexpart if oci else layout / hexpart


# ---- local layouts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("oci", [False, True], ids=["dir", "oci"])
def test_a_blob_symlinked_out_of_the_layout_is_refused(oci: bool, tmp_path: Path) -> None:
    src = tmp_path / "src"
    images.write_oci(OCI_IMAGE, src, "v1") if oci else images.write_dir(IMAGE, src)
    victim = layer_file(src, (OCI_IMAGE if oci else IMAGE).layers[0].digest, oci)
    victim.unlink()
    victim.symlink_to("/etc/passwd")
    name = f"oci:{src}:v1" if oci else f"dir:{src}"
    out = tmp_path / "out"
    for extra in ([], ["--dest-compress-format", "zstd"]):
        proc = fastsync("copy", "-q", "--retry-times", "0", *extra, name, f"dir:{out}")
        assert_one_line_error(proc, "symlink leaving", "/etc/passwd", "refusing", code=1)
        assert not out.exists()


@pytest.mark.parametrize("oci", [False, True], ids=["dir", "oci"])
def test_a_blob_that_is_a_fifo_is_refused_without_blocking(oci: bool, tmp_path: Path) -> None:
    src = tmp_path / "src"
    images.write_oci(OCI_IMAGE, src, "v1") if oci else images.write_dir(IMAGE, src)
    victim = layer_file(src, (OCI_IMAGE if oci else IMAGE).layers[1].digest, oci)
    victim.unlink()
    os.mkfifo(victim)
    name = f"oci:{src}:v1" if oci else f"dir:{src}"
    proc = fastsync("copy", "-q", name, f"dir:{tmp_path / 'out'}", timeout=30)
    assert_one_line_error(proc, "is a FIFO, not a regular file", code=1)


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_a_blob_that_is_a_device_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    images.write_dir(IMAGE, src)
    victim = layer_file(src, IMAGE.layers[1].digest)
    victim.unlink()
    os.mknod(victim, 0o600 | 0o020000, os.makedev(1, 3))      # a character device (/dev/null's numbers)
    proc = fastsync("copy", "-q", f"dir:{src}", f"dir:{tmp_path / 'out'}", timeout=30)
    assert_one_line_error(proc, "is a character device", code=1)


def test_a_symlink_inside_the_layout_is_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    images.write_dir(IMAGE, src)
    victim = layer_file(src, IMAGE.layers[0].digest)
    (src / "elsewhere").write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to("elsewhere")
    ok(fastsync("copy", "-q", f"dir:{src}", f"dir:{tmp_path / 'out'}"))
    assert layer_file(tmp_path / "out", IMAGE.layers[0].digest).read_bytes() == IMAGE.layers[0].data


def test_registry_storage_blob_data_symlinked_out_is_refused(tmp_path: Path) -> None:
    src, root = tmp_path / "src", tmp_path / "storage"
    images.write_dir(IMAGE, src)
    ok(fastsync("copy", "-q", f"dir:{src}", f"registry-storage:{root}:app:1"))
    hexpart = IMAGE.layers[0].digest.split(":", 1)[1]
    data = root / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"
    data.unlink()
    data.symlink_to("/etc/passwd")
    proc = fastsync("copy", "-q", f"registry-storage:{root}:app:1", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "symlink leaving", code=1)


def _rewrite_tar(path: Path, replace: Callable[[tarfile.TarInfo], tarfile.TarInfo | None]) -> None:
    with tarfile.open(path) as tar:
        members = [(ti, tar.extractfile(ti).read() if ti.isfile() else None) for ti in tar]  # type: ignore[union-attr]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        for ti, data in members:
            new = replace(ti)
            if new is None:
                out.addfile(ti, io.BytesIO(data) if data is not None else None)
            else:
                out.addfile(new)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_an_archive_member_where_a_blob_is_expected_must_be_a_file_inside(kind: str, tmp_path: Path) -> None:
    src, archive = tmp_path / "src", tmp_path / "a.tar"
    images.write_dir(IMAGE, src)
    ok(fastsync("copy", "-q", f"dir:{src}", f"oci-archive:{archive}:v1"))
    target = "blobs/sha256/" + IMAGE.layers[0].digest.split(":", 1)[1]

    def swap(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if ti.name.lstrip("./") != target:
            return None
        new = tarfile.TarInfo(ti.name)
        new.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.FIFOTYPE
        new.linkname = "../../../../etc/passwd" if kind == "symlink" else ""
        return new
    _rewrite_tar(archive, swap)
    proc = fastsync("copy", "-q", f"oci-archive:{archive}:v1", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "leaving the archive" if kind == "symlink" else "a FIFO in the archive", code=1)
    assert not (tmp_path / "out").exists()


# ---- hostile registries ----------------------------------------------------------------------------

class FakeRegistry(_HTTPServer):
    """Answers /v2/ with 200 and every manifest GET with `body` (streamed without a Content-Length
    when `chunked`); `challenge`: answer everything with 401 and this WWW-Authenticate."""

    def __init__(self, body: bytes = b"", chunked: bool = False, challenge: str = "") -> None:
        super().__init__("127.0.0.1")
        self.body, self.chunked, self.challenge = body, chunked, challenge

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if self.challenge:
                return web.Response(status=401, headers={"WWW-Authenticate": self.challenge})
            if request.path == "/v2/":
                return web.json_response({})
            resp = web.StreamResponse(headers={"Content-Type": images.DOCKER_V2S2})
            if self.chunked:
                resp.enable_chunked_encoding()
            else:
                resp.content_length = len(self.body)
            await resp.prepare(request)
            for i in range(0, len(self.body), 1 << 16):
                await resp.write(self.body[i:i + (1 << 16)])
            await resp.write_eof()
            return resp
        return handle


@pytest.fixture
def big_manifest_registry(request: pytest.FixtureRequest) -> Iterator[FakeRegistry]:
    body = b'{"schemaVersion": 2, "layers": [' + b" " * (5 << 20) + b"]}"
    with FakeRegistry(body, chunked=request.param) as reg:
        yield reg


@pytest.mark.parametrize("big_manifest_registry", [False, True], ids=["content-length", "chunked"], indirect=True)
def test_a_manifest_over_4_mib_is_refused(big_manifest_registry: FakeRegistry, run_skopeo, tmp_path: Path) -> None:
    name = f"docker://{big_manifest_registry.host}/huge/app:1"
    theirs = run_skopeo("inspect", "--raw", "--tls-verify=false", name, check=False)
    assert theirs.returncode == 1 and b"exceeded maximum allowed size of 4194304 bytes" in theirs.stderr
    proc = fastsync("inspect", "--raw", "--tls-verify=false", name)
    assert_one_line_error(proc, "reading manifest", "4 MiB allowed", code=1)
    proc = fastsync("copy", "-q", "--src-tls-verify=false", name, f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "4 MiB allowed", code=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("challenge", ['Bearer realm="not a url",service="x"', 'Bearer realm="/token"',
                                       'Bearer realm="ftp://example.com/token"', 'Bearer service="x"'])
def test_a_malformed_auth_challenge_is_said_as_such(challenge: str) -> None:
    with FakeRegistry(challenge=challenge) as reg:
        proc = fastsync("inspect", "--tls-verify=false", f"docker://{reg.host}/a/b:c")
    line = assert_one_line_error(proc, "malformed WWW-Authenticate", code=1)
    assert "cannot reach" not in line


# ---- a full disk -----------------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs to make a small file system")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_destination_says_it_is_the_destination(small_fs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    images.write_dir(BIG, src)
    proc = fastsync("copy", "-q", f"dir:{src}", f"dir:{small_fs / 'out'}")
    assert_one_line_error(proc, "the destination dir:", "is full", "No space left on device", code=1)


def test_a_full_cache_says_it_is_the_cache(small_fs: Path, registry, tmp_path: Path) -> None:
    registry.push_image(BIG, "full/app", "1")
    proc = fastsync("sync", "-q", "--cache", str(small_fs / "cache"), "--src", "docker", "--dest", "dir",
                    "--src-tls-verify=false", f"{registry.host}/full/app:1", str(tmp_path / "out"))
    assert_one_line_error(proc, f"the cache {small_fs / 'cache'}", "is full", code=1)
    assert not (tmp_path / "out" / "app:1").exists()
