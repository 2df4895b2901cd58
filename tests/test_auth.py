"""Registry auth and TLS against real registries: login/logout, credential sources, token scopes, certificates.

Every test runs with HOME, XDG_RUNTIME_DIR and REGISTRY_AUTH_FILE pointed at its own temporary
directories (`env` fixture), so the machine's real logins never matter.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import uuid
from pathlib import Path

import pytest

from support.proxy import TamperProxy
from helpers import assert_one_line_error, fastsync, ok


def b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private HOME and XDG_RUNTIME_DIR for the CLI (and for in-process lookups via monkeypatch)."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    e = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": "", "DOCKER_CONFIG": ""}
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    return e


def run(*args: str, env: dict[str, str], **kw) -> "object":
    return fastsync(*args, env={**env, "REGISTRY_AUTH_FILE": ""}, **kw)


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def primary(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"


@pytest.fixture(scope="module")
def seeded_auth(auth_registry, sample_images) -> str:
    """The htpasswd registry holding v2s2 at ns/app:1 and other/app:1."""
    for repo in ("ns/app", "other/app"):
        auth_registry.push_image(sample_images["v2s2"], repo, "1")
    return auth_registry.host


# ---- login / logout ----------------------------------------------------------------------------------

def test_login_copy_logout_then_copy_is_unauthorized(auth_registry, seeded_auth, env, dir_of, sample_images,
                                                     tmp_path):
    host = auth_registry.host
    write_json(primary(env), {"auths": {"other.example:5000": {"auth": b64("x", "y")}}, "extra": {"kept": 1}})
    proc = ok(run("login", "--tls-verify=false", "-u", auth_registry.username, "--password-stdin", host,
                  env=env, input=auth_registry.password.encode() + b"\n"))
    assert proc.stdout.decode() == "Login Succeeded!\n"
    path = primary(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["auths"][host] == {"auth": b64(auth_registry.username, auth_registry.password)}
    assert doc["auths"]["other.example:5000"] and doc["extra"] == {"kept": 1}
    assert ok(run("login", "--get-login", host, env=env)).stdout.decode() == f"{auth_registry.username}\n"

    ok(run("copy", "-q", "--src-tls-verify=false", f"docker://{host}/ns/app:1", f"dir:{tmp_path / 'a'}", env=env))
    assert (tmp_path / "a" / "manifest.json").read_bytes() == sample_images["v2s2"].manifest
    ok(run("copy", "-q", "--dest-tls-verify=false", f"dir:{dir_of(sample_images['oci'])}",
           f"docker://{host}/pushed/app:1", env=env))

    proc = ok(run("logout", host, env=env))
    assert proc.stdout.decode() == f"Removed login credentials for {host}\n"
    assert host not in json.loads(path.read_text())["auths"]
    assert "other.example:5000" in json.loads(path.read_text())["auths"]
    proc = run("copy", "-q", "--src-tls-verify=false", f"docker://{host}/ns/app:1", f"dir:{tmp_path / 'b'}", env=env)
    assert_one_line_error(proc, "unauthorized", code=1)
    assert not (tmp_path / "b").exists()
    assert_one_line_error(run("logout", host, env=env), f"not logged into {host}", code=1)
    assert_one_line_error(run("login", "--get-login", host, env=env), f"not logged into {host}")


def test_login_with_wrong_password_fails_and_saves_nothing(auth_registry, env):
    proc = run("login", "--tls-verify=false", "-u", auth_registry.username, "-p", "wrong-password",
               auth_registry.host, env=env)
    line = assert_one_line_error(proc, f'logging into "{auth_registry.host}": invalid username/password', code=1)
    assert "wrong-password" not in line
    assert not primary(env).exists()


def test_login_to_plain_http_needs_tls_verify_false(auth_registry, env):
    proc = run("login", "-u", auth_registry.username, "-p", auth_registry.password, auth_registry.host, env=env)
    assert_one_line_error(proc, "authenticating creds for", "--tls-verify=false", code=1)
    assert not primary(env).exists()


def test_login_flags_and_keys_as_skopeo(auth_registry, env, tmp_path):
    host = auth_registry.host
    assert_one_line_error(run("login", "-u", "a", "-p", "b", "--password-stdin", host, env=env),
                          "Can't specify both --password-stdin and --password")
    assert_one_line_error(run("login", "--password-stdin", host, env=env), "Must provide --username")
    assert_one_line_error(run("login", "-u", "a", "--password-stdin", host, env=env, input=b""),
                          "standard input held no password", code=1)
    assert_one_line_error(run("login", "-u", "a", "-p", "b", f"{host}/a/b:tag", env=env), "contains tag or digest")
    assert_one_line_error(run("logout", "--all", host, env=env), "--all takes no arguments")
    authfile = tmp_path / "custom" / "auth.json"
    creds = ["-u", auth_registry.username, "-p", auth_registry.password]
    ok(run("login", "--tls-verify=false", "--authfile", str(authfile), *creds, f"https://{host}/v1/", env=env))
    ok(run("login", "--tls-verify=false", "--authfile", str(authfile), *creds, f"{host}/ns", env=env))
    assert sorted(json.loads(authfile.read_text())["auths"]) == [host, f"{host}/ns"]
    assert not primary(env).exists()
    proc = ok(run("login", "--tls-verify=false", "--authfile", str(authfile), host, env=env))
    assert "Existing credentials are valid. Already logged in to" in proc.stdout.decode()
    assert ok(run("logout", "--authfile", str(authfile), f"{host}/ns", env=env)).stdout.decode() == \
        f"Removed login credentials for {host}/ns\n"
    assert ok(run("logout", "--authfile", str(authfile), "--all", env=env)).stdout.decode() == \
        "Removed login credentials for all registries\n"
    assert json.loads(authfile.read_text())["auths"] == {}
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600


def test_login_to_token_registry_then_push_uses_saved_credentials(token_registry, token_server, env, dir_of,
                                                                   sample_images):
    host = token_registry.host
    bad = run("login", "--tls-verify=false", "-u", token_registry.username, "-p", "nope", host, env=env)
    assert_one_line_error(bad, "invalid username/password", code=1)
    assert not primary(env).exists()
    ok(run("login", "--tls-verify=false", "-u", token_registry.username, "-p", token_registry.password, host,
           env=env))
    token_server.clear()
    repo = f"login/{uuid.uuid4().hex[:8]}"
    ok(run("copy", "-q", "--dest-tls-verify=false", f"dir:{dir_of(sample_images['v2s2'])}",
           f"docker://{host}/{repo}:1", env=env))
    pushes = [r for r in token_server.snapshot() if f"repository:{repo}:pull,push" in r.scopes]
    assert pushes and all(r.user == token_registry.username and r.status == 200 for r in pushes)
    tags = ok(run("list-tags", "--tls-verify=false", f"docker://{host}/{repo}", env=env)).stdout
    assert json.loads(tags)["Tags"] == ["1"]
    ok(run("delete", "--tls-verify=false", f"docker://{host}/{repo}:1", env=env))
    assert token_registry.request("GET", f"/v2/{repo}/manifests/1").status == 404
    ok(run("logout", host, env=env))
    proc = run("delete", "--tls-verify=false", f"docker://{host}/{repo}@{sample_images['v2s2'].digest}", env=env)
    assert_one_line_error(proc, "unauthorized", code=1)
    proc = run("copy", "--src-tls-verify=false", "--src-creds", f"{token_registry.username}:wrong",
               f"docker://{host}/{repo}:1", f"dir:{env['HOME']}/o", env=env)
    assert_one_line_error(proc, "invalid username/password", "unauthorized", code=1)


# ---- credential sources ------------------------------------------------------------------------------

def test_hand_written_docker_config_json_is_honoured(auth_registry, seeded_auth, env, tmp_path):
    host = auth_registry.host
    src = f"docker://{host}/ns/app:1"
    write_json(Path(env["HOME"]) / ".docker" / "config.json",
               {"auths": {f"http://{host}/v1/": {"auth": b64(auth_registry.username, auth_registry.password)}},
                "HttpHeaders": {"User-Agent": "x"}})
    ok(run("copy", "-q", "--src-tls-verify=false", src, f"dir:{tmp_path / 'a'}", env=env))
    # an auth file earlier in the order wins, even with wrong credentials (as skopeo: first match)
    write_json(Path(env["HOME"]) / ".config" / "containers" / "auth.json",
               {"auths": {host: {"auth": b64(auth_registry.username, "stale")}}})
    assert_one_line_error(run("copy", "-q", "--src-tls-verify=false", src, f"dir:{tmp_path / 'b'}", env=env),
                          "unauthorized")
    # ...and --creds beats every file
    ok(run("copy", "-q", "--src-tls-verify=false", "--src-creds", auth_registry.creds, src,
           f"dir:{tmp_path / 'c'}", env=env))


def test_namespace_scoped_keys_most_specific_first(auth_registry, seeded_auth, env, tmp_path):
    host = auth_registry.host
    good, bad = {"auth": b64(auth_registry.username, auth_registry.password)}, {"auth": b64("fastsync", "bad")}
    authfile = write_json(tmp_path / "ns.json", {"auths": {host: bad, f"{host}/ns": good}})
    ok(run("copy", "-q", "--src-tls-verify=false", "--src-authfile", str(authfile), f"docker://{host}/ns/app:1",
           f"dir:{tmp_path / 'a'}", env=env))
    proc = run("copy", "-q", "--src-tls-verify=false", "--src-authfile", str(authfile),
               f"docker://{host}/other/app:1", f"dir:{tmp_path / 'b'}", env=env)
    assert_one_line_error(proc, "unauthorized", code=1)
    # REGISTRY_AUTH_FILE takes the primary slot too
    proc = fastsync("copy", "-q", "--src-tls-verify=false", f"docker://{host}/ns/app:1", f"dir:{tmp_path / 'c'}",
                    env={**env, "REGISTRY_AUTH_FILE": str(authfile)})
    ok(proc)


HELPER = """#!/bin/sh
# fake docker credential helper: logs its calls, knows one server
echo "$1 $(cat)" >> "{log}"
case "$1" in
  get) echo '{{"ServerURL":"{host}","Username":"{user}","Secret":"{password}"}}' ;;
  store|erase) exit 0 ;;
esac
"""


@pytest.mark.parametrize("config_key", ["credHelpers", "credsStore"])
def test_credential_helper_on_path_is_honoured(config_key, auth_registry, seeded_auth, env, tmp_path):
    host = auth_registry.host
    bindir, log = tmp_path / "bin", tmp_path / "helper.log"
    bindir.mkdir()
    helper = bindir / "docker-credential-test"
    helper.write_text(HELPER.format(log=log, host=host, user=auth_registry.username,
                                    password=auth_registry.password))
    helper.chmod(0o755)
    conf = {"credHelpers": {host: "test"}} if config_key == "credHelpers" else \
        {"auths": {host: {}}, "credsStore": "test"}
    write_json(Path(env["HOME"]) / ".docker" / "config.json", conf)
    e = {**env, "PATH": f"{bindir}:{os.environ['PATH']}"}
    ok(run("copy", "-q", "--src-tls-verify=false", f"docker://{host}/ns/app:1", f"dir:{tmp_path / 'a'}", env=e))
    assert log.read_text().splitlines()[0] == f"get {host}"
    proc = run("copy", "-q", "--src-tls-verify=false", f"docker://{host}/ns/app:1", f"dir:{tmp_path / 'b'}", env=env)
    assert_one_line_error(proc, "docker-credential-test", "not found")


def test_login_stores_through_the_files_credential_helper(auth_registry, env, tmp_path):
    host = auth_registry.host
    bindir, log = tmp_path / "bin", tmp_path / "helper.log"
    bindir.mkdir()
    helper = bindir / "docker-credential-test"
    helper.write_text(HELPER.format(log=log, host=host, user="u", password="p"))
    helper.chmod(0o755)
    write_json(primary(env), {"credHelpers": {host: "test"}})
    e = {**env, "PATH": f"{bindir}:{os.environ['PATH']}"}
    ok(run("login", "--tls-verify=false", "-u", auth_registry.username, "-p", auth_registry.password, host, env=e))
    stored = log.read_text().splitlines()[-1]
    assert stored.startswith("store ") and json.loads(stored[6:]) == {
        "ServerURL": host, "Username": auth_registry.username, "Secret": auth_registry.password}
    assert json.loads(primary(env).read_text()).get("auths", {}) == {}
    ok(run("logout", host, env=e))
    assert log.read_text().splitlines()[-1] == f"erase {host}"


def test_auth_files_are_shared_with_skopeo(auth_registry, seeded_auth, skopeo, env, tmp_path):
    import subprocess

    host = auth_registry.host
    sk_env = {**os.environ, **env, "REGISTRY_AUTH_FILE": ""}

    def sk(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([skopeo, *args], capture_output=True, env=sk_env, timeout=60)

    ok(run("login", "--tls-verify=false", "-u", auth_registry.username, "-p", auth_registry.password, host, env=env))
    assert sk("login", "--get-login", host).stdout.decode() == f"{auth_registry.username}\n"
    assert sk("inspect", "--raw", "--tls-verify=false", f"docker://{host}/ns/app:1").returncode == 0
    ok(run("logout", "--all", env=env))
    assert sk("login", "--tls-verify=false", "-u", auth_registry.username, "-p", auth_registry.password,
              f"{host}/ns").returncode == 0
    ok(run("copy", "-q", "--src-tls-verify=false", f"docker://{host}/ns/app:1", f"dir:{tmp_path / 'a'}", env=env))
    assert ok(run("logout", f"{host}/ns", env=env)).stdout.decode() == f"Removed login credentials for {host}/ns\n"
    assert sk("logout", f"{host}/ns").returncode != 0


def test_auth_file_lookup_order(env, tmp_path, monkeypatch):
    from fastsync.registry.authfile import lookup_credentials

    home = Path(env["HOME"])
    write_json(home / ".docker" / "config.json",
               {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub", "1")}, "q.io": {"auth": b64("d", "1")}}})
    assert lookup_credentials("docker.io/library/alpine").username == "hub"
    assert lookup_credentials("q.io/org/repo").username == "d"
    write_json(home / ".config" / "containers" / "auth.json", {"auths": {"q.io/org": {"auth": b64("cfg", "1")}}})
    assert lookup_credentials("q.io/org/repo").username == "cfg"
    assert lookup_credentials("q.io/other/repo").username == "d"
    write_json(primary(env), {"auths": {"q.io/org/repo": {"auth": b64("xdg", "1")}}})
    assert lookup_credentials("q.io/org/repo").username == "xdg"
    env_file = write_json(tmp_path / "env.json", {"auths": {"q.io": {"auth": b64("env", "1")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(env_file))
    assert lookup_credentials("q.io/org/repo").username == "env"      # replaces the XDG_RUNTIME_DIR file
    flag_file = write_json(tmp_path / "flag.json", {"auths": {}})
    assert lookup_credentials("q.io/org/repo", str(flag_file)).username == "cfg"
    write_json(home / ".dockercfg", {"https://legacy.io/v1/": {"auth": b64("old", "1")}})
    assert lookup_credentials("legacy.io/a/b").username == "old"
    assert lookup_credentials("nowhere.io/a/b") is None
    token = write_json(tmp_path / "tok.json", {"auths": {"q.io": {"auth": b64("u", ""), "identitytoken": "T"}}})
    creds = lookup_credentials("q.io/a", str(token))
    assert (creds.username, creds.identity_token) == ("u", "T")


# ---- bearer tokens -----------------------------------------------------------------------------------

def test_token_scopes_for_pull_push_and_mount(token_registry, token_server, env, dir_of, sample_images, tmp_path):
    host, creds = token_registry.host, token_registry.creds
    a, b = f"scopes/a{uuid.uuid4().hex[:6]}", f"scopes/b{uuid.uuid4().hex[:6]}"
    token_server.clear()
    ok(run("copy", "-q", "--dest-tls-verify=false", "--dest-creds", creds, f"dir:{dir_of(sample_images['v2s2'])}",
           f"docker://{host}/{a}:1", env=env))
    asked = [r.scopes for r in token_server.snapshot()]
    assert asked == [(f"repository:{a}:pull,push",)]       # one token for the tag check and the whole push
    token_server.clear()
    ok(run("copy", "-q", "--src-tls-verify=false", "--src-creds", creds, f"docker://{host}/{a}:1",
           f"dir:{tmp_path / 'out'}", env=env))
    asked = [r.scopes for r in token_server.snapshot()]
    assert asked == [(f"repository:{a}:pull",)]            # one fetch, shared by the manifest and every blob
    token_server.clear()
    ok(run("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds,
           "--dest-creds", creds, f"docker://{host}/{a}:1", f"docker://{host}/{b}:1", env=env))
    asked = [set(r.scopes) for r in token_server.snapshot()]
    assert {f"repository:{b}:pull,push", f"repository:{a}:pull"} in asked
    assert all(r.status == 200 for r in token_server.snapshot())
    layer = sample_images["v2s2"].layers[0].digest
    assert token_registry.request("HEAD", f"/v2/{b}/blobs/{layer}").status == 200


def test_concurrent_requests_share_one_token_fetch(token_registry, token_server):
    from fastsync.options import Credentials, TransportOptions
    from fastsync.session import Session

    async def go() -> list[str]:
        async with Session() as session:
            opts = TransportOptions(tls_verify=False, creds=Credentials.parse(token_registry.creds))
            client = session.registry(token_registry.host, opts)
            await client.ping()
            auth = await client.authenticator("shared/repo")
            return await asyncio.gather(*[auth.header(("repository:shared/repo:pull",)) for _ in range(20)])

    token_server.clear()
    headers = asyncio.run(go())
    assert len(set(headers)) == 1 and headers[0].startswith("Bearer ")
    assert [r.scopes for r in token_server.snapshot()] == [("repository:shared/repo:pull",)]


def test_a_rejected_token_is_refreshed_once(token_registry, token_server, sample_images):
    from fastsync.registry.auth import _Token
    from fastsync.options import Credentials, TransportOptions
    from fastsync.session import Session

    repo = "refresh/app"
    token_registry.push_image(sample_images["v2s2"], repo, "1")

    async def go() -> bytes:
        async with Session() as session:
            opts = TransportOptions(tls_verify=False, creds=Credentials.parse(token_registry.creds))
            client = session.registry(token_registry.host, opts)
            await client.ping()
            auth = await client.authenticator(repo)
            auth._tokens[(f"repository:{repo}:pull",)] = _Token("revoked.token.value", float("inf"))
            raw, _, _ = await client.get_manifest(repo, "1")
            return raw

    token_server.clear()
    assert asyncio.run(go()) == sample_images["v2s2"].manifest
    assert len(token_server.snapshot()) == 1


# ---- TLS -----------------------------------------------------------------------------------------------

def test_tls_registry_with_cert_dir_or_tls_verify_false(tls_registry, sample_images, env, tmp_path):
    tls_registry.push_image(sample_images["v2s2"], "tls/app", "1")
    ref = f"docker://{tls_registry.host}/tls/app:1"
    proc = run("inspect", "--raw", ref, env=env)
    assert_one_line_error(proc, "certificate", code=1)
    assert ok(run("inspect", "--raw", "--cert-dir", str(tls_registry.cert_dir), ref, env=env)).stdout == \
        sample_images["v2s2"].manifest
    assert ok(run("inspect", "--raw", "--tls-verify=false", ref, env=env)).stdout == sample_images["v2s2"].manifest
    # a per-registry directory under ~/.config/containers/certs.d/HOST:PORT is found by itself
    d = Path(env["HOME"]) / ".config" / "containers" / "certs.d" / tls_registry.host
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(tls_registry.ca_path.read_bytes())
    ok(run("copy", "-q", ref, f"dir:{tmp_path / 'out'}", env=env))
    ok(run("login", "-u", "any", "-p", "thing", tls_registry.host, env=env))       # TLS verified via certs.d
    (d / "lonely.cert").write_bytes(b"")
    assert_one_line_error(run("inspect", "--raw", ref, env=env), "missing key lonely.key", code=1)


def test_client_certificate_registry(client_cert_registry, sample_images, env, tmp_path):
    reg = client_cert_registry
    reg.push_image(sample_images["v2s2"], "mtls/app", "1")
    ref = f"docker://{reg.host}/mtls/app:1"
    assert ok(run("inspect", "--raw", "--cert-dir", str(reg.cert_dir), ref, env=env)).stdout == \
        sample_images["v2s2"].manifest
    ca_only = tmp_path / "ca-only"
    ca_only.mkdir()
    (ca_only / "ca.crt").write_bytes(reg.ca_path.read_bytes())
    assert run("inspect", "--raw", "--cert-dir", str(ca_only), ref, env=env).returncode == 1
    assert run("inspect", "--raw", "--tls-verify=false", ref, env=env).returncode == 1
    # without verification the client certificate is still presented
    ok(run("inspect", "--raw", "--tls-verify=false", "--cert-dir", str(reg.cert_dir), ref, env=env))


# ---- safety --------------------------------------------------------------------------------------------

def test_redirect_to_another_host_carries_no_authorization(auth_registry, seeded_auth, redirect_capture, env,
                                                           sample_images, tmp_path):
    with TamperProxy(auth_registry.url) as proxy:
        proxy.redirect_blobs(redirect_capture)
        ok(run("copy", "-q", "--src-tls-verify=false", "--src-creds", auth_registry.creds,
               f"docker://{proxy.host}/ns/app:1", f"dir:{tmp_path / 'out'}", env=env))
        to_registry = [r for r in proxy.requests if "/blobs/" in r.path]
    assert to_registry and all("Authorization" in r.headers for r in to_registry)
    blob_gets = [r for r in redirect_capture.requests if "/blobs/" in r.path]
    assert len(blob_gets) == len(sample_images["v2s2"].all_blobs())
    assert all("Authorization" not in r.headers for r in redirect_capture.requests)
    assert (tmp_path / "out" / "manifest.json").read_bytes() == sample_images["v2s2"].manifest


def test_debug_output_holds_no_password_or_token(token_registry, token_server, env, dir_of, sample_images, tmp_path):
    host, password = token_registry.host, token_registry.password
    repo = f"debug/{uuid.uuid4().hex[:8]}"
    token_server.clear()
    push = ok(run("--debug", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", token_registry.creds,
                  f"dir:{dir_of(sample_images['v2s2'])}", f"docker://{host}/{repo}:1", env=env))
    pull = ok(run("--debug", "copy", "-q", "--src-tls-verify=false", "--src-creds", token_registry.creds,
                  f"docker://{host}/{repo}:1", f"dir:{tmp_path / 'out'}", env=env))
    out = (push.stderr + push.stdout + pull.stderr + pull.stdout).decode()
    assert f"PUT http://{host}/v2/{repo}/manifests/1 -> 201" in out      # debug logging is on
    assert "token for" in out
    assert token_server.snapshot() and all(r.user == token_registry.username for r in token_server.snapshot())
    for secret in (password, b64(token_registry.username, password), "eyJ", "Bearer ", "Basic "):
        assert secret not in out, secret
    assert "_state=..." in out and not re.search(r"_state=[^.]", out)     # upload state is redacted


def test_login_keys_and_loggable_urls():
    from fastsync.registry.authfile import parse_login_key
    from fastsync.errors import UsageError
    from fastsync.registry.wire import loggable as _loggable

    assert parse_login_key("https://quay.io/v1/org") == ("quay.io", "quay.io")
    assert parse_login_key("quay.io/org/repo") == ("quay.io/org/repo", "quay.io")
    assert parse_login_key("localhost:5000") == ("localhost:5000", "localhost:5000")
    with pytest.raises(UsageError):
        parse_login_key("quay.io/org/repo@sha256:" + "0" * 64)
    url = "https://u:p@h:5000/v2/r/blobs/uploads/x?_state=SECRET&digest=sha256:ab&X-Amz-Signature=S"
    assert _loggable(url) == "https://h:5000/v2/r/blobs/uploads/x?_state=...&digest=sha256:ab&X-Amz-Signature=..."
