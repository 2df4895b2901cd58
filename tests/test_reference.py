"""Image names: docker reference normalisation and transport:details parsing."""
from __future__ import annotations

import pytest

from fastsync.errors import InvalidReference
from fastsync.reference import parse_docker_reference
from fastsync.transports import parse_image_name

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,expected", [
    ("alpine", "docker.io/library/alpine:latest"),
    ("alpine:3.14", "docker.io/library/alpine:3.14"),
    ("library/alpine", "docker.io/library/alpine:latest"),
    ("index.docker.io/library/alpine:3", "docker.io/library/alpine:3"),
    ("calico/node:v3.16.3", "docker.io/calico/node:v3.16.3"),
    ("localhost/app:1", "localhost/app:1"),
    ("localhost:5000/library/alpine:3.14", "localhost:5000/library/alpine:3.14"),
    ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
    (f"quay.io/x/y@{D}", f"quay.io/x/y@{D}"),
    (f"quay.io/x/y:t@{D}", f"quay.io/x/y:t@{D}"),
])
def test_docker_names_are_normalised_like_docker(text, expected):
    assert str(parse_docker_reference(text, default_tag=True)) == expected


def test_familiar_form_drops_docker_io_and_library():
    assert parse_docker_reference("docker.io/library/alpine:3").familiar == "alpine:3"
    assert parse_docker_reference("docker.io/calico/node:1").familiar == "calico/node:1"


@pytest.mark.parametrize("text,fragment", [
    ("docker.io/Library/Alpine", "lowercase"),
    ("alpine:bad:tag", "bad repository name"),
    ("alpine:" + "t" * 129, "bad tag"),
    ("alpine@sha256:1234", "bad digest"),
    ("", "empty"),
    ("a" * 300, "longer than"),
])
def test_malformed_docker_names_are_rejected(text, fragment):
    with pytest.raises(InvalidReference, match=fragment):
        parse_docker_reference(text)


def test_image_names_dispatch_on_transport(tmp_path):
    ref = parse_image_name("docker://alpine")
    assert ref.transport == "docker" and str(ref) == "docker://docker.io/library/alpine:latest"
    d = parse_image_name(f"dir:{tmp_path}/x")
    assert d.transport == "dir" and d.details == f"{tmp_path}/x"
    o = parse_image_name(f"oci:{tmp_path}/layout:calico-node-v3.16.3")
    assert o.path == f"{tmp_path}/layout" and o.ref == "calico-node-v3.16.3"
    assert parse_image_name(f"oci:{tmp_path}/layout").ref == ""


@pytest.mark.parametrize("details", ["//127.0.0.1:5000/ns/app:1", "/srv/t/x", "/srv/t/layout:ref",
                                     "/srv/t/root:ns/app:1", "/srv/t/app-oci.tar:v1", "/srv/t/app.tar:ns/app:1"])
def test_every_registered_transport_parses_its_names(details):
    """Each class in TRANSPORTS has `parse`, and str() of what it parses names it again."""
    from fastsync.transports import TRANSPORTS
    for transport in TRANSPORTS:
        if transport in ("docker-daemon", "containers-storage"):   # names, not paths: their own tests
            continue
        if (transport == "docker") != details.startswith("//"):
            continue
        ref = parse_image_name(f"{transport}:{details}")
        assert ref.transport == transport
        assert str(parse_image_name(str(ref))) == str(ref)


@pytest.mark.parametrize("name,fragment", [
    ("alpine", "expected colon-separated transport:reference"),
    ("bogus:x", 'unknown transport "bogus"'),
    ("docker:alpine", "must start with //"),
    ("dir:", "directory path is required"),
    ("oci::ref", "layout path is required"),
    ("oci:/tmp/l:bad ref", "invalid reference name"),
])
def test_bad_image_names_name_the_problem(name, fragment):
    with pytest.raises(InvalidReference, match=fragment) as exc:
        parse_image_name(name)
    if "transport" in fragment:
        valid = str(exc.value).split("valid transports: ", 1)[1]
        assert {"dir:", "docker:", "oci:"} <= set(valid.rstrip(")").split(", "))
