"""Layer encryption (ocicrypt's jwe protocol): fastsync encrypts and skopeo 1.9.3 decrypts, and the
reverse, with RSA and EC keys generated in the test; wrong keys and tampered layers fail cleanly."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from support.images import sample_set, write_dir
from helpers import assert_one_line_error, fastsync, ok
from support.fixtures_trust import skopeo_message

ENC = "+encrypted"


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, timeout=120)


def _pair(root: Path, name: str, key) -> tuple[Path, Path]:
    priv, pub = root / f"{name}.pem", root / f"{name}.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("enc-keys")
    return {"rsa": _pair(root, "rsa", rsa.generate_private_key(65537, 2048)),
            "ec": _pair(root, "ec", ec.generate_private_key(ec.SECP256R1())),
            "other": _pair(root, "other", rsa.generate_private_key(65537, 2048))}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    write_dir(sample_set()["oci"], path)
    return path


def _layers(path: Path) -> list[dict]:
    return json.loads((path / "manifest.json").read_bytes())["layers"]


def _same_plain_layers(path: Path, src: Path) -> None:
    got, want = _layers(path), _layers(src)
    assert [(d["mediaType"], d["digest"], d["size"]) for d in got] == \
        [(d["mediaType"], d["digest"], d["size"]) for d in want]
    assert all("annotations" not in d for d in got)
    for d in want:
        name = d["digest"].split(":")[1]
        assert (path / name).read_bytes() == (src / name).read_bytes()


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_fastsync_encrypts_skopeo_decrypts(kind: str, keys, src: Path, tmp_path: Path) -> None:
    priv, pub = keys[kind]
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    ok(fastsync("--insecure-policy", "copy", "-q", "--encryption-key", f"jwe:{pub}", f"dir:{src}", f"dir:{enc}"))
    layers = _layers(enc)
    assert all(d["mediaType"].endswith("+gzip" + ENC) for d in layers)
    assert all({"org.opencontainers.image.enc.keys.jwe", "org.opencontainers.image.enc.pubopts"} <= set(d["annotations"])
               for d in layers)
    plain = {d["digest"] for d in _layers(src)}
    assert not plain & {d["digest"] for d in layers}
    proc = skopeo("copy", "-q", "--decryption-key", str(priv), f"dir:{enc}", f"dir:{dec}")
    assert proc.returncode == 0, proc.stderr
    _same_plain_layers(dec, src)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_skopeo_encrypts_fastsync_decrypts(kind: str, keys, src: Path, tmp_path: Path) -> None:
    priv, pub = keys[kind]
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    proc = skopeo("copy", "-q", "--encryption-key", f"jwe:{pub}", f"dir:{src}", f"dir:{enc}")
    assert proc.returncode == 0, proc.stderr
    ok(fastsync("--insecure-policy", "copy", "-q", "--decryption-key", str(priv), f"dir:{enc}", f"dir:{dec}"))
    _same_plain_layers(dec, src)
    # without a key the encrypted image is copied as it is, as skopeo does
    ok(fastsync("--insecure-policy", "copy", "-q", f"dir:{enc}", f"dir:{tmp_path / 'as-is'}"))
    assert (tmp_path / "as-is/manifest.json").read_bytes() == (enc / "manifest.json").read_bytes()


def test_two_recipients_and_chosen_layers(keys, src: Path, tmp_path: Path) -> None:
    enc = tmp_path / "enc"
    ok(fastsync("--insecure-policy", "copy", "-q", "--encryption-key", f"jwe:{keys['ec'][1]}", "--encryption-key",
                f"jwe:{keys['rsa'][1]}", "--encrypt-layer", "-1", f"dir:{src}", f"dir:{enc}"))
    kinds = [d["mediaType"].endswith(ENC) for d in _layers(enc)]
    assert kinds == [False] * (len(kinds) - 1) + [True]
    for kind in ("ec", "rsa"):
        proc = skopeo("copy", "-q", "--decryption-key", str(keys[kind][0]), f"dir:{enc}", f"dir:{tmp_path / kind}")
        assert proc.returncode == 0, proc.stderr
        _same_plain_layers(tmp_path / kind, src)


def test_wrong_key_and_tampered_layer_fail_cleanly(keys, src: Path, tmp_path: Path) -> None:
    enc = tmp_path / "enc"
    ok(fastsync("--insecure-policy", "copy", "-q", "--encryption-key", f"jwe:{keys['rsa'][1]}", f"dir:{src}",
                f"dir:{enc}"))
    proc = fastsync("--insecure-policy", "copy", "-q", "--decryption-key", str(keys["other"][0]), f"dir:{enc}",
                    f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "decrypting layer sha256:", "none of the private keys could be used", code=1)
    assert not (tmp_path / "out").exists()
    # flip one byte of the first encrypted layer and re-describe it: only the HMAC can tell
    doc = json.loads((enc / "manifest.json").read_bytes())
    layer = doc["layers"][0]
    blob = bytearray((enc / layer["digest"].split(":")[1]).read_bytes())
    blob[len(blob) // 2] ^= 1
    import hashlib
    new = "sha256:" + hashlib.sha256(blob).hexdigest()
    (enc / new.split(":")[1]).write_bytes(bytes(blob))
    layer["digest"] = new
    (enc / "manifest.json").write_text(json.dumps(doc))
    proc = fastsync("--insecure-policy", "copy", "-q", "--decryption-key", str(keys["rsa"][0]), f"dir:{enc}",
                    f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "could not properly decrypt byte stream", code=1)
    assert not (tmp_path / "out").exists()


def test_flag_checks_match_skopeo(keys, src: Path, tmp_path: Path) -> None:
    priv, pub = keys["rsa"]
    for args, message in [
        (["--encryption-key", f"jwe:{pub}", "--decryption-key", str(priv)],
         "--encryption-key and --decryption-key cannot be specified together"),
        (["--encrypt-layer", "0"], "--encrypt-layer can only be used with --encryption-key"),
    ]:
        mine = fastsync("--insecure-policy", "copy", *args, f"dir:{src}", f"dir:{tmp_path / 'x'}")
        line = assert_one_line_error(mine, message)
        assert line.removeprefix("Error: ") == skopeo_message(skopeo("copy", *args, f"dir:{src}",
                                                                     f"dir:{tmp_path / 'y'}").stderr)
    assert_one_line_error(fastsync("--insecure-policy", "copy", "--encryption-key", f"pgp:{pub}", f"dir:{src}",
                                   f"dir:{tmp_path / 'x'}"), "Invalid encryption keys", "jwe:", code=1)
    assert not (tmp_path / "x").exists()
