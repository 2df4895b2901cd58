"""A registry's ping answer (scheme, auth challenge) remembered across runs in the cache directory
(issue 17): the next run skips the https attempt and GET /v2/, falls back to the full ping in
skopeo's order when the remembered answer fails (a registry that switched to TLS or back), and
ignores a corrupt, stale or mismatched file."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Optional

import pytest

from fastsync.errors import NetworkError
from fastsync.model import Digest
from fastsync.options import TransportOptions
from fastsync.registry.client import RegistryClient
from fastsync.registry.pings import TTL, PingMemo
from fastsync.session import Session

PLAIN = TransportOptions(tls_verify=False)


def head(host: str, memo_file: Path, opts: TransportOptions = PLAIN, tag: str = "nope") -> Optional[Digest]:
    """One run: a fresh session and memo (as a new process has), a manifest HEAD on `host`."""
    async def go() -> Optional[Digest]:
        async with Session() as s:
            client = RegistryClient(s.http, host, opts, pings=PingMemo(str(memo_file)))
            return await client.head_manifest("memo/app", tag)
    return asyncio.run(go())


def entries(memo_file: Path) -> dict:
    return json.loads(memo_file.read_text())["entries"]


def write_memo(memo_file: Path, host: str, base: str, insecure: bool = True, at: Optional[float] = None,
               challenge: Optional[dict] = None) -> None:
    key = f"{host} {'insecure' if insecure else 'verify'}"
    memo_file.write_text(json.dumps({"version": 1, "entries": {
        key: {"base": base, "at": time.time() if at is None else at, "challenge": challenge}}}))


def seen(proxy) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in proxy.requests]


def test_a_plain_http_answer_is_remembered_and_the_next_run_skips_the_ping(tamper_proxy, tmp_path):
    memo = tmp_path / "pings.json"
    tamper_proxy.clear()
    assert head(tamper_proxy.host, memo) is None
    assert seen(tamper_proxy) == [("GET", "/v2/"), ("HEAD", "/v2/memo/app/manifests/nope")]
    assert entries(memo)[f"{tamper_proxy.host} insecure"]["base"] == f"http://{tamper_proxy.host}"
    written = memo.stat().st_mtime_ns

    tamper_proxy.clear()
    assert head(tamper_proxy.host, memo) is None
    assert seen(tamper_proxy) == [("HEAD", "/v2/memo/app/manifests/nope")]
    assert memo.stat().st_mtime_ns == written          # a confirmed answer is not written again


def test_a_verifying_client_never_uses_a_remembered_plain_http_answer(tamper_proxy, tmp_path):
    memo = tmp_path / "pings.json"
    write_memo(memo, tamper_proxy.host, f"http://{tamper_proxy.host}", insecure=True)
    tamper_proxy.clear()
    with pytest.raises(NetworkError, match="pinging container registry"):
        head(tamper_proxy.host, memo, TransportOptions())
    assert ("HEAD", "/v2/memo/app/manifests/nope") not in seen(tamper_proxy)
    # nor an insecure one written under the verifying key
    write_memo(memo, tamper_proxy.host, f"http://{tamper_proxy.host}", insecure=False)
    with pytest.raises(NetworkError, match="pinging container registry"):
        head(tamper_proxy.host, memo, TransportOptions())


def test_a_registry_that_switched_to_tls_is_pinged_again(tls_registry, tmp_path):
    """Remembered plain HTTP, now TLS (the server answers 400 to plain HTTP): the full ping runs,
    the HEAD is sent again over https, and the file says https from now on."""
    memo = tmp_path / "pings.json"
    write_memo(memo, tls_registry.host, f"http://{tls_registry.host}")
    assert head(tls_registry.host, memo) is None
    assert entries(memo)[f"{tls_registry.host} insecure"]["base"] == f"https://{tls_registry.host}"


def test_a_registry_that_switched_back_to_plain_http_is_pinged_again(tamper_proxy, tmp_path):
    memo = tmp_path / "pings.json"
    write_memo(memo, tamper_proxy.host, f"https://{tamper_proxy.host}")
    tamper_proxy.clear()
    assert head(tamper_proxy.host, memo) is None
    assert seen(tamper_proxy)[-2:] == [("GET", "/v2/"), ("HEAD", "/v2/memo/app/manifests/nope")]
    assert entries(memo)[f"{tamper_proxy.host} insecure"]["base"] == f"http://{tamper_proxy.host}"


def test_a_remembered_registry_that_is_down_fails_as_the_ping_would(tmp_path):
    memo = tmp_path / "pings.json"
    write_memo(memo, "127.0.0.1:9", "http://127.0.0.1:9")
    with pytest.raises(NetworkError, match=r"pinging container registry 127\.0\.0\.1:9: .*refused"):
        head("127.0.0.1:9", memo)
    assert "127.0.0.1:9 insecure" not in entries(memo)      # the wrong answer is forgotten


@pytest.mark.parametrize("content", [
    "{not json", "[]", '{"version": 1, "entries": []}', '{"version": 99, "entries": {}}',
    '{"version": 1, "entries": {"HOST insecure": {"base": "http://HOST", "at": "yesterday", "challenge": null}}}',
    '{"version": 1, "entries": {"HOST insecure": {"base": "http://elsewhere:1", "at": NOW, "challenge": null}}}',
    '{"version": 1, "entries": {"HOST insecure": {"base": "http://HOST", "at": NOW, "challenge": {"scheme": 1}}}}',
    '{"version": 1, "entries": {"HOST insecure": {"base": "http://HOST", "at": STALE, "challenge": null}}}',
])
def test_a_corrupt_stale_or_mismatched_memo_is_ignored_and_replaced(tamper_proxy, tmp_path, content):
    memo = tmp_path / "pings.json"
    memo.write_text(content.replace("HOST", tamper_proxy.host).replace("STALE", str(time.time() - TTL - 1))
                    .replace("NOW", str(time.time())))
    tamper_proxy.clear()
    assert head(tamper_proxy.host, memo) is None
    assert seen(tamper_proxy) == [("GET", "/v2/"), ("HEAD", "/v2/memo/app/manifests/nope")]
    assert entries(memo)[f"{tamper_proxy.host} insecure"]["base"] == f"http://{tamper_proxy.host}"


def test_a_remembered_challenge_that_changed_is_answered_by_the_registry(tamper_proxy, tmp_path):
    """A remembered bearer challenge whose token server is gone: the full ping finds the registry
    needs no auth now, and the HEAD goes through."""
    memo = tmp_path / "pings.json"
    write_memo(memo, tamper_proxy.host, f"http://{tamper_proxy.host}",
               challenge={"scheme": "bearer", "params": {"realm": "http://127.0.0.1:9/token", "service": "x"}})
    tamper_proxy.clear()
    assert head(tamper_proxy.host, memo) is None
    assert seen(tamper_proxy) == [("GET", "/v2/"), ("HEAD", "/v2/memo/app/manifests/nope")]
    assert entries(memo)[f"{tamper_proxy.host} insecure"]["challenge"] is None


def test_a_sync_with_a_cache_remembers_its_registries_and_without_one_does_not(registry, tmp_path):
    from helpers import fastsync

    cache = tmp_path / "cache"
    for extra in (["--cache", str(cache)], ["--no-cache"]):
        proc = fastsync("sync", "-q", "--src-tls-verify=false", "--retry-times", "0", *extra, "-s", "docker",
                        "-d", "dir", f"{registry.host}/none/such:1", str(tmp_path / "out"))
        assert proc.returncode == 1 and b"manifest unknown" in proc.stderr, proc.stderr
    assert list(entries(cache / "pings.json")) == [f"{registry.host} insecure"]
    assert entries(cache / "pings.json")[f"{registry.host} insecure"]["base"] == f"http://{registry.host}"


# ---- the early ping: sent before aiohttp is imported (registry/bareping) ---------------------------

EARLY = ("import json, os, sys\n"
         "import fastsync.registry.bareping as bp\n"
         "inner, seen = bp._get_v2, []\n"
         "async def traced(host, scheme, *a):\n"
         "    seen.append([scheme, hasattr(sys.modules.get('aiohttp'), 'ClientSession')])\n"
         "    return await inner(host, scheme, *a)\n"
         "bp._get_v2 = traced\n"
         "import atexit\n"
         "atexit.register(lambda: open(os.environ['SEEN_OUT'], 'w').write(json.dumps(seen)))\n"
         "from fastsync.cli import main\n"
         "main(sys.argv[1:])\n")


def early_sync(tmp_path: Path, *args: str):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "seen.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")]), "SEEN_OUT": str(out)}
    proc = subprocess.run([sys.executable, "-c", EARLY, "sync", "-q", "--retry-times", "0", *args], env=env,
                          capture_output=True, timeout=60)
    return proc, json.loads(out.read_text())


def test_a_sync_pings_before_aiohttp_is_imported_and_only_once(tamper_proxy, tmp_path):
    tamper_proxy.clear()
    proc, seen_early = early_sync(tmp_path, "--src-tls-verify=false", "--no-cache", "-s", "docker", "-d", "dir",
                                  f"{tamper_proxy.host}/none/such:1", str(tmp_path / "out"))
    assert proc.returncode == 1 and b"manifest unknown" in proc.stderr, proc.stderr
    assert seen_early == [["https", False], ["http", False]]      # skopeo's order, aiohttp not there yet
    pings = [r for r in tamper_proxy.requests if r.path == "/v2/"]
    assert len(pings) == 1 and pings[0].headers.get("Connection", "").lower() == "close"
    assert pings[0].headers["User-Agent"].startswith("fastsync")
    assert [r.path for r in tamper_proxy.requests] == ["/v2/", "/v2/none/such/manifests/1"]


def test_an_early_ping_that_fails_leaves_the_error_to_the_full_ping(tmp_path):
    proc, seen_early = early_sync(tmp_path, "--src-tls-verify=false", "--no-cache", "-s", "docker", "-d", "dir",
                                  "127.0.0.1:9/none/such:1", str(tmp_path / "out"))
    assert seen_early == [["https", False], ["http", False]]
    assert proc.returncode == 1
    assert b"pinging container registry 127.0.0.1:9: cannot connect to 127.0.0.1:9: connection refused" \
        in proc.stderr, proc.stderr


def test_an_early_verifying_ping_loads_the_cas_while_aiohttp_imports(tls_registry, sample_images, tmp_path):
    """An https ping on the loop while aiohttp imports in a thread: the registry's certificate verifies
    (its CA from --src-cert-dir; that the system's are loaded too is test_startup's check)."""
    tls_registry.push_image(sample_images["v2s2"], "early/app", "1")
    proc, seen_early = early_sync(tmp_path, "--src-cert-dir", str(tls_registry.cert_dir), "--no-cache", "-s",
                                  "docker", "-d", "dir", f"{tls_registry.host}/early/app:1", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert seen_early == [["https", False]]
    assert (tmp_path / "out" / "app:1" / "manifest.json").read_bytes() == sample_images["v2s2"].manifest
