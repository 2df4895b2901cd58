"""The test infrastructure is real and correct: bytes and digests checked against skopeo and a
real docker-registry, auth/TLS variants refusing and accepting what they should, proxies doing
exactly what they are told."""
from __future__ import annotations

import base64
import gzip
import io
import json
import subprocess
import tarfile
import time
import urllib.request

import pytest
import zstandard

from support import images
from support.images import SampleImage, sha256_digest
from support.proxy import DelayProxy, measure_round_trip
from support.registry import Registry

SAMPLES = ["v2s2", "oci", "zstd", "multiarch", "list", "schema1", "empty", "shared"]


def _single_images(sample_images: dict[str, SampleImage]) -> list[SampleImage]:
    out = []
    for img in sample_images.values():
        out.extend(img.children or (img,))
    return out


# ------------------------------------------------------------------ images
def test_sample_set_has_the_documented_images(sample_images):
    assert sorted(sample_images) == sorted(SAMPLES)
    s = sample_images
    assert s["v2s2"].media_type == images.DOCKER_V2S2 and len(s["v2s2"].layers) == 2
    assert s["oci"].media_type == images.OCI_MANIFEST and len(s["oci"].layers) == 3
    assert {b.media_type for b in s["zstd"].layers} == {images.OCI_LAYER_ZSTD}
    assert s["multiarch"].media_type == images.OCI_INDEX
    assert [c.platform for c in s["multiarch"].children] == [("linux", "amd64", None), ("linux", "arm64", "v8")]
    assert s["list"].media_type == images.DOCKER_LIST
    assert [c.platform for c in s["list"].children] == [("linux", "amd64", None), ("linux", "arm", "v7")]
    assert s["schema1"].media_type == images.DOCKER_V2S1_SIGNED
    assert s["empty"].layers == () and s["empty"].config is not None
    assert s["shared"].layers[0] == s["v2s2"].layers[0] and s["shared"].layers[1] != s["v2s2"].layers[1]
    index = json.loads(s["list"].manifest)
    assert index["manifests"][1]["platform"] == {"architecture": "arm", "os": "linux", "variant": "v7"}
    assert [m["digest"] for m in index["manifests"]] == [c.digest for c in s["list"].children]


def test_images_are_byte_identical_across_builds(sample_images):
    again = {
        "v2s2": images.make_image(1, layers=2, fmt="v2s2"),
        "zstd": images.make_image(3, layers=2, fmt="oci", compression="zstd"),
        "schema1": images.make_schema1(8, images.SCHEMA1_NAME, images.SCHEMA1_TAG),
    }
    for name, img in again.items():
        assert img.manifest == sample_images[name].manifest
        assert img.all_blobs() == sample_images[name].all_blobs()
    # and the digest of a known build does not drift between versions of this module
    assert sha256_digest(images.make_layer(12345, 4096, "gzip")[1]) == \
        sha256_digest(images.make_layer(12345, 4096, "gzip")[1])


def test_layers_are_deterministic_tars_and_diff_ids_match(sample_images):
    for img in _single_images(sample_images):
        if img.media_type == images.DOCKER_V2S1_SIGNED:
            raws = [gzip.decompress(b.data) for b in img.layers]
            assert img.diff_ids == tuple(sha256_digest(r) for r in raws if len(r) > 1024)
            continue
        config = json.loads(img.config.data)
        assert config["architecture"] == img.platform[1] and config["os"] == img.platform[0]
        assert config["created"] == images.CREATED
        raws = []
        for layer in img.layers:
            assert layer.digest == sha256_digest(layer.data)
            if layer.media_type.endswith("zstd"):
                raw = zstandard.ZstdDecompressor().decompress(layer.data)
            else:
                assert layer.data[:2] == b"\x1f\x8b" and layer.data[4:8] == b"\0\0\0\0"  # gzip mtime 0
                raw = gzip.decompress(layer.data)
            with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
                members = tf.getmembers()
            assert [m.name for m in members] == sorted(m.name for m in members)
            assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(images.MTIME, 0, 0, "root")}
            raws.append(raw)
        assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256_digest(r) for r in raws]}
        assert 0.2 < sum(map(len, (b.data for b in img.layers))) / max(1, sum(map(len, raws))) < 0.8 \
            or not raws  # realistic, neither incompressible nor trivially compressible


def test_schema1_signature_is_a_valid_libtrust_jws(sample_images):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    def b64d(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    img = sample_images["schema1"]
    doc = json.loads(img.manifest)
    assert (doc["name"], doc["tag"]) == (images.SCHEMA1_NAME, images.SCHEMA1_TAG)
    assert len(doc["fsLayers"]) == len(doc["history"]) == 4
    (sig,) = doc["signatures"]
    protected = json.loads(b64d(sig["protected"]))
    payload = img.manifest[: protected["formatLength"]] + b64d(protected["formatTail"])
    assert sha256_digest(payload) == img.digest == images.manifest_digest(img.manifest)
    jwk = sig["header"]["jwk"]
    pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(jwk["x"]), "big"),
                                        int.from_bytes(b64d(jwk["y"]), "big"), ec.SECP256R1()).public_key()
    assert jwk["kid"] == images.libtrust_key_id(pub)
    raw = b64d(sig["signature"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signing_input = (sig["protected"] + "." + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()).encode()
    pub.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))  # raises if invalid


@pytest.mark.parametrize("name", SAMPLES)
def test_write_dir_is_read_by_skopeo(name, sample_images, run_skopeo, dir_of):
    img = sample_images[name]
    path = dir_of(img)
    assert (path / "version").read_bytes() == b"Directory Transport Version: 1.1\n"
    assert run_skopeo("inspect", "--raw", f"dir:{path}").stdout == img.manifest
    digest = run_skopeo("manifest-digest", str(path / "manifest.json")).stdout.decode().strip()
    assert digest == img.digest
    for child in img.children:
        f = path / f"{child.digest.split(':')[1]}.manifest.json"
        assert run_skopeo("manifest-digest", str(f)).stdout.decode().strip() == child.digest
    if img.config is not None:
        assert run_skopeo("inspect", "--config", "--raw", f"dir:{path}").stdout == img.config.data


@pytest.mark.parametrize("name", ["multiarch", "list", "schema1", "zstd", "empty"])
def test_write_dir_layout_equals_what_skopeo_writes(name, sample_images, run_skopeo, dir_of, tmp_path):
    src = dir_of(sample_images[name])
    dst = tmp_path / "skopeo-copy"
    run_skopeo("copy", "--all", "--preserve-digests", f"dir:{src}", f"dir:{dst}")
    ours = {p.name: p.read_bytes() for p in src.iterdir()}
    theirs = {p.name: p.read_bytes() for p in dst.iterdir()}
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs


def test_write_oci_keeps_other_refs_and_skopeo_reads_them(sample_images, run_skopeo, tmp_path):
    layout = tmp_path / "layout"
    images.write_oci(sample_images["oci"], layout, "one")
    images.write_oci(sample_images["multiarch"], layout, "two")
    images.write_oci(sample_images["zstd"], layout, "one")  # replaces "one", keeps "two"
    index = json.loads((layout / "index.json").read_bytes())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert refs == {"one": sample_images["zstd"].digest, "two": sample_images["multiarch"].digest}
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    assert run_skopeo("inspect", "--raw", f"oci:{layout}:one").stdout == sample_images["zstd"].manifest
    assert run_skopeo("inspect", "--raw", f"oci:{layout}:two").stdout == sample_images["multiarch"].manifest
    for digest, data in sample_images["multiarch"].all_blobs().items():
        assert (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes() == data
    # skopeo does not see Docker-typed entries in index.json, so write_oci refuses them by default
    with pytest.raises(ValueError):
        images.write_oci(sample_images["v2s2"], layout, "docker")
    images.write_oci(sample_images["v2s2"], layout, "docker", allow_docker=True)
    assert b"no descriptor found" in run_skopeo("inspect", "--raw", f"oci:{layout}:docker", check=False).stderr
    assert run_skopeo("inspect", "--raw", f"oci:{layout}:two").stdout == sample_images["multiarch"].manifest


# ------------------------------------------------------------------ registries
@pytest.mark.parametrize("name", SAMPLES)
def test_push_with_skopeo_preserves_digests(name, sample_images, registry, run_skopeo):
    img = sample_images[name]
    repo, tag = images.sample_repo(name)
    images.push_with_skopeo(img, f"{registry.host}/skopeo-{repo}:{tag}" if name != "schema1"
                            else f"{registry.host}/{repo}:{tag}")
    if name != "schema1":
        repo = f"skopeo-{repo}"
    raw = run_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repo}:{tag}").stdout
    resp = registry.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": img.media_type})
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == img.digest
    assert resp.headers["Content-Type"] == img.media_type
    if name == "schema1":
        # distribution stores the signed payload only and re-signs it with its own key on every GET
        assert images.manifest_digest(raw) == img.digest
        assert images.manifest_digest(resp.body) == img.digest
    else:
        assert raw == img.manifest and resp.body == img.manifest
    for child in img.children:
        r = registry.request("GET", f"/v2/{repo}/manifests/{child.digest}", headers={"Accept": child.media_type})
        assert r.body == child.manifest and r.headers["Docker-Content-Digest"] == child.digest
    for digest, data in img.all_blobs().items():
        r = registry.request("GET", f"/v2/{repo}/blobs/{digest}")
        assert r.status == 200 and r.body == data and r.headers["Docker-Content-Digest"] == digest


def test_push_image_is_byte_exact_and_registry_verifies_schema1(seeded_registry, sample_images):
    for name, img in sample_images.items():
        repo, tag = images.sample_repo(name)
        resp = seeded_registry.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": img.media_type})
        assert resp.headers["Docker-Content-Digest"] == img.digest
        assert images.manifest_digest(resp.body) == img.digest
        if name != "schema1":
            assert resp.body == img.manifest
    # distribution checks the libtrust signature: a forged one is refused
    s1 = sample_images["schema1"]
    doc = json.loads(s1.manifest)
    bad = s1.manifest.replace(doc["signatures"][0]["signature"].encode(),
                              doc["signatures"][0]["signature"][::-1].encode())
    resp = seeded_registry.request("PUT", f"/v2/{images.SCHEMA1_NAME}/manifests/forged", data=bad,
                                   headers={"Content-Type": images.DOCKER_V2S1_SIGNED})
    assert resp.status >= 400


def test_registry_serves_a_storage_tree_it_did_not_write(fresh_registry, registry_factory, sample_images, tmp_path):
    img = sample_images["oci"]
    fresh_registry.push_image(img, "kept/img", "v1")
    tree = tmp_path / "tree"
    import shutil
    shutil.copytree(fresh_registry.root, tree)
    other = registry_factory(root=tree)
    resp = other.request("GET", "/v2/kept/img/manifests/v1", headers={"Accept": img.media_type})
    assert resp.status == 200 and resp.body == img.manifest
    other.stop()
    assert tree.exists()  # a caller's root is never removed


def test_registry_start_failure_shows_the_log():
    reg = Registry(extra_config={"storage": {"nosuchdriver": {}}})  # two storage drivers: refused
    try:
        with pytest.raises(RuntimeError) as err:
            reg.start(timeout=10)
    finally:
        reg.cleanup()
    assert "docker-registry" in str(err.value) and len(str(err.value).splitlines()) > 1


def test_htpasswd_registry_refuses_anonymous_and_accepts_credentials(auth_registry, sample_images, run_skopeo):
    resp = auth_registry.request("GET", "/v2/", auth=False)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert auth_registry.request("GET", "/v2/").status == 200
    ref = f"docker://{auth_registry.host}/basic/img:1"
    with pytest.raises(subprocess.CalledProcessError):
        images.push_with_skopeo(sample_images["v2s2"], ref)
    images.push_with_skopeo(sample_images["v2s2"], ref, creds=auth_registry.creds)
    anon = run_skopeo("inspect", "--raw", "--tls-verify=false", ref, check=False)
    assert anon.returncode != 0 and b"unauthorized" in anon.stderr
    wrong = run_skopeo("inspect", "--raw", "--tls-verify=false", f"--creds={auth_registry.username}:nope", ref,
                       check=False)
    assert wrong.returncode != 0
    ok = run_skopeo("inspect", "--raw", "--tls-verify=false", f"--creds={auth_registry.creds}", ref)
    assert ok.stdout == sample_images["v2s2"].manifest


def test_token_registry_push_pull_and_recorded_scopes(token_registry, token_server, sample_images, run_skopeo):
    from support.tokenserver import decode_jwt

    img = sample_images["oci"]
    ref = f"docker://{token_registry.host}/tok/img:1"
    token_server.clear()
    images.push_with_skopeo(img, ref, creds=token_registry.creds)
    pushes = [r for r in token_server.snapshot() if r.status == 200]
    assert pushes and all(r.user == "fastsync" and r.service == token_server.service for r in pushes)
    assert "repository:tok/img:pull,push" in {s for r in pushes for s in r.granted}

    token_server.clear()
    raw = run_skopeo("inspect", "--raw", "--tls-verify=false", f"--creds={token_registry.creds}", ref).stdout
    assert raw == img.manifest
    assert [r.scopes for r in token_server.snapshot()] == [("repository:tok/img:pull",)]

    # anonymous pull is allowed on this instance, anonymous push is not
    token_server.clear()
    assert run_skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout == img.manifest
    assert token_server.snapshot()[-1].user is None
    token_server.clear()
    with pytest.raises(subprocess.CalledProcessError):
        images.push_with_skopeo(img, f"{token_registry.host}/tok/anon:1")
    anon = token_server.snapshot()
    assert anon and all(r.user is None for r in anon)
    assert any("repository:tok/anon:pull,push" in r.scopes for r in anon)
    assert not any("push" in g for r in anon for g in r.granted)

    token_server.clear()
    bad = run_skopeo("inspect", "--raw", "--tls-verify=false", "--creds=fastsync:wrong", ref, check=False)
    assert bad.returncode != 0
    assert token_server.snapshot()[-1].status == 401

    header, claims = decode_jwt(token_server.make_token("fastsync", ["repository:x:pull"])[0])
    assert header == {"typ": "JWT", "alg": "RS256", "kid": token_server.kid}
    assert claims["aud"] == token_server.service and claims["iss"] == token_server.issuer
    assert claims["access"] == [{"type": "repository", "name": "x", "actions": ["pull"]}]


def test_token_server_policy_restricts_a_user(registry_factory, sample_images, run_skopeo):
    from support.tokenserver import TokenServer

    with TokenServer(users={"writer": "w", "reader": "r"}, allow_anonymous=False,
                     policy={"reader": {"*": ["pull"]}}) as server:
        reg = registry_factory(auth="token", token_server=server, username="writer", password="w")
        ref = f"{reg.host}/policy/img:1"
        images.push_with_skopeo(sample_images["empty"], ref, creds="writer:w")
        with pytest.raises(subprocess.CalledProcessError):
            images.push_with_skopeo(sample_images["empty"], f"{reg.host}/policy/other:1", creds="reader:r")
        assert run_skopeo("inspect", "--raw", "--tls-verify=false", "--creds=reader:r",
                          f"docker://{ref}").stdout == sample_images["empty"].manifest
        anon = run_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}", check=False)
        assert anon.returncode != 0
        reader = [r for r in server.snapshot() if r.user == "reader"]
        assert reader and not any("push" in g for r in reader for g in r.granted)
        assert server.snapshot()[-1].user is None and server.snapshot()[-1].status == 401


def test_tls_registry_needs_the_ca(tls_registry, sample_images, run_skopeo):
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert sorted(p.name for p in tls_registry.cert_dir.iterdir()) == ["ca.crt"]
    img = sample_images["v2s2"]
    ref = f"{tls_registry.host}/tls/img:1"
    with pytest.raises(subprocess.CalledProcessError) as err:
        images.push_with_skopeo(img, ref, tls_verify=True)
    assert b"certificate" in err.value.stderr
    images.push_with_skopeo(img, ref, tls_verify=True, cert_dir=str(tls_registry.cert_dir))
    out = run_skopeo("inspect", "--raw", f"--cert-dir={tls_registry.cert_dir}", f"docker://{ref}")
    assert out.stdout == img.manifest
    assert run_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout == img.manifest


def test_client_cert_registry_requires_the_client_certificate(client_cert_registry, run_skopeo, tmp_path):
    reg = client_cert_registry
    assert sorted(p.name for p in reg.cert_dir.iterdir()) == ["ca.crt", "client.cert", "client.key"]
    ok = run_skopeo("list-tags", f"--cert-dir={reg.cert_dir}", f"docker://{reg.host}/none/here", check=False)
    assert b"certificate" not in ok.stderr  # TLS handshake passed (the repo is simply unknown)
    ca_only = tmp_path / "ca-only"
    ca_only.mkdir()
    (ca_only / "ca.crt").write_bytes(reg.ca_path.read_bytes())
    no = run_skopeo("list-tags", f"--cert-dir={ca_only}", f"docker://{reg.host}/none/here", check=False)
    assert no.returncode != 0 and b"bad certificate" in no.stderr


# ------------------------------------------------------------------ proxies
def test_delay_proxy_adds_the_delay_and_keeps_bytes(seeded_registry, sample_images):
    with DelayProxy("127.0.0.1", seeded_registry.port, delay_ms=80) as proxy:
        direct = min(measure_round_trip("127.0.0.1", seeded_registry.port) for _ in range(3))
        delayed = min(measure_round_trip("127.0.0.1", proxy.port) for _ in range(3))
        assert 0.160 <= delayed < 0.160 + direct + 0.15
        layer = sample_images["v2s2"].layers[0]
        with urllib.request.urlopen(f"{proxy.url}/v2/samples/v2s2/blobs/{layer.digest}") as resp:
            assert resp.read() == layer.data
        assert proxy.stats.connections >= 4 and proxy.stats.bytes_down > layer.size


def test_delay_proxy_bandwidth_cap(seeded_registry, sample_images):
    layer = sample_images["oci"].layers[0]
    with DelayProxy("127.0.0.1", seeded_registry.port, delay_ms=0, bandwidth_bps=200_000) as proxy:
        t0 = time.monotonic()
        with urllib.request.urlopen(f"{proxy.url}/v2/samples/oci/blobs/{layer.digest}") as resp:
            assert resp.read() == layer.data
        elapsed = time.monotonic() - t0
    assert elapsed >= layer.size / 200_000 * 0.9


def test_tamper_proxy_corrupts_exactly_what_it_is_told(registry, tamper_proxy, sample_images, run_skopeo, tmp_path):
    img = sample_images["v2s2"]
    registry.push_image(img, "tamper/img", "1")
    target, other = img.layers[0], img.layers[1]

    def get(path: str, accept: str = "*/*"):
        with urllib.request.urlopen(urllib.request.Request(tamper_proxy.url + path, headers={"Accept": accept})) as r:
            return r.read(), r.headers

    body, headers = get(f"/v2/tamper/img/blobs/{target.digest}")
    assert body == target.data  # untouched by default
    tamper_proxy.corrupt_blobs(target.digest, offset=123)
    body, headers = get(f"/v2/tamper/img/blobs/{target.digest}")
    assert len(body) == target.size and headers["Docker-Content-Digest"] == target.digest
    assert [i for i in range(len(body)) if body[i] != target.data[i]] == [123]
    assert get(f"/v2/tamper/img/blobs/{other.digest}")[0] == other.data
    assert tamper_proxy.tampered == [f"/v2/tamper/img/blobs/{target.digest}"]
    failed = run_skopeo("copy", "--src-tls-verify=false", f"docker://{tamper_proxy.host}/tamper/img:1",
                        f"dir:{tmp_path / 'out'}", check=False)
    assert failed.returncode != 0 and b"Digest did not match" in failed.stderr

    tamper_proxy.reset()
    tamper_proxy.corrupt_manifests("flip")
    body, headers = get("/v2/tamper/img/manifests/1", accept=img.media_type)
    assert headers["Docker-Content-Digest"] == img.digest and len(body) == len(img.manifest)
    assert sha256_digest(body) != img.digest and json.loads(body)["schemaVersion"] == 2
    tamper_proxy.corrupt_manifests("append")
    body, _ = get("/v2/tamper/img/manifests/1", accept=img.media_type)
    assert body == img.manifest + b"\n"

    tamper_proxy.reset()
    body, headers = get("/v2/tamper/img/manifests/1", accept=img.media_type)
    assert body == img.manifest
    assert any(r.path == "/v2/tamper/img/manifests/1" for r in tamper_proxy.requests)


def test_tamper_proxy_forwards_pushes_to_a_tls_registry(tls_registry, sample_images):
    from support.proxy import TamperProxy

    img = sample_images["multiarch"]
    with TamperProxy(tls_registry.url, ssl_context=tls_registry.ssl_context()) as proxy:
        images.push_with_skopeo(img, f"{proxy.host}/proxied/img:1")  # Location rewritten to the proxy
        layer = img.children[0].layers[0]
        req = urllib.request.Request(f"{proxy.url}/v2/proxied/img/blobs/{layer.digest}", method="HEAD")
        with urllib.request.urlopen(req) as resp:
            assert resp.headers["Content-Length"] == str(layer.size)
            assert resp.headers["Docker-Content-Digest"] == layer.digest
        assert {r.method for r in proxy.requests} >= {"POST", "PATCH", "PUT", "HEAD"}
    got = tls_registry.request("GET", "/v2/proxied/img/manifests/1", headers={"Accept": img.media_type})
    assert got.body == img.manifest


def test_redirect_capture_sees_no_authorization_from_skopeo(auth_registry, redirect_capture, sample_images,
                                                            run_skopeo, tmp_path):
    from support.proxy import TamperProxy

    img = sample_images["v2s2"]
    auth_registry.push_image(img, "redir/img", "1")
    with TamperProxy(auth_registry.url) as proxy:
        proxy.redirect_blobs(redirect_capture)
        run_skopeo("copy", "--src-tls-verify=false", f"--src-creds={auth_registry.creds}",
                   f"docker://{proxy.host}/redir/img:1", f"dir:{tmp_path / 'out'}")
        assert any("Authorization" in r.headers for r in proxy.requests)  # the registry got credentials
    assert redirect_capture.host.split(":")[0] in ("127.0.0.2", "127.0.0.1")
    assert redirect_capture.host != proxy.host
    seen = {r.path for r in redirect_capture.requests}
    assert seen == {f"/v2/redir/img/blobs/{d}" for d in img.all_blobs()}
    assert all("Authorization" not in r.headers for r in redirect_capture.requests)
    for digest, data in img.all_blobs().items():
        assert (tmp_path / "out" / digest.split(":")[1]).read_bytes() == data
