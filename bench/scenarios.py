"""The issue's scenarios: fastsync and skopeo on the same corpus, same registries, same run.

fastsync runs ``fastsync sync`` when ``python -m fastsync sync --help`` works, otherwise a
``fastsync copy --all`` loop over the image list (what exists today). skopeo runs
``skopeo sync --all`` with the same YAML (``--baseline copy-loop`` switches it to the
``skopeo copy --all`` loop users write). The table's footnotes print exactly what ran.

Destinations are ``<dest registry>/mirror/<name>:<tag>`` and ``<dir>/<name>:<tag>``, ``<name>``
being the last component of the repository (skopeo sync's naming without ``--scoped``); every run is checked afterwards (manifest digests at the
destination), so a number is only reported for a complete, correct copy.

The third tool, "floor", is bench/floor.py on the same YAML: the raw mover for fresh syncs and
the big copy, the HEAD-only no-op for the re-sync, and for ``dir:`` a mover whose blob pool (in
the trial's cache directory, kept warm the way fastsync's cache is) makes the warm case
hardlinks only.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from . import corpus as corpus_mod
from .harness import ALL_TOOLS, Command, Measurement, Scenario, Skip, Trial, disk_usage, fastsync, fastsync_has, floor, \
    loop, register, skopeo

TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")
OPTIONS = {"baseline": "sync"}   # set by __main__ (--baseline)


def dest_name(im: dict) -> str:
    """Where skopeo sync (not --scoped) puts an image under its destination: the last path
    component of the repository, and the tag."""
    return f"{im['repo'].rsplit('/', 1)[-1]}:{im['tag']}"


def sync_to_registry(t: Trial, src_wan: bool, dest_host: str) -> Command:
    dest = f"{dest_host}/mirror"
    images = t.corpus["images"]
    src = t.src(src_wan)
    if t.tool == "floor":
        argv = floor("copy", str(t.sync_yaml(src_wan)), f"docker://{dest}", "--timings", str(t.floor_timings))
        return Command(argv, "python -m bench.floor copy sync.yaml docker://DEST/mirror")
    if t.tool == "fastsync" and fastsync_has("sync"):
        argv = fastsync("sync", "--src", "yaml", "--dest", "docker", "--all", "--dest-tls-verify=false",
                        str(t.sync_yaml(src_wan)), dest)
        return Command(argv, "fastsync sync --src yaml --dest docker --all sync.yaml DEST/mirror")
    if t.tool == "skopeo" and OPTIONS["baseline"] == "sync":
        argv = skopeo("sync", "--all", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                      str(t.sync_yaml(src_wan)), dest)
        return Command(argv, "skopeo sync --all --src yaml --dest docker sync.yaml DEST/mirror")
    tool = fastsync if t.tool == "fastsync" else skopeo
    argvs = [tool("copy", "--all", *TLS, f"docker://{src}/{im['ref']}", f"docker://{dest}/{dest_name(im)}")
             for im in images]
    return loop(t, argvs, f"{t.tool} copy --all docker://SRC/REPO:TAG docker://DEST/mirror/NAME:TAG, one per image")


def sync_to_dir(t: Trial, src_wan: bool, out: Path) -> Command:
    src = t.src(src_wan)
    if t.tool == "floor":   # the blob pool lives where fastsync's cache does, and is kept (or emptied) alike
        pool = Path(t.env["XDG_CACHE_HOME"]) / "floor-pool"
        argv = floor("copy", str(t.sync_yaml(src_wan)), f"dir:{out}", "--pool", str(pool),
                     "--timings", str(t.floor_timings))
        return Command(argv, "python -m bench.floor copy sync.yaml dir:DIR --pool $XDG_CACHE_HOME/floor-pool")
    if t.tool == "fastsync" and fastsync_has("sync"):
        argv = fastsync("sync", "--src", "yaml", "--dest", "dir", "--all", str(t.sync_yaml(src_wan)), str(out))
        return Command(argv, "fastsync sync --src yaml --dest dir --all sync.yaml DIR")
    if t.tool == "skopeo" and OPTIONS["baseline"] == "sync":
        argv = skopeo("sync", "--all", "--src", "yaml", "--dest", "dir", str(t.sync_yaml(src_wan)), str(out))
        return Command(argv, "skopeo sync --all --src yaml --dest dir sync.yaml DIR")
    tool = fastsync if t.tool == "fastsync" else skopeo
    argvs = [tool("copy", "--all", "--src-tls-verify=false", f"docker://{src}/{im['ref']}", f"dir:{out}/{dest_name(im)}")
             for im in t.corpus["images"]]
    return loop(t, argvs, f"{t.tool} copy --all docker://SRC/REPO:TAG dir:DIR/NAME:TAG, one per image")


def check_registry(t: Trial, registry, images: list[dict], prefix: str = "mirror/") -> None:
    """Every image is at ``prefix + dest_name`` in ``registry`` with the source's digest."""
    for im in images:
        repo, tag = dest_name(im).rsplit(":", 1)
        r = registry.request("HEAD", f"/v2/{prefix}{repo}/manifests/{tag}", headers={"Accept": im["media_type"]})
        got = r.headers.get("Docker-Content-Digest")
        if r.status != 200 or got != im["digest"]:
            raise RuntimeError(f"{prefix}{repo}:{tag} at the destination: HTTP {r.status}, digest {got}, "
                               f"expected {im['digest']}")


def check_dir(out: Path, images: list[dict]) -> None:
    for im in images:
        path = out / dest_name(im) / "manifest.json"
        if not path.exists():
            raise RuntimeError(f"{path} missing")
        got = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        if got != im["digest"]:
            raise RuntimeError(f"{path}: digest {got}, expected {im['digest']}")


class _FreshSync(Scenario):
    wan = False
    metrics = ("wall", "rss")
    tools = ALL_TOOLS

    def prepare(self, t: Trial) -> None:
        t.state["dest"] = t.registry(wan=self.wan)

    def command(self, t: Trial) -> Command:
        return sync_to_registry(t, self.wan, t.state["dest"].host)

    def check(self, t: Trial, m: Measurement) -> None:
        check_registry(t, t.state["dest"].registry, t.corpus["images"])


@register
class FreshLoopback(_FreshSync):
    name = "fresh-loopback"
    title = "fresh sync registry→registry, loopback"


@register
class FreshWan(_FreshSync):
    name = "fresh-wan"
    title = "fresh sync registry→registry, WAN"
    wan = True


@register
class ResyncWan(_FreshSync):
    name = "resync-wan"
    title = "re-sync, nothing changed, WAN"
    wan = True
    metrics = ("wall", "nostart")

    def prepare(self, t: Trial) -> None:
        super().prepare(t)
        # the same tool synced these images before, to the same addresses, with the same cache
        with t.no_delay():
            t.run(sync_to_registry(t, self.wan, t.state["dest"].host))
        check_registry(t, t.state["dest"].registry, t.corpus["images"])

    def command(self, t: Trial) -> Command:
        if t.tool != "floor":
            return super().command(t)
        argv = floor("noop", str(t.sync_yaml(self.wan)), f"docker://{t.state['dest'].host}/mirror",
                     "--timings", str(t.floor_timings))
        return Command(argv, "python -m bench.floor noop sync.yaml docker://DEST/mirror (HEAD at both ends)")


class _DirSync(Scenario):
    metrics = ("wall", "disk")
    tools = ALL_TOOLS
    cache_key = "dir-cache"

    def command(self, t: Trial) -> Command:
        return sync_to_dir(t, True, t.dir / "out")

    def check(self, t: Trial, m: Measurement) -> None:
        check_dir(t.dir / "out", t.corpus["images"])
        m.extra["disk"] = disk_usage(t.dir / "out")


@register
class DirCold(_DirSync):
    name = "dir-cold"
    title = "sync to dir:, cold cache, WAN"

    def prepare(self, t: Trial) -> None:
        cache = t.persistent(self.cache_key)
        for p in sorted(cache.rglob("*"), reverse=True):   # cold: empty, but the same path every time
            p.unlink() if not p.is_dir() or p.is_symlink() else p.rmdir()
        t.env["XDG_CACHE_HOME"] = str(cache)

    def check(self, t: Trial, m: Measurement) -> None:
        super().check(t, m)
        (Path(t.env["XDG_CACHE_HOME"]) / ".bench-warm").write_text("1")


@register
class DirWarm(_DirSync):
    name = "dir-warm"
    title = "sync to dir:, warm cache, new dir, WAN"

    def prepare(self, t: Trial) -> None:
        cache = t.persistent(self.cache_key)
        t.env["XDG_CACHE_HOME"] = str(cache)
        if not (cache / ".bench-warm").exists():   # dir-cold did not run before us: warm it here
            with t.no_delay():
                t.run(sync_to_dir(t, True, t.dir / "warmup"))
            (cache / ".bench-warm").write_text("1")


@register
class BigCopy(Scenario):
    name = "big-copy"
    metrics = ("wall", "rss")
    tools = ALL_TOOLS

    @property
    def title(self) -> str:  # type: ignore[override]
        return "copy one big image, loopback"

    def prepare(self, t: Trial) -> None:
        t.state["dest"] = t.registry(wan=False)
        big = t.corpus["biggest"]
        t.state["image"] = next(im for im in t.corpus["images"] if im["ref"] == big)

    def command(self, t: Trial) -> Command:
        im = t.state["image"]
        if t.tool == "floor":
            one = t.dir / "one.yaml"
            one.write_text(corpus_mod.sync_yaml([im], t.src(False)))
            argv = floor("copy", str(one), f"docker://{t.state['dest'].host}/mirror", "--timings", str(t.floor_timings))
            return Command(argv, f"python -m bench.floor copy one.yaml ({im['ref']}) docker://DEST/mirror")
        tool = fastsync if t.tool == "fastsync" else skopeo
        argv = tool("copy", "--all", *TLS, f"docker://{t.src(False)}/{im['ref']}",
                    f"docker://{t.state['dest'].host}/mirror/{dest_name(im)}")
        return Command(argv, f"{t.tool} copy --all docker://SRC/{im['ref']} docker://DEST/mirror/{dest_name(im)}")

    def check(self, t: Trial, m: Measurement) -> None:
        check_registry(t, t.state["dest"].registry, [t.state["image"]])


def corpus_summary(corpus: dict) -> str:
    big = next(im for im in corpus["images"] if im["ref"] == corpus["biggest"])
    return (f"{len(corpus['images'])} images ({corpus['manifests']} manifests), {corpus['unique_layers']} unique "
            f"layers, {corpus['uncompressed_bytes'] / 2**20:.0f} MiB uncompressed → "
            f"{corpus['unique_layer_bytes'] / 2**20:.0f} MiB gzip unique, "
            f"{corpus['total_image_bytes'] / 2**20:.0f} MiB summed over images; big image {big['ref']} "
            f"{big['bytes'] / 2**20:.0f} MiB")


__all__ = ["check_dir", "check_registry", "corpus_summary", "dest_name", "sync_to_dir", "sync_to_registry"]
