"""Bad input and failures: one clear line on stderr, a non-zero exit code, nothing half-written."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from support.proxy import DelayProxy
from helpers import assert_one_line_error, fastsync, ok


@pytest.mark.parametrize("args,fragment", [
    (["copy", "alpine", "dir:/tmp/x"], 'Invalid image name "alpine", expected colon-separated transport:reference'),
    (["copy", "nope:alpine", "dir:/tmp/x"], 'Invalid image name "nope:alpine", unknown transport "nope"'),
    (["copy", "docker://Bad/Name", "dir:/tmp/x"], "lowercase"),
    (["copy", "docker://alpine:bad:tag", "dir:/tmp/x"], "bad repository name"),
    (["inspect", "docker:alpine"], "must start with //"),
    (["list-tags", "docker://localhost:5000/a:tagged"], "tag or digest not allowed"),
    (["copy", "--all", "--multi-arch", "system", "dir:/a", "dir:/b"], "Cannot use --all and --multi-arch"),
])
def test_malformed_input_is_a_usage_error(args, fragment):
    assert_one_line_error(fastsync(*args), fragment, code=1)


def test_unknown_flags_are_rejected_by_click():
    proc = fastsync("copy", "--no-such-flag", "x", "dir:/a", "dir:/b")
    assert_one_line_error(proc, "No such option '--no-such-flag'", "fastsync copy --help", code=1)


@pytest.mark.parametrize("args,fragments", [
    (["copy", "dir:/a"], ["Missing argument 'DESTINATION'"]),
    (["bogus"], ["No such command 'bogus'"]),
    (["cache", "bogus"], ["No such command 'bogus'", "fastsync cache --help"]),
    (["copy", "--retry-times=x", "dir:/a", "dir:/b"], ["'--retry-times'", "not a valid integer"]),
    (["copy", "--retry-times=-1", "dir:/a", "dir:/b"], ["--retry-times must not be negative"]),
    (["--command-timeout", "-1", "inspect", "dir:/a"], ["'--command-timeout'"]),
    (["inspect", "--creds", "", "dir:/a"], ["credentials can't be empty"]),
    (["inspect", "--creds", ":pw", "dir:/a"], ["username can't be empty"]),
    (["inspect", "--creds", "u:p", "--username", "u", "dir:/a"], ["mutually exclusive"]),
    (["copy", "--dest-password", "p", "dir:/a", "dir:/b"], ["--dest-password needs --dest-username"]),
    (["inspect", "--tls-verify", "false", "dir:/a"], ["unexpected extra argument (dir:/a)"]),
])
def test_click_usage_errors_are_one_line(args, fragments):
    """Errors click finds itself (missing arguments, unknown commands, bad values) look like ours."""
    assert_one_line_error(fastsync(*args), *fragments, code=1)


def test_bare_tls_verify_flag_does_not_swallow_the_image_name(sample_images, dir_of):
    """skopeo's bool flags are Go flags: `--tls-verify IMAGE` is the flag (true), then the image."""
    path = dir_of(sample_images["v2s2"])
    for flag in ("--tls-verify", "--tls-verify=true", "--tls-verify=false"):
        out = json.loads(ok(fastsync("inspect", flag, f"dir:{path}")).stdout)
        assert out["Digest"] == sample_images["v2s2"].digest
    ok(fastsync("copy", "-q", "--src-tls-verify", "--dest-tls-verify", f"dir:{path}", f"dir:{path}-copy"))


def test_list_tags_retries_a_429_with_retry_times(registry, pushed, tamper_proxy):
    tamper_proxy.throttle("tags", 1, "0")
    failed = fastsync("list-tags", "--tls-verify=false", f"docker://{tamper_proxy.host}/{pushed}")
    assert_one_line_error(failed, "slow down", "HTTP 429", code=1)
    tamper_proxy.throttle("tags", 1, "0")
    out = json.loads(ok(fastsync("list-tags", "--retry-times", "1", "--tls-verify=false",
                                 f"docker://{tamper_proxy.host}/{pushed}")).stdout)
    assert out["Tags"] == ["1"]
    assert [r.status for r in tamper_proxy.requests if r.path.endswith("/tags/list")] == [429, 429, 200]


def test_an_unforeseen_exception_is_one_line(monkeypatch, capsys):
    """The last safety net: any exception from a command is one `Error:` line, exit 1."""
    from fastsync import api
    from fastsync.cli import main as cli

    def broken(*args, **kwargs):
        raise RuntimeError("something\nnobody expected")
    monkeypatch.setattr(api, "list_tags", broken)
    with pytest.raises(SystemExit) as info:
        cli.main(["list-tags", "docker://127.0.0.1:1/a/b"])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err.strip() == "Error: internal error (RuntimeError): something nobody expected"


def test_unreachable_registry(tmp_path):
    proc = fastsync("copy", "--src-tls-verify=false", "docker://127.0.0.1:1/a/b:c", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "127.0.0.1:1", "connection refused", code=1)
    assert not (tmp_path / "out").exists()


def test_plain_http_registry_needs_tls_verify_false(registry, tmp_path):
    proc = fastsync("inspect", f"docker://{registry.host}/samples/v2s2:latest")
    assert_one_line_error(proc, "--tls-verify=false", code=1)


def test_missing_manifest_is_manifest_unknown(registry, tmp_path):
    proc = fastsync("copy", "--src-tls-verify=false", f"docker://{registry.host}/none/such:tag",
                    f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "manifest unknown", "none/such", code=1)
    assert not (tmp_path / "out").exists()


def test_missing_credentials_are_unauthorized(auth_registry, tmp_path):
    proc = fastsync("copy", "--src-tls-verify=false", f"docker://{auth_registry.host}/a/b:c", f"dir:{tmp_path / 'o'}")
    assert_one_line_error(proc, "unauthorized", code=1)
    proc = fastsync("copy", "--src-tls-verify=false", "--src-creds", "fastsync:wrong",
                    f"docker://{auth_registry.host}/a/b:c", f"dir:{tmp_path / 'o'}")
    assert_one_line_error(proc, "unauthorized", code=1)
    assert not (tmp_path / "o").exists()


def test_basic_auth_round_trip(auth_registry, sample_images, dir_of, tmp_path):
    creds = f"{auth_registry.username}:{auth_registry.password}"
    ref = f"docker://{auth_registry.host}/auth/app:1"
    ok(fastsync("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"dir:{dir_of(sample_images['v2s2'])}", ref))
    ok(fastsync("copy", "--src-tls-verify=false", "--src-creds", creds, ref, f"dir:{tmp_path / 'back'}"))
    assert (tmp_path / "back" / "manifest.json").read_bytes() == sample_images["v2s2"].manifest


@pytest.fixture
def pushed(registry, sample_images, dir_of):
    repo = f"tamper/{uuid.uuid4().hex[:8]}"
    ok(fastsync("copy", "-q", "--dest-tls-verify=false", f"dir:{dir_of(sample_images['v2s2'])}",
                f"docker://{registry.host}/{repo}:1"))
    return repo


@pytest.mark.parametrize("dest_kind", ["dir", "oci", "docker"])
def test_corrupted_blob_fails_and_leaves_the_destination_untouched(dest_kind, pushed, tamper_proxy, registry,
                                                                   sample_images, tmp_path):
    layer = sample_images["v2s2"].layers[1].digest
    tamper_proxy.corrupt_blobs(layer, offset=100)
    dst = {"dir": f"dir:{tmp_path / 'out'}", "oci": f"oci:{tmp_path / 'layout'}:x",
           "docker": f"docker://{registry.host}/tampered/{uuid.uuid4().hex[:8]}:1"}[dest_kind]
    proc = fastsync("copy", "-q", "--retry-times", "0", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{tamper_proxy.host}/{pushed}:1", dst)
    line = assert_one_line_error(proc, "digest mismatch", layer, code=1)
    assert "expected" in line and "got sha256:" in line
    assert tamper_proxy.tampered
    if dest_kind == "dir":
        assert not (tmp_path / "out").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    elif dest_kind == "oci":
        assert not (tmp_path / "layout" / "index.json").exists()
        assert not (tmp_path / "layout" / "blobs" / "sha256" / layer.split(":")[1]).exists()
    else:
        resp = registry.request("GET", "/v2/" + dst.split("/", 3)[3].replace(":1", "/manifests/1"))
        assert resp.status == 404


def test_manifest_not_matching_its_digest_header_is_rejected(pushed, tamper_proxy, tmp_path):
    tamper_proxy.corrupt_manifests("append")
    proc = fastsync("copy", "--src-tls-verify=false", f"docker://{tamper_proxy.host}/{pushed}:1",
                    f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "digest mismatch", "manifest", code=1)
    assert not (tmp_path / "out").exists()


def test_corrupt_local_blob_is_detected(sample_images, dir_of, tmp_path):
    src = dir_of(sample_images["v2s2"])
    layer = sample_images["v2s2"].layers[0].digest.split(":")[1]
    data = bytearray((src / layer).read_bytes())
    data[50] ^= 0xFF
    (src / layer).write_bytes(bytes(data))
    proc = fastsync("copy", "-q", f"dir:{src}", f"oci:{tmp_path / 'l'}:x")
    assert_one_line_error(proc, "digest mismatch", layer, code=1)
    assert not (tmp_path / "l" / "index.json").exists()


def test_command_timeout_stops_a_slow_copy(registry, pushed, tmp_path):
    host, port = registry.host.split(":")
    with DelayProxy(host, int(port), delay_ms=300) as slow:
        proc = fastsync("--command-timeout", "0.5", "copy", "--src-tls-verify=false",
                        f"docker://{slow.host}/{pushed}:1", f"dir:{tmp_path / 'out'}")
    assert_one_line_error(proc, "timed out after 0.5s", code=1)
    assert not (tmp_path / "out").exists()


def test_data_and_copy_reports_go_to_stdout(sample_images, dir_of, tmp_path):
    src = dir_of(sample_images["v2s2"])
    proc = ok(fastsync("copy", f"dir:{src}", f"dir:{tmp_path / 'out'}"))
    # copy's report goes to stdout, as skopeo's does
    assert b"Copying blob" in proc.stdout and proc.stderr == b""
    proc = ok(fastsync("inspect", f"dir:{src}"))
    assert json.loads(proc.stdout)["Digest"] == sample_images["v2s2"].digest and proc.stderr == b""
    quiet = ok(fastsync("copy", "-q", f"dir:{src}", f"dir:{tmp_path / 'q'}"))
    assert quiet.stderr == b"" and quiet.stdout == b""


def test_digestfile_records_the_written_manifest(sample_images, dir_of, tmp_path):
    ok(fastsync("copy", "--digestfile", str(tmp_path / "d"), f"dir:{dir_of(sample_images['oci'])}",
                f"dir:{tmp_path / 'o'}"))
    assert (tmp_path / "d").read_text() == sample_images["oci"].digest


def test_version_names_the_backend():
    out = ok(fastsync("--version")).stdout.decode()
    expected = os.environ.get("FASTSYNC_BACKEND") or "native"     # `make test-python` forces python
    assert out.startswith("fastsync version ") and f"native core: {expected}" in out
    out = ok(fastsync("--version", backend="python")).stdout.decode()
    assert "native core: python" in out


def test_manifest_digest_of_a_missing_file():
    assert_one_line_error(fastsync("manifest-digest", "/nonexistent/manifest.json"), "manifest.json", code=1)


@pytest.mark.parametrize("signatures", [[{"header": {}, "signature": "x", "protected": 5}], 5, [5]])
def test_manifest_digest_of_a_badly_signed_schema1(signatures, tmp_path):
    doc = {"schemaVersion": 1, "name": "a/b", "tag": "1", "architecture": "amd64", "fsLayers": [],
           "history": [], "signatures": signatures}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc, indent=3))
    assert_one_line_error(fastsync("manifest-digest", str(path)), "malformed schema 1 signature",
                          "formatLength and formatTail", code=1)
