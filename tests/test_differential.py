"""One table of invocations, each run through skopeo 1.9.3 and through fastsync on the same inputs
(a real registry, an authenticated one, dir:/oci:/docker-archive: made here), comparing the exit
status, stdout, and the stderr wording scripts grep. A difference found is a new row.

A row: (id, argv, compare). argv may use {reg} {auth} (registry hosts), {dir} {oci} {arch}
{untagged} (inputs), {missing} (a path that does not exist), {out} (a fresh path, one per tool).
`compare` is one of:
- "stdout": byte-equal;
- "lines": the same stdout lines in any order (skopeo prints the `Copying blob` lines of a registry
  source from concurrent goroutines, in no fixed order);
- "json": equal after dropping the keys fastsync adds on purpose (README "Differences from skopeo");
- "sync-log": sync's logrus lines scripts parse (`Running in dry-run mode`, `Copying image ref N/M` /
  `Would have copied image ref N/M` with their `from`, `Synced N images from M sources`), without
  their time, and stdout's copy reports as "lines";
- "exit": the status only;
- anything else is an error fragment: both fail with the same status and both stderrs hold it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT
from support import images

# fastsync's inspect prints LayersData and (when set) Variant, as newer skopeo releases do (1.9.3
# does not): dropped before comparing
EXTRA_INSPECT_KEYS = {"LayersData", "Variant"}
V2S2, MULTI = "samples/v2s2:latest", "samples/multiarch:latest"
ZERO = "sha256:" + "0" * 64

ROWS: list[tuple[str, str, str]] = [
    # ---- inspect ----------------------------------------------------------------------------
    ("inspect-dir", "inspect dir:{dir}", "json"),
    ("inspect-raw-dir", "inspect --raw dir:{dir}", "stdout"),
    ("inspect-config-raw-dir", "inspect --config --raw dir:{dir}", "stdout"),
    ("inspect-oci", "inspect oci:{oci}:t", "json"),
    ("inspect-registry", "inspect --tls-verify=false docker://{reg}/" + V2S2, "json"),
    ("inspect-registry-no-tags", "inspect -n --tls-verify=false docker://{reg}/" + V2S2, "json"),
    ("inspect-raw-index", "inspect --raw --tls-verify=false docker://{reg}/" + MULTI, "stdout"),
    ("inspect-arm64-instance", "inspect --override-arch arm64 --tls-verify=false docker://{reg}/" + MULTI, "json"),
    ("inspect-global-flag-first", "--override-arch arm64 inspect --tls-verify=false docker://{reg}/" + MULTI, "json"),
    ("inspect-root-tls-verify", "--tls-verify=false inspect docker://{reg}/" + V2S2, "json"),
    ("list-tags-root-tls-verify", "--tls-verify=false list-tags docker://{reg}/samples/v2s2", "stdout"),
    ("inspect-config", "inspect --config --tls-verify=false docker://{reg}/" + V2S2, "stdout"),
    ("inspect-no-instance", "inspect --override-arch s390x --tls-verify=false docker://{reg}/" + MULTI,
     'choosing image instance: no image found in image index for architecture s390x, variant "", OS linux'),
    ("inspect-missing-tag", "inspect --tls-verify=false docker://{reg}/samples/v2s2:nope",
     "reading manifest nope in {reg}/samples/v2s2: manifest unknown: manifest unknown"),
    ("inspect-missing-repo", "inspect --tls-verify=false docker://{reg}/no/such:1",
     "reading manifest 1 in {reg}/no/such: manifest unknown: manifest unknown"),
    ("inspect-missing-digest", "inspect --tls-verify=false docker://{reg}/samples/v2s2@" + ZERO,
     "manifest unknown: manifest unknown"),
    ("inspect-unauthorized", "inspect --tls-verify=false docker://{auth}/samples/v2s2:1",
     "reading manifest 1 in {auth}/samples/v2s2: unauthorized: authentication required"),
    ("inspect-bad-password", "inspect --tls-verify=false --creds fastsync:wrong docker://{auth}/samples/v2s2:1",
     "unauthorized: authentication required"),
    ("inspect-plain-http-with-tls", "inspect docker://{reg}/" + V2S2, "pinging container registry {reg}"),
    ("inspect-refused", "inspect --tls-verify=false docker://127.0.0.1:1/x:1",
     "pinging container registry 127.0.0.1:1"),
    ("inspect-bad-transport", "inspect foo:bar", 'Invalid image name "foo:bar", unknown transport "foo"'),
    ("inspect-no-transport", "inspect nothing",
     'Invalid image name "nothing", expected colon-separated transport:reference'),
    ("inspect-missing-dir", "inspect dir:{missing}", "open {missing}/manifest.json: no such file or directory"),
    ("inspect-missing-oci", "inspect oci:{missing}:x", "open {missing}/index.json: no such file or directory"),
    ("inspect-missing-oci-ref", "inspect oci:{oci}:nope", 'no descriptor found for reference "nope"'),
    ("inspect-archive-missing-tag", "inspect docker-archive:{arch}:x/y:9", 'Tag "docker.io/x/y:9" not found'),
    ("inspect-archive-bad-index", "inspect docker-archive:{arch}:@5",
     "Invalid source index @5, only 1 manifest items available"),
    ("inspect-bad-retry-times", "inspect --retry-times=x dir:{dir}", "exit"),
    # ---- list-tags --------------------------------------------------------------------------
    ("list-tags-registry", "list-tags --tls-verify=false docker://{reg}/samples/v2s2", "stdout"),
    ("list-tags-archive", "list-tags docker-archive:{arch}", "stdout"),
    ("list-tags-untagged-archive", "list-tags docker-archive:{untagged}", "stdout"),
    ("list-tags-dir", "list-tags dir:{dir}", "Unsupported transport 'dir' for tag listing"),
    ("list-tags-unauthorized", "list-tags --tls-verify=false docker://{auth}/samples/v2s2", "exit"),
    ("list-tags-missing-repo", "list-tags --tls-verify=false docker://{reg}/no/such",
     "fetching tags list: invalid status code from registry 404 (Not Found)"),
    # ---- copy -------------------------------------------------------------------------------
    ("copy-dir-report", "copy dir:{dir} dir:{out}", "stdout"),
    ("copy-index-report", "copy --all --src-tls-verify=false docker://{reg}/" + MULTI + " oci:{out}:x", "lines"),
    ("copy-registry-report", "copy --src-tls-verify=false docker://{reg}/" + V2S2 + " dir:{out}", "lines"),
    ("copy-quiet", "copy -q dir:{dir} dir:{out}", "stdout"),
    ("copy-deprecated-tls-verify", "copy --tls-verify=false docker://{reg}/" + V2S2 + " dir:{out}", "lines"),
    ("sync-deprecated-tls-verify", "sync --tls-verify=false --src docker --dest dir {reg}/samples/v2s2 {out}",
     "sync-log"),
    ("copy-quiet-go-bool", "copy --quiet=true dir:{dir} dir:{out}", "stdout"),
    ("copy-debug-after-command", "copy --debug=false -q dir:{dir} dir:{out}", "stdout"),
    ("copy-missing-source", "copy --src-tls-verify=false docker://{reg}/samples/v2s2:nope dir:{out}",
     "reading manifest nope in {reg}/samples/v2s2: manifest unknown: manifest unknown"),
    ("copy-bad-multi-arch", "copy --multi-arch bogus dir:{dir} dir:{out}", 'unknown multi-arch option "bogus"'),
    ("copy-all-and-multi-arch", "copy --all --multi-arch all dir:{dir} dir:{out}",
     "Cannot use --all and --multi-arch flags together"),
    ("copy-untagged-additional-tag", "copy --additional-tag notag dir:{dir} docker-archive:{out}",
     "additional-tag 'notag' must be a tagged reference"),
    ("copy-unknown-flag", "copy --no-such-flag dir:{dir} dir:{out}", "exit"),
    # ---- sync ---------------------------------------------------------------------------------
    ("sync-log", "sync --src docker --dest dir --src-tls-verify=false {reg}/samples/v2s2 {out}", "sync-log"),
    ("sync-dry-run-log", "sync --dry-run --src docker --dest dir --src-tls-verify=false {reg}/samples/v2s2 {out}",
     "sync-log"),
    ("sync-missing-repo", "sync --src docker --dest dir --src-tls-verify=false {reg}/no/such {out}", "exit"),
    # ---- delete, manifest-digest, commands ------------------------------------------------------
    ("delete-missing-tag", "delete --tls-verify=false docker://{reg}/samples/v2s2:nope",
     "Unable to delete {reg}/samples/v2s2:nope. Image may not exist or is not stored with a v2 Schema in a v2 "
     "registry"),
    ("manifest-digest", "manifest-digest {dir}/manifest.json", "stdout"),
    ("manifest-digest-missing", "manifest-digest {missing}", "exit"),
    ("unknown-command", "no-such-command", "exit"),
    ("no-arguments", "", "exit"),
    ("help-unknown-topic", "help nosuch", "exit"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, seeded_registry: Any, auth_registry: Any,
           run_skopeo: Any) -> dict[str, str]:
    base = tmp_path_factory.mktemp("differential")
    sample = images.sample_set()
    images.write_dir(sample["v2s2"], base / "dir")
    run_skopeo("copy", "-q", f"dir:{base / 'dir'}", f"oci:{base / 'oci'}:t")
    run_skopeo("copy", "-q", "--additional-tag", "c/d:2", f"dir:{base / 'dir'}",
               f"docker-archive:{base / 'a.tar'}:a/b:1")
    run_skopeo("copy", "-q", f"dir:{base / 'dir'}", f"docker-archive:{base / 'u.tar'}")
    repo, tag = images.sample_repo("v2s2")
    auth_registry.push_image(sample["v2s2"], repo, "1")
    return {"reg": seeded_registry.host, "auth": auth_registry.host, "dir": str(base / "dir"),
            "oci": str(base / "oci"), "arch": str(base / "a.tar"), "untagged": str(base / "u.tar"),
            "missing": str(base / "missing"), "base": str(base)}


def _run(tool: list[str], argv: str, values: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*tool, "--insecure-policy", *argv.format(**values).split()], capture_output=True,
                          env=env, timeout=120, cwd=values["base"])


def skopeo_message(stderr: bytes) -> str:
    """The text of skopeo's logrus line(s) (`time=... level=fatal msg="..."`), Go quoting undone."""
    out = []
    for line in stderr.decode().splitlines():
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
        out.append(re.sub(r'\\(.)', r"\1", m.group(1)) if m else line)
    return "\n".join(out)


_SYNC_MSG = re.compile(r"Running in dry-run mode|(?:Copying|Would have copied) image ref|(?:Would have s|S)ynced ")


def sync_log(stderr: bytes) -> list[tuple[str, ...]]:
    """(level, msg, from) of sync's log lines that scripts parse."""
    out = []
    for line in stderr.decode().splitlines():
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        msg = fields.get("msg", "").strip('"')
        if _SYNC_MSG.match(msg):
            out.append((fields.get("level", ""), msg, fields.get("from", "")))
    return sorted(out)


def _json(out: bytes) -> Any:
    doc = json.loads(out)
    return {k: v for k, v in doc.items() if k not in EXTRA_INSPECT_KEYS} if isinstance(doc, dict) else doc


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_skopeo_and_fastsync_agree(row: tuple[str, str, str], inputs: dict[str, str], tmp_path: Path) -> None:
    name, argv, compare = row
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "no-auth.json"), "PYTHONPATH": str(ROOT)}
    theirs = _run(["skopeo"], argv, {**inputs, "out": str(tmp_path / "skopeo-out")}, env)
    ours = _run([sys.executable, "-m", "fastsync"], argv, {**inputs, "out": str(tmp_path / "fastsync-out")}, env)
    said = (f"\nskopeo ({theirs.returncode}): {theirs.stderr.decode()}"
            f"\nfastsync ({ours.returncode}): {ours.stderr.decode()}")
    assert ours.returncode == theirs.returncode, said
    if compare == "stdout":
        assert ours.stdout == theirs.stdout, said
    elif compare == "sync-log":
        assert sync_log(ours.stderr) == sync_log(theirs.stderr) and sync_log(theirs.stderr), said
        assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines()), said   # the copy reports
    elif compare == "lines":
        assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines()), said
    elif compare == "json":
        assert _json(ours.stdout) == _json(theirs.stdout), said
    elif compare != "exit":
        fragment = compare.format(**inputs)
        assert theirs.returncode != 0 and fragment in skopeo_message(theirs.stderr), said
        err = ours.stderr.decode()
        assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, said
