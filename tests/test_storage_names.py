"""registry-storage names: besides ROOT:NAME[:TAG|@DIGEST], ROOT/NAME[:TAG|@DIGEST] inside a tree that
exists, a bare ROOT as a sync DESTINATION, and refusals that quote the name as written."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import images
from helpers import ROOT, assert_dir_holds, assert_one_line_error, fastsync, ok

V2 = Path("docker/registry/v2")


@pytest.fixture(scope="module")
def sample_dirs(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sample-dirs")
    for name in ("v2s2", "multiarch"):
        images.write_dir(images.sample_set()[name], base / name)
    return base


@pytest.fixture(scope="module")
def tree(tmp_path_factory, sample_dirs) -> Path:
    """samples/v2s2:latest and samples/multiarch:latest, written with the colon form (read-only)."""
    root = tmp_path_factory.mktemp("names") / "st"
    for name in ("v2s2", "multiarch"):
        ok(fastsync("copy", "-q", "--all", f"dir:{sample_dirs / name}",
                    f"registry-storage:{root}:samples/{name}:latest"))
    return root


def repositories(root: Path) -> list[str]:
    base = root / V2 / "repositories"
    return sorted(str(p.parent.relative_to(base)) for p in base.rglob("_manifests"))


@pytest.mark.parametrize("suffix", ["samples/v2s2:latest", "samples/v2s2", "samples/v2s2@{digest}",
                                    "./samples//v2s2:latest"])
def test_copy_and_inspect_from_root_slash_name(suffix, tree, sample_dirs, tmp_path):
    image = images.sample_set()["v2s2"]
    name = f"registry-storage:{tree}/{suffix.format(digest=image.digest)}"
    out = tmp_path / "out"
    ok(fastsync("copy", "-q", name, f"dir:{out}"))
    assert_dir_holds(out, image)
    doc = json.loads(ok(fastsync("inspect", name)).stdout)
    assert doc["Digest"] == image.digest
    raw = ok(fastsync("inspect", "--raw", name)).stdout
    assert raw == image.manifest


def test_relative_root_slash_name_and_colon_form_agree(tree, tmp_path):
    rel = Path("..") / tree.relative_to(tree.parent.parent)      # run from a sibling directory
    cwd = tree.parent.parent / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = {"PYTHONPATH": str(ROOT)}
    outs = [subprocess.run([sys.executable, "-m", "fastsync", "inspect", "--raw", f"registry-storage:{n}"],
                           capture_output=True, cwd=cwd, env={**os.environ, **env})
            for n in (f"{rel}/samples/multiarch:latest", f"{rel}:samples/multiarch:latest")]
    assert outs[0].returncode == 0 and outs[0].stdout == outs[1].stdout == images.sample_set()["multiarch"].manifest


def test_copy_into_an_existing_tree_with_root_slash_name(tree, sample_dirs, tmp_path):
    root = tmp_path / "st"
    shutil.copytree(tree, root)                       # the module's tree stays as it is
    ok(fastsync("copy", "-q", f"dir:{sample_dirs / 'v2s2'}", f"registry-storage:{root}/team/app:1"))
    assert repositories(root) == ["samples/multiarch", "samples/v2s2", "team/app"]
    assert not (root / "team").exists()
    out = tmp_path / "back"
    ok(fastsync("copy", "-q", f"registry-storage:{root}:team/app:1", f"dir:{out}"))
    assert_dir_holds(out, images.sample_set()["v2s2"])


def test_sync_source_root_slash_name(tree, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    ok(fastsync("sync", "-q", "--all", "--src", "registry-storage", "--dest", "dir", f"{tree}/samples/v2s2",
                str(tmp_path / "all"), env=env))
    assert_dir_holds(tmp_path / "all" / "samples" / "v2s2:latest", images.sample_set()["v2s2"])
    ok(fastsync("sync", "-q", "--all", "--src", "registry-storage", "--dest", "dir", f"{tree}/samples/multiarch:latest",
                str(tmp_path / "one"), env=env))
    assert [str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").glob("*/*")] == \
        ["samples/multiarch:latest"]


def _sync_to_bare_root(tree: Path, dest: Path, tmp_path: Path):
    lst = tmp_path / "images.list"
    lst.write_text("samples/v2s2:latest\nsamples/multiarch:latest\n")
    return fastsync("sync", "-q", "--all", "--src", "registry-storage", "--dest", "registry-storage", str(tree),
                    str(dest), env={"XDG_CACHE_HOME": str(tmp_path / "cache")})


def test_sync_to_a_bare_root_of_an_existing_tree(tree, sample_dirs, tmp_path):
    dest = tmp_path / "out"
    ok(fastsync("copy", "-q", f"dir:{sample_dirs / 'v2s2'}", f"registry-storage:{dest}:other/app:1"))
    ok(_sync_to_bare_root(tree, dest, tmp_path))
    assert repositories(dest) == ["other/app", "samples/multiarch", "samples/v2s2"]
    ok(_sync_to_bare_root(tree, Path(f"{dest}/"), tmp_path))     # a trailing slash is the same ROOT


def test_sync_to_a_bare_root_of_a_new_tree(tree, tmp_path):
    """`sync --dest registry-storage SRC ./out`: a bare ROOT is `ROOT:` (fastsync.sync.inputs applies the
    kind's own DESTINATION spelling, SYNC_DEST.destination, before joining names)."""
    dest = tmp_path / "out"
    ok(_sync_to_bare_root(tree, dest, tmp_path))
    assert repositories(dest) == ["samples/multiarch", "samples/v2s2"]
    proc = fastsync("sync", "-q", "--src", "registry-storage", "--dest", "registry-storage", str(tree), str(dest),
                    env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    ok(proc)   # a re-run into the same bare ROOT is up to date


@pytest.mark.parametrize("spelled,extra", [
    ("{root}/docker:latest", "latest"),
    ("{root}/docker/registry:samples/v2s2", "samples/v2s2"),
])
def test_refusal_quotes_the_name_once(spelled, extra, tree):
    name = "registry-storage:" + spelled.format(root=tree)
    line = assert_one_line_error(fastsync("inspect", name), "is inside the storage root", code=1)
    assert line.startswith(f"Error: {name}: "), line
    assert f"{extra}:latest" not in line and line.count(extra) == 1, line
    assert f"registry-storage:{tree}:NAME[:TAG]" in line and f"registry-storage:{tree}/NAME[:TAG]" in line
