"""Attachments travel with their image (issue 15): cosign's `.sig`/`.att`/`.sbom` tags and OCI 1.1
referrers (through the fallback index on CNCF distribution 2.8), recursively, by copy --attachments
and by sync, to registries, oci: layouts and registry-storage: trees and back out, with identical
digests; malformed attachments are refused or skipped as documented."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import assert_one_line_error, fastsync, ok
from support import cosign_artifacts as ca
from support.images import SampleImage, make_image

NO_TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")


@dataclass
class Signed:
    """An image in `registry` with every kind of attachment."""

    repo: str
    image: SampleImage
    sig: SampleImage
    att: SampleImage
    sbom: SampleImage
    bundle: SampleImage
    sbom_sig: SampleImage
    key: ec.EllipticCurvePrivateKey

    def artefacts(self) -> dict[str, str]:
        """ref -> the digest it must have wherever the image went (cosign tags, referrers by digest)."""
        d = self.image.digest
        return {ca.tag_of(d, "sig"): self.sig.digest, ca.tag_of(d, "att"): self.att.digest,
                self.sbom.digest: self.sbom.digest, self.bundle.digest: self.bundle.digest,
                ca.tag_of(self.sbom.digest, "sig"): self.sbom_sig.digest}


def push_signed(registry, repo: str, seed: int, identity: str) -> Signed:
    key = ec.generate_private_key(ec.SECP256R1())
    image = make_image(seed, layers=1, layer_size=4096, fmt="oci")
    registry.push_image(image, repo, "1")
    sig = ca.signature(image.digest, identity, [key])
    att = ca.attestation(image.digest)
    sbom = ca.referrer(image, ca.SPDX, b'{"spdxVersion":"SPDX-2.3","name":"app"}')
    bundle = ca.referrer(image, ca.BUNDLE, b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}',
                         annotations={"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"})
    sbom_sig = ca.signature(sbom.digest, identity, [key])
    ca.push_tagged(registry, repo, image.digest, "sig", sig)
    ca.push_tagged(registry, repo, image.digest, "att", att)
    ca.push_referrers(registry, repo, image.digest, [sbom, bundle])
    ca.push_tagged(registry, repo, sbom.digest, "sig", sbom_sig)
    return Signed(repo, image, sig, att, sbom, bundle, sbom_sig, key)


@pytest.fixture
def signed(registry) -> Signed:
    import itertools

    n = next(_SEEDS)
    return push_signed(registry, f"supply/app{n}", 1500 + n, f"{registry.host}/supply/app{n}:1")


_SEEDS = __import__("itertools").count(1)


def assert_all_there(registry, repo: str, s: Signed) -> None:
    for ref, digest in s.artefacts().items():
        raw = ca.manifest_at(registry, repo, ref)
        assert raw is not None, f"{repo}:{ref} missing"
        assert ca.sha256_digest(raw) == digest, ref
    index = json.loads(ca.manifest_at(registry, repo, ca.tag_of(s.image.digest)) or b"{}")
    assert {e["digest"] for e in index["manifests"]} == {s.sbom.digest, s.bundle.digest}
    assert {e["artifactType"] for e in index["manifests"]} == {ca.SPDX, ca.BUNDLE}


def test_copy_attachments_to_another_registry(registry, fresh_registry, signed: Signed, tmp_path: Path) -> None:
    dst = f"{fresh_registry.host}/mirror/app:1"
    proc = ok(fastsync("copy", "-q", *NO_TLS, "--attachments", f"docker://{registry.host}/{signed.repo}:1",
                       f"docker://{dst}"))
    assert proc.stderr == b""
    assert_all_there(fresh_registry, "mirror/app", signed)
    # again: nothing to add, nothing lost
    ok(fastsync("copy", "-q", *NO_TLS, "--attachments", f"docker://{registry.host}/{signed.repo}:1",
                f"docker://{dst}"))
    assert_all_there(fresh_registry, "mirror/app", signed)


def test_copy_without_the_flag_carries_none(registry, fresh_registry, signed: Signed) -> None:
    ok(fastsync("copy", "-q", *NO_TLS, f"docker://{registry.host}/{signed.repo}:1",
                f"docker://{fresh_registry.host}/plain/app:1"))
    assert ca.manifest_at(fresh_registry, "plain/app", "1") == signed.image.manifest
    tags = fresh_registry.request("GET", "/v2/plain/app/tags/list").json()["tags"]
    assert tags == ["1"]


def test_sync_to_a_registry_storage_tree_bundle_and_back_out(registry, fresh_registry, signed: Signed,
                                                               tmp_path: Path) -> None:
    """The issue's "done when": sync to another registry, on to registry-storage:, through an offline
    bundle, and out again to a registry: every artefact in place with its digest, and re-sync moves
    nothing."""
    name = signed.repo.rsplit("/", 1)[1]
    report = tmp_path / "report.json"
    ok(fastsync("sync", "-q", *NO_TLS, "--cache", str(tmp_path / "cache"), "--report", str(report),
                "-s", "docker", "-d", "docker", f"{registry.host}/{signed.repo}", f"{fresh_registry.host}/mirror"))
    assert_all_there(fresh_registry, f"mirror/{name}", signed)
    [img] = json.loads(report.read_text())["images"]       # the attachment tags were not synced as images
    assert img["status"] == "copied"
    assert sorted((a["kind"], a["digest"]) for a in img["attachments"]) == sorted(
        [("signature", signed.sig.digest), ("attestation", signed.att.digest), ("referrer", signed.sbom.digest),
         ("referrer", signed.bundle.digest), ("signature", signed.sbom_sig.digest)])

    tree = tmp_path / "tree"
    ok(fastsync("sync", "-q", *NO_TLS, "--cache", str(tmp_path / "cache"), "-s", "docker", "-d", "registry-storage",
                f"{fresh_registry.host}/mirror/{name}", str(tree)))
    bundle, restored = tmp_path / "b.tar.zst", tmp_path / "restored"
    ok(fastsync("bundle", "-q", str(tree), str(bundle)))
    ok(fastsync("unbundle", "-q", str(bundle), str(restored)))
    out = f"{fresh_registry.host}/out"
    ok(fastsync("sync", "-q", "--dest-tls-verify=false", "--cache", str(tmp_path / "cache"),
                "-s", "registry-storage", "-d", "docker", f"{restored}:{name}", out))
    assert_all_there(fresh_registry, f"out/{name}", signed)
    again = tmp_path / "again.json"
    ok(fastsync("sync", "-q", "--dest-tls-verify=false", "--cache", str(tmp_path / "cache"), "--report", str(again),
                "-s", "registry-storage", "-d", "docker", f"{restored}:{name}", out))
    assert [i["status"] for i in json.loads(again.read_text())["images"]] == ["up-to-date"]
    # and verifiable there: the sigstoreSigned policy accepts what came through the bundle
    policy, regd = _verify_setup(tmp_path, signed.key, f"{registry.host}/{signed.repo}:1")
    ok(fastsync("--policy", str(policy), "--registries.d", str(regd), "copy", "-q", "--src-tls-verify=false",
                f"docker://{out}/{name}:1", f"dir:{tmp_path / 'verified'}"))


def test_oci_layout_holds_them_and_pushes_them_back(registry, fresh_registry, signed: Signed, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    ok(fastsync("copy", "-q", *NO_TLS, "--attachments", f"docker://{registry.host}/{signed.repo}:1",
                f"oci:{layout}:1"))
    index = json.loads((layout / "index.json").read_text())
    names = {e.get("annotations", {}).get("org.opencontainers.image.ref.name"): e["digest"] for e in index["manifests"]}
    d = signed.image.digest
    assert names[ca.tag_of(d, "sig")] == signed.sig.digest and names[ca.tag_of(d, "att")] == signed.att.digest
    assert names[ca.tag_of(signed.sbom.digest, "sig")] == signed.sbom_sig.digest
    fallback = json.loads((layout / "blobs" / "sha256" / names[ca.tag_of(d)].split(":")[1]).read_bytes())
    assert {e["digest"] for e in fallback["manifests"]} == {signed.sbom.digest, signed.bundle.digest}
    for art in (signed.sbom, signed.bundle):     # referrers: manifests with subject, stored by digest
        assert (layout / "blobs" / "sha256" / art.digest.split(":")[1]).read_bytes() == art.manifest
    ok(fastsync("copy", "-q", "--dest-tls-verify=false", "--attachments", f"oci:{layout}:1",
                f"docker://{fresh_registry.host}/back/app:1"))
    assert_all_there(fresh_registry, "back/app", signed)


def test_attachment_type_filter(registry, fresh_registry, signed: Signed) -> None:
    ok(fastsync("copy", "-q", *NO_TLS, "--attachment-type", ca.SPDX, f"docker://{registry.host}/{signed.repo}:1",
                f"docker://{fresh_registry.host}/only/sbom:1"))
    index = json.loads(ca.manifest_at(fresh_registry, "only/sbom", ca.tag_of(signed.image.digest)) or b"{}")
    assert [e["digest"] for e in index["manifests"]] == [signed.sbom.digest]
    # the SBOM's own signature travels with it; the image's .sig/.att do not
    assert ca.manifest_at(fresh_registry, "only/sbom", ca.tag_of(signed.sbom.digest, "sig")) == signed.sbom_sig.manifest
    assert ca.manifest_at(fresh_registry, "only/sbom", ca.tag_of(signed.image.digest, "sig")) is None
    assert_one_line_error(fastsync("copy", "--no-attachments", "--attachment-type", "sbom", "dir:/nonexistent",
                                   "dir:/tmp/x"), "--attachment-type needs attachments", code=1)


def test_a_destination_without_tags_refuses_asked_for_attachments(registry, signed: Signed, tmp_path: Path) -> None:
    out = tmp_path / "d"
    assert_one_line_error(fastsync("copy", "-q", *NO_TLS, "--attachments", f"docker://{registry.host}/{signed.repo}:1",
                                   f"dir:{out}"), "the dir: transport cannot hold attachments", code=1)


def test_a_format_conversion_cannot_carry_them(registry, fresh_registry, signed: Signed) -> None:
    assert_one_line_error(fastsync("copy", "-q", *NO_TLS, "--attachments", "--format", "v2s2",
                                   f"docker://{registry.host}/{signed.repo}:1",
                                   f"docker://{fresh_registry.host}/conv/app:1"),
                          "its attachments (signatures, SBOMs, referrers) name", code=1)


def test_resync_of_an_unchanged_image_asks_the_source_first_and_sees_a_new_signature(
        registry, fresh_registry, signed: Signed, tmp_path: Path) -> None:
    from support.roundproxy import RoundProxy, deepest, rounds

    name = signed.repo.rsplit("/", 1)[1]
    unsigned = make_image(1498, layers=1, layer_size=1024, fmt="oci")
    registry.push_image(unsigned, "supply/plain", "1")
    with RoundProxy(registry.url) as src, RoundProxy(fresh_registry.url) as dst:
        def sync(repo: str, *extra: str) -> list[tuple[int, str, str]]:
            src.clear()
            dst.clear()
            ok(fastsync("sync", "-q", *NO_TLS, "--cache", str(tmp_path / "cache"), *extra, "-s", "docker",
                        "-d", "docker", f"{src.host}/{repo}:1", f"{dst.host}/mirror"))
            return rounds(src, dst)

        def requests(got: list[tuple[int, str, str]], depth: int) -> list[tuple[str, str]]:
            return sorted((m, p.split("/", 4)[-1]) for r, m, p in got if r == depth and p != "/v2/")

        first = sync(signed.repo)
        assert_all_there(fresh_registry, f"mirror/{name}", signed)
        assert [p for r, _, p in first if r == 1] == ["/v2/", "/v2/"]      # the pings, remembered in the cache
        sync("supply/plain")
        # the first round: both manifests by HEAD, the source's tag list and referrers; an image the
        # source has no attachment for costs nothing more (the floor's HEADs plus the source's listing)
        d = ca.tag_of(signed.image.digest)
        for repo, image in (("supply/plain", unsigned), (signed.repo, signed.image)):
            leaf = repo.rsplit("/", 1)[1]
            probe = [("GET", f"referrers/{image.digest}"), ("GET", "tags/list?n=1000"), ("HEAD", "manifests/1"),
                     ("HEAD", "manifests/1")]
            got = sync(repo)
            assert all(m in ("GET", "HEAD") and "/blobs/" not in p for _, m, p in got), got
            assert requests(got, 1) == probe, got
            assert [p.split("/")[3] for _, _, p in got if "/manifests/1" in p] == [leaf, leaf]
        assert deepest(sync("supply/plain")) == deepest(sync("supply/plain", "--no-attachments")) == 1
        # a signed image: one more round, the source's listed attachment tags and the destination's state
        carried = sync(signed.repo)
        assert deepest(carried) == 2, carried
        at_source = [("HEAD", f"manifests/{d}{s}") for s in ("", ".att", ".sig")]      # the listed ones
        at_destination = [("HEAD", f"manifests/{d}{s}") for s in ("", ".att", ".sbom", ".sig")] + \
            [("GET", f"referrers/{signed.image.digest}")]
        assert requests(carried, 2) == sorted(at_source + at_destination), carried

        # a new signature at the source: picked up by the next sync, digest for digest
        other = ec.generate_private_key(ec.SECP256R1())
        both = ca.signature(signed.image.digest, f"{registry.host}/{signed.repo}:1", [other], appended_to=signed.sig)
        assert both.digest != signed.sig.digest
        ca.push_tagged(registry, signed.repo, signed.image.digest, "sig", both)
        sync(signed.repo)
        assert ca.manifest_at(fresh_registry, f"mirror/{name}", ca.tag_of(signed.image.digest, "sig")) == both.manifest
        assert deepest(sync(signed.repo)) == 2


def _verify_setup(tmp_path: Path, key: ec.EllipticCurvePrivateKey, identity: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    pub = tmp_path / "cosign.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "sigstoreSigned", "keyPath": str(pub),
                                               "signedIdentity": {"type": "exactReference",
                                                                  "dockerReference": identity}}]}))
    return policy, regd


def test_the_copy_verifies_at_the_destination_and_an_unsigned_image_does_not(
        registry, fresh_registry, signed: Signed, tmp_path: Path, skopeo: str) -> None:
    import subprocess

    identity = f"{registry.host}/{signed.repo}:1"
    mirror = f"docker://{fresh_registry.host}/verified/app:1"
    ok(fastsync("copy", "-q", *NO_TLS, "--attachments", f"docker://{registry.host}/{signed.repo}:1", mirror))
    unsigned = make_image(1499, layers=1, layer_size=1024, fmt="oci")
    fresh_registry.push_image(unsigned, "verified/unsigned", "1")
    policy, regd = _verify_setup(tmp_path, signed.key, identity)
    trust = ("--policy", str(policy), "--registries.d", str(regd))
    ok(fastsync(*trust, "copy", "-q", "--src-tls-verify=false", mirror, f"dir:{tmp_path / 'ok'}"))
    assert (tmp_path / "ok" / "signature-1").read_bytes().startswith(b"\x00sigstore-json\n")
    assert_one_line_error(fastsync(*trust, "copy", "-q", "--src-tls-verify=false",
                                   f"docker://{fresh_registry.host}/verified/unsigned:1", f"dir:{tmp_path / 'no'}"),
                          "Source image rejected: A signature was required, but no signature exists", code=1)
    # skopeo 1.9.3 finds the carried attachment at the destination and gets to the signature check,
    # which Debian's build has compiled out; for the unsigned image it finds none. openssl checks the
    # carried signature over the carried payload.
    signed_run = subprocess.run([skopeo, *trust, "copy", "-q", "--src-tls-verify=false", mirror,
                                 f"dir:{tmp_path / 's1'}"], capture_output=True)
    unsigned_run = subprocess.run([skopeo, *trust, "copy", "-q", "--src-tls-verify=false",
                                   f"docker://{fresh_registry.host}/verified/unsigned:1", f"dir:{tmp_path / 's2'}"],
                                  capture_output=True)
    assert signed_run.returncode == 1 and b"Debian-local change: sigstore disabled" in signed_run.stderr
    assert unsigned_run.returncode == 1 and \
        b"A signature was required, but no signature exists" in unsigned_run.stderr
    [layer] = json.loads(ca.manifest_at(fresh_registry, "verified/app", ca.tag_of(signed.image.digest, "sig"))
                         or b"{}")["layers"]
    (tmp_path / "payload").write_bytes(fresh_registry.request("GET", f"/v2/verified/app/blobs/{layer['digest']}").body)
    (tmp_path / "sig").write_bytes(base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"]))
    check = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(tmp_path / "cosign.pub"), "-signature",
                            str(tmp_path / "sig"), str(tmp_path / "payload")], capture_output=True)
    assert check.returncode == 0 and b"Verified OK" in check.stdout, check


def test_a_registry_with_the_referrers_api(registry, signed: Signed, tmp_path: Path) -> None:
    """Written to a registry that has the API: it answers OCI-Subject, so no fallback tag is made;
    read back through the API (with its artifactType filter) into distribution 2.8's fallback index."""
    from support.referrers_server import ReferrersRegistry

    with ReferrersRegistry() as api:
        ok(fastsync("copy", "-q", *NO_TLS, "--attachments", f"docker://{registry.host}/{signed.repo}:1",
                    f"docker://{api.host}/withapi/app:1"))
        subject = signed.image.digest
        assert set(api.referrers[("withapi/app", subject)]) == {signed.sbom.digest, signed.bundle.digest}
        assert ("withapi/app", ca.tag_of(subject)) not in api.manifests        # no fallback index there
        assert api.manifests[("withapi/app", ca.tag_of(subject, "sig"))][0] == signed.sig.manifest
        assert api.manifests[("withapi/app", ca.tag_of(signed.sbom.digest, "sig"))][0] == signed.sbom_sig.manifest
        api.requests.clear()
        ok(fastsync("copy", "-q", *NO_TLS, "--attachment-type", ca.BUNDLE, f"docker://{api.host}/withapi/app:1",
                    f"docker://{registry.host}/fromapi/app:1"))
        asked = [parse_qs(urlsplit(p).query) for m, p in api.requests if f"/referrers/{subject}" in p]
        assert asked == [{"artifactType": [ca.BUNDLE]}]
        index = json.loads(ca.manifest_at(registry, "fromapi/app", ca.tag_of(subject)) or b"{}")
        assert [e["digest"] for e in index["manifests"]] == [signed.bundle.digest]
        assert ca.manifest_at(registry, "fromapi/app", signed.bundle.digest) == signed.bundle.manifest


def test_concurrent_writers_of_one_fallback_index_lose_no_entry(registry, tmp_path: Path) -> None:
    """Six copies at once, each bringing its own referrers of the same image into one repository:
    every referrer ends up in the one fallback index."""
    import subprocess
    import sys

    image = make_image(1490, layers=1, layer_size=1024, fmt="oci")
    srcs = []
    for i in range(6):
        repo = f"writers/src{i}"
        registry.push_image(image, repo, "1")
        refs = [ca.referrer(image, ca.SPDX, f'{{"writer":{i},"n":{n}}}'.encode()) for n in range(2)]
        ca.push_referrers(registry, repo, image.digest, refs)
        srcs.append((repo, refs))
    # the image itself is there before the six start: distribution 2.8 writes a repository's blob link
    # files in place, and a manifest PUT that reads one while another upload rewrites it fails with
    # "digest invalid" -- a race of the registry's, not the one this test is about
    registry.push_image(image, "writers/dst", "1")
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [subprocess.Popen([sys.executable, "-m", "fastsync", "copy", "-q", *NO_TLS, "--attachments",
                               f"docker://{registry.host}/{repo}:1", f"docker://{registry.host}/writers/dst:1"],
                              env=env, stderr=subprocess.PIPE) for repo, _ in srcs]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    index = json.loads(ca.manifest_at(registry, "writers/dst", ca.tag_of(image.digest)) or b"{}")
    assert sorted(e["digest"] for e in index["manifests"]) == sorted(r.digest for _, refs in srcs for r in refs)


def _layout_with(tmp_path: Path, image: SampleImage, tags: dict[str, bytes]) -> Path:
    """An OCI layout holding `image` as :1 and each raw manifest under its tag."""
    from support.images import write_oci

    layout = tmp_path / "bad"
    write_oci(image, layout, "1")
    index = json.loads((layout / "index.json").read_text())
    for tag, raw in tags.items():
        digest = ca.sha256_digest(raw)
        (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(raw)
        index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                                   "size": len(raw), "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps(index))
    return layout


@pytest.mark.parametrize("raw, words", [
    (b'{"schemaVersion": 2, "layers": [', "is not valid JSON"),
    (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x",'
     b'"digest":"sha256:' + b"0" * 64 + b'","size":1},"layers":[],"annotations":{"pad":"' + b"x" * (5 << 20) + b'"}}',
     "more than a manifest may have"),
], ids=["bad-json", "oversize"])
def test_a_malformed_cosign_tag_is_an_error(tmp_path: Path, raw: bytes, words: str) -> None:
    image = make_image(1480, layers=1, layer_size=1024, fmt="oci")
    layout = _layout_with(tmp_path, image, {ca.tag_of(image.digest, "sig"): raw})
    assert_one_line_error(fastsync("copy", "-q", "--attachments", f"oci:{layout}:1", f"oci:{tmp_path / 'out'}:1"),
                          f"attachment {ca.tag_of(image.digest, 'sig')} in oci:{layout}", words, code=1)


def test_a_referrer_of_another_image_is_skipped_with_a_warning(tmp_path: Path) -> None:
    image, other = (make_image(s, layers=1, layer_size=1024, fmt="oci") for s in (1481, 1482))
    good, stray = ca.referrer(image), ca.referrer(other, ca.SPDX, b'{"stray":1}')
    index = ca.fallback_index([good, stray])
    layout = _layout_with(tmp_path, image, {ca.tag_of(image.digest): index.manifest})
    for art in (good, stray):
        for blob in art.blobs:
            (layout / "blobs" / "sha256" / blob.digest.split(":")[1]).write_bytes(blob.data)
        (layout / "blobs" / "sha256" / art.digest.split(":")[1]).write_bytes(art.manifest)
    out = tmp_path / "out"
    proc = ok(fastsync("copy", "-q", "--attachments", f"oci:{layout}:1", f"oci:{out}:1"))
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "level=warning" in err
    assert f"referrer {stray.digest} of {image.digest}" in err and f"its subject is {other.digest}" in err
    names = {e.get("annotations", {}).get("org.opencontainers.image.ref.name"): e["digest"]
             for e in json.loads((out / "index.json").read_text())["manifests"]}
    carried = json.loads((out / "blobs" / "sha256" / names[ca.tag_of(image.digest)].split(":")[1]).read_bytes())
    assert [e["digest"] for e in carried["manifests"]] == [good.digest]


def test_sync_yaml_sets_attachments_per_registry(registry, fresh_registry, signed: Signed, tmp_path: Path) -> None:
    def sync_yaml(setting: str, dest: str) -> None:
        cfg = tmp_path / f"{dest}.yaml"
        cfg.write_text(f"{registry.host}:\n  tls-verify: false\n{setting}  images:\n    {signed.repo}: ['1']\n")
        ok(fastsync("sync", "-q", "--dest-tls-verify=false", "--no-cache", "-s", "yaml", "-d", "docker", str(cfg),
                    f"{fresh_registry.host}/{dest}"))
    name = signed.repo.rsplit("/", 1)[1]
    sync_yaml("  attachments: false\n", "off")
    assert fresh_registry.request("GET", f"/v2/off/{name}/tags/list").json()["tags"] == ["1"]
    sync_yaml("  attachments: [signature]\n", "sigs")
    assert sorted(fresh_registry.request("GET", f"/v2/sigs/{name}/tags/list").json()["tags"]) == \
        sorted(["1", ca.tag_of(signed.image.digest, "sig")])
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"{registry.host}:\n  attachments: maybe\n  images:\n    {signed.repo}: ['1']\n")
    assert_one_line_error(fastsync("sync", "-s", "yaml", "-d", "docker", str(cfg), f"{fresh_registry.host}/x"),
                          "attachments must be true, false or a list of artifact types", code=1)


def test_images_without_attachments_cost_one_tag_listing_per_repository(seeded_registry, tmp_path: Path) -> None:
    """Discovery at a registry source lists each repository's tags once and asks for no cosign or
    fallback tag it does not list; a host without the referrers API is asked once per job."""
    from support import images
    from support.proxy import TamperProxy

    names = ("v2s2", "oci", "zstd")
    with TamperProxy(seeded_registry.url) as src:
        cfg = tmp_path / "sync.yaml"
        repos = [images.sample_repo(n) for n in names]
        cfg.write_text(f"{src.host}:\n  tls-verify: false\n  images:\n"
                       + "".join(f"    {repo}: [{tag}]\n" for repo, tag in repos))
        ok(fastsync("sync", "-q", "--cache", str(tmp_path / "cache"), "--src", "yaml", "--dest", "dir", str(cfg),
                    str(tmp_path / "out")))
        seen = [(r.method, r.path.split("?")[0]) for r in src.requests]
    assert sorted(p for m, p in seen if p.endswith("/tags/list")) == sorted(f"/v2/{r}/tags/list" for r, _ in repos)
    assert [p for m, p in seen if "/manifests/sha256-" in p] == []       # no .sig/.att/.sbom/fallback GETs
    assert len([p for m, p in seen if "/referrers/" in p]) == 1


def test_a_repository_listed_in_more_than_one_page_has_each_tag_asked_for(monkeypatch, registry, fresh_registry,
                                                                         signed: Signed) -> None:
    """Discovery takes one page of the tag list only: when there are more pages, the cosign tags are
    asked for one by one, and the attachments still travel."""
    from fastsync.api import copy_image
    from fastsync.attachments import discover
    from fastsync.attachments.model import AttachmentOptions
    from fastsync.options import CopyOptions, TransportOptions
    from support.proxy import TamperProxy

    monkeypatch.setattr(discover, "LISTING_PAGE", 1)       # the signed repository has more tags than that
    plain = TransportOptions(tls_verify=False)
    with TamperProxy(registry.url) as src:
        copy_image(f"docker://{src.host}/{signed.repo}:1", f"docker://{fresh_registry.host}/paged/app:1",
                   CopyOptions(attachments=AttachmentOptions(required=True)), src_opts=plain, dst_opts=plain)
        seen = [r.path for r in src.requests]
    assert [p for p in seen if "/tags/list" in p] == [f"/v2/{signed.repo}/tags/list?n=1"]
    assert any(p.endswith(f"/manifests/{ca.tag_of(signed.image.digest, 'sig')}") for p in seen)
    assert_all_there(fresh_registry, "paged/app", signed)
