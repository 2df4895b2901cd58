"""Fixtures for the trust tests: a GnuPG home with keys, policy and registries.d writers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from support.gpgkeys import GPGHome, make_gpg_home


@pytest.fixture(scope="session")
def gpg_home() -> Iterator[GPGHome]:
    home = make_gpg_home()
    try:
        yield home
    finally:
        home.close()


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    """write_policy(default=[...], transports={...}) -> the path of a policy.json."""
    count = [0]

    def write(default: Any = None, transports: Any = None) -> Path:
        count[0] += 1
        doc: dict[str, Any] = {"default": default if default is not None else [{"type": "reject"}]}
        if transports is not None:
            doc["transports"] = transports
        path = tmp_path / f"policy{count[0]}.json"
        path.write_text(json.dumps(doc))
        return path
    return write


@pytest.fixture
def lookaside(tmp_path: Path) -> tuple[Path, Path]:
    """(a registries.d directory, the file: lookaside directory it names for every registry)."""
    regd, store = tmp_path / "registries.d", tmp_path / "lookaside"
    regd.mkdir()
    store.mkdir()
    (regd / "default.yaml").write_text(f"default-docker:\n  lookaside: file://{store}\n")
    return regd, store


def skopeo_message(stderr: bytes) -> str:
    """The message of skopeo's fatal log line (`level=fatal msg="..."`), unquoted."""
    import re

    text = stderr.decode(errors="replace")
    m = re.search(r'level=fatal msg="((?:[^"\\]|\\.)*)"', text)
    if not m:
        return text.strip()
    return json.loads(f'"{m.group(1)}"')
