"""`fastsync sync` end to end against real registries, with skopeo sync as the reference for naming."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from support import images
from support.registry import Registry

from helpers import assert_one_line_error, fastsync, ok, on_terminal

TAGS = ("latest", "1.0.0", "1.2.0", "2.0.0", "edge")


@pytest.fixture(scope="module")
def src() -> Iterator[Registry]:
    """A registry with a few repositories, each image under several tags (shared base layers)."""
    reg = Registry().start()
    sample = images.sample_set()
    try:
        for tag in TAGS:
            reg.push_image(sample["v2s2"], "apps/web", tag)
        reg.push_image(sample["shared"], "apps/api", "1.0.0")
        reg.push_image(sample["oci"], "apps/api", "1.1.0")
        reg.push_image(sample["multiarch"], "base/multi", "3.1")
        yield reg
    finally:
        reg.cleanup()


def sync(*args: str, cache: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return fastsync("sync", "--cache", str(cache), *args, timeout=timeout)


def names_under(root: Path) -> set[str]:
    """Image directories (holding manifest.json) below root, relative."""
    return {str(p.parent.relative_to(root)) for p in root.rglob("manifest.json")}


def dirs_skopeo_creates(run_skopeo: Callable, args: list[str], out: Path) -> set[str]:
    """skopeo sync --dry-run --dest dir creates each destination directory: their names are its naming."""
    run_skopeo("sync", "--dry-run", *args, str(out))
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())}


def manifest_digest_at(reg: Registry, repo: str, ref: str) -> str:
    resp = reg.request("HEAD", f"/v2/{repo}/manifests/{ref}", headers={
        "Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.docker.distribution.manifest.list.v2+json"})
    assert resp.status == 200, (repo, ref, resp.status)
    return resp.headers["Docker-Content-Digest"]


# ---- naming, compared with skopeo sync -----------------------------------------------------------

@pytest.mark.parametrize("scoped", [False, True])
def test_docker_to_dir_names_like_skopeo(src: Registry, run_skopeo: Callable, tmp_path: Path, scoped: bool) -> None:
    flags = ["--src", "docker", "--dest", "dir", "--src-tls-verify=false"] + (["--scoped"] if scoped else [])
    want = dirs_skopeo_creates(run_skopeo, flags + [f"{src.host}/apps/web"], tmp_path / "skopeo")
    ok(sync(*flags, f"{src.host}/apps/web", str(tmp_path / "ours"), cache=tmp_path / "cache"))
    assert names_under(tmp_path / "ours") == want
    assert len(want) == len(TAGS)


def test_yaml_names_like_skopeo(src: Registry, run_skopeo: Callable, tmp_path: Path) -> None:
    digest = images.sample_set()["oci"].digest
    (tmp_path / "sync.yml").write_text(f"""
{src.host}:
  tls-verify: false
  images:
    apps/web: ["1.0.0", "edge"]
    apps/api: ["{digest}"]
    base/multi: []
  images-by-tag-regex:
    apps/web: ^2\\.
""")
    wants = {}
    for scoped in (False, True):
        flags = ["--src", "yaml", "--dest", "dir"] + (["--scoped"] if scoped else [])
        want = wants[scoped] = dirs_skopeo_creates(run_skopeo, flags + [str(tmp_path / "sync.yml")],
                                                   tmp_path / f"skopeo{scoped}")
        out = tmp_path / f"ours{scoped}"
        ok(sync(*flags, str(tmp_path / "sync.yml"), str(out), cache=tmp_path / "cache"))
        assert names_under(out) == want, scoped
    assert wants[False] == {"web:1.0.0", "web:edge", "web:2.0.0", f"api@{digest}", "multi:3.1"}
    assert wants[True] == {f"{src.host}/apps/web:1.0.0", f"{src.host}/apps/web:edge", f"{src.host}/apps/web:2.0.0",
                           f"{src.host}/apps/api@{digest}", f"{src.host}/base/multi:3.1"}


def test_dir_to_docker_names_like_skopeo(src: Registry, run_skopeo: Callable, registry_factory: Callable,
                                         tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    ok(sync("--src", "docker", "--dest", "dir", "--scoped", "--src-tls-verify=false", f"{src.host}/apps/api",
            str(tree), cache=tmp_path / "cache"))
    base = tmp_path / "tree" / src.host
    theirs, ours = registry_factory(), registry_factory()
    run_skopeo("sync", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", str(base), f"{theirs.host}/m")
    ok(sync("--src", "dir", "--dest", "docker", "--dest-tls-verify=false", str(base), f"{ours.host}/m",
            cache=tmp_path / "cache"))
    want = theirs.request("GET", "/v2/_catalog").json()
    assert ours.request("GET", "/v2/_catalog").json() == want == {"repositories": ["m/api"]}
    assert sorted(ours.request("GET", "/v2/m/api/tags/list").json()["tags"]) == \
        sorted(theirs.request("GET", "/v2/m/api/tags/list").json()["tags"]) == ["1.0.0", "1.1.0"]
    for tag in ("1.0.0", "1.1.0"):
        assert manifest_digest_at(ours, "m/api", tag) == manifest_digest_at(theirs, "m/api", tag)


def test_scoped_docker_destination_with_a_port_fails_like_skopeo(src: Registry, tmp_path: Path) -> None:
    proc = sync("--src", "docker", "--dest", "docker", "--scoped", "--src-tls-verify=false",
                "--dest-tls-verify=false", f"{src.host}/apps/web:edge", f"{src.host}/copy", cache=tmp_path / "c")
    assert_one_line_error(proc, "Cannot obtain a valid image reference", code=1)


# ---- copying, re-syncing, the cache ---------------------------------------------------------------

def test_docker_to_docker_then_resync_is_up_to_date(src: Registry, fresh_registry: Registry, tmp_path: Path) -> None:
    args = ["--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
            f"{src.host}/apps/web", f"{fresh_registry.host}/mirror"]
    proc = ok(sync(*args, "--report", str(tmp_path / "r1.json"), "--digestfile", str(tmp_path / "digests"),
                   cache=tmp_path / "cache"))
    err = proc.stderr.decode()
    assert f'msg="Copying image ref 5/5" from="docker://{src.host}/apps/web:' in err   # skopeo's log lines
    assert 'msg="Synced 5 images from 1 sources"' in err
    want = images.sample_set()["v2s2"].digest
    for tag in TAGS:
        assert manifest_digest_at(fresh_registry, "mirror/web", tag) == want
    r1 = json.loads((tmp_path / "r1.json").read_bytes())
    assert r1["totals"]["copied"] == 5 and r1["totals"]["failed"] == 0
    # the shared blobs moved once for the five tags
    assert sum(i["blobs_transferred"] for i in r1["images"]) == 3
    assert (tmp_path / "digests").read_text().count(want) == 5
    ok(sync(*args, "--report", str(tmp_path / "r2.json"), cache=tmp_path / "cache"))
    r2 = json.loads((tmp_path / "r2.json").read_bytes())
    assert r2["totals"]["up-to-date"] == 5 and r2["totals"]["bytes_transferred"] == 0


def test_resync_reads_source_manifests_with_head_only(src: Registry, fresh_registry: Registry, tmp_path: Path) -> None:
    from support.proxy import TamperProxy

    with TamperProxy(src.url) as proxy:
        args = ["--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"{proxy.host}/apps/web", f"{fresh_registry.host}/mirror"]
        ok(sync(*args, cache=tmp_path / "cache"))
        proxy.requests.clear()
        ok(sync(*args, cache=tmp_path / "cache"))
        gets = [r for r in proxy.requests if r.method == "GET" and "/manifests/" in r.path]
        # the attachment probes (cosign tags, the referrers fallback tag) are HEADs too
        heads = [r for r in proxy.requests if r.method == "HEAD" and "/manifests/" in r.path
                 and "/manifests/sha256-" not in r.path]
    assert gets == [] and len(heads) == len(TAGS)


def test_dir_destination_hardlinks_each_blob_from_the_cache(src: Registry, tmp_path: Path) -> None:
    args = ["--src", "docker", "--dest", "dir", "--src-tls-verify=false", f"{src.host}/apps/api"]
    ok(sync(*args, str(tmp_path / "one"), cache=tmp_path / "cache"))
    ok(sync(*args, str(tmp_path / "two"), cache=tmp_path / "cache"))
    blobs = tmp_path / "cache" / "blobs" / "sha256"
    inodes = {p.stat().st_ino for p in blobs.iterdir()}
    for out in ("one", "two"):
        for d in (tmp_path / out).iterdir():
            for f in d.iterdir():
                if len(f.name) == 64:
                    assert f.stat().st_ino in inodes, f
                    assert f.stat().st_mode & 0o222 == 0, oct(f.stat().st_mode)   # read-only (root ignores it)
    shared = images.sample_set()["shared"].layers[0].digest.split(":")[1]
    assert (blobs / shared).stat().st_nlink >= 3   # cache + one + two


def test_all_copies_every_instance_of_an_index(src: Registry, fresh_registry: Registry, tmp_path: Path) -> None:
    ok(sync("--src", "docker", "--dest", "docker", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
            f"{src.host}/base/multi:3.1", f"{fresh_registry.host}/m", cache=tmp_path / "cache"))
    assert manifest_digest_at(fresh_registry, "m/multi", "3.1") == images.sample_set()["multiarch"].digest


def test_dry_run_copies_nothing(src: Registry, fresh_registry: Registry, tmp_path: Path) -> None:
    proc = ok(sync("--src", "docker", "--dest", "docker", "--dry-run", "--src-tls-verify=false",
                   "--dest-tls-verify=false", f"{src.host}/apps/web", f"{fresh_registry.host}/m",
                   "--report", str(tmp_path / "r.json"), cache=tmp_path / "cache"))
    assert proc.stderr.decode().count('msg="Would have copied image ref') == len(TAGS)
    assert 'level=warning msg="Running in dry-run mode"' in proc.stderr.decode()
    assert fresh_registry.request("GET", "/v2/_catalog").json()["repositories"] == []
    assert json.loads((tmp_path / "r.json").read_bytes())["totals"]["planned"] == len(TAGS)


def test_keep_going_finishes_the_rest_and_exits_non_zero(src: Registry, fresh_registry: Registry,
                                                         tmp_path: Path) -> None:
    (tmp_path / "sync.yml").write_text(f"{src.host}:\n  tls-verify: false\n  images:\n"
                                       f"    apps/web: [edge, missing-tag, latest]\n")
    base = ["--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", str(tmp_path / "sync.yml"),
            f"{fresh_registry.host}/k"]
    proc = sync(*base, "--keep-going", "--report", str(tmp_path / "r.json"), cache=tmp_path / "cache")
    assert proc.returncode == 1
    assert "failed for 1 of 3 images" in proc.stderr.decode().splitlines()[-1]
    report = json.loads((tmp_path / "r.json").read_bytes())
    assert {i["status"] for i in report["images"]} == {"copied", "failed"}
    assert sorted(fresh_registry.request("GET", "/v2/k/web/tags/list").json()["tags"]) == ["edge", "latest"]
    proc = sync("-q", *base, cache=tmp_path / "cache")
    assert_one_line_error(proc, "Error: copying ref", "missing-tag", code=1)


# ---- other inputs ---------------------------------------------------------------------------------

def test_list_file_with_sections_and_src_registry(src: Registry, fresh_registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "images-list.txt").write_text(
        "##web-images\napps/web:1.0.0\n# a comment\n\n##api-images\napps/api:1.1.0\n"
        f"{src.host}/base/multi:3.1\n")
    ok(sync("--src", "list", "--dest", "docker", "--src-registry", src.host, "--src-tls-verify=false",
            "--dest-tls-verify=false", str(tmp_path / "images-list.txt"), "--dest-registry",
            f"{fresh_registry.host}/lib", cache=tmp_path / "cache"))
    assert sorted(fresh_registry.request("GET", "/v2/_catalog").json()["repositories"]) == \
        ["lib/apps/api", "lib/apps/web", "lib/base/multi"]
    assert manifest_digest_at(fresh_registry, "lib/apps/api", "1.1.0") == images.sample_set()["oci"].digest


def test_image_syncer_config_and_auth_file(src: Registry, registry_factory: Callable, tmp_path: Path) -> None:
    dst = registry_factory(auth="htpasswd", username="syncer", password="pw-123")
    (tmp_path / "images.json").write_text(json.dumps({
        f"{src.host}/apps/web:1.0.0,edge": f"{dst.host}/team/web",
        f"{src.host}/apps/api:1.1.0": f"{dst.host}/team/api:renamed",
        f"{src.host}/base/multi": "",
    }))
    (tmp_path / "auth.json").write_text(json.dumps({
        src.host: {"insecure": True},
        f"{dst.host}/team": {"username": "syncer", "password": "${SYNCER_PW}", "insecure": True},
        dst.host: {"username": "nobody", "password": "wrong", "insecure": True},
    }))
    proc = fastsync("sync", "--cache", str(tmp_path / "cache"), "--src", "image-syncer", "--dest", "docker",
                    "--auth", str(tmp_path / "auth.json"), str(tmp_path / "images.json"), f"{dst.host}/team",
                    env={"SYNCER_PW": "pw-123"})
    ok(proc)
    assert sorted(dst.request("GET", "/v2/team/web/tags/list").json()["tags"]) == ["1.0.0", "edge"]
    assert dst.request("GET", "/v2/team/api/tags/list").json()["tags"] == ["renamed"]
    assert dst.request("GET", "/v2/team/multi/tags/list").json()["tags"] == ["3.1"]


def test_yaml_semver_and_regex_select_tags(src: Registry, fresh_registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "s.yml").write_text(f"{src.host}:\n  tls-verify: false\n  images-by-semver:\n"
                                    f"    apps/web: '>= 1.1, < 3'\n  images-by-tag-regex:\n    apps/api: '^1\\.0'\n")
    ok(sync("--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", str(tmp_path / "s.yml"),
            f"{fresh_registry.host}/s", cache=tmp_path / "cache"))
    assert sorted(fresh_registry.request("GET", "/v2/s/web/tags/list").json()["tags"]) == ["1.2.0", "2.0.0"]
    assert fresh_registry.request("GET", "/v2/s/api/tags/list").json()["tags"] == ["1.0.0"]


# ---- bad input: one line, non-zero ----------------------------------------------------------------

@pytest.mark.parametrize("args,fragment", [
    (["--src", "ftp", "--dest", "docker", "x", "y"], "not a valid source transport"),
    (["--src", "docker", "--dest", "tape", "x", "y"], "not a valid destination transport"),
    (["--src", "dir", "--dest", "dir", "/tmp", "/tmp/x"], "'dir' to 'dir' not implemented"),
    (["--src", "yaml", "--dest", "docker", "/nonexistent/sync.yml", "h/x"], "reading sync file"),
    (["--src", "dir", "--dest", "docker", "/nonexistent/dir", "h/x"], "Invalid source directory"),
    (["--src", "docker", "--dest", "docker", "Bad_Name!", "h/x"], "Cannot obtain a valid image reference"),
    (["--src", "list", "--dest", "docker", "LIST", "h/x"], "LIST"),
    (["--src", "yaml", "--dest", "docker", "YAML", "h/x"], "Failed to unmarshal"),
    (["--src", "image-syncer", "--dest", "docker", "NUMBERS", "h/x"], "expected a mapping of source to destination"),
    (["--src", "image-syncer", "--dest", "docker", "NESTED", "h/x"], "the destination must be a name"),
])
def test_bad_input_is_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("registry:\n  images: [unclosed\n")
    (tmp_path / "numbers.json").write_text('{"images": 5}')
    (tmp_path / "nested.json").write_text('{"a.io/x/y:1": {"k": 1}}')
    (tmp_path / "bad.list").write_text("ok/image:1\nNot A Reference\n")
    files = {"YAML": "bad.yml", "LIST": "bad.list", "NUMBERS": "numbers.json", "NESTED": "nested.json"}
    args = [str(tmp_path / files[a]) if a in files else a for a in args]
    fragment = str(tmp_path / "bad.list") if fragment == "LIST" else fragment
    assert_one_line_error(sync(*args, cache=tmp_path / "cache"), fragment)


def test_unlistable_repository_is_a_warning_with_keep_going(src: Registry, fresh_registry: Registry,
                                                            tmp_path: Path) -> None:
    (tmp_path / "s.yml").write_text(f"{src.host}:\n  tls-verify: false\n  images:\n    apps/nope: []\n"
                                    f"    apps/web: [edge]\n")
    base = ["--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", str(tmp_path / "s.yml"),
            f"{fresh_registry.host}/w"]
    proc = ok(sync("--keep-going", *base, cache=tmp_path / "cache"))
    assert f'level=warning msg="skipping {src.host}/apps/nope' in proc.stderr.decode()
    assert fresh_registry.request("GET", "/v2/w/web/tags/list").json()["tags"] == ["edge"]
    assert_one_line_error(sync(*base, cache=tmp_path / "cache"), "apps/nope", code=1)


def test_progress_bars_on_a_terminal(src: Registry, fresh_registry: Registry, tmp_path: Path) -> None:
    screen = on_terminal(["sync", "--cache", str(tmp_path / "c"), "--src", "docker", "--dest", "docker",
                          "--src-tls-verify=false", "--dest-tls-verify=false", f"{src.host}/apps/api",
                          f"{fresh_registry.host}/t"], columns=120)
    assert "Planned 2 images" in screen and "images" in screen and "bytes" in screen
    assert "Progress:" not in screen          # bars, not the plain lines


def test_help_names_every_source_and_destination_kind() -> None:
    from fastsync.sync.inputs import DEST_KINDS, SOURCE_KINDS
    text = " ".join(ok(fastsync("sync", "--help")).stdout.decode().split()).replace("- ", "-")  # unwrapped
    src_help = text.split("SOURCE kind:")[1].split("-d, --dest")[0]
    dest_help = text.split("DESTINATION kind:")[1].split("--scoped")[0]
    assert {k.strip() for k in src_help.replace("[required]", "").split(",")} == set(SOURCE_KINDS)
    assert {k.strip() for k in dest_help.replace("[required]", "").split(",")} == set(DEST_KINDS)
    bad = fastsync("sync", "--src", "tarball", "--dest", "dir", "x", "y")
    assert_one_line_error(bad, "'tarball' is not a valid source transport", "registry-storage", code=1)
