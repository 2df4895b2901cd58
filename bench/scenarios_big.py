"""One image with one big layer over a long-haul WAN: every TCP connection capped on its own.

Long-haul links limit each TCP connection (its window over the round trip), not only the link as a
whole. The source registry here sits behind a DelayProxy adding 20 ms each way and capping each
connection at 25 MB/s per direction (``PER_CONNECTION``); the destination is a loopback registry (a
mirror next to the user). The layer is 1 GiB at scale 1 (``--scale`` scales it: 512 MiB at 0.5),
incompressible and deterministic (bench/sync_bench.write_big_image), pushed once per run. What it
measures: a tool that fetches a big blob over one connection is held to the cap; one that asks for
parallel Range parts is not. Peak RSS is in the table (bounded memory while parts are reassembled).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from . import corpus as corpus_mod
from . import harness
from .harness import ALL_TOOLS, Command, Endpoint, Measurement, Scenario, Skip, Trial, fastsync, floor, register, skopeo
from .scenarios import check_registry
from .sync_bench import write_big_image
from support.proxy import DelayProxy
from support.registry import Registry

OUT = Path(__file__).resolve().parent / "out"
PER_CONNECTION = 25e6        # bytes/s, each direction of each TCP connection
TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")


def _source(t: Trial, mib: int) -> tuple[Endpoint, dict]:
    """The capped source holding the big image: started and pushed once per benchmark run."""
    kept = getattr(t.bench, "_big_source", None)
    if kept is not None and kept[1]["mib"] == mib:
        return kept[0], kept[1]
    path = OUT / f"big-{mib}m"
    info = write_big_image(path, mib)
    reg = t.bench.stack.enter_context(Registry())
    push = skopeo("copy", "--dest-tls-verify=false", f"dir:{path}", f"docker://{reg.host}/{info['ref']}")
    proc = subprocess.run(push, capture_output=True, env=harness.base_env())
    if proc.returncode:
        raise Skip(f"pushing the big image failed: {proc.stderr.decode(errors='replace')[-300:]}")
    head = reg.request("HEAD", f"/v2/{info['repo']}/manifests/{info['tag']}", headers={"Accept": info["media_type"]})
    info = {**info, "digest": head.headers["Docker-Content-Digest"], "mib": mib}   # as skopeo pushed it
    proxy = t.bench.stack.enter_context(DelayProxy("127.0.0.1", reg.port, t.bench.delay_ms, None,
                                                   per_connection_bps=PER_CONNECTION))
    endpoint = Endpoint(reg, proxy)
    t.bench._big_source = (endpoint, info)  # type: ignore[attr-defined]
    return endpoint, info


@register
class BigWanCapped(Scenario):
    name = "big-wan"
    metrics = ("wall", "rss")
    tools = ALL_TOOLS
    timeout = 900.0

    @property
    def title(self) -> str:  # type: ignore[override]
        return "copy one image with a big layer, WAN capped per connection (25 MB/s), to loopback"

    def prepare(self, t: Trial) -> None:
        mib = max(16, round(1024 * t.bench.scale))
        src, info = _source(t, mib)
        t.state.update(src=src, dest=t.registry(wan=False), image=info)

    def command(self, t: Trial) -> Command:
        src, dest, im = t.state["src"].host, t.state["dest"].host, t.state["image"]
        ref, name = im["ref"], f"mirror/{im['repo'].rsplit('/', 1)[-1]}:{im['tag']}"
        if t.tool == "floor":
            one = t.dir / "one.yaml"
            one.write_text(corpus_mod.sync_yaml([im], src))
            argv = floor("copy", str(one), f"docker://{dest}/mirror", "--timings", str(t.floor_timings))
            return Command(argv, f"python -m bench.floor copy one.yaml ({ref}, {im['mib']} MiB layer) docker://DEST/mirror")
        tool = fastsync if t.tool == "fastsync" else skopeo
        argv = tool("copy", "--all", *TLS, f"docker://{src}/{ref}", f"docker://{dest}/{name}")
        return Command(argv, f"{t.tool} copy --all docker://SRC/{ref} ({im['mib']} MiB layer) docker://DEST/{name}")

    def check(self, t: Trial, m: Measurement) -> None:
        check_registry(t, t.state["dest"].registry, [t.state["image"]])
