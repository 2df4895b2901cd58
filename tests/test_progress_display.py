"""The byte counter of the progress bars counts what the plan's total counts (each blob once), so it
never shows more done than planned: a warm-cache sync once showed `292 MiB/127 MiB`."""
from __future__ import annotations

import re

from helpers import fastsync, ok, on_terminal


def test_each_blob_counts_once_however_many_destinations_it_is_placed_in() -> None:
    from fastsync.progress import Event, Tally

    t = Tally()
    t(Event("plan-done", size=2, total=300))
    for _ in range(2):                                  # two images, the same two blobs
        t(Event("blob-start", digest="a", size=100))
        t(Event("bytes", digest="a", size=60))
        t(Event("bytes", digest="a", size=40))
        t(Event("blob-start", digest="b", size=200))
        t(Event("bytes", digest="b", size=200, cached=True))
    assert t.bytes_done == 300 and t.bytes_unique_cached == 200
    assert t.bytes_moved == 200 and t.bytes_cached == 400      # what was moved, for the rate and the report


def test_the_counter_never_exceeds_the_total_of_an_unknown_blob() -> None:
    from fastsync.progress import Event, Tally

    t = Tally()
    t(Event("plan-done", size=1, total=100))
    t(Event("bytes", digest="edited", size=150))        # a recompressed layer: no blob-start of its own
    assert t.bytes_done == 100


_UNIT = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def test_a_warm_cache_sync_shows_no_more_bytes_done_than_planned(seeded_registry, tmp_path) -> None:
    (tmp_path / "s.yml").write_text(f"{seeded_registry.host}:\n  tls-verify: false\n  images:\n"
                                    "    samples/v2s2: [latest]\n    samples/shared: [latest]\n")
    base = ["sync", "--cache", str(tmp_path / "cache"), "--src", "yaml", "--dest", "dir", str(tmp_path / "s.yml")]
    ok(fastsync(*base, str(tmp_path / "warm")))          # fills the cache
    # into dir: (no mounts) the shared base layer is placed twice from the cache
    screen = on_terminal([*base, str(tmp_path / "cold")])
    pairs = re.findall(r"([\d.]+) (B|KiB|MiB|GiB)/([\d.]+) (B|KiB|MiB|GiB)", screen)
    assert pairs, screen
    for done, du, total, tu in pairs:
        assert float(done) * _UNIT[du] <= float(total) * _UNIT[tu] * 1.001, (done, du, total, tu)
    assert "from cache" in screen
