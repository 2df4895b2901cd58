"""Signed schema 1 images copied into docker-archive: and docker-daemon:, which store only v2s2: converted
as skopeo 1.9.3 converts them (config from the v1Compatibility history, throwaway layers dropped,
uncompressed digests as diff_ids), byte-compared with skopeo's output."""
from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any, Optional

import pytest

from fastsync.engine import gojson
from fastsync.engine import schema1 as conv
from fastsync.errors import ManifestError
from support import images
from support.imagemodel import EMPTY_GZIP_LAYER, layer_seed, make_layer
from support.schema1 import sign_schema1
from helpers import assert_one_line_error, fastsync, ok
from support.fixtures_daemon import *  # noqa: F401,F403
from support.fixtures_daemon import unique_name

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
REFUSED = "writing manifest: Unsupported manifest type, need a Docker schema 2 manifest"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_members(path: Path) -> dict[str, Any]:
    """name -> bytes (files) or ('->', target) (symlinks)."""
    out: dict[str, Any] = {}
    with tarfile.open(path) as tar:
        for ti in tar:
            f = tar.extractfile(ti) if ti.isfile() else None
            out[ti.name] = f.read() if f is not None else ("->", ti.linkname)
    return out


def both_archives(run_skopeo, source: str, tmp_path: Path, dest_name: str = "") -> tuple[dict, dict, str, str]:
    """fastsync's and skopeo's docker-archive of `source`: (members, members, digest, digest)."""
    suffix = f":{dest_name}" if dest_name else ""
    ours, theirs = tmp_path / "ours.tar", tmp_path / "skopeo.tar"
    ok(fastsync("copy", "-q", "--src-tls-verify=false", "--digestfile", str(tmp_path / "ours.digest"),
                source, f"docker-archive:{ours}{suffix}"))
    run_skopeo("copy", "-q", "--src-tls-verify=false", "--digestfile", str(tmp_path / "skopeo.digest"),
               source, f"docker-archive:{theirs}{suffix}")
    return (tar_members(ours), tar_members(theirs), (tmp_path / "ours.digest").read_text(),
            (tmp_path / "skopeo.digest").read_text())


def config_of(members: dict) -> tuple[str, bytes]:
    item, = json.loads(members["manifest.json"])
    return item["Config"], members[item["Config"]]


# ---- the sample image, from a registry -------------------------------------------------------

def test_registry_to_docker_archive_is_skopeos_archive(sample_images, seeded_registry, run_skopeo, tmp_path):
    image = sample_images["schema1"]
    repo, tag = images.sample_repo("schema1")
    ours, theirs, our_digest, their_digest = both_archives(
        run_skopeo, f"docker://{seeded_registry.host}/{repo}:{tag}", tmp_path, "example.com/s1/conv:v1")
    # every member byte for byte: config, manifest.json, repositories, legacy layer dirs, layers
    assert ours == theirs
    assert our_digest == their_digest             # the converted manifest, as skopeo wrote it
    item, = json.loads(ours["manifest.json"])
    assert item["RepoTags"] == ["example.com/s1/conv:v1"]
    config = json.loads(ours[item["Config"]])
    # the throwaway (empty) layers are in the history only; the diff_ids are the real layers'
    assert config["rootfs"] == {"type": "layers", "diff_ids": list(image.diff_ids)}
    assert [h.get("empty_layer", False) for h in config["history"]] == [False, True, False, True]
    assert item["Layers"] == [d.split(":", 1)[1] + ".tar" for d in image.diff_ids]
    assert config["history"][0]["created"] == "2023-01-01T00:00:00Z"      # re-marshalled by Go's time


def test_registry_to_daemon_gives_skopeos_image_id(sample_images, seeded_registry, podman_service, daemon_host,
                                                   run_skopeo, tmp_path):
    image = sample_images["schema1"]
    repo, tag = images.sample_repo("schema1")
    source = f"docker://{seeded_registry.host}/{repo}:{tag}"
    ours, theirs = f"localhost/{unique_name()}:1", f"localhost/{unique_name()}:1"
    ok(fastsync("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", daemon_host, source,
                f"docker-daemon:{ours}"))
    run_skopeo("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", daemon_host, source,
               f"docker-daemon:{theirs}")
    ids = podman_service.image_ids()
    assert ids[ours] == ids[theirs]
    inspected, = json.loads(podman_service.podman("image", "inspect", ours).stdout)
    assert inspected["RootFS"]["Layers"] == list(image.diff_ids)
    # the same config skopeo puts into an archive
    run_skopeo("copy", "-q", "--src-tls-verify=false", source, f"docker-archive:{tmp_path / 'a.tar'}")
    name, _ = config_of(tar_members(tmp_path / "a.tar"))
    assert ids[ours] == "sha256:" + name[:-len(".json")]


def test_sync_into_the_daemon_converts_again_from_the_cache(sample_images, seeded_registry, podman_service,
                                                             daemon_host, run_skopeo, tmp_path):
    repo, tag = images.sample_repo("schema1")
    listing = tmp_path / "images.txt"
    listing.write_text(f"{seeded_registry.host}/{repo}:{tag}\n")
    reference = f"localhost/{unique_name()}:1"
    run_skopeo("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", daemon_host,
               f"docker://{seeded_registry.host}/{repo}:{tag}", f"docker-daemon:{reference}")
    loaded = []
    for run in ("first", "cached"):     # the second run takes the decompressed layers from the cache
        prefix = f"localhost/{unique_name(run)}"
        ok(fastsync("sync", "-q", "--src", "list", "--dest", "docker-daemon", "--src-tls-verify=false",
                    "--dest-daemon-host", daemon_host, "--cache", str(tmp_path / "cache"), str(listing), prefix))
        loaded.append(f"{prefix}/{repo}:{tag}")
        cached = ok(fastsync("cache", "ls", "--cache", str(tmp_path / "cache"))).stdout.decode()
        assert all(d in cached for d in sample_images["schema1"].diff_ids)
    ids = podman_service.image_ids()
    assert ids[loaded[0]] == ids[loaded[1]] == ids[reference]


def test_dir_source_to_docker_archive_is_skopeos_archive(sample_images, dir_of, run_skopeo, tmp_path):
    source = f"dir:{dir_of(sample_images['schema1'])}"
    ours, theirs, our_digest, their_digest = both_archives(run_skopeo, source, tmp_path, "s1:dir")
    assert ours == theirs
    assert our_digest == their_digest


# ---- a schema 1 image with the corners of the conversion ---------------------------------------

def _v1(entry: dict) -> str:
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


OLD_CONFIG = {"Hostname": "h", "ExposedPorts": {"80/tcp": {}, "443/tcp": None}, "Env": None, "Cmd": "sh -c x",
              "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000, "Retries": 0},
              "Volumes": {"/data": {}}, "Entrypoint": [], "StopTimeout": 5, "Unknown": {"x": 1},
              "labels": {"b": "2", "a": None}, "OnBuild": [None, "RUN x"]}


def odd_schema1(seed: int, *, parent_break: bool = False, docker_version: str = "18.09.7",
                config: Optional[dict] = None) -> images.SampleImage:
    """Bottom-up: a layer; a throwaway entry whose blob is a real (non-empty) layer; the same history
    entry twice (containers/image keeps one); a layer with HTML characters, an author and a comment;
    an empty-layer top whose created time carries an offset and trailing zeros."""
    raw1, l1 = make_layer(layer_seed(seed, 0), 4096)
    raw2, l2 = make_layer(layer_seed(seed, 1), 4096)
    raw3, l3 = make_layer(layer_seed(seed, 2), 4096)
    ids = [hashlib.sha256(f"odd:{seed}:{i}".encode()).hexdigest() for i in range(5)]
    v1 = [
        {"id": ids[0], "created": "2019-05-06T07:08:09.123456789Z",
         "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file:x in /"]}},
        {"id": ids[1], "parent": ids[0], "created": "2019-05-06T07:08:10Z", "throwaway": True,
         "container_config": {"Cmd": ["/bin/sh -c #(nop) throwaway but not empty"]}},
        {"id": ids[2], "parent": "" if parent_break else ids[1], "created": "2019-05-06T07:08:11.5Z",
         "container_config": {"Cmd": ["/bin/sh -c", "echo '<a & b>' > /x"]}, "author": "Zoë <z@example.com>",
         "comment": "line\nbreak\u2028sep", "Size": 12},
        {"id": ids[3], "parent": ids[2], "created": "2019-05-06T09:08:12.000000000+02:00",
         "container_config": {"Cmd": None}, "throwaway": True},
    ]
    top = dict(v1[3])
    top.update({"architecture": "amd64", "os": "linux", "docker_version": docker_version,
                "config": config or {"Env": ["A=<b>&c"], "Cmd": ["sh"], "Labels": {"é": "ü"}},
                "container": "c" * 64, "layer_id": "sha256:" + "d" * 64, "parent_id": "sha256:" + "e" * 64})
    blobs_bottom_up = [l1, l2, l3, l3, EMPTY_GZIP_LAYER]
    history_bottom_up = [_v1(v1[0]), _v1(v1[1]), _v1(v1[2]), _v1(v1[2]), json.dumps(top, indent=2)]
    manifest = {"schemaVersion": 1, "name": "fastsync/odd", "tag": "v1", "architecture": "amd64",
                "fsLayers": [{"blobSum": sha(b)} for b in reversed(blobs_bottom_up)],
                "history": [{"v1Compatibility": h} for h in reversed(history_bottom_up)]}
    data, digest = sign_schema1(manifest, seed)
    blobs = {sha(b): images.Blob(sha(b), b, images.DOCKER_LAYER_GZIP) for b in blobs_bottom_up}
    return images.SampleImage(manifest=data, media_type=images.DOCKER_V2S1_SIGNED, digest=digest,
                              blobs=tuple(blobs.values()), diff_ids=(sha(raw1), sha(raw3)))


def pushed(registry, image: images.SampleImage) -> str:
    repo = f"odd/{uuid.uuid4().hex[:10]}"
    registry.push_image(image, repo, "v1")
    return f"docker://{registry.host}/{repo}:v1"


def test_throwaway_layers_and_repeated_entries_convert_as_skopeo_does(registry, run_skopeo, tmp_path):
    image = odd_schema1(31)
    ours, theirs, our_digest, their_digest = both_archives(run_skopeo, pushed(registry, image), tmp_path)
    assert ours == theirs
    assert our_digest == their_digest
    _, raw = config_of(ours)
    config = json.loads(raw)
    # the throwaway layer has content, yet it is no diff_id; the repeated entry is gone
    assert config["rootfs"]["diff_ids"] == list(image.diff_ids)
    assert [h["created"] for h in config["history"]] == [
        "2019-05-06T07:08:09.123456789Z", "2019-05-06T07:08:10Z", "2019-05-06T07:08:11.5Z",
        "2019-05-06T09:08:12+02:00"]
    assert b"\\u003ca \\u0026 b\\u003e" in raw and b"\\u2028" in raw
    for dropped in ("id", "parent", "parent_id", "layer_id", "throwaway", "Size"):
        assert dropped not in config


def test_an_inconsistent_schema1_history_fails_as_in_skopeo(registry, run_skopeo, tmp_path):
    source = pushed(registry, odd_schema1(32, parent_break=True))
    dest = tmp_path / "x.tar"
    proc = fastsync("copy", "-q", "--src-tls-verify=false", source, f"docker-archive:{dest}")
    assert_one_line_error(proc, "Invalid parent ID. Expected", code=1)
    assert not dest.exists()
    theirs = run_skopeo("copy", "-q", "--src-tls-verify=false", source, f"docker-archive:{dest}", check=False)
    assert theirs.returncode == 1 and b"Invalid parent ID. Expected" in theirs.stderr


@pytest.mark.parametrize("docker_version", ["1.8.2", "1.6.0", "18.09.7"])
def test_configs_of_old_dockers_are_re_encoded_as_skopeo_does(docker_version, registry, run_skopeo, tmp_path):
    """Before Docker 1.8.3 containers/image writes the config from its Go structures (unknown fields
    dropped, every field in struct order, nil lists as null); later ones keep the raw fields."""
    source = pushed(registry, odd_schema1(33, docker_version=docker_version, config=OLD_CONFIG))
    ours, theirs, our_digest, their_digest = both_archives(run_skopeo, source, tmp_path)
    assert ours == theirs
    assert our_digest == their_digest
    config = json.loads(config_of(ours)[1])
    assert ("Unknown" in config["config"]) == (docker_version == "18.09.7")


def test_a_config_field_of_the_wrong_type_fails_as_in_skopeo(registry, run_skopeo, tmp_path):
    source = pushed(registry, odd_schema1(34, config={"Env": "PATH=/bin"}))
    dest = tmp_path / "x.tar"
    proc = fastsync("copy", "-q", "--src-tls-verify=false", source, f"docker-archive:{dest}")
    assert_one_line_error(proc, "config.Env is not a list of strings", code=1)
    assert not dest.exists()
    theirs = run_skopeo("copy", "-q", "--src-tls-verify=false", source, f"docker-archive:{dest}", check=False)
    assert theirs.returncode == 1 and b"cannot unmarshal string" in theirs.stderr


# ---- refusals ---------------------------------------------------------------------------------

def test_preserve_digests_refuses_the_conversion_like_skopeo(seeded_registry, run_skopeo, tmp_path):
    repo, tag = images.sample_repo("schema1")
    source = f"docker://{seeded_registry.host}/{repo}:{tag}"
    dest = tmp_path / "x.tar"
    proc = fastsync("copy", "--preserve-digests", "--src-tls-verify=false", source, f"docker-archive:{dest}")
    line = assert_one_line_error(proc, REFUSED, "--preserve-digests", code=1)
    assert proc.stdout == b""                      # refused before any blob moved
    assert not dest.exists(), line
    theirs = run_skopeo("copy", "-q", "--preserve-digests", "--src-tls-verify=false", source,
                        f"docker-archive:{dest}", check=False)
    assert theirs.returncode == 1 and REFUSED.encode() in theirs.stderr
    assert not dest.exists()


def test_preserve_digests_loads_nothing_into_the_daemon(seeded_registry, podman_service, daemon_host):
    repo, tag = images.sample_repo("schema1")
    name = f"localhost/{unique_name()}:1"
    proc = fastsync("copy", "--preserve-digests", "--src-tls-verify=false", "--dest-daemon-host", daemon_host,
                    f"docker://{seeded_registry.host}/{repo}:{tag}", f"docker-daemon:{name}")
    assert_one_line_error(proc, REFUSED, code=1)
    assert name not in podman_service.image_ids()


# ---- the pieces, without any process ----------------------------------------------------------

@pytest.mark.parametrize("given, marshalled", [
    ("2023-01-01T00:00:00.000000000Z", "2023-01-01T00:00:00Z"),
    ("2023-01-01T00:00:00.120Z", "2023-01-01T00:00:00.12Z"),
    ("2023-01-01T00:00:00.1234567891Z", "2023-01-01T00:00:00.123456789Z"),
    ("2023-01-01T10:00:00+00:00", "2023-01-01T10:00:00Z"),
    ("2023-01-01T10:00:00,5-05:30", "2023-01-01T10:00:00.5-05:30"),
    (None, "0001-01-01T00:00:00Z"),
])
def test_times_are_marshalled_as_go_marshals_them(given: Optional[str], marshalled: str):
    assert gojson.go_time(given, "t") == marshalled


@pytest.mark.parametrize("bad", ["2023-02-30T00:00:00Z", "2023-01-01 00:00:00Z", "2023-01-01T00:00:00", 5])
def test_bad_times_are_manifest_errors(bad):
    with pytest.raises(ManifestError):
        gojson.go_time(bad, "t")


def test_strings_are_escaped_as_go_escapes_them():
    assert gojson.go_string('a"\\<>&\x08\x1f\u2028\ud800é\n') == \
        '"a\\"\\\\\\u003c\\u003e\\u0026\\u0008\\u001f\\u2028\ufffdé\\n"'


def test_go_field_lookup_is_case_insensitive_and_last_wins():
    from fastsync.manifest import parse_manifest

    top = {"id": "a" * 64, "CREATED": "2020-01-01T00:00:00Z", "created": "2021-01-01T00:00:00Z",
           "Container_Config": {"cmd": ["x", "y"]}, "THROWAWAY": True}
    doc = {"schemaVersion": 1, "name": "n", "tag": "t", "architecture": "amd64",
           "fsLayers": [{"blobSum": sha(EMPTY_GZIP_LAYER)}],
           "history": [{"v1Compatibility": json.dumps(top)}]}
    s1 = conv.parse_schema1(parse_manifest(json.dumps(doc).encode()))
    entry, = s1.entries
    assert (entry.created, entry.created_by, entry.throwaway) == ("2021-01-01T00:00:00Z", "x y", True)
    config = json.loads(conv.schema2_config(s1, []))
    assert config["rootfs"] == {"type": "layers"}      # no diff_ids: omitted, as Go's omitempty does
    assert config["history"] == [{"created": "2021-01-01T00:00:00Z", "created_by": "x y", "empty_layer": True}]


@pytest.mark.parametrize("version, older", [("1.8.2", True), ("1.8.3", False), ("1.8", True), ("1.10.0", False),
                                            ("1.8.3-rc1", True), ("0.9", True), ("-1.9", True), ("", True)])
def test_docker_versions_compare_as_docker_compares_them(version, older):
    assert conv._version_less(version, "1.8.3") == older


def test_history_entries_without_times_or_commands_get_gos_zero_values():
    from fastsync.manifest import parse_manifest

    doc = {"schemaVersion": 1, "name": "n", "tag": "t", "architecture": "amd64",
           "fsLayers": [{"blobSum": sha(EMPTY_GZIP_LAYER)}],
           "history": [{"v1Compatibility": json.dumps({"id": "b" * 64, "container_config": None})}]}
    s1 = conv.parse_schema1(parse_manifest(json.dumps(doc).encode()))
    assert json.loads(conv.schema2_config(s1, [sha(b"x")]))["history"] == [{"created": "0001-01-01T00:00:00Z"}]


@pytest.mark.parametrize("entry, message", [
    ({"id": "b" * 64, "throwaway": "yes"}, "throwaway is not a boolean"),
    ({"id": "b" * 64, "created": "yesterday"}, "created is not an RFC 3339 time"),
    ({"id": "b" * 64, "container_config": {"Cmd": "sh"}}, "container_config.Cmd is not a list of strings"),
    ({"id": "short"}, "image ID 'short' is invalid"),
])
def test_malformed_history_entries_are_one_line_manifest_errors(entry, message):
    from fastsync.manifest import parse_manifest

    doc = {"schemaVersion": 1, "name": "n", "tag": "t", "architecture": "amd64",
           "fsLayers": [{"blobSum": sha(EMPTY_GZIP_LAYER)}], "history": [{"v1Compatibility": json.dumps(entry)}]}
    with pytest.raises(ManifestError, match=message):
        conv.parse_schema1(parse_manifest(json.dumps(doc).encode()))
