"""`--stats`: the per-host figures of a run (fastsync.registry.stats) as a table for people, on stderr."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Sequence, TextIO

import click

if TYPE_CHECKING:
    from fastsync.registry.stats import HostFigures, Latency

STATS_HELP = ("at the end, print per-host figures on stderr (stdout stays skopeo's): requests, bytes and MB/s "
              "each way, retries, connections, the adaptive limit, time to first byte")


def stats_flag(f: click.decorators.FC) -> click.decorators.FC:
    from fastsync.cli.flags import go_flag

    return go_flag("--stats", help=STATS_HELP)(f)


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> list[str]:
    """Lines of a plain-text table: the first `left` columns left-aligned, the others right-aligned."""
    rows = [list(header)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def ms(lat: Optional["Latency"]) -> str:
    """`p50/p90/p99` in milliseconds, or `-`."""
    if lat is None:
        return "-"
    return "/".join(f"{v * 1000:.1f}" for v in (lat.p50, lat.p90, lat.p99))


HEADER = ("HOST", "REQUESTS", "SENT", "RECEIVED", "UP MB/s", "DOWN MB/s", "RETRIES", "CONNS", "IN FLIGHT",
          "LIMIT", "TTFB p50/p90/p99 ms")


def host_lines(figures: Sequence["HostFigures"]) -> list[str]:
    """The table, one row per host, each followed by its requests by method and answer status."""
    from fastsync.cli.render import human

    if not figures:
        return ["no registry requests"]
    rows = []
    for h in figures:
        limit = f"{h.limit_final}/{h.limit_peak}" if h.limit_final is not None else "-"
        rows.append((h.host, str(h.requests_total), human(h.bytes_sent), human(h.bytes_received),
                     f"{h.rate(h.bytes_sent):.1f}", f"{h.rate(h.bytes_received):.1f}", str(h.retries),
                     str(h.connections_opened), str(h.in_flight_peak), limit, ms(h.ttfb)))
    table = format_table(HEADER, rows)
    out = [table[0]]
    for line, h in zip(table[1:], figures):
        out.append(line)
        out.append("  " + "; ".join(f"{method} " + " ".join(f"{status} x{n}" for status, n in statuses.items())
                                    for method, statuses in h.by_method().items()))
    return out


def print_stats(figures: Sequence["HostFigures"], out: TextIO) -> None:
    out.write("".join(line + "\n" for line in host_lines(figures)))
    out.flush()
