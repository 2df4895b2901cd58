"""containers-storage: signatures kept as containers/image keeps them (big data + metadata sizes),
read from what skopeo --sign-by stored and written so that skopeo reads them back."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from fastsync.engine.job import Job
from fastsync.transports import parse_image_name
from fastsync.session import Session
from fastsync.transports.cstorage.destination import StorageDestination

from support.fixtures_cstorage import *  # noqa: F401,F403
from support.layer_tars import Member, layer_tar, write_image_dir

EMAIL = "signer@fastsync.test"


@pytest.fixture
def gnupg(tmp_path: Path) -> Iterator[Path]:
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
                    f"fastsync test <{EMAIL}>", "ed25519", "sign", "never"], check=True, capture_output=True)
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)


def _payload(sig: bytes, home: Path) -> dict:
    out = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--decrypt"], input=sig, capture_output=True,
                         check=True)
    return json.loads(out.stdout)


def test_signatures_skopeo_stored_are_read(store, gnupg, tmp_path, run_skopeo):
    digest, _, _ = write_image_dir(tmp_path / "src", [layer_tar([Member("a", data=b"a")])])
    proc = subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--sign-by", EMAIL, f"dir:{tmp_path / 'src'}",
                           store.name("localhost/cs/signed:1")], capture_output=True,
                          env={"GNUPGHOME": str(gnupg), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr

    async def read() -> list[bytes]:
        async with Session() as session:
            src = await parse_image_name(store.name("localhost/cs/signed:1")).open_source(session, None)
            try:
                return await src.get_signatures()
            finally:
                await src.close()
    sigs = asyncio.run(read())
    assert len(sigs) == 1
    payload = _payload(sigs[0], gnupg)
    assert payload["critical"]["image"]["docker-manifest-digest"] == digest
    assert payload["critical"]["identity"]["docker-reference"] == "localhost/cs/signed:1"


def test_signatures_fastsync_stores_are_what_skopeo_reads(store, gnupg, tmp_path, run_skopeo, monkeypatch):
    # an OCI image with uncompressed layers: skopeo copies it out unchanged, so it keeps its signatures
    digest, _, _ = write_image_dir(tmp_path / "src", [layer_tar([Member("a", data=b"a")])], gzip_layers=False,
                                   oci=True)
    claim = json.dumps({"critical": {"identity": {"docker-reference": "localhost/cs/ours:1"},
                                     "image": {"docker-manifest-digest": digest},
                                     "type": "atomic container signature"}, "optional": {}}).encode()
    blob = subprocess.run(["gpg", "--homedir", str(gnupg), "--batch", "--sign", "--local-user", EMAIL], input=claim,
                          capture_output=True, check=True).stdout
    commit = StorageDestination.commit

    async def signed_commit(self: StorageDestination) -> None:
        await self.put_signatures([blob])          # what the engine's signature step hands over
        await commit(self)
    monkeypatch.setattr(StorageDestination, "commit", signed_commit)

    async def copy() -> None:
        async with Session() as session:
            await Job(session).copy(parse_image_name(f"dir:{tmp_path / 'src'}"),
                                    parse_image_name(store.name("localhost/cs/ours:1")))
    asyncio.run(copy())
    meta = json.loads(store.images()[0]["metadata"])
    assert meta == {"signature-sizes": [len(blob)], "signatures-sizes": {digest: [len(blob)]}}
    run_skopeo("copy", store.name("localhost/cs/ours:1"), f"dir:{tmp_path / 'out'}")
    assert (tmp_path / "out" / "signature-1").read_bytes() == blob
