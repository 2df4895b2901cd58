"""Signatures of index instances, an http lookaside, and signing on sync, with skopeo as the peer."""
from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

from support.images import sample_set, write_dir
from helpers import assert_one_line_error, fastsync, ok
from support.fixtures_trust import *  # noqa: F401,F403
from support.fixtures_trust import skopeo_message
from support.gpgkeys import GPGHome

IDENTITY = "registry.example.com/signed/index:1"
EXACT = {"type": "exactReference", "dockerReference": IDENTITY}


def skopeo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, env={**os.environ, **(env or {})}, timeout=120)


def signed_by(home: GPGHome, identity: dict | None = None) -> list[dict]:
    req = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(home.trusted_pub)}
    return [{**req, "signedIdentity": identity}] if identity else [req]


@pytest.fixture
def signed_index(gpg_home: GPGHome, tmp_path: Path) -> Path:
    """A dir: index whose list and every instance carry a signature (HEX.signature-1 for instances)."""
    path = tmp_path / "index"
    write_dir(sample_set()["multiarch"], path)
    names = [m["digest"].split(":")[1] for m in json.loads((path / "manifest.json").read_bytes())["manifests"]]
    for manifest, sig in [("manifest.json", "signature-1")] + [(f"{h}.manifest.json", f"{h}.signature-1")
                                                               for h in names]:
        ok(fastsync("standalone-sign", str(path / manifest), IDENTITY, gpg_home.trusted, "-o", str(path / sig),
                    env=gpg_home.env))
    return path


def _signatures(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.glob("*signature-*"))}


@pytest.mark.parametrize("all_images", [True, False])
def test_index_signatures_travel_like_skopeos(all_images: bool, gpg_home: GPGHome, signed_index: Path,
                                              tmp_path: Path, write_policy) -> None:
    policy = str(write_policy(signed_by(gpg_home, EXACT)))
    flags = ["--all"] if all_images else []
    ok(fastsync("--policy", policy, "copy", "-q", *flags, f"dir:{signed_index}", f"dir:{tmp_path / 'mine'}"))
    proc = skopeo("--policy", policy, "copy", "-q", *flags, f"dir:{signed_index}", f"dir:{tmp_path / 'theirs'}")
    assert proc.returncode == 0, proc.stderr
    mine, theirs = _signatures(tmp_path / "mine"), _signatures(tmp_path / "theirs")
    assert mine == theirs
    assert len(mine) == (3 if all_images else 1)


def test_an_unsigned_instance_rejects_the_whole_copy(gpg_home: GPGHome, signed_index: Path, tmp_path: Path,
                                                     write_policy) -> None:
    for sig in signed_index.glob("*.signature-1"):
        sig.unlink()
    policy = str(write_policy(signed_by(gpg_home, EXACT)))
    mine = fastsync("--policy", policy, "copy", "--all", f"dir:{signed_index}", f"dir:{tmp_path / 'mine'}")
    theirs = skopeo("--policy", policy, "copy", "--all", f"dir:{signed_index}", f"dir:{tmp_path / 'theirs'}")
    line = assert_one_line_error(mine, "copying image 1/2 from manifest list: Source image rejected: ", code=1)
    assert line.removeprefix("Error: ") == skopeo_message(theirs.stderr)
    assert not (tmp_path / "mine").exists()


@pytest.fixture
def http_lookaside(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """registries.d reading signatures over http from a directory, writing them to it (staging)."""
    store = tmp_path / "served"
    store.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(store))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "http.yaml").write_text(f"default-docker:\n  lookaside: http://127.0.0.1:{server.server_port}\n"
                                    f"  lookaside-staging: file://{store}\n")
    try:
        yield regd, store
    finally:
        server.shutdown()
        server.server_close()


def test_http_lookaside_and_signing_on_sync(gpg_home: GPGHome, registry, tmp_path: Path, write_policy,
                                            http_lookaside) -> None:
    regd, store = http_lookaside
    tree = tmp_path / "tree"
    write_dir(sample_set()["v2s2"], tree / "one")
    write_dir(sample_set()["oci"], tree / "two")
    ok(fastsync("--insecure-policy", "--registries.d", str(regd), "sync", "-q", "--src", "dir", "--dest", "docker",
                "--dest-tls-verify=false", "--sign-by", gpg_home.trusted, str(tree), f"{registry.host}/signsync",
                env=gpg_home.env))
    assert len(list(store.glob("signsync/*@sha256=*/signature-1"))) == 2
    policy = str(write_policy(signed_by(gpg_home)))
    for name in ("one", "two"):
        out = tmp_path / f"skopeo-{name}"
        proc = skopeo("--policy", policy, "--registries.d", str(regd), "copy", "--src-tls-verify=false",
                      f"docker://{registry.host}/signsync/{name}:latest", f"dir:{out}")
        assert proc.returncode == 0, proc.stderr
        mine = tmp_path / f"fastsync-{name}"
        ok(fastsync("--policy", policy, "--registries.d", str(regd), "copy", "--src-tls-verify=false",
                    f"docker://{registry.host}/signsync/{name}:latest", f"dir:{mine}"))
        assert (mine / "signature-1").read_bytes() == (out / "signature-1").read_bytes()
    # nothing served for this repository: "no signature", read over http as skopeo reads it
    ok(fastsync("--insecure-policy", "copy", "--dest-tls-verify=false", f"dir:{tree / 'one'}",
                f"docker://{registry.host}/signsync/unsigned:1"))
    args = ("--policy", policy, "--registries.d", str(regd), "copy", "--src-tls-verify=false",
            f"docker://{registry.host}/signsync/unsigned:1", f"dir:{tmp_path / 'x'}")
    line = assert_one_line_error(fastsync(*args), "A signature was required, but no signature exists", code=1)
    assert line.removeprefix("Error: ") == skopeo_message(skopeo(*args).stderr)


def test_registries_d_errors(tmp_path: Path) -> None:
    from fastsync.trust.registries_d import RegistriesDError, load

    regd = tmp_path / "d"
    regd.mkdir()
    (regd / "a.yaml").write_text("docker:\n  example.com:\n    lookaside: file:///a\n")
    (regd / "b.yaml").write_text("docker:\n  example.com:\n    lookaside: file:///b\n")
    with pytest.raises(RegistriesDError, match='"docker" namespace "example.com" defined both in'):
        load(str(regd))
    (regd / "b.yaml").write_text("default-docker: [1, 2\n")
    with pytest.raises(RegistriesDError, match="parsing .*b.yaml"):
        load(str(regd))


def test_sync_checks_images_already_up_to_date(registry, tmp_path: Path, write_policy) -> None:
    tree = tmp_path / "tree"
    write_dir(sample_set()["v2s2"], tree / "app")
    dest = f"{registry.host}/uptodate"
    ok(fastsync("--insecure-policy", "sync", "-q", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false",
                str(tree), dest))
    policy = str(write_policy([{"type": "reject"}]))
    proc = fastsync("--policy", policy, "sync", "-q", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false",
                    str(tree), dest)
    assert proc.returncode == 1 and "rejected by policy" in proc.stderr.decode()


def test_delete_removes_lookaside_signatures(gpg_home: GPGHome, registry, tmp_path: Path, lookaside) -> None:
    regd, store = lookaside
    src = tmp_path / "src"
    write_dir(sample_set()["v2s2"], src)
    for tool, name in (("fastsync", "del-mine"), ("skopeo", "del-theirs")):
        ref = f"docker://{registry.host}/trust/{name}:1"
        ok(fastsync("--insecure-policy", "--registries.d", str(regd), "copy", "-q", "--dest-tls-verify=false",
                    "--sign-by", gpg_home.trusted, f"dir:{src}", ref, env=gpg_home.env))
        sigs = list(store.glob(f"trust/{name}@sha256=*/signature-1"))
        assert len(sigs) == 1
        if tool == "fastsync":
            ok(fastsync("--registries.d", str(regd), "delete", "--tls-verify=false", ref))
        else:
            proc = skopeo("--registries.d", str(regd), "delete", "--tls-verify=false", ref)
            assert proc.returncode == 0, proc.stderr
        assert not sigs[0].exists()


@pytest.mark.parametrize("flags, message", [
    (["--format", "oci"], 'Manifest must be converted to type "application/vnd.oci.image.manifest.v1+json"'),
    (["--dest-compress-format", "zstd"], "Layers must be recompressed"),
])
def test_a_signed_manifest_is_never_rewritten(flags: list[str], message: str, gpg_home: GPGHome, tmp_path: Path) -> None:
    src, signed = tmp_path / "src", tmp_path / "signed"
    write_dir(sample_set()["v2s2"], src)
    ok(fastsync("--insecure-policy", "copy", "-q", "--sign-by", gpg_home.trusted, "--sign-identity", IDENTITY,
                f"dir:{src}", f"dir:{signed}", env=gpg_home.env))
    proc = fastsync("--insecure-policy", "copy", *flags, f"dir:{signed}", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, message, "Would invalidate signatures", code=1)
    assert not (tmp_path / "out").exists()
    ok(fastsync("--insecure-policy", "copy", "-q", "--remove-signatures", *flags, f"dir:{signed}",
                f"dir:{tmp_path / 'out'}"))
