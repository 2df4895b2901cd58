"""containers-storage: against real podman 4.3 and skopeo 1.9 on private vfs stores."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from support import images

from helpers import assert_one_line_error, fastsync, ok
from support.fixtures_cstorage import *  # noqa: F401,F403
from support.podman_store import PodmanStore


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _saved_layer_digests(store: PodmanStore, name: str, tmp: Path) -> list[str]:
    """`podman save` the image (docker-archive) and digest its layer tars, in manifest order."""
    out = tmp / f"saved-{os.urandom(4).hex()}.tar"
    store.podman("save", "-o", str(out), name)
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        return ["sha256:" + hashlib.sha256(tf.extractfile(p).read()).hexdigest() for p in manifest[0]["Layers"]]


def _dir_blobs(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.name not in ("manifest.json", "version")}


def test_registry_to_store_podman_sees_the_image(seeded_registry, store, tmp_path):
    image = images.sample_set()["v2s2"]
    repo, tag = images.sample_repo("v2s2")
    ok(fastsync("copy", "--src-tls-verify=false", f"docker://{seeded_registry.host}/{repo}:{tag}",
                store.name("localhost/cs/v2s2:1")))
    config_digest = str(image.config.digest)
    listed = json.loads(store.podman("images", "--format", "json").stdout)
    assert [i["Id"] for i in listed] == [config_digest.split(":", 1)[1]]
    assert listed[0]["Names"] == ["localhost/cs/v2s2:1"]
    info = json.loads(store.podman("image", "inspect", "localhost/cs/v2s2:1").stdout)[0]
    assert info["Digest"] == image.digest
    assert info["RootFS"]["Layers"] == list(image.diff_ids)
    assert _saved_layer_digests(store, "localhost/cs/v2s2:1", tmp_path) == list(image.diff_ids)


def test_skopeo_reads_what_fastsync_wrote(run_skopeo, store, dir_image, tmp_path):
    image = images.make_image(31, layers=3)
    ok(fastsync("copy", f"dir:{dir_image(image)}", store.name("localhost/cs/w:1")))
    run_skopeo("copy", store.name("localhost/cs/w:1"), f"dir:{tmp_path / 'by-skopeo'}")
    blobs = _dir_blobs(tmp_path / "by-skopeo")
    assert set(blobs) == {d.split(":", 1)[1] for d in image.diff_ids} | {image.config.digest.split(":", 1)[1]}
    for name, data in blobs.items():
        assert "sha256:" + hashlib.sha256(data).hexdigest() == "sha256:" + name


def test_fastsync_reads_what_skopeo_wrote_with_skopeos_digests(run_skopeo, store, dir_image, tmp_path):
    image = images.make_image(32, layers=2, fmt="oci")
    run_skopeo("copy", f"dir:{dir_image(image)}", store.name("localhost/cs/r:1"))
    ok(fastsync("copy", store.name("localhost/cs/r:1"), f"dir:{tmp_path / 'by-fastsync'}"))
    run_skopeo("copy", store.name("localhost/cs/r:1"), f"dir:{tmp_path / 'by-skopeo'}")
    assert _dir_blobs(tmp_path / "by-fastsync") == _dir_blobs(tmp_path / "by-skopeo")
    ours = json.loads((tmp_path / "by-fastsync" / "manifest.json").read_bytes())
    theirs = json.loads((tmp_path / "by-skopeo" / "manifest.json").read_bytes())
    assert ours["config"] == theirs["config"]
    assert [(d["digest"], d["size"]) for d in ours["layers"]] == [(d["digest"], d["size"]) for d in theirs["layers"]]
    # the layers are uncompressed and labelled so (skopeo keeps the stored manifest's gzip label)
    assert {d["mediaType"] for d in ours["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}


def test_podman_pulled_image_to_registry_and_back(seeded_registry, registry, store, store_factory, run_skopeo,
                                                  tmp_path):
    image = images.sample_set()["oci"]
    repo, tag = images.sample_repo("oci")
    src = f"{seeded_registry.host}/{repo}:{tag}"
    store.podman("pull", "-q", "--tls-verify=false", src)
    ok(fastsync("copy", "--dest-tls-verify=false", store.name(src), f"docker://{registry.host}/cs/pushed:1"))
    run_skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/cs/pushed:1", f"dir:{tmp_path / 'back'}")
    back = json.loads((tmp_path / "back" / "manifest.json").read_bytes())
    assert back["config"]["digest"] == image.config.digest
    # served plain from the store, gzipped for the registry (as skopeo pushes them)
    layers = [(tmp_path / "back" / d["digest"].split(":", 1)[1]).read_bytes() for d in back["layers"]]
    assert all(data[:2] == b"\x1f\x8b" for data in layers)
    assert ["sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() for data in layers] == list(image.diff_ids)
    # and podman takes it back into a second store with the same image id and diff_ids
    other = store_factory()
    other.podman("pull", "-q", "--tls-verify=false", f"{registry.host}/cs/pushed:1")
    info = json.loads(other.podman("image", "inspect", f"{registry.host}/cs/pushed:1").stdout)[0]
    assert info["Id"] == image.config.digest.split(":", 1)[1]
    assert info["RootFS"]["Layers"] == list(image.diff_ids)


def test_shared_layers_are_stored_once_and_reused(store, dir_image):
    base = images.make_image(40, layers=2)
    child = images.make_image(41, layers=3, base_seed=40, base_layers=2)
    ok(fastsync("copy", f"dir:{dir_image(base)}", store.name("localhost/cs/base:1")))
    proc = ok(fastsync("copy", f"dir:{dir_image(child)}", store.name("localhost/cs/child:1")))
    err = proc.stdout.decode()      # the copy report goes to stdout, as skopeo's
    for shared in child.layers[:2]:
        assert f"Copying blob {shared.digest} skipped: already exists" in err
    layers = store.layers()
    assert len(layers) == 3
    assert sorted(r["diff-digest"] for r in layers) == sorted(set(base.diff_ids) | set(child.diff_ids))
    names = sorted(n for i in json.loads(store.podman("images", "--format", "json").stdout) for n in i["Names"])
    assert names == ["localhost/cs/base:1", "localhost/cs/child:1"]


def test_same_image_under_a_second_name_and_a_moved_tag(store, dir_image):
    one, two = images.make_image(50, layers=1), images.make_image(51, layers=1)
    ok(fastsync("copy", f"dir:{dir_image(one)}", store.name("localhost/cs/t:a")))
    ok(fastsync("copy", f"dir:{dir_image(one)}", store.name("localhost/cs/t:b")))
    assert [sorted(i["names"]) for i in store.images()] == [["localhost/cs/t:a", "localhost/cs/t:b"]]
    ok(fastsync("copy", f"dir:{dir_image(two)}", store.name("localhost/cs/t:a")))
    by_id = {i["id"]: i.get("names", []) for i in store.images()}
    assert by_id[one.config.digest.split(":", 1)[1]] == ["localhost/cs/t:b"]
    assert by_id[two.config.digest.split(":", 1)[1]] == ["localhost/cs/t:a"]


def test_inspect_and_delete(store, dir_image, run_skopeo):
    base = images.make_image(60, layers=1)
    child = images.make_image(61, layers=2, base_seed=60, base_layers=1)
    ok(fastsync("copy", f"dir:{dir_image(base)}", store.name("localhost/cs/d:base")))
    ok(fastsync("copy", f"dir:{dir_image(child)}", store.name("localhost/cs/d:child")))
    info = json.loads(ok(fastsync("inspect", store.name("localhost/cs/d:child"))).stdout)
    assert info["Digest"] == child.digest                    # the stored manifest, as skopeo shows it
    assert info["Layers"] == [layer.digest for layer in child.layers]
    ok(fastsync("delete", store.name("localhost/cs/d:child")))
    names = [n for i in json.loads(store.podman("images", "--format", "json").stdout) for n in i["Names"]]
    assert names == ["localhost/cs/d:base"]
    assert [r["diff-digest"] for r in store.layers()] == [base.diff_ids[0]]      # the shared layer stays
    by_id = ok(fastsync("delete", store.name(base.config.digest.split(":", 1)[1][:12])))
    assert by_id.returncode == 0 and store.images() == [] and store.layers() == []
    proc = fastsync("delete", store.name("localhost/cs/d:gone"))
    assert_one_line_error(proc, "does not resolve to an image ID", code=1)


def test_image_that_is_not_there_and_a_path_that_is_not_a_store(store, dir_image, tmp_path):
    proc = fastsync("inspect", store.name("localhost/cs/missing:1"))
    assert_one_line_error(proc, "containers-storage")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "precious.txt").write_text("x")
    src = dir_image(images.make_image(70, layers=1))
    proc = fastsync("copy", f"dir:{src}", f"containers-storage:[vfs@{junk}+{tmp_path / 'run'}]localhost/x:1")
    assert_one_line_error(proc, "not a containers-storage store")
    assert sorted(p.name for p in junk.iterdir()) == ["precious.txt"]
    proc = fastsync("inspect", "containers-storage:[vfs@relative/path+/run]x")
    assert_one_line_error(proc, "not absolute", code=1)


@pytest.mark.parametrize("sample", ["zstd", "multiarch", "list", "empty"])
def test_other_samples_from_the_registry(seeded_registry, store, tmp_path, sample):
    image = images.sample_set()[sample]
    repo, tag = images.sample_repo(sample)
    ok(fastsync("copy", "-q", "--src-tls-verify=false", f"docker://{seeded_registry.host}/{repo}:{tag}",
                store.name(f"localhost/cs/{sample}:1")))
    chosen = image.children[0] if image.children else image        # the amd64 instance of an index
    info = json.loads(store.podman("image", "inspect", f"localhost/cs/{sample}:1").stdout)[0]
    assert info["Id"] == chosen.config.digest.split(":", 1)[1]
    assert info["Digest"] == chosen.digest
    assert (info["RootFS"].get("Layers") or []) == list(chosen.diff_ids)
    if chosen.diff_ids and sample != "zstd":          # podman save cannot write zstd images (docker-archive)
        assert _saved_layer_digests(store, f"localhost/cs/{sample}:1", tmp_path) == list(chosen.diff_ids)
    elif chosen.diff_ids:
        ok(fastsync("copy", "-q", store.name(f"localhost/cs/{sample}:1"), f"dir:{tmp_path / 'out'}"))
        for d in chosen.diff_ids:
            assert _sha(tmp_path / "out" / d.split(":", 1)[1]) == d


def test_a_known_diff_under_a_new_parent_is_rebuilt_from_the_store(store, dir_image, tmp_path):
    first = images.make_image(90, layers=2)
    ok(fastsync("copy", "-q", f"dir:{dir_image(first)}", store.name("localhost/cs/first:1")))
    # the same top layer (same blob) on another bottom layer: the blob is not read again
    other = images.make_image(91, layers=1)
    top = first.layers[1]
    man = json.loads(first.manifest)
    conf = json.loads(first.config.data)
    conf["rootfs"]["diff_ids"] = [other.diff_ids[0], first.diff_ids[1]]
    conf_raw = json.dumps(conf, separators=(",", ":")).encode()
    conf_digest = "sha256:" + hashlib.sha256(conf_raw).hexdigest()
    man["config"].update(digest=conf_digest, size=len(conf_raw))
    man["layers"] = [json.loads(other.manifest)["layers"][0], man["layers"][1]]
    src = tmp_path / "mixed"
    src.mkdir()
    (src / "version").write_bytes(b"Directory Transport Version: 1.1\n")
    (src / "manifest.json").write_bytes(json.dumps(man).encode())
    (src / conf_digest.split(":")[1]).write_bytes(conf_raw)
    (src / other.layers[0].digest.split(":")[1]).write_bytes(other.layers[0].data)
    # the top layer's blob is deliberately absent from the source: it must come from the store
    ok(fastsync("copy", "-q", f"dir:{src}", store.name("localhost/cs/mixed:1")))
    assert not (src / top.digest.split(":")[1]).exists()
    assert len(store.layers()) == 4
    assert _saved_layer_digests(store, "localhost/cs/mixed:1", tmp_path) == [other.diff_ids[0], first.diff_ids[1]]


def test_sync_both_ways_and_store_to_store(store, store_factory, dir_image, tmp_path):
    a, b = images.make_image(100, layers=1), images.make_image(101, layers=2)
    ok(fastsync("copy", "-q", f"dir:{dir_image(a)}", store.name("localhost/app/a:1")))
    ok(fastsync("copy", "-q", f"dir:{dir_image(b)}", store.name("localhost/app/b:2")))
    ok(fastsync("copy", "-q", f"dir:{dir_image(b)}", store.name("localhost/other/c:3")))
    ok(fastsync("sync", "-q", "--src", "containers-storage", "--dest", "dir", store.spec, str(tmp_path / "out")))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a:1", "b:2", "c:3"]
    assert json.loads((tmp_path / "out" / "b:2" / "manifest.json").read_bytes())["config"]["digest"] == \
        b.config.digest
    second = store_factory()
    ok(fastsync("sync", "-q", "--scoped", "--src", "containers-storage", "--dest", "containers-storage",
                f"{store.spec}localhost/app", f"{second.spec}mirror.local"))       # a namespace: a/ and b/
    second.podman("images")
    names = sorted(n for i in second.images() for n in i["names"])
    assert names == ["mirror.local/localhost/app/a:1", "mirror.local/localhost/app/b:2"]
    third = store_factory()
    ok(fastsync("sync", "-q", "--src", "dir", "--dest", "containers-storage", str(tmp_path / "out"), third.spec))
    third.podman("images")
    names = sorted(n for i in third.images() for n in i["names"])
    assert names == ["docker.io/library/a:1", "docker.io/library/b:2", "docker.io/library/c:3"]
    report = tmp_path / "again.json"
    ok(fastsync("sync", "--src", "dir", "--dest", "containers-storage", "--report", str(report),
                str(tmp_path / "out"), third.spec))
    statuses = [img["status"] for img in json.loads(report.read_bytes())["images"]]
    assert statuses == ["up-to-date"] * 3, statuses


def test_sync_from_a_registry_fills_the_cache_and_a_second_store_extracts_from_it(seeded_registry, store,
                                                                                    store_factory, tmp_path):
    repo, tag = images.sample_repo("oci")
    src = f"{seeded_registry.host}/{repo}:{tag}"
    cache = tmp_path / "cache"
    for target, report in ((store, "r1.json"), (store_factory(), "r2.json")):
        ok(fastsync("sync", "-q", "--src-tls-verify=false", "--cache", str(cache), "--report",
                    str(tmp_path / report), "--src", "docker", "--dest", "containers-storage", src,
                    f"{target.spec}localhost/cached"))
        assert _saved_layer_digests(target, f"localhost/cached/{repo.rsplit('/', 1)[-1]}:{tag}", tmp_path) == \
            list(images.sample_set()["oci"].diff_ids)
    totals = json.loads((tmp_path / "r2.json").read_text())["totals"]
    assert (totals["blobs_from_cache"], totals["blobs_transferred"]) == (4, 0)    # config + 3 layers


def test_writing_as_a_user_is_refused_naming_podman_unshare(store, monkeypatch):
    import asyncio

    from fastsync.errors import Unsupported
    from fastsync.transports import parse_image_name
    from fastsync.session import Session

    ref = parse_image_name(store.name("localhost/cs/user:1"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    async def open_it() -> None:
        async with Session() as session:
            await ref.open_destination(session, None)
    with pytest.raises(Unsupported, match="podman unshare"):
        asyncio.run(open_it())
    assert not store.graphroot.exists()


def test_inspect_matches_skopeo_for_an_image_podman_pulled(seeded_registry, store, run_skopeo):
    repo, tag = images.sample_repo("v2s2")
    src = f"{seeded_registry.host}/{repo}:{tag}"
    store.podman("pull", "-q", "--tls-verify=false", src)
    ours = json.loads(ok(fastsync("inspect", store.name(src))).stdout)
    theirs = json.loads(run_skopeo("inspect", store.name(src)).stdout)
    ours.pop("LayersData", None)
    assert ours == theirs
    assert theirs["Digest"] == images.sample_set()["v2s2"].digest
    assert ok(fastsync("inspect", "--raw", store.name(src))).stdout == \
        run_skopeo("inspect", "--raw", store.name(src)).stdout
