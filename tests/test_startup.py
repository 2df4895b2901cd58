"""Start-up laziness: what `fastsync --version` and `fastsync sync` import, TLS contexts that load no
CA bundle until a handshake needs it, one ping per registry and TLS settings per session, and one
auth-file lookup per registry (issue 17). Module sets and request counts, not timings."""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import click
import pytest

from helpers import fastsync

ROOT = Path(__file__).resolve().parents[1]


def imported(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the CLI with ARGS in a fresh interpreter; the names in sys.modules when it exits (modules
    imported through importlib, as the lazy command table does, included)."""
    out = tmp_path / "modules.json"
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "MODULES_OUT": str(out)}
    code = ("import atexit, json, os, sys\n"
            "atexit.register(lambda: open(os.environ['MODULES_OUT'], 'w').write(json.dumps(sorted(sys.modules))))\n"
            "from fastsync.cli import main\n"
            "main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=e, capture_output=True, text=True, timeout=60)
    return proc, set(json.loads(out.read_text())) if out.exists() else set()


def under(names: set[str], *prefixes: str) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


def test_version_imports_no_engine_network_or_yaml(tmp_path):
    proc, names = imported(tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("fastsync version "), proc.stderr[-500:]
    assert "click" in names and "fastsync.cli.main" in names           # the parse did run
    heavy = under(names, "aiohttp", "yaml", "uvloop", "orjson", "rich", "cryptography", "asyncio", "ssl",
                  "fastsync.engine", "fastsync.sync", "fastsync.registry", "fastsync.transports", "fastsync.trust",
                  "fastsync.store", "fastsync.api", "fastsync.session", "fastsync.cli.images", "fastsync.cli.sync",
                  "fastsync.cli.auth", "fastsync.cli.offline", "fastsync.cli.trust", "fastsync.retry", "logging")
    assert heavy == set()


def test_sync_imports_only_what_it_runs(tmp_path):
    """A docker-to-dir sync: no YAML reader, no other command's module, no docker-archive/schema 1 code,
    no progress bars when stderr is not a terminal."""
    proc, names = imported(tmp_path, "sync", "--src", "docker", "--dest", "dir", "--retry-times", "0",
                           "127.0.0.1:9/app", str(tmp_path / "out"))
    assert proc.returncode == 1 and "connection refused" in proc.stderr, proc.stderr[-800:]
    assert {"fastsync.cli.sync", "fastsync.sync.inputs", "aiohttp"} <= names
    assert under(names, "yaml", "rich", "fastsync.cli.images", "fastsync.cli.auth", "fastsync.cli.offline",
                 "fastsync.engine.schema1", "fastsync.transports.archive", "fastsync.offline") == set()


def test_sync_reaches_its_first_request_without_the_engine_or_trust_evaluation(tmp_path):
    """What is imported when the first connection is opened (an audit hook on socket.connect): the
    engine, the blob path and the policy evaluation/signature code come later (after the plan's
    answers, or never for an image whose policy needs no check)."""
    out = tmp_path / "modules.json"
    cfg = tmp_path / "sync.yaml"
    cfg.write_text("127.0.0.1:9:\n  images:\n    app: [v1]\n  tls-verify: false\n")
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "MODULES_OUT": str(out),
         "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = ("import json, os, sys\n"
            "def hook(event, args):\n"
            "    if event == 'socket.connect' and not os.path.exists(os.environ['MODULES_OUT']):\n"
            "        open(os.environ['MODULES_OUT'], 'w').write(json.dumps(sorted(sys.modules)))\n"
            "sys.addaudithook(hook)\n"
            "from fastsync.cli import main\n"
            "main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", code, "sync", "--src", "yaml", "--dest", "docker", "--all",
                           "--dest-tls-verify=false", "--retry-times", "0", str(cfg), "127.0.0.1:9/mirror"],
                          env=e, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "connection refused" in proc.stderr, proc.stderr[-800:]
    names = set(json.loads(out.read_text()))
    assert {"aiohttp", "yaml", "fastsync.sync.plan", "fastsync.registry.client", "fastsync.trust.policy"} <= names
    assert under(names, "fastsync.engine", "fastsync.core.recompress", "fastsync.core.pipeline", "fastsync.store.memo",
                 "fastsync.transports.localfs", "fastsync.trust.evaluate", "fastsync.trust.formats",
                 "fastsync.trust.gpg", "fastsync.trust.lookaside", "fastsync.trust.registries_d",
                 "fastsync.trust.attachments", "fastsync.attachments.discover") == set()


def test_yaml_is_imported_for_a_yaml_source(tmp_path):
    cfg = tmp_path / "sync.yaml"
    cfg.write_text("127.0.0.1:9:\n  images:\n    app: [v1]\n  tls-verify: false\n")
    proc, names = imported(tmp_path, "sync", "--src", "yaml", "--dest", "dir", "--retry-times", "0", str(cfg),
                           str(tmp_path / "out"))
    assert proc.returncode == 1 and "yaml" in names, proc.stderr[-800:]


def test_lazy_command_table_names_what_each_module_registers():
    from fastsync.cli.errors import FastsyncGroup
    from fastsync.cli.lazy import COMMAND_MODULES, register_module

    found: dict[str, str] = {}
    for module in dict.fromkeys(COMMAND_MODULES.values()):
        group = FastsyncGroup()
        register_module(group, module)
        found.update({name: module for name in group.commands})
    assert found == COMMAND_MODULES


def test_root_group_lists_and_finds_every_command():
    from fastsync.cli.lazy import COMMAND_MODULES
    from fastsync.cli.main import main

    assert sorted(main.list_commands(click.Context(main))) == sorted(COMMAND_MODULES)
    assert all(isinstance(main.commands[name], click.Command) for name in COMMAND_MODULES)
    proc = fastsync("no-such-command")
    assert proc.returncode == 1 and b"No such command 'no-such-command'" in proc.stderr


# ---- TLS contexts ---------------------------------------------------------------------------------

def test_tls_verify_false_context_loads_no_ca_bundle():
    from fastsync.options import TransportOptions
    from fastsync.registry.tls import LazyCAContext, ssl_context

    ctx = ssl_context("127.0.0.1:1", TransportOptions(tls_verify=False))
    assert not isinstance(ctx, LazyCAContext) and ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0


def test_verifying_context_loads_the_system_cas_at_its_first_handshake():
    from fastsync.registry.tls import LazyCAContext

    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    ctx = LazyCAContext(ssl.PROTOCOL_TLS_CLIENT)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0
    ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.org")
    assert ctx.cert_store_stats()["x509_ca"] == system


def _fresh_python(code: str) -> str:
    """What `code` prints in a new interpreter with this tree first on the path (it must exit 0)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-800:]
    return proc.stdout.strip()


def test_aiohttp_imported_without_loading_cas_and_with_a_lazy_default_context():
    code = (
        "import ssl\n"
        "from fastsync.registry.tls import LazyCAContext, import_aiohttp\n"
        "import_aiohttp()\n"
        "import aiohttp.connector as c\n"
        "assert isinstance(c._SSL_CONTEXT_VERIFIED, LazyCAContext)\n"
        "assert 'set_default_verify_paths' not in ssl.SSLContext.__dict__\n"
        "print(ssl.create_default_context().cert_store_stats()['x509_ca'] ==\n"
        "      ssl.create_default_context().cert_store_stats()['x509_ca'])\n"
    )
    assert _fresh_python(code) == "True"


def test_a_lazy_context_loads_the_system_cas_even_while_aiohttp_imports_in_a_thread():
    """import_aiohttp switches SSLContext's CA loads off while it imports; a handshake on the loop at
    that moment (an early ping) waits for the import to end instead of loading nothing."""
    code = (
        "import ssl, sys, threading, time\n"
        "from fastsync.registry.tls import LazyCAContext, import_aiohttp\n"
        "system = ssl.create_default_context().cert_store_stats()['x509_ca']\n"
        "t = threading.Thread(target=import_aiohttp); t.start()\n"
        "while 'aiohttp' not in sys.modules: time.sleep(0)\n"
        "ctx = LazyCAContext(ssl.PROTOCOL_TLS_CLIENT); ctx.load_system_cas()\n"
        "t.join()\n"
        "print(system > 0 and ctx.cert_store_stats()['x509_ca'] == system)\n"
    )
    assert _fresh_python(code) == "True"


def test_tls_registry_is_reached_through_a_lazy_context(tls_registry, tmp_path):
    """A verifying request after the lazy CA load: the registry's CA from --cert-dir plus the system's."""
    proc = fastsync("list-tags", "--cert-dir", str(tls_registry.cert_dir), f"docker://{tls_registry.host}/none")
    assert b"certificate" not in proc.stderr and b"fetching tags list" in proc.stderr, proc.stderr


# ---- one ping per registry and TLS settings; one credential lookup per registry -------------------

def test_clients_of_one_session_share_the_ping(tamper_proxy):
    from fastsync.options import Credentials, TransportOptions
    from fastsync.session import Session

    async def go() -> list[str]:
        async with Session() as s:
            a = s.registry(tamper_proxy.host, TransportOptions(tls_verify=False))
            b = s.registry(tamper_proxy.host, TransportOptions(tls_verify=False, creds=Credentials("u", "p")))
            assert a is not b
            return [await a.ping(), await b.ping()]

    tamper_proxy.requests.clear()
    bases = asyncio.run(go())
    assert bases == [f"http://{tamper_proxy.host}"] * 2
    assert [(r.method, r.path) for r in tamper_proxy.requests] == [("GET", "/v2/")]


def _auth_file(tmp_path: Path, auths: dict) -> str:
    import base64

    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {k: {"auth": base64.b64encode(v.encode()).decode()}
                                          for k, v in auths.items()}}))
    return str(path)


def test_registry_credentials_once_unless_namespaced_keys(tmp_path, monkeypatch):
    from fastsync.options import Credentials, TransportOptions
    from fastsync.registry import authfile
    from fastsync.registry.auth import credentials_for, registry_credentials

    monkeypatch.setenv("HOME", str(tmp_path))
    plain = TransportOptions(authfile=_auth_file(tmp_path, {"reg.example:5000": "u:p", "other.example": "x:y"}))
    assert registry_credentials("reg.example:5000", plain) == (False, Credentials("u", "p"))
    assert credentials_for("reg.example:5000", "team/app", plain) == Credentials("u", "p")
    scoped = TransportOptions(authfile=_auth_file(tmp_path, {"reg.example:5000": "u:p",
                                                           "reg.example:5000/team": "t:q"}))
    assert registry_credentials("reg.example:5000", scoped) == (True, None)
    assert credentials_for("reg.example:5000", "team/app", scoped) == Credentials("t", "q")
    assert registry_credentials("reg.example:5000", TransportOptions(no_creds=True)) == (False, None)
    assert authfile.has_namespaced_keys("other.example", scoped.authfile) is False
