"""Simple signing: fastsync's standalone-sign/standalone-verify against skopeo 1.9.3, both ways, and
the strict payload rules (real gpg, keys generated in a throwaway GNUPGHOME)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fastsync.manifest import manifest_digest
from support.images import sample_set
from fastsync.trust import payload
from fastsync.trust.gpg import Keyring
from helpers import assert_one_line_error, fastsync, ok
from support.fixtures_trust import *  # noqa: F401,F403
from support.fixtures_trust import skopeo_message
from support.gpgkeys import GPGHome

REF = "registry.example.com/team/app:1.0"


def skopeo(home: GPGHome, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, env={**os.environ, **home.env}, timeout=60)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_bytes(sample_set()["v2s2"].manifest)
    return path


def _digest(path: Path) -> str:
    return str(manifest_digest(path.read_bytes()))


def test_fastsync_signature_verifies_with_skopeo(gpg_home: GPGHome, manifest: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig"
    ok(fastsync("standalone-sign", str(manifest), REF, gpg_home.trusted, "-o", str(sig), env=gpg_home.env))
    out = skopeo(gpg_home, "standalone-verify", str(manifest), REF, gpg_home.trusted, str(sig))
    assert out.returncode == 0, out.stderr
    mine = ok(fastsync("standalone-verify", str(manifest), REF, gpg_home.trusted, str(sig), env=gpg_home.env))
    assert mine.stdout == out.stdout == f"Signature verified, digest {_digest(manifest)}\n".encode()
    claims = payload.parse(gpg_home.gpg("--decrypt", str(sig)))
    assert (claims.manifest_digest, claims.docker_reference) == (_digest(manifest), REF)


def test_skopeo_signature_verifies_with_fastsync(gpg_home: GPGHome, manifest: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig"
    assert skopeo(gpg_home, "standalone-sign", str(manifest), REF, gpg_home.trusted, "-o", str(sig)).returncode == 0
    out = ok(fastsync("standalone-verify", str(manifest), REF, gpg_home.trusted, str(sig), env=gpg_home.env))
    assert out.stdout == skopeo(gpg_home, "standalone-verify", str(manifest), REF, gpg_home.trusted,
                                str(sig)).stdout
    # the newer form: keys from a file, "any" of them
    out = ok(fastsync("standalone-verify", "--public-key-file", str(gpg_home.trusted_pub), str(manifest), REF,
                      "any", str(sig)))
    assert out.stdout.decode() == f"Signature verified using fingerprint {gpg_home.trusted}, digest " \
                                  f"{_digest(manifest)}\n"


def test_passphrase_protected_key_both_ways(gpg_home: GPGHome, manifest: Path, tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    ok(fastsync("standalone-sign", "--passphrase-file", str(gpg_home.passphrase_file), str(manifest), REF,
                gpg_home.protected, "-o", str(mine), env=gpg_home.env))
    assert skopeo(gpg_home, "standalone-sign", "--passphrase-file", str(gpg_home.passphrase_file), str(manifest),
                  REF, gpg_home.protected, "-o", str(theirs)).returncode == 0
    assert skopeo(gpg_home, "standalone-verify", str(manifest), REF, gpg_home.protected, str(mine)).returncode == 0
    ok(fastsync("standalone-verify", str(manifest), REF, gpg_home.protected, str(theirs), env=gpg_home.env))


def test_schema1_signature_covers_the_payload_digest(gpg_home: GPGHome, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(sample_set()["schema1"].manifest)
    sig = tmp_path / "sig"
    ok(fastsync("standalone-sign", str(manifest), REF, gpg_home.trusted, "-o", str(sig), env=gpg_home.env))
    out = skopeo(gpg_home, "standalone-verify", str(manifest), REF, gpg_home.trusted, str(sig))
    assert out.returncode == 0, out.stderr
    assert _digest(manifest) in out.stdout.decode()


@pytest.mark.parametrize("case", ["tampered", "reference", "fingerprint", "unknown-key"])
def test_verification_failures_match_skopeo(case: str, gpg_home: GPGHome, manifest: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig"
    ok(fastsync("standalone-sign", str(manifest), REF, gpg_home.trusted, "-o", str(sig), env=gpg_home.env))
    man, ref, fpr, env = manifest, REF, gpg_home.trusted, gpg_home.env
    if case == "tampered":
        man = tmp_path / "other.json"
        man.write_bytes(manifest.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":2') + b"\n")
        want = 'Signature for docker digest "'
    elif case == "reference":
        ref = "registry.example.com/team/app:2.0"
        want = f"Docker reference {REF} does not match {ref}"
    elif case == "fingerprint":
        fpr = gpg_home.untrusted
        want = f"Signature by {gpg_home.trusted} does not match expected fingerprint {gpg_home.untrusted}"
    else:
        empty = tmp_path / "emptyhome"
        empty.mkdir(mode=0o700)
        env = {"GNUPGHOME": str(empty)}
        want = "Invalid GPG signature"
    proc = fastsync("standalone-verify", str(man), ref, fpr, str(sig), env=env)
    line = assert_one_line_error(proc, "Error verifying signature: ", want, code=1)
    theirs = subprocess.run(["skopeo", "standalone-verify", str(man), ref, fpr, str(sig)], capture_output=True,
                            env={**os.environ, **env})
    assert theirs.returncode == 1
    if case != "unknown-key":           # gpgme's own dump of the signature differs from gpg's reason
        assert line.removeprefix("Error: ") == skopeo_message(theirs.stderr)


def test_signature_by_a_key_outside_the_public_key_file_is_refused(gpg_home: GPGHome, manifest: Path,
                                                                   tmp_path: Path) -> None:
    sig = tmp_path / "sig"
    ok(fastsync("standalone-sign", str(manifest), REF, gpg_home.untrusted, "-o", str(sig), env=gpg_home.env))
    proc = fastsync("standalone-verify", "--public-key-file", str(gpg_home.trusted_pub), str(manifest), REF, "any",
                    str(sig))
    assert_one_line_error(proc, "Error verifying signature: Invalid GPG signature", code=1)


def test_unknown_critical_field_is_rejected_after_the_signature_checks(gpg_home: GPGHome, manifest: Path,
                                                                        tmp_path: Path) -> None:
    good = payload.build(_digest(manifest), REF)
    forged = good.replace(b'"critical":{', b'"critical":{"extra":"x",')
    sig = tmp_path / "sig"
    with Keyring(str(gpg_home.path)) as ring:
        sig.write_bytes(ring.sign(forged, gpg_home.trusted))
    proc = fastsync("standalone-verify", str(manifest), REF, gpg_home.trusted, str(sig), env=gpg_home.env)
    assert_one_line_error(proc, 'Error verifying signature: Unknown key "extra"', code=1)
    assert skopeo(gpg_home, "standalone-verify", str(manifest), REF, gpg_home.trusted, str(sig)).returncode == 1


@pytest.mark.parametrize("doc, message", [
    (b'{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:a"},'
     b'"identity":{"docker-reference":"x/y:z"}}}', 'Key "optional" missing'),
    (b'{"critical":{"type":"other","image":{"docker-manifest-digest":"d"},"identity":{"docker-reference":"r"}},'
     b'"optional":{}}', "Unrecognized signature type other"),
    (b'{"critical":{"type":"atomic container signature","type":"atomic container signature",'
     b'"image":{"docker-manifest-digest":"d"},"identity":{"docker-reference":"r"}},"optional":{}}',
     'Duplicate key "type"'),
    (b'{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"d"},'
     b'"identity":{"docker-reference":"r"}},"optional":{"timestamp":1.5}}', "is not an integer"),
    (b'{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":7},'
     b'"identity":{"docker-reference":"r"}},"optional":{}}', "cannot unmarshal number"),
])
def test_payload_parse_is_strict(doc: bytes, message: str) -> None:
    with pytest.raises(payload.InvalidSignature, match=message):
        payload.parse(doc)


def test_payload_ignores_unknown_optional_fields() -> None:
    doc = (b'{"critical":{"identity":{"docker-reference":"r/x:1"},"image":{"docker-manifest-digest":"sha256:ab"},'
           b'"type":"atomic container signature"},"optional":{"creator":"c","timestamp":12,"extra":[1]}}')
    assert payload.parse(doc) == payload.Payload("sha256:ab", "r/x:1", "c", 12)


def test_usage_errors_are_skopeos(manifest: Path, tmp_path: Path) -> None:
    assert_one_line_error(fastsync("standalone-sign", str(manifest), REF, "ABC"),
                          "Usage: skopeo standalone-sign manifest docker-reference key-fingerprint -o signature",
                          code=1)
    assert_one_line_error(fastsync("standalone-verify", str(manifest), REF, "any", str(tmp_path / "s")),
                          "Cannot use any fingerprint without a public key file", code=1)
    assert_one_line_error(fastsync("standalone-verify", str(tmp_path / "none.json"), REF, "ABC", "sig"),
                          f"Error reading manifest from {tmp_path / 'none.json'}: open {tmp_path / 'none.json'}: "
                          "no such file or directory", code=1)
    proc = fastsync("standalone-sign", str(manifest), REF, "0000000000000000000000000000000000000000", "-o",
                    str(tmp_path / "sig"))
    assert_one_line_error(proc, "Error creating signature: ", code=1)
    assert not (tmp_path / "sig").exists()
