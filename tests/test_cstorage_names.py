"""containers-storage: image names, store specs, storage.conf lookup and the store's naming rules
(pure; no store needed)."""
from __future__ import annotations

import hashlib

import pytest

from fastsync.errors import InvalidReference
from fastsync.transports import parse_image_name
from fastsync.transports.cstorage import layout as L
from fastsync.transports.cstorage.config import default_store
from fastsync.transports.cstorage.tarsplit import crc64

ID = "e9ca1a791aec98d8ca933e734c849a48cd2875c12b7ff48b3db232dad6c261d2"
SPEC = "[vfs@/g/root+/g/run:vfs.ignore_chown_errors=true]"


@pytest.mark.parametrize("name,named,image_id,details", [
    (f"{SPEC}busybox", "docker.io/library/busybox:latest", "",
     "[vfs@/g/root+/g/run:vfs.ignore_chown_errors=true]docker.io/library/busybox:latest"),
    (f"{SPEC}quay.io/ns/app:1.2", "quay.io/ns/app:1.2", "", None),
    (f"{SPEC}localhost/x@sha256:{'a' * 64}", f"localhost/x@sha256:{'a' * 64}", "", None),
    (f"{SPEC}localhost/x:1@{ID}", "localhost/x:1", ID, None),
    (f"{SPEC}@{ID}", None, ID, f"[vfs@/g/root+/g/run:vfs.ignore_chown_errors=true]@{ID}"),
    (f"{SPEC}{ID}", None, ID, None),
])
def test_names_parse_as_containers_image_parses_them(name, named, image_id, details):
    ref = parse_image_name(f"containers-storage:{name}")
    assert (str(ref.named) if ref.named else None) == named
    assert ref.image_id == image_id
    assert (ref.paths.driver, ref.paths.graphroot, ref.paths.runroot) == ("vfs", "/g/root", "/g/run")
    assert ref.options == ("vfs.ignore_chown_errors=true",)
    if details:
        assert ref.details == details
        assert str(ref) == f"containers-storage:{details}"
    assert str(parse_image_name(str(ref))) == str(ref)


def test_a_short_hex_name_may_be_an_id_prefix():
    ref = parse_image_name(f"containers-storage:{SPEC}e9ca1a")
    images = [{"id": ID, "names": ["localhost/x:1"]}]
    assert ref.resolve(images)["id"] == ID
    assert str(ref.named) == "docker.io/library/e9ca1a:latest"     # a name when no id matches


@pytest.mark.parametrize("name,fragment", [
    ("[vfs@relative+/run]x", "not absolute"), ("[vfs@/a+/b", "does not end"), ("[@/a]x", "invalid store"),
    (f"{SPEC}x@", "empty trailing"), (f"{SPEC}x@zz", "does not look like an image ID"),
    (f"{SPEC}Upper/Case", "invalid"), ("", "image name or ID is required"),
])
def test_bad_names_are_one_clear_error(name, fragment):
    with pytest.raises(InvalidReference, match=fragment):
        parse_image_name(f"containers-storage:{name}")


def test_storage_conf_root_and_rootless(tmp_path):
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\ngraphroot = "/srv/graph"\nrunroot = "/srv/run"\n')
    got = default_store({"CONTAINERS_STORAGE_CONF": str(conf)}, uid=0)
    assert (got.driver, got.graphroot, got.runroot) == ("overlay", "/srv/graph", "/srv/run")
    got = default_store({"CONTAINERS_STORAGE_CONF": str(conf), "STORAGE_DRIVER": "vfs",
                         "STORAGE_OPTS": "a=1,b=2"}, uid=0)
    assert (got.driver, got.options) == ("vfs", ("a=1", "b=2"))
    home = tmp_path / "home"
    user_conf = home / ".config" / "containers" / "storage.conf"
    user_conf.parent.mkdir(parents=True)
    user_conf.write_text('[storage]\ndriver = "vfs"\n')
    got = default_store({"HOME": str(home), "XDG_RUNTIME_DIR": "/run/user/1000"}, uid=1000)
    assert (got.driver, got.graphroot, got.runroot) == \
        ("vfs", f"{home}/.local/share/containers/storage", "/run/user/1000/containers")
    got = default_store({"HOME": str(home), "XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "/nowhere"}, uid=1000)
    assert got.graphroot == "/data/containers/storage" and got.runroot == "/tmp/containers-user-1000/containers"


def test_store_naming_rules():
    # containers/image's layer ids: the chain of parent id and diff_id
    a, b = "1" * 64, "2" * 64
    assert L.chain_ids([a, b]) == [a, hashlib.sha256(f"{a}+{b}".encode()).hexdigest()]
    # containers/storage's big-data file names
    assert L.big_data_name("manifest") == "manifest"
    assert L.big_data_name("sha256:ab") == "=c2hhMjU2OmFi"
    # Go's hash/crc64 with the ISO table (tar-split's checksum)
    assert crc64(b"123456789") == 0xB90956C775A41001
    images = [{"id": "i1", "names": ["a:1", "b:1"]}, {"id": "i2", "names": ["c:1"]}]
    L.add_names(images, images[1], ["a:1"])
    assert images[0]["names"] == ["b:1"] and images[1]["names"] == ["c:1", "a:1"]
    assert images[1]["names-history"] == ["a:1", "c:1"]
