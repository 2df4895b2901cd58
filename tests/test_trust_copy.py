"""The trust policy and signatures on copy and sync, with skopeo 1.9.3 as the peer: policies that
reject, accept, or require a GPG or sigstore signature, with scopes; dir: signatures and a file:
lookaside named by registries.d, written by one tool and verified by the other."""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fastsync.manifest import manifest_digest
from support.images import sample_set, write_dir
from helpers import assert_one_line_error, fastsync, ok
from support.cosignkeys import make_cosign_key
from support.fixtures_trust import *  # noqa: F401,F403
from support.fixtures_trust import skopeo_message
from support.gpgkeys import GPGHome

IDENTITY = "registry.example.com/signed/app:1"
NO_TLS = "--dest-tls-verify=false"


def skopeo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, env={**os.environ, **(env or {})}, timeout=120)


def signed_by(home: GPGHome, identity: Any = None) -> list[dict]:
    req: dict[str, Any] = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(home.trusted_pub)}
    if identity is not None:
        req["signedIdentity"] = identity
    return [req]


EXACT = {"type": "exactReference", "dockerReference": IDENTITY}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    write_dir(sample_set()["v2s2"], path)
    return path


def same_rejection(mine: subprocess.CompletedProcess, theirs: subprocess.CompletedProcess, *fragments: str) -> None:
    line = assert_one_line_error(mine, "Source image rejected: ", *fragments, code=1)
    assert theirs.returncode == 1
    assert line.removeprefix("Error: ") == skopeo_message(theirs.stderr)


def test_reject_policy_is_enforced_like_skopeo(src: Path, tmp_path: Path, write_policy) -> None:
    policy = str(write_policy([{"type": "reject"}]))
    mine = fastsync("--policy", policy, "copy", f"dir:{src}", f"dir:{tmp_path / 'out'}")
    theirs = skopeo("--policy", policy, "copy", f"dir:{src}", f"dir:{tmp_path / 'theirs'}")
    same_rejection(mine, theirs, f"Running image dir:{src} is rejected by policy.")
    assert not (tmp_path / "out").exists()
    ok(fastsync("--policy", policy, "--insecure-policy", "copy", f"dir:{src}", f"dir:{tmp_path / 'out'}"))


def test_missing_or_malformed_policy_file(src: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    mine = fastsync("--policy", str(missing), "copy", f"dir:{src}", f"dir:{tmp_path / 'out'}")
    theirs = skopeo("--policy", str(missing), "copy", f"dir:{src}", f"dir:{tmp_path / 'out'}")
    line = assert_one_line_error(mine, f"Error loading trust policy: open {missing}: no such file or directory", code=1)
    assert line.removeprefix("Error: ") == skopeo_message(theirs.stderr)
    bad = tmp_path / "bad.json"
    bad.write_text('{"default":[{"type":"insecureAcceptAnything"}],"extra":1}')
    assert_one_line_error(fastsync("--policy", str(bad), "copy", f"dir:{src}", f"dir:{tmp_path / 'out'}"),
                          f'Error loading trust policy: invalid policy in "{bad}": Unknown key "extra"', code=1)
    assert not (tmp_path / "out").exists()


def test_default_policy_is_the_users_then_the_systems(src: Path, tmp_path: Path) -> None:
    from fastsync.trust.policy import PolicyError, default_policy_path, load

    home = tmp_path / "home"
    (home / ".config/containers").mkdir(parents=True)
    assert default_policy_path(str(home), "/none/policy.json") == "/none/policy.json"
    with pytest.raises(PolicyError, match="open /none/policy.json: no such file or directory"):
        load(default_policy_path(str(home), "/none/policy.json"))
    (home / ".config/containers/policy.json").write_text('{"default":[{"type":"reject"}]}')
    proc = fastsync("copy", f"dir:{src}", f"dir:{tmp_path / 'out'}", env={"HOME": str(home)})
    assert_one_line_error(proc, "is rejected by policy.", code=1)
    if os.path.exists("/etc/containers/policy.json"):         # what every other test runs with
        ok(fastsync("copy", f"dir:{src}", f"dir:{tmp_path / 'out'}", env={"HOME": str(tmp_path)}))


def test_fastsync_signs_on_copy_and_skopeo_accepts(gpg_home: GPGHome, src: Path, tmp_path: Path,
                                                   write_policy) -> None:
    signed, theirs = tmp_path / "signed", tmp_path / "theirs"
    ok(fastsync("--insecure-policy", "copy", "--sign-by", gpg_home.trusted, "--sign-identity", IDENTITY,
                f"dir:{src}", f"dir:{signed}", env=gpg_home.env))
    out = skopeo("standalone-verify", str(signed / "manifest.json"), IDENTITY, gpg_home.trusted,
                 str(signed / "signature-1"), env=gpg_home.env)
    assert out.returncode == 0, out.stderr
    policy = str(write_policy(signed_by(gpg_home, EXACT)))
    proc = skopeo("--policy", policy, "copy", f"dir:{signed}", f"dir:{theirs}")
    assert proc.returncode == 0, proc.stderr
    assert (theirs / "signature-1").read_bytes() == (signed / "signature-1").read_bytes()


def test_skopeo_signs_and_fastsync_enforces_and_carries(gpg_home: GPGHome, src: Path, tmp_path: Path,
                                                        write_policy) -> None:
    signed = tmp_path / "signed"
    proc = skopeo("--insecure-policy", "copy", "--sign-by", gpg_home.trusted, "--sign-identity", IDENTITY,
                  f"dir:{src}", f"dir:{signed}", env=gpg_home.env)
    assert proc.returncode == 0, proc.stderr
    policy = str(write_policy(signed_by(gpg_home, EXACT)))
    ok(fastsync("--policy", policy, "copy", f"dir:{signed}", f"dir:{tmp_path / 'a'}"))
    assert (tmp_path / "a/signature-1").read_bytes() == (signed / "signature-1").read_bytes()
    ok(fastsync("--policy", policy, "copy", "--remove-signatures", f"dir:{signed}", f"dir:{tmp_path / 'b'}"))
    assert (tmp_path / "b/manifest.json").exists() and not (tmp_path / "b/signature-1").exists()
    # with the default signedIdentity a dir: image (no docker reference) matches no signature
    policy = str(write_policy(signed_by(gpg_home)))
    same_rejection(fastsync("--policy", policy, "copy", f"dir:{signed}", f"dir:{tmp_path / 'c'}"),
                   skopeo("--policy", policy, "copy", f"dir:{signed}", f"dir:{tmp_path / 'c'}"),
                   f"Signature for identity {IDENTITY} is not accepted")


@pytest.mark.parametrize("case", ["unsigned", "tampered", "identity", "untrusted"])
def test_signed_by_rejections(case: str, gpg_home: GPGHome, src: Path, tmp_path: Path, write_policy) -> None:
    image = tmp_path / "image"
    identity: dict = EXACT
    key = gpg_home.untrusted if case == "untrusted" else gpg_home.trusted
    sign = [] if case == "unsigned" else ["--sign-by", key, "--sign-identity", IDENTITY]
    ok(fastsync("--insecure-policy", "copy", *sign, f"dir:{src}", f"dir:{image}", env=gpg_home.env))
    want = "A signature was required, but no signature exists"
    if case == "tampered":
        raw = (image / "manifest.json").read_bytes()
        (image / "manifest.json").write_bytes(raw + b"\n")
        want = "Signature for digest sha256:"
    elif case == "identity":
        identity = {"type": "exactReference", "dockerReference": "registry.example.com/signed/app:2"}
        want = f"Signature for identity {IDENTITY} is not accepted"
    policy = str(write_policy(signed_by(gpg_home, identity)))
    mine = fastsync("--policy", policy, "copy", f"dir:{image}", f"dir:{tmp_path / 'out'}")
    theirs = skopeo("--policy", policy, "copy", f"dir:{image}", f"dir:{tmp_path / 'theirs'}")
    if case == "untrusted":         # gpgme describes the unknown key its own way
        assert_one_line_error(mine, "Source image rejected: Invalid GPG signature", code=1)
        assert theirs.returncode == 1 and "Invalid GPG signature" in skopeo_message(theirs.stderr)
    else:
        same_rejection(mine, theirs, want)
    assert not (tmp_path / "out").exists()


def test_scopes_most_specific_wins(src: Path, tmp_path: Path, write_policy) -> None:
    other = tmp_path / "deeper" / "other"
    write_dir(sample_set()["oci"], other)
    accept, reject = [{"type": "insecureAcceptAnything"}], [{"type": "reject"}]
    policy = str(write_policy(reject, {"dir": {str(src): accept, str(tmp_path / "deeper"): reject,
                                               str(tmp_path): accept}}))
    ok(fastsync("--policy", policy, "copy", f"dir:{src}", f"dir:{tmp_path / 'a'}"))
    mine = fastsync("--policy", policy, "copy", f"dir:{other}", f"dir:{tmp_path / 'b'}")
    same_rejection(mine, skopeo("--policy", policy, "copy", f"dir:{other}", f"dir:{tmp_path / 'b'}"),
                   "is rejected by policy.")
    bad = str(write_policy(accept, {"dir": {"relative/path": accept}}))
    assert_one_line_error(fastsync("--policy", bad, "copy", f"dir:{src}", f"dir:{tmp_path / 'c'}"),
                          'Unknown key "relative/path"', code=1)


def test_registry_lookaside_both_ways(gpg_home: GPGHome, registry, src: Path, tmp_path: Path, write_policy,
                                      lookaside) -> None:
    regd, store = lookaside
    policy = str(write_policy([{"type": "reject"}], {"docker": {f"{registry.host}/trust": signed_by(gpg_home)},
                                                      "dir": {"": [{"type": "insecureAcceptAnything"}]}}))
    mine, theirs = f"{registry.host}/trust/by-fastsync:1", f"{registry.host}/trust/by-skopeo:1"
    ok(fastsync("--policy", policy, "--registries.d", str(regd), "copy", NO_TLS, "--sign-by", gpg_home.trusted,
                f"dir:{src}", f"docker://{mine}", env=gpg_home.env))
    sigs = list(store.glob("trust/by-fastsync@sha256=*/signature-1"))
    assert len(sigs) == 1
    proc = skopeo("--policy", policy, "--registries.d", str(regd), "copy", "--src-tls-verify=false",
                  f"docker://{mine}", f"dir:{tmp_path / 'from-fastsync'}")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "from-fastsync/signature-1").read_bytes() == sigs[0].read_bytes()

    proc = skopeo("--policy", policy, "--registries.d", str(regd), "copy", NO_TLS, "--sign-by", gpg_home.trusted,
                  f"dir:{src}", f"docker://{theirs}", env=gpg_home.env)
    assert proc.returncode == 0, proc.stderr
    ok(fastsync("--policy", policy, "--registries.d", str(regd), "copy", "--src-tls-verify=false",
                f"docker://{theirs}", f"dir:{tmp_path / 'from-skopeo'}"))
    assert (tmp_path / "from-skopeo/signature-1").read_bytes() == \
        next(store.glob("trust/by-skopeo@sha256=*/signature-1")).read_bytes()
    # outside the trusted namespace: the default rejects
    ok(fastsync("--insecure-policy", "copy", NO_TLS, f"dir:{src}", f"docker://{registry.host}/elsewhere/x:1"))
    args = ("--policy", policy, "--registries.d", str(regd), "copy", "--src-tls-verify=false",
            f"docker://{registry.host}/elsewhere/x:1", f"dir:{tmp_path / 'x'}")
    same_rejection(fastsync(*args), skopeo(*args), f"Running image docker://{registry.host}/elsewhere/x:1 is "
                   "rejected by policy.")


def test_sigstore_signing_and_policy(gpg_home: GPGHome, src: Path, tmp_path: Path, write_policy) -> None:
    """Debian's skopeo 1.9.3 is built with sigstore disabled ("Debian-local change: sigstore
    disabled"), so the peer here is openssl: it checks the signature fastsync made over the payload."""
    key = make_cosign_key(tmp_path / "keys")
    policy = str(write_policy([{"type": "sigstoreSigned", "keyPath": str(key.public), "signedIdentity": EXACT}]))
    mine = tmp_path / "mine"
    ok(fastsync("--insecure-policy", "copy", "--sign-by-sigstore-private-key", str(key.private),
                "--sign-passphrase-file", str(key.passphrase_file), "--sign-identity", IDENTITY,
                f"dir:{src}", f"dir:{mine}"))
    blob = (mine / "signature-1").read_bytes()
    assert blob.startswith(b"\x00sigstore-json\n")
    doc = json.loads(blob.split(b"\n", 1)[1])
    assert doc["mimeType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    (tmp_path / "payload").write_bytes(base64.b64decode(doc["payload"]))
    (tmp_path / "sig.der").write_bytes(base64.b64decode(doc["annotations"]["dev.cosignproject.cosign/signature"]))
    check = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(key.public), "-signature",
                            str(tmp_path / "sig.der"), str(tmp_path / "payload")], capture_output=True)
    assert check.returncode == 0 and b"Verified OK" in check.stdout, check
    claims = json.loads((tmp_path / "payload").read_bytes())["critical"]
    assert claims["type"] == "cosign container image signature"
    assert claims["identity"]["docker-reference"] == IDENTITY
    assert claims["image"]["docker-manifest-digest"] == str(manifest_digest((mine / "manifest.json").read_bytes()))
    ok(fastsync("--policy", policy, "copy", f"dir:{mine}", f"dir:{tmp_path / 'b'}"))
    assert (tmp_path / "b/signature-1").read_bytes() == blob
    # another key, a wrong passphrase, and a GPG-only image are refused
    other = make_cosign_key(tmp_path / "keys", "other", passphrase="another passphrase")
    policy2 = str(write_policy([{"type": "sigstoreSigned", "keyPath": str(other.public), "signedIdentity": EXACT}]))
    assert_one_line_error(fastsync("--policy", policy2, "copy", f"dir:{mine}", f"dir:{tmp_path / 'c'}"),
                          "Source image rejected: cryptographic signature verification failed", code=1)
    assert_one_line_error(fastsync("--insecure-policy", "copy", "--sign-by-sigstore-private-key", str(key.private),
                                   "--sign-passphrase-file", str(other.passphrase_file), "--sign-identity", IDENTITY,
                                   f"dir:{src}", f"dir:{tmp_path / 'e'}"),
                          "creating signature: initializing private key: decrypt: encrypted: decryption failed", code=1)
    assert not (tmp_path / "e").exists()
    gpg_signed = tmp_path / "gpg-signed"
    ok(fastsync("--insecure-policy", "copy", "--sign-by", gpg_home.trusted, "--sign-identity", IDENTITY,
                f"dir:{src}", f"dir:{gpg_signed}", env=gpg_home.env))
    assert_one_line_error(fastsync("--policy", policy, "copy", f"dir:{gpg_signed}", f"dir:{tmp_path / 'd'}"),
                          "Source image rejected: A signature was required, but no signature exists "
                          "(1 non-sigstore signatures, 0 sigstore non-signature attachments)", code=1)


def test_signing_needs_an_identity_and_a_key(gpg_home: GPGHome, src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_one_line_error(fastsync("--insecure-policy", "copy", "--sign-by", gpg_home.trusted, f"dir:{src}",
                                   f"dir:{out}", env=gpg_home.env),
                          f"Cannot determine canonical Docker reference for destination dir:{out}", code=1)
    assert_one_line_error(fastsync("--insecure-policy", "copy", "--sign-by", gpg_home.trusted, "--sign-identity",
                                   "registry.example.com/no-tag", f"dir:{src}", f"dir:{out}", env=gpg_home.env),
                          "Sign identity must be a fully specified reference")
    assert_one_line_error(fastsync("--insecure-policy", "copy", "--sign-by", "0" * 40, "--sign-identity", IDENTITY,
                                   f"dir:{src}", f"dir:{out}", env=gpg_home.env), "creating signature: ", code=1)
    assert not out.exists()
    assert_one_line_error(fastsync("--insecure-policy", "copy", "--sign-by", gpg_home.trusted, "--sign-identity",
                                   IDENTITY, f"dir:{src}", f"oci:{tmp_path / 'oci'}:x", env=gpg_home.env),
                          "Pushing signatures for OCI images is not supported", code=1)


def test_sync_checks_every_image(registry, tmp_path: Path, write_policy) -> None:
    tree = tmp_path / "tree"
    write_dir(sample_set()["v2s2"], tree / "good")
    write_dir(sample_set()["oci"], tree / "bad")
    policy = str(write_policy([{"type": "insecureAcceptAnything"}], {"dir": {str(tree / "bad"): [{"type": "reject"}]}}))
    proc = fastsync("--policy", policy, "sync", "--src", "dir", "--dest", "docker", "--keep-going", "-q", NO_TLS,
                    str(tree), f"{registry.host}/syncpolicy")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert f"Source image rejected: Running image dir:{tree / 'bad'} is rejected by policy." in err, err
    assert registry.request("GET", "/v2/syncpolicy/good/tags/list").status == 200
    assert registry.request("GET", "/v2/syncpolicy/bad/tags/list").status == 404
    proc = fastsync("--policy", policy, "sync", "--src", "dir", "--dest", "docker", "-q", NO_TLS, str(tree / "bad"),
                    f"{registry.host}/syncpolicy2")
    assert proc.returncode == 1 and "rejected by policy" in proc.stderr.decode()
    assert registry.request("GET", "/v2/syncpolicy2/bad/tags/list").status == 404
