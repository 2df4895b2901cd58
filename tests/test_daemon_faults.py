"""docker-daemon: names, the load tar itself, API versions, TLS, an OCI-layout save stream and the
faults (engine absent, permission denied, errors in the middle of a load), against a scripted
engine (tests/support/fake_engine.py) where a real one will not misbehave on demand."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile

import pytest

from fastsync.errors import InvalidReference
from fastsync.transports import parse_image_name
from support import images
from support.certs import CA
from helpers import ROOT, assert_one_line_error, fastsync, ok
from support.fake_engine import FakeEngine
from support.fixtures_daemon import *  # noqa: F401,F403
from support.fixtures_daemon import unique_name


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_members(data: bytes) -> list[tuple[str, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for ti in tar:
            f = tar.extractfile(ti) if ti.isfile() else None
            out.append((ti.name, f.read() if f else ("->" + ti.linkname).encode()))
    return out


def tar_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def oci_save_stream(image: images.SampleImage, tag: str) -> bytes:
    """A save stream as Docker 25+ writes it: an OCI layout (uncompressed layers under their diff_ids),
    then index.json, and manifest.json / repositories naming the same blobs."""
    layers = [gzip.decompress(b.data) for b in image.layers]
    cfg = image.config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cfg.digest, "size": len(cfg.data)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(x),
                                       "size": len(x)} for x in layers]}).encode()
    blob = lambda d: f"blobs/sha256/{d.split(':', 1)[1]}"  # noqa: E731
    members = [(blob(sha(x)), x) for x in layers] + [(blob(cfg.digest), cfg.data), (blob(sha(manifest)), manifest)]
    members.append(("index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest),
         "annotations": {"io.containerd.image.name": f"docker.io/library/{tag}"}}]}).encode()))
    members.append(("manifest.json", json.dumps([{"Config": blob(cfg.digest), "RepoTags": [tag],
                                                  "Layers": [blob(sha(x)) for x in layers]}]).encode()))
    members.append(("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
    return tar_of(members)


# ---- names ------------------------------------------------------------------------------------------

def test_names_parse_as_containers_image_does():
    r = parse_image_name("docker-daemon:alpine:3.12")
    assert str(r.docker_reference) == "docker.io/library/alpine:3.12" and r.details == "alpine:3.12"
    assert str(r) == "docker-daemon:alpine:3.12"
    d = parse_image_name(f"docker-daemon:example.com:5000/a/b@sha256:{'ab' * 32}")
    assert d.details == f"example.com:5000/a/b@sha256:{'ab' * 32}"
    i = parse_image_name(f"docker-daemon:sha256:{'cd' * 32}")
    assert i.docker_reference is None and i.details == f"sha256:{'cd' * 32}"
    for ref in (r, d, i, parse_image_name("docker-daemon:docker.io/library/busybox:1")):
        assert str(parse_image_name(str(ref))) == str(ref)
    for bad, words in [("docker-daemon:alpine", "has neither a tag nor a digest"),
                       (f"docker-daemon:alpine:3@sha256:{'ab' * 32}", "both a tag and digest"),
                       ("docker-daemon:sha256:abcd", "reserved"),
                       (f"docker-daemon:{'ab' * 32}", "64-byte hexadecimal"),
                       ("docker-daemon:team/Upper:1", "lowercase"),
                       ("docker-daemon:", "required")]:
        with pytest.raises(InvalidReference, match=words):
            parse_image_name(bad)


def test_bad_names_and_hosts_are_usage_errors(sample_images, dir_of):
    assert_one_line_error(fastsync("inspect", "docker-daemon:alpine"), "neither a tag nor a digest", code=1)
    assert_one_line_error(fastsync("inspect", "--daemon-host", "nonsense", "docker-daemon:a:1"),
                          "unable to parse docker host", code=1)
    assert_one_line_error(fastsync("inspect", "--daemon-host", "tcp://host-without-port", "docker-daemon:a:1"),
                          "HOST:PORT", code=1)
    proc = fastsync("copy", "--dest-daemon-host", "unix:///nonexistent.sock", f"dir:{dir_of(sample_images['v2s2'])}",
                    f"docker-daemon:a@sha256:{'ab' * 32}")
    assert_one_line_error(proc, "a destination must be a name:tag", code=1)


# ---- faults -----------------------------------------------------------------------------------------

def test_engine_not_running(sample_images, dir_of, tmp_path):
    host = f"unix://{tmp_path}/absent.sock"
    proc = fastsync("copy", "--src-daemon-host", host, "docker-daemon:a:1", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "Cannot connect to the Docker daemon at", "Is the docker daemon running?", code=1)
    assert not (tmp_path / "out").exists()
    proc = fastsync("copy", "--dest-daemon-host", host, f"dir:{dir_of(sample_images['v2s2'])}", "docker-daemon:a:1")
    assert_one_line_error(proc, "saving image to docker engine", "Cannot connect", code=1)
    # a socket nobody listens on any more: refused
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "dead.sock"))
    sock.close()
    proc = fastsync("inspect", "--daemon-host", f"unix://{tmp_path}/dead.sock", "docker-daemon:a:1")
    assert_one_line_error(proc, "Cannot connect to the Docker daemon", code=1)


def test_socket_permission_denied(fake_engine):
    # root ignores file modes; without CAP_DAC_OVERRIDE it is held to them, like any other user
    os.chown(fake_engine.socket_path, 65534, 65534)
    os.chmod(fake_engine.socket_path, 0o600)
    drop = "-dac_override,-dac_read_search"
    proc = subprocess.run(["setpriv", "--bounding-set", drop, "--inh-caps", drop, sys.executable, "-m", "fastsync",
                           "inspect", "--daemon-host", fake_engine.host, "docker-daemon:a:1"],
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert_one_line_error(proc, "permission denied while trying to connect to the Docker daemon socket", code=1)


@pytest.mark.parametrize("reply", ["error", "early", "status"])
def test_an_engine_error_fails_the_copy_with_its_message(reply, fake_engine, sample_images, dir_of):
    fake_engine.load_reply = reply
    fake_engine.error_message = "open /var/lib/docker/tmp/x: no space left on device"
    proc = fastsync("copy", "-q", "--dest-daemon-host", fake_engine.host, f"dir:{dir_of(sample_images['v2s2'])}",
                    "docker-daemon:x/y:1")
    assert_one_line_error(proc, "saving image to docker engine", "no space left on device", code=1)
    assert len(fake_engine.loaded) == 1


def test_the_engine_hanging_up_mid_load(fake_engine, sample_images, dir_of):
    fake_engine.load_reply = "hangup"
    proc = fastsync("copy", "-q", "--dest-daemon-host", fake_engine.host, f"dir:{dir_of(sample_images['v2s2'])}",
                    "docker-daemon:x/y:1")
    assert_one_line_error(proc, "saving image to docker engine", code=1)


def test_a_blob_corrupted_in_flight_loads_nothing(registry, tamper_proxy, sample_images, dir_of, podman_service,
                                                  daemon_host):
    repo = f"tamper/{unique_name()}"
    ok(fastsync("copy", "-q", "--dest-tls-verify=false", f"dir:{dir_of(sample_images['v2s2'])}",
                f"docker://{registry.host}/{repo}:1"))
    layer = sample_images["v2s2"].layers[1].digest
    tamper_proxy.corrupt_blobs(layer, offset=100)
    name = f"localhost/{unique_name()}:bad"
    proc = fastsync("copy", "-q", "--retry-times", "0", "--src-tls-verify=false", "--dest-daemon-host", daemon_host,
                    f"docker://{tamper_proxy.host}/{repo}:1", f"docker-daemon:{name}")
    assert_one_line_error(proc, "digest mismatch", layer, code=1)
    assert tamper_proxy.tampered
    assert name not in podman_service.image_ids()


# ---- the load tar -----------------------------------------------------------------------------------

def test_the_load_tar_is_the_one_skopeo_sends(sample_images, seeded_registry, run_skopeo, tmp_path):
    """Registry -> engine: the same members, with the same bytes, as skopeo's docker-daemon: writes
    (layers as they came, compressed), configs and layers first, manifest.json and repositories last."""
    repo, tag = images.sample_repo("v2s2")
    src = f"docker://{seeded_registry.host}/{repo}:{tag}"
    sent = {}
    for who in ("fastsync", "skopeo"):
        with FakeEngine(socket_path=str(tmp_path / f"{who}.sock")) as engine:
            flags = ("-q", "--src-tls-verify=false", "--dest-daemon-host", engine.host, src, "docker-daemon:team/app:7")
            if who == "fastsync":
                ok(fastsync("copy", *flags))
            else:
                run_skopeo("copy", *flags)
            body, = engine.loaded
            sent[who] = tar_members(body)
    ours, theirs = sent["fastsync"], sent["skopeo"]
    assert sorted(ours) == sorted(theirs)
    image = sample_images["v2s2"]
    blobs = {f"{b.digest.split(':', 1)[1]}.tar": b.data for b in image.layers}
    blobs[f"{image.config.digest.split(':', 1)[1]}.json"] = image.config.data
    names = [n for n, _ in ours]
    assert set(names[:len(blobs)]) == set(blobs) and all(dict(ours)[n] == d for n, d in blobs.items())
    assert names[-2:] == ["manifest.json", "repositories"]
    item, = json.loads(dict(ours)["manifest.json"])
    assert item["RepoTags"] == ["docker.io/team/app:7"]


def test_a_load_is_streamed_not_spooled(fake_engine, sample_images, dir_of, tmp_path):
    """--tmpdir is a regular file: nothing can be spooled there, and the load works all the same (the
    read side needs it, and says so in one line)."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    ok(fastsync("--tmpdir", str(not_a_dir), "copy", "-q", "--dest-daemon-host", fake_engine.host,
                f"dir:{dir_of(sample_images['v2s2'])}", "docker-daemon:x/y:1"))
    body, = fake_engine.loaded
    assert [n for n, _ in tar_members(body)][-2:] == ["manifest.json", "repositories"]
    fake_engine.saves["x/y:1"] = oci_save_stream(sample_images["v2s2"], "x/y:1")
    proc = fastsync("--tmpdir", str(not_a_dir), "copy", "-q", "--src-daemon-host", fake_engine.host,
                    "docker-daemon:x/y:1", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "Not a directory", code=1)


def test_sync_saves_each_image_once(fake_engine, sample_images, tmp_path):
    names = {"team/a:1": sample_images["v2s2"], "team/b:2": sample_images["oci"]}
    for name, image in names.items():
        fake_engine.saves[name] = oci_save_stream(image, name)
    listing = tmp_path / "local.txt"
    listing.write_text("\n".join(names) + "\n")
    ok(fastsync("sync", "-q", "--src", "docker-daemon", "--dest", "dir", "--src-daemon-host", fake_engine.host,
                "--no-cache", str(listing), str(tmp_path / "out")))
    saves = [p for m, p in fake_engine.requests if "/images/get" in p]
    assert len(saves) == 2
    for name, image in names.items():
        out = tmp_path / "out" / name          # unscoped, the name as the list writes it
        assert (out / image.config.digest.split(":", 1)[1]).read_bytes() == image.config.data
    # an image ID names no repository: refused before anything is saved
    listing.write_text(f"{sample_images['v2s2'].config.digest}\n")
    proc = fastsync("sync", "--src", "docker-daemon", "--dest", "dir", "--src-daemon-host", fake_engine.host,
                    str(listing), str(tmp_path / "out2"))
    assert_one_line_error(proc, "is an image ID", code=1)


def test_api_version_is_negotiated(fake_engine, sample_images, tmp_path):
    fake_engine.saves["a:1"] = oci_save_stream(sample_images["v2s2"], "a:1")
    for server, used in (("1.30", "/v1.30/"), ("1.45", "/v1.41/")):
        fake_engine.api_version = server
        fake_engine.requests.clear()
        ok(fastsync("inspect", "--daemon-host", fake_engine.host, "docker-daemon:a:1"))
        assert fake_engine.requests[0] == ("GET", "/_ping")
        assert fake_engine.requests[1][1].startswith(f"{used}images/get?names=a")
    fake_engine.api_version = "1.12"
    assert_one_line_error(fastsync("inspect", "--daemon-host", fake_engine.host, "docker-daemon:a:1"),
                          "speaks API 1.12", code=1)


def test_an_oci_layout_save_stream(fake_engine, sample_images, run_skopeo, tmp_path):
    image = sample_images["oci"]
    fake_engine.saves["new/engine:25"] = oci_save_stream(image, "new/engine:25")
    flags = ("--daemon-host", fake_engine.host)
    ours = json.loads(ok(fastsync("inspect", *flags, "docker-daemon:new/engine:25")).stdout)
    theirs = json.loads(run_skopeo("inspect", *flags, "docker-daemon:new/engine:25").stdout)
    assert ours["Layers"] == theirs["Layers"] == list(image.diff_ids)
    ok(fastsync("copy", "-q", "--src-daemon-host", fake_engine.host, "docker-daemon:new/engine:25",
                f"dir:{tmp_path / 'out'}"))
    assert (tmp_path / "out" / image.config.digest.split(":", 1)[1]).read_bytes() == image.config.data
    for layer in image.layers:
        data = gzip.decompress(layer.data)
        assert (tmp_path / "out" / sha(data).split(":", 1)[1]).read_bytes() == data


def test_tls_with_client_certificates(sample_images, tmp_path):
    ca = CA.create()
    with FakeEngine(tls=(ca.issue_server(), ca.cert_pem)) as engine:
        engine.saves["a:1"] = oci_save_stream(sample_images["v2s2"], "a:1")
        certs = tmp_path / "certs"
        certs.mkdir()
        (certs / "ca.pem").write_bytes(ca.cert_pem)
        ca.issue_client().write(certs / "cert.pem", certs / "key.pem")
        out = ok(fastsync("inspect", "--daemon-host", engine.host, "--cert-dir", str(certs), "docker-daemon:a:1"))
        assert json.loads(out.stdout)["Layers"] == list(sample_images["v2s2"].diff_ids)
        # no client certificate: the engine refuses the handshake
        (certs / "cert.pem").unlink()
        assert_one_line_error(fastsync("inspect", "--daemon-host", engine.host, "--cert-dir", str(certs),
                                       "docker-daemon:a:1"), "Could not load X509 key pair", code=1)
        # no verification, no client certificate either: refused all the same
        proc = fastsync("inspect", "--daemon-host", engine.host, "--tls-verify=false", "docker-daemon:a:1")
        assert_one_line_error(proc, code=1)
