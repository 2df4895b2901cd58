"""`fastsync bench REGISTRY`: push/pull throughput and manifest latency of a registry (fastsync.regbench)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Optional

import click

from fastsync.cli.errors import handle_errors
from fastsync.cli.flags import retry_option, topts, transport_flags, with_network
from fastsync.errors import UsageError

if TYPE_CHECKING:
    from fastsync.regbench import BenchResult, BenchRow

COLUMNS = (("OPERATION", 12), ("SIZE", 10), ("CONC", 5), ("COUNT", 6), ("SECONDS", 9), ("MB/s", 9),
           ("OPS/s", 8), ("p50 ms", 9), ("p90 ms", 9), ("p99 ms", 9))


def _line(cells: tuple[str, ...]) -> str:
    return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS)))


def row_line(row: "BenchRow") -> str:
    from fastsync.cli.render import human

    lat = row.latency
    rate = f"{row.mb_per_s:.1f}" if row.op in ("push", "pull") else "-"
    return _line((row.op, human(row.size), str(row.concurrency), str(row.count), f"{row.seconds:.3f}",
                  rate, f"{row.ops_per_s:.1f}", f"{lat.p50 * 1000:.1f}", f"{lat.p90 * 1000:.1f}",
                  f"{lat.p99 * 1000:.1f}"))


def cleanup_line(result: "BenchResult") -> str:
    from fastsync.cli.render import human

    c = result.cleanup
    blobs = f"{c.blobs_left} blobs ({human(c.blob_bytes_left)}) stay in {result.repository} until the registry's " \
            "garbage collection runs"
    if c.refused:
        return f"cleanup: the registry refused to delete a manifest ({c.refused}): {c.manifests_left} manifests " \
               f"and {blobs}"
    return f"cleanup: {c.manifests_deleted} manifests deleted; {blobs}"


def _list(text: str, flag: str, parse: Any) -> tuple[int, ...]:
    try:
        return tuple(parse(part) for part in text.split(",") if part.strip())
    except (UsageError, ValueError):
        raise UsageError(f"{flag}: invalid list {text!r}") from None


def _registry(text: str) -> str:
    """The registry host (HOST[:PORT]) named by REGISTRY (`docker://` accepted)."""
    from fastsync.reference import parse_docker_reference

    name = text[len("docker://"):] if text.startswith("docker://") else text
    name = name.rstrip("/")
    try:
        ref = parse_docker_reference(f"{name}/fastsync-bench")
    except UsageError:
        ref = None
    if ref is None or ref.domain != name.lower() or ref.path != "fastsync-bench":
        raise UsageError(f"REGISTRY {text!r} is not a registry host (HOST[:PORT], e.g. localhost:5000)")
    return ref.registry


@click.command()
@click.argument("registry")
@click.option("--blob-size", "blob_size", default="1MiB,32MiB", show_default=True, metavar="SIZES",
              help="sizes of the generated blobs, comma-separated (512KiB, 1MiB, 1G, bytes)")
@click.option("--concurrency", default="1,4,16", show_default=True, metavar="LEVELS",
              help="operations in flight at once, comma-separated; every size is measured at each")
@click.option("--count", type=int, default=16, show_default=True, metavar="N",
              help="blobs of each size (and manifests) pushed and pulled at each level (no fewer than the "
                   "highest level, to keep that many in flight)")
@click.option("--repository", default="", metavar="NAME",
              help="repository to work in (default: fastsync-bench-<random>); its manifests are deleted after")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="print a table, or the JSON document")
@click.option("--json", "json_path", metavar="FILE", help="also write the JSON document to FILE")
@retry_option
@transport_flags("", daemon=False)
@click.pass_context
@handle_errors
def bench(ctx: click.Context, registry: str, blob_size: str, concurrency: str, count: int, repository: str,
          fmt: str, json_path: Optional[str], retry_times: int, **kw: Any) -> None:
    """Measure REGISTRY's push and pull throughput (MB/s, per blob latency) and manifest latency at
    several concurrency levels, with generated blobs, in a repository it creates; its manifests are
    deleted afterwards (blobs stay until the registry's garbage collection). Writes blobs of
    about SIZES x COUNT x LEVELS bytes."""
    import orjson

    from fastsync.cli.render import human
    from fastsync.cli.sync import parse_size
    from fastsync.regbench import BenchPlan, bench_registry

    host = _registry(registry)
    plan = BenchPlan(_list(blob_size, "--blob-size", parse_size), _list(concurrency, "--concurrency", int),
                     count, repository).named()
    gopts = with_network(ctx.obj["global"], retry_times, kw)
    opts = topts(kw, "")
    table = fmt == "table"
    if table:
        click.echo(f"fastsync bench {host}, repository {plan.repository}: {count} of each at each concurrency "
                   f"level, {human(plan.total_bytes)} of blobs")
        click.echo(_line(tuple(name for name, _ in COLUMNS)))

    def show(row: "BenchRow") -> None:
        if table:
            click.echo(row_line(row))
            sys.stdout.flush()

    result = bench_registry(host, opts, plan, gopts, show)
    doc = orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2)
    if json_path:
        with open(json_path, "wb") as f:
            f.write(doc + b"\n")
    if table:
        click.echo(cleanup_line(result))
    else:
        sys.stdout.buffer.write(doc + b"\n")


COMMANDS = [bench]
