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
