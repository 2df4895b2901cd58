"""skopeo reads what fastsync writes, fastsync reads what skopeo writes, and their outputs agree."""
from __future__ import annotations

import json

import pytest

from support import images
from fastsync.registry.wire import next_link
from helpers import assert_dir_holds, fastsync, ok

INSPECTABLE = ["v2s2", "oci", "zstd", "multiarch", "list", "empty"]


def _docker(seeded, name):
    repo, tag = images.sample_repo(name)
    return f"docker://{seeded.host}/{repo}:{tag}"


@pytest.mark.parametrize("name", INSPECTABLE + ["schema1"])
def test_inspect_matches_skopeo_for_a_registry_image(name, seeded_registry, run_skopeo):
    ref = _docker(seeded_registry, name)
    ours = json.loads(ok(fastsync("inspect", "--tls-verify=false", ref)).stdout)
    theirs = json.loads(run_skopeo("inspect", "--tls-verify=false", ref).stdout)
    assert {k: ours.get(k) for k in theirs} == theirs
    assert ours["Name"] == f"{seeded_registry.host}/{images.sample_repo(name)[0]}"


@pytest.mark.parametrize("name", INSPECTABLE)
def test_inspect_raw_and_config_match_skopeo(name, sample_images, run_skopeo, dir_of):
    ref = f"dir:{dir_of(sample_images[name])}"
    assert ok(fastsync("inspect", "--raw", ref)).stdout == run_skopeo("inspect", "--raw", ref).stdout
    assert ok(fastsync("inspect", "--config", "--raw", ref)).stdout == \
        run_skopeo("inspect", "--config", "--raw", ref).stdout
    assert ok(fastsync("inspect", "--config", ref)).stdout == run_skopeo("inspect", "--config", ref).stdout
    assert ok(fastsync("inspect", ref)).stdout.startswith(b"{\n    \"Digest\"")


@pytest.mark.parametrize("name", list(images.sample_set()))
def test_manifest_digest_matches_skopeo(name, sample_images, tmp_path, run_skopeo):
    path = tmp_path / "manifest.json"
    path.write_bytes(sample_images[name].manifest)
    ours = ok(fastsync("manifest-digest", str(path))).stdout.decode().strip()
    assert ours == run_skopeo("manifest-digest", str(path)).stdout.decode().strip() == sample_images[name].digest


def test_list_tags_matches_skopeo(seeded_registry, registry, sample_images, tmp_path, dir_of, run_skopeo):
    src = dir_of(sample_images["v2s2"])
    for tag in ("1.0", "1.1", "latest"):
        ok(fastsync("copy", "--dest-tls-verify=false", f"dir:{src}", f"docker://{registry.host}/tags/app:{tag}"))
    repo = f"docker://{registry.host}/tags/app"
    ours = json.loads(ok(fastsync("list-tags", "--tls-verify=false", repo)).stdout)
    theirs = json.loads(run_skopeo("list-tags", "--tls-verify=false", repo).stdout)
    assert ours == theirs    # same order too: both keep the registry's
    assert ours["Repository"] == f"{registry.host}/tags/app" and sorted(ours["Tags"]) == ["1.0", "1.1", "latest"]


def test_tag_pagination_links_are_followed():
    """distribution 2.8 does not paginate (3.x and Docker Hub do), so the Link parsing is checked alone."""
    base = "https://registry.example:5000"
    assert next_link('</v2/a/tags/list?last=t04&n=5>; rel="next"', base) == \
        "https://registry.example:5000/v2/a/tags/list?last=t04&n=5"
    assert next_link('<https://other/v2/a/tags/list?last=x>; rel="next"', base) == "https://other/v2/a/tags/list?last=x"
    assert next_link("", base) is None
    assert next_link('</v2/a/tags/list?last=x>; rel="prev"', base) is None


def test_skopeo_reads_fastsync_oci_and_dir_output(sample_images, seeded_registry, tmp_path, run_skopeo):
    ref = _docker(seeded_registry, "multiarch")
    ok(fastsync("copy", "--all", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'l'}:m"))
    ok(fastsync("copy", "--all", "--src-tls-verify=false", ref, f"dir:{tmp_path / 'd'}"))
    run_skopeo("copy", "--all", "--preserve-digests", f"oci:{tmp_path / 'l'}:m", f"dir:{tmp_path / 'from-oci'}")
    run_skopeo("copy", "--all", "--preserve-digests", f"dir:{tmp_path / 'd'}", f"dir:{tmp_path / 'from-dir'}")
    assert_dir_holds(tmp_path / "from-oci", sample_images["multiarch"])
    assert_dir_holds(tmp_path / "from-dir", sample_images["multiarch"])


def test_fastsync_reads_skopeo_oci_and_dir_output(sample_images, seeded_registry, tmp_path, run_skopeo):
    ref = _docker(seeded_registry, "list")
    run_skopeo("copy", "--all", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'l'}:m")   # skopeo converts
    run_skopeo("copy", "--all", "--src-tls-verify=false", ref, f"dir:{tmp_path / 'd'}")
    ok(fastsync("copy", "--all", f"dir:{tmp_path / 'd'}", f"dir:{tmp_path / 'from-dir'}"))
    assert_dir_holds(tmp_path / "from-dir", sample_images["list"])
    # skopeo converted the Docker list (configs included) to OCI; fastsync must keep its bytes as they are
    ok(fastsync("copy", "--all", f"oci:{tmp_path / 'l'}:m", f"dir:{tmp_path / 'from-oci'}"))
    run_skopeo("copy", "--all", "--preserve-digests", f"oci:{tmp_path / 'l'}:m", f"dir:{tmp_path / 'skopeo-dir'}")
    ours = {p.name: p.read_bytes() for p in (tmp_path / "from-oci").iterdir()}
    theirs = {p.name: p.read_bytes() for p in (tmp_path / "skopeo-dir").iterdir()}
    assert ours == theirs and len(ours) > 5


def test_delete_removes_the_manifest_for_skopeo_too(registry, sample_images, dir_of, run_skopeo):
    ref = f"docker://{registry.host}/del/app:1"
    ok(fastsync("copy", "--dest-tls-verify=false", f"dir:{dir_of(sample_images['v2s2'])}", ref))
    run_skopeo("inspect", "--tls-verify=false", "--raw", ref)
    ok(fastsync("delete", "--tls-verify=false", ref))
    proc = run_skopeo("inspect", "--tls-verify=false", "--raw", ref, check=False)
    assert proc.returncode != 0 and b"manifest unknown" in proc.stderr


def test_delete_an_oci_ref_keeps_the_others(sample_images, tmp_path, dir_of, run_skopeo):
    layout = tmp_path / "l"
    ok(fastsync("copy", f"dir:{dir_of(sample_images['oci'])}", f"oci:{layout}:a"))
    ok(fastsync("copy", f"dir:{dir_of(sample_images['zstd'])}", f"oci:{layout}:b"))
    ok(fastsync("delete", f"oci:{layout}:a"))
    index = json.loads((layout / "index.json").read_bytes())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["b"]
    assert run_skopeo("inspect", "--raw", f"oci:{layout}:b").stdout == sample_images["zstd"].manifest
