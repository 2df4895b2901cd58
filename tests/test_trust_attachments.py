"""Sigstore signatures as registry attachments (`use-sigstore-attachments: true`): written by
fastsync, read back by fastsync's policy and by skopeo (which copies them even though Debian's build
cannot verify sigstore signatures), appended without duplicates."""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from fastsync.manifest import manifest_digest
from support.images import sample_set, write_dir
from helpers import assert_one_line_error, fastsync, ok
from support.cosignkeys import make_cosign_key
from support.fixtures_trust import *  # noqa: F401,F403

IDENTITY_NS = "attach"


@pytest.fixture
def attach_config(tmp_path: Path) -> Path:
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "attach.yaml").write_text(f"default-docker:\n  lookaside: file://{tmp_path / 'lookaside'}\n"
                                      "  use-sigstore-attachments: true\n")
    return regd


def _attachment(registry, repo: str, digest: str) -> dict:
    tag = digest.replace(":", "-", 1) + ".sig"
    resp = registry.request("GET", f"/v2/{repo}/manifests/{tag}",
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status == 200, resp.status
    return json.loads(resp.body)


def test_attachments_written_read_and_appended(registry, tmp_path: Path, write_policy, attach_config) -> None:
    key = make_cosign_key(tmp_path / "keys")
    src = tmp_path / "src"
    write_dir(sample_set()["v2s2"], src)
    ref = f"{registry.host}/{IDENTITY_NS}/app:1"
    sign = ["--sign-by-sigstore-private-key", str(key.private), "--sign-passphrase-file", str(key.passphrase_file)]
    ok(fastsync("--insecure-policy", "--registries.d", str(attach_config), "copy", "-q", "--dest-tls-verify=false",
                *sign, f"dir:{src}", f"docker://{ref}"))
    digest = str(manifest_digest((src / "manifest.json").read_bytes()))
    doc = _attachment(registry, f"{IDENTITY_NS}/app", digest)
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = doc["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert "dev.cosignproject.cosign/signature" in layer["annotations"]
    payload = registry.request("GET", f"/v2/{IDENTITY_NS}/app/blobs/{layer['digest']}").body
    claims = json.loads(payload)["critical"]
    assert claims["identity"]["docker-reference"] == ref and claims["image"]["docker-manifest-digest"] == digest
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig").write_bytes(base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"]))
    check = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(key.public), "-signature",
                            str(tmp_path / "sig"), str(tmp_path / "payload")], capture_output=True)
    assert check.returncode == 0, check

    policy = str(write_policy([{"type": "sigstoreSigned", "keyPath": str(key.public)}]))
    mine = tmp_path / "mine"
    ok(fastsync("--policy", policy, "--registries.d", str(attach_config), "copy", "-q", "--src-tls-verify=false",
                f"docker://{ref}", f"dir:{mine}"))
    assert (mine / "signature-1").read_bytes().startswith(b"\x00sigstore-json\n")
    # skopeo reads the attachment the same way and stores the same signature
    theirs = tmp_path / "theirs"
    proc = subprocess.run(["skopeo", "--insecure-policy", "--registries.d", str(attach_config), "copy", "-q",
                           "--src-tls-verify=false", f"docker://{ref}", f"dir:{theirs}"], capture_output=True,
                          env=os.environ)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((theirs / "signature-1").read_bytes()[len(b"\x00sigstore-json\n"):]) == \
        json.loads((mine / "signature-1").read_bytes()[len(b"\x00sigstore-json\n"):])

    # skopeo writes the attachment of a copy; fastsync's policy accepts what it wrote
    copied = f"{registry.host}/{IDENTITY_NS}/copied:1"
    proc = subprocess.run(["skopeo", "--insecure-policy", "--registries.d", str(attach_config), "copy", "-q",
                           "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{ref}",
                           f"docker://{copied}"], capture_output=True, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    assert [d["digest"] for d in _attachment(registry, f"{IDENTITY_NS}/copied", digest)["layers"]] == [layer["digest"]]
    exact = str(write_policy([{"type": "sigstoreSigned", "keyPath": str(key.public),
                               "signedIdentity": {"type": "exactReference", "dockerReference": ref}}]))
    ok(fastsync("--policy", exact, "--registries.d", str(attach_config), "copy", "-q", "--src-tls-verify=false",
                f"docker://{copied}", f"dir:{tmp_path / 'from-skopeo'}"))
    assert_one_line_error(fastsync("--policy", policy, "--registries.d", str(attach_config), "copy", "-q",
                                   "--src-tls-verify=false", f"docker://{copied}", f"dir:{tmp_path / 'no'}"),
                          f"Source image rejected: Signature for identity {ref} is not accepted", code=1)

    # the carried signature is there already (not appended); a new one is
    ok(fastsync("--insecure-policy", "--registries.d", str(attach_config), "copy", "-q", "--dest-tls-verify=false",
                f"dir:{mine}", f"docker://{ref}"))
    assert len(_attachment(registry, f"{IDENTITY_NS}/app", digest)["layers"]) == 1
    ok(fastsync("--insecure-policy", "--registries.d", str(attach_config), "copy", "-q", "--dest-tls-verify=false",
                *sign, f"dir:{src}", f"docker://{ref}"))
    again = _attachment(registry, f"{IDENTITY_NS}/app", digest)
    assert len(again["layers"]) == 2 and again["layers"][0] == layer


def test_sigstore_to_a_registry_needs_attachments_enabled(registry, tmp_path: Path, lookaside) -> None:
    regd, _ = lookaside
    key = make_cosign_key(tmp_path / "keys")
    src = tmp_path / "src"
    write_dir(sample_set()["v2s2"], src)
    proc = fastsync("--insecure-policy", "--registries.d", str(regd), "copy", "-q", "--dest-tls-verify=false",
                    "--sign-by-sigstore-private-key", str(key.private), "--sign-passphrase-file",
                    str(key.passphrase_file), f"dir:{src}", f"docker://{registry.host}/{IDENTITY_NS}/off:1")
    assert_one_line_error(proc, "writing sigstore attachments is disabled by configuration", code=1)
    assert registry.request("GET", f"/v2/{IDENTITY_NS}/off/tags/list").status == 404
