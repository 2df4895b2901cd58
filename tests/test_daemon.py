"""docker-daemon: against a real engine API (podman's `system service` on a private socket), with
skopeo's docker-daemon: transport as the reference and peer, both ways."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from support import images
from helpers import assert_one_line_error, fastsync, ok
from support.fixtures_daemon import *  # noqa: F401,F403
from support.fixtures_daemon import unique_name

GZIP_MAGIC = b"\x1f\x8b"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unzipped(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def load_with_skopeo(run_skopeo, source: str, host: str, name: str) -> None:
    run_skopeo("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", host, source, f"docker-daemon:{name}")


def registry_image(run_skopeo, ref: str, where: Path) -> dict:
    """What a registry holds at `ref`, read by skopeo into a dir: (manifest doc, config bytes, layers)."""
    run_skopeo("copy", "-q", "--src-tls-verify=false", "--preserve-digests", f"docker://{ref}", f"dir:{where}")
    doc = json.loads((where / "manifest.json").read_bytes())
    return {"manifest": doc, "config": (where / doc["config"]["digest"].split(":", 1)[1]).read_bytes(),
            "layers": [(where / ly["digest"].split(":", 1)[1]).read_bytes() for ly in doc["layers"]]}


@pytest.mark.parametrize("name", ["v2s2", "oci"])
def test_registry_to_daemon_loads_the_image_podman_lists(name, sample_images, seeded_registry, podman_service,
                                                         daemon_host):
    image = sample_images[name]
    repo, tag = images.sample_repo(name)
    dest = f"localhost/{unique_name()}:1"
    ok(fastsync("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", daemon_host,
                f"docker://{seeded_registry.host}/{repo}:{tag}", f"docker-daemon:{dest}"))
    assert podman_service.image_ids()[dest] == image.config.digest
    # podman's own view of the layers: the source's diff_ids
    inspected, = json.loads(podman_service.podman("image", "inspect", dest).stdout)
    assert inspected["RootFS"]["Layers"] == list(image.diff_ids)


def test_daemon_to_registry_gives_skopeos_digests(sample_images, dir_of, registry, daemon_host, run_skopeo,
                                                  tmp_path):
    image = sample_images["v2s2"]
    name = f"example.com/{unique_name()}:2"
    load_with_skopeo(run_skopeo, f"dir:{dir_of(image)}", daemon_host, name)
    repo = f"daemon/{unique_name()}"
    ok(fastsync("copy", "-q", "--src-daemon-host", daemon_host, "--dest-tls-verify=false",
                f"docker-daemon:{name}", f"docker://{registry.host}/{repo}:fast"))
    run_skopeo("copy", "-q", "--src-daemon-host", daemon_host, "--dest-tls-verify=false",
               f"docker-daemon:{name}", f"docker://{registry.host}/{repo}:skopeo")
    ours = registry_image(run_skopeo, f"{registry.host}/{repo}:fast", tmp_path / "ours")
    theirs = registry_image(run_skopeo, f"{registry.host}/{repo}:skopeo", tmp_path / "theirs")
    # the same config digest and the same layer contents; both gzip the saved (plain) layers for the
    # registry, skopeo with Go's gzip and fastsync with its own, so compressed bytes cannot be compared
    assert ours["config"] == theirs["config"] == image.config.data
    assert ours["manifest"]["config"] == theirs["manifest"]["config"]
    assert [sha(unzipped(x)) for x in ours["layers"]] == [sha(unzipped(x)) for x in theirs["layers"]] \
        == list(image.diff_ids)
    assert all(x.startswith(GZIP_MAGIC) for x in ours["layers"] + theirs["layers"])
    assert [ly["mediaType"] for ly in ours["manifest"]["layers"]] == \
        [ly["mediaType"] for ly in theirs["manifest"]["layers"]]


def test_inspect_matches_skopeo(sample_images, dir_of, daemon_host, run_skopeo):
    image = sample_images["oci"]
    name = f"localhost/{unique_name()}:v1"
    load_with_skopeo(run_skopeo, f"dir:{dir_of(image)}", daemon_host, name)
    flags = ("--daemon-host", daemon_host)
    ours = json.loads(ok(fastsync("inspect", *flags, f"docker-daemon:{name}")).stdout)
    theirs = json.loads(run_skopeo("inspect", *flags, f"docker-daemon:{name}").stdout)
    assert {k: ours.get(k) for k in theirs} == theirs      # the Digest too: layers labelled as skopeo labels them
    assert ours["Name"] == f"localhost/{name.split('/', 1)[1].split(':')[0]}" and ours["RepoTags"] == []
    raw = ok(fastsync("inspect", "--raw", *flags, f"docker-daemon:{name}")).stdout
    assert raw == run_skopeo("inspect", "--raw", *flags, f"docker-daemon:{name}").stdout
    assert sha(raw) == theirs["Digest"] == ours["Digest"]
    conf = ok(fastsync("inspect", "--config", *flags, f"docker-daemon:{name}")).stdout
    assert json.loads(conf) == json.loads(run_skopeo("inspect", "--config", *flags, f"docker-daemon:{name}").stdout)
    assert ok(fastsync("inspect", "--config", "--raw", *flags, f"docker-daemon:{name}")).stdout == image.config.data


def test_skopeo_reads_what_fastsync_loaded(sample_images, seeded_registry, daemon_host, run_skopeo, tmp_path):
    image = sample_images["v2s2"]
    repo, tag = images.sample_repo("v2s2")
    name = f"mirror/{unique_name()}:3"
    ok(fastsync("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", daemon_host,
                f"docker://{seeded_registry.host}/{repo}:{tag}", f"docker-daemon:{name}"))
    run_skopeo("copy", "-q", "--src-daemon-host", daemon_host, f"docker-daemon:{name}", f"dir:{tmp_path / 's'}")
    ok(fastsync("copy", "-q", "--src-daemon-host", daemon_host, f"docker-daemon:{name}", f"dir:{tmp_path / 'f'}"))
    theirs = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()}
    ours = {p.name: p.read_bytes() for p in (tmp_path / "f").iterdir()}
    assert ours == theirs
    assert theirs[image.config.digest.split(":", 1)[1]] == image.config.data
    for layer in image.layers:
        data = gzip.decompress(layer.data)
        assert theirs[sha(data).split(":", 1)[1]] == data


def test_many_layers_round_trip(daemon_host, podman_service, dir_of, tmp_path):
    image = images.make_image(4242, layers=40, layer_size=2048)
    name = f"localhost/{unique_name()}:many"
    ok(fastsync("copy", "-q", "--dest-daemon-host", daemon_host, f"dir:{dir_of(image)}", f"docker-daemon:{name}"))
    assert podman_service.image_ids()[name] == image.config.digest
    ok(fastsync("copy", "-q", "--src-daemon-host", daemon_host, f"docker-daemon:{name}", f"dir:{tmp_path / 'out'}"))
    doc = json.loads((tmp_path / "out" / "manifest.json").read_bytes())
    assert [ly["digest"] for ly in doc["layers"]] == list(image.diff_ids)
    for layer in image.layers:
        data = gzip.decompress(layer.data)
        assert (tmp_path / "out" / sha(data).split(":", 1)[1]).read_bytes() == data


def test_an_index_loads_the_host_platforms_instance(sample_images, seeded_registry, podman_service, daemon_host):
    index = sample_images["multiarch"]
    amd64 = index.children[0]
    repo, tag = images.sample_repo("multiarch")
    src = f"docker://{seeded_registry.host}/{repo}:{tag}"
    name = f"localhost/{unique_name()}:multi"
    ok(fastsync("copy", "-q", "--src-tls-verify=false", "--dest-daemon-host", daemon_host, src, f"docker-daemon:{name}"))
    assert podman_service.image_ids()[name] == amd64.config.digest
    proc = fastsync("copy", "-q", "--all", "--src-tls-verify=false", "--dest-daemon-host", daemon_host, src,
                    f"docker-daemon:{name}-all")
    assert_one_line_error(proc, "index", code=1)
    assert f"{name}-all" not in podman_service.image_ids()


def test_read_by_image_id(sample_images, dir_of, daemon_host, run_skopeo, tmp_path):
    image = sample_images["v2s2"]
    load_with_skopeo(run_skopeo, f"dir:{dir_of(image)}", daemon_host, f"localhost/{unique_name()}:id")
    by_id = f"docker-daemon:{image.config.digest}"
    ours = json.loads(ok(fastsync("inspect", "--daemon-host", daemon_host, by_id)).stdout)
    theirs = json.loads(run_skopeo("inspect", "--daemon-host", daemon_host, by_id).stdout)
    assert "Name" not in ours and "Name" not in theirs
    assert ours["Layers"] == theirs["Layers"] == list(image.diff_ids)
    ok(fastsync("copy", "-q", "--src-daemon-host", daemon_host, by_id, f"dir:{tmp_path / 'out'}"))
    assert (tmp_path / "out" / image.config.digest.split(":", 1)[1]).read_bytes() == image.config.data
    proc = fastsync("copy", "-q", "--dest-daemon-host", daemon_host, f"dir:{tmp_path / 'out'}", by_id)
    assert_one_line_error(proc, "a destination must be a name:tag", code=1)


def test_sync_from_daemon_to_registry_and_back(sample_images, dir_of, registry, podman_service, daemon_host,
                                                run_skopeo, tmp_path):
    made = {}
    for key in ("v2s2", "oci", "shared"):
        name = f"release/{unique_name(key)}:1.0"
        load_with_skopeo(run_skopeo, f"dir:{dir_of(sample_images[key])}", daemon_host, name)
        made[name] = sample_images[key]
    listing = tmp_path / "images.txt"
    listing.write_text("# the release\n" + "\n".join(made) + "\n")
    prefix = f"{registry.host}/{unique_name('rel')}"
    report = tmp_path / "push.json"
    ok(fastsync("sync", "-q", "--src", "docker-daemon", "--dest", "docker", "--src-daemon-host", daemon_host,
                "--dest-tls-verify=false", "--cache", str(tmp_path / "cache"), "--report", str(report),
                str(listing), prefix))
    pushed = []
    for name, image in made.items():
        got = registry_image(run_skopeo, f"{prefix}/{name}", tmp_path / name.replace("/", "_"))
        assert got["config"] == image.config.data
        # the engine saves plain layers; a registry gets them gzipped, as skopeo pushes them
        assert all(x.startswith(GZIP_MAGIC) for x in got["layers"])
        assert [sha(unzipped(x)) for x in got["layers"]] == list(image.diff_ids)
        pushed += [image.config.digest, *(sha(x) for x in got["layers"])]
    # every blob pushed is in the cache now (the gzipped layers with the memo of how they were made)
    cached = ok(fastsync("cache", "ls", "--cache", str(tmp_path / "cache"))).stdout.decode()
    assert all(d in cached for d in pushed)
    # and back: the registry's images loaded into the engine under another prefix
    back = tmp_path / "back.txt"
    back.write_text("\n".join(f"{prefix}/{n}" for n in made) + "\n")
    ok(fastsync("sync", "-q", "--src", "list", "--dest", "docker-daemon", "--src-tls-verify=false",
                "--dest-daemon-host", daemon_host, "--no-cache", str(back), "localhost/loaded"))
    ids = podman_service.image_ids()
    for name, image in made.items():
        # unscoped, a list keeps the line's path below the registry: localhost/loaded/<prefix path>/<name>
        loaded = f"localhost/loaded/{prefix.split('/', 1)[1]}/{name}"
        assert ids[loaded] == image.config.digest


def test_registry_to_daemon_from_the_cache_reads_no_layer(sample_images, seeded_registry, podman_service,
                                                         daemon_host, tmp_path):
    repo, tag = images.sample_repo("v2s2")
    listing = tmp_path / "l.txt"
    listing.write_text(f"{seeded_registry.host}/{repo}:{tag}\n")
    runs = []
    for i in range(2):
        report = tmp_path / f"r{i}.json"
        ok(fastsync("sync", "-q", "--src", "list", "--dest", "docker-daemon", "--src-tls-verify=false",
                    "--dest-daemon-host", daemon_host, "--cache", str(tmp_path / "cache"), "--report", str(report),
                    str(listing), f"localhost/c{i}"))
        runs.append(json.loads(report.read_text())["totals"])
    image = sample_images["v2s2"]
    size = sum(len(b.data) for b in image.blobs)
    assert runs[0]["bytes_transferred"] == size
    assert runs[1]["bytes_transferred"] == 0 and runs[1]["bytes_from_cache"] == size
    assert podman_service.image_ids()[f"localhost/c1/{repo}:{tag}"] == image.config.digest


def test_delete_untags_the_image(sample_images, dir_of, podman_service, daemon_host):
    name = f"localhost/{unique_name()}:del"
    ok(fastsync("copy", "-q", "--dest-daemon-host", daemon_host, f"dir:{dir_of(sample_images['v2s2'])}",
                f"docker-daemon:{name}"))
    ok(fastsync("delete", "--daemon-host", daemon_host, f"docker-daemon:{name}"))
    assert name not in podman_service.image_ids()
    assert_one_line_error(fastsync("delete", "--daemon-host", daemon_host, f"docker-daemon:{name}"),
                          "deleting image from docker engine", code=1)


def test_image_not_found_is_one_line(daemon_host, tmp_path):
    proc = fastsync("copy", "--src-daemon-host", daemon_host, "docker-daemon:localhost/not-there:1",
                    f"dir:{tmp_path / 'x'}")
    assert_one_line_error(proc, "loading image from docker engine", "not-there", code=1)
    assert not (tmp_path / "x").exists()


def test_python_backend(sample_images, dir_of, daemon_host, podman_service, tmp_path):
    image = sample_images["zstd"]
    name = f"localhost/{unique_name()}:py"
    ok(fastsync("copy", "-q", "--format", "v2s2", "--dest-compress-format", "gzip", "--dest-daemon-host",
                daemon_host, f"dir:{dir_of(image)}", f"docker-daemon:{name}", backend="python"))
    assert podman_service.image_ids()[name] == image.config.digest
    ok(fastsync("copy", "-q", "--src-daemon-host", daemon_host, f"docker-daemon:{name}", f"dir:{tmp_path / 'o'}",
                backend="python"))
    doc = json.loads((tmp_path / "o" / "manifest.json").read_bytes())
    assert [ly["digest"] for ly in doc["layers"]] == list(image.diff_ids)
