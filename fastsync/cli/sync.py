"""`fastsync sync` (skopeo sync's flags, more inputs, a cache, progress and a report) and `fastsync cache`."""
from __future__ import annotations

import dataclasses
import re
import sys
import time
from contextlib import nullcontext
from typing import Any, Optional

import click

from fastsync.cli.skopeo_log import SkopeoSyncLog, source_count
from fastsync.errors import FastsyncError, UsageError
from fastsync.options import CopyOptions

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """`10G`, `500MiB`, `1.5g`, `2048` -> bytes."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise UsageError(f"invalid size {text!r} (e.g. 500M, 10G)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` -> seconds."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([smhdw]?)\s*", text.lower())
    if not m:
        raise UsageError(f"invalid age {text!r} (e.g. 30d, 12h)")
    return float(m.group(1)) * _SECONDS[m.group(2)]


def _store(cache: Optional[str], no_cache: bool = False) -> Any:
    if no_cache:
        return None
    from fastsync.store.blobs import Store, default_root

    return Store(cache or default_root())


def register(main: click.Group) -> None:
    from fastsync.cli.errors import handle_errors
    from fastsync.cli.flags import (apply_deprecated_tls_verify, check_retry_times, compression_options,
                                    deprecated_tls_verify, go_flag, network_flags, topts, transport_flags,
                                    with_network)
    from fastsync.cli.stats import print_stats, stats_flag
    from fastsync.cli.attachments import attachment_flags, attachment_options
    from fastsync.cli.trust import make_trust, signing_flags

    @main.command()
    @click.argument("source")
    @click.argument("destination", required=False)
    @click.option("-s", "--src", "src_kind", required=True, metavar="KIND",
                  help="SOURCE kind: docker, dir, yaml, list, image-syncer, registry-storage, docker-daemon, "
                       "containers-storage")
    @click.option("-d", "--dest", "dest_kind", required=True, metavar="KIND",
                  help="DESTINATION kind: docker, dir, registry-storage, docker-daemon, containers-storage")
    @go_flag("--scoped", help="prefix destinations with the full source image path")
    @go_flag("-a", "--all", "all_", help="copy every image of a list/index")
    @go_flag("--keep-going", help="do not stop at the first failed image")
    @go_flag("--dry-run", help="plan and report, copy nothing")
    @go_flag("--preserve-digests", help="fail instead of changing any digest")
    @go_flag("--remove-signatures", help="do not copy signatures from SOURCE images")
    @signing_flags(identity=False)
    @click.option("-f", "--format", "fmt", type=click.Choice(["oci", "v2s2"]), help="convert manifests to this type")
    @click.option("--retry-times", type=int, default=3, show_default=True,
                  help="retries of each request or blob after a transient failure")
    @network_flags
    @click.option("--append-suffix", default="", metavar="SUFFIX", help="append to every destination name")
    @click.option("--digestfile", metavar="PATH", help="write 'DIGEST DEST' lines for the synced images")
    @click.option("--authfile", metavar="PATH", help="auth file for both sides")
    @click.option("--src-registry", metavar="HOST[/NS]", help="list: registry for lines without one")
    @click.option("--dest-registry", metavar="HOST[/NS]", help="the DESTINATION prefix (list, image-syncer)")
    @click.option("--auth", "auth_file", metavar="PATH", help="image-syncer auth file (registry -> credentials)")
    @click.option("-j", "--jobs", type=click.IntRange(1, 256), help="blob transfers per registry (default: adaptive)")
    @click.option("--cache", metavar="DIR", help="blob cache (default $XDG_CACHE_HOME/fastsync)")
    @go_flag("--no-cache", help="do not use the blob cache")
    @click.option("--report", metavar="FILE.json", help="write a JSON report of every image (and of every "
                  "registry host: requests, bytes, retries, connections, limits, time to first byte)")
    @stats_flag
    @go_flag("-q", "--quiet", help="no progress output")
    @go_flag("--dest-compress", help="compress uncompressed layers")
    @go_flag("--dest-decompress", help="store layers uncompressed")
    @click.option("--dest-compress-format", type=click.Choice(["gzip", "zstd"]), help="(re)compress layers")
    @click.option("--dest-compress-level", type=int, metavar="N", help="compression level")
    @attachment_flags(default_on=True)
    @transport_flags("src-")
    @transport_flags("dest-")
    @deprecated_tls_verify
    @click.pass_context
    @handle_errors
    def sync(ctx: click.Context, source: str, destination: Optional[str], src_kind: str, dest_kind: str,
             scoped: bool, all_: bool, keep_going: bool, dry_run: bool, preserve_digests: bool,
             remove_signatures: bool, fmt: Optional[str], retry_times: int, append_suffix: str,
             digestfile: Optional[str], authfile: Optional[str], src_registry: Optional[str],
             dest_registry: Optional[str], auth_file: Optional[str], jobs: Optional[int], cache: Optional[str],
             no_cache: bool, report: Optional[str], stats: bool, quiet: bool, dest_compress: bool,
             dest_decompress: bool, dest_compress_format: Optional[str], dest_compress_level: Optional[int],
             sign_by: Optional[str], sigstore_key: Optional[str], sign_passphrase_file: Optional[str],
             deprecated_tls_verify: Optional[bool], attachments: Optional[bool],
             attachment_types: tuple[str, ...], **kw: Any) -> None:
        """Copy every image of SOURCE to DESTINATION (skopeo sync, plus lists and image-syncer files)."""
        from fastsync.registry.stats import TrafficStats
        from fastsync.sync.inputs import SyncRequest, sync_images
        from fastsync.sync.plan import SyncOptions

        if destination and dest_registry and destination != dest_registry:
            raise UsageError("give DESTINATION or --dest-registry, not both")
        destination = destination or dest_registry
        if not destination and src_kind != "image-syncer":    # its rules may name every destination
            raise UsageError("missing DESTINATION (or --dest-registry)")
        check_retry_times(retry_times)
        apply_deprecated_tls_verify(deprecated_tls_verify, kw)
        trust = make_trust(ctx, remove_signatures, sign_by, None, sign_passphrase_file, sigstore_key)
        copy = CopyOptions(multi_arch="all" if all_ else "system", platform=ctx.obj["platform"], format=fmt,
                           preserve_digests=preserve_digests, remove_signatures=remove_signatures,
                           retry_times=retry_times, blob_concurrency=64, trust=trust,
                           attachments=attachment_options(attachments, attachment_types, default_on=True),
                           **compression_options(dest_compress, dest_decompress, dest_compress_format,
                                                 dest_compress_level))
        options = SyncOptions(copy, jobs=jobs, keep_going=keep_going, dry_run=dry_run)
        gopts = with_network(ctx.obj["global"], retry_times, kw)
        gopts = dataclasses.replace(gopts, connections_per_host=max(gopts.connections_per_host,
                                                                     (jobs or options.max_jobs) + 8))
        src_opts, dst_opts = topts(kw, "src-", authfile), topts(kw, "dest-", authfile)
        store = _store(cache, no_cache)
        traffic = TrafficStats() if report or stats else None
        shown, display, sink = _display(quiet, bool(dry_run))
        started = time.time()
        with display:
            if isinstance(shown, SkopeoSyncLog):
                shown.start()
            request = SyncRequest(source, destination or "", src_kind, dest_kind, options, src_opts, dst_opts,
                                  scoped, append_suffix, src_registry, auth_file)
            result = sync_images(request, gopts, store, sink, traffic)
        hosts = traffic.figures() if traffic is not None else None
        if report:
            from fastsync.cli.render import write_report
            write_report(report, result, started, dry_run, hosts)
        if digestfile and not dry_run:
            with open(digestfile, "w") as f:
                for r in result.images:
                    if r.digest and not r.error:
                        f.write(f"{r.digest} {r.destination}\n")
        failed = result.failed
        if isinstance(shown, SkopeoSyncLog) and (not failed or keep_going):
            shown.finish(sum(1 for r in result.images if not r.error), source_count(r.source for r in result.images))
        if stats and hosts is not None:
            print_stats(hosts, sys.stderr)
        if failed:
            first = failed[0]
            if not keep_going:
                raise FastsyncError(f"copying ref \"{first.source}\": {first.error}")
            raise FastsyncError(f"Sync failed for {len(failed)} of {result.planned} images "
                                f"(first: {first.source}: {first.error})")

    @main.group()
    def cache() -> None:
        """Inspect and trim the blob cache."""

    cache_dir = click.option("--cache", "cache_dir", metavar="DIR", help="cache directory (default $XDG_CACHE_HOME/fastsync)")

    @cache.command("ls")
    @cache_dir
    @click.option("--refs", is_flag=True, help="list remembered tag -> digest entries instead of blobs")
    @handle_errors
    def cache_ls(cache_dir: Optional[str], refs: bool) -> None:
        """List cached blobs (DIGEST SIZE LAST-USED) or remembered refs."""
        store = _store(cache_dir)
        if refs:
            for source, e in store.refs():
                click.echo(f"{source} {e.digest} {time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(e.checked))}")
            return
        for e in store.entries():
            click.echo(f"{e.digest} {e.size} {time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(e.last_used))}")

    @cache.command("du")
    @cache_dir
    @handle_errors
    def cache_du(cache_dir: Optional[str]) -> None:
        """Blobs held and their total size."""
        from fastsync.cli.render import human

        store = _store(cache_dir)
        n, size = store.usage()
        click.echo(f"{n} blobs, {size} bytes ({human(size)}) in {store.root}")

    @cache.command("gc")
    @cache_dir
    @click.option("--max-age", metavar="AGE", help="remove blobs unused for this long (30d, 12h, ...)")
    @click.option("--max-size", metavar="SIZE", help="then remove least recently used blobs down to SIZE (10G, ...)")
    @click.option("--dry-run", is_flag=True, help="only say what would be removed")
    @click.option("--wait", is_flag=True, help="wait for running syncs instead of failing")
    @handle_errors
    def cache_gc(cache_dir: Optional[str], max_age: Optional[str], max_size: Optional[str], dry_run: bool,
                 wait: bool) -> None:
        """Remove old blobs (by age, then by total size)."""
        from fastsync.cli.render import human

        if max_age is None and max_size is None:
            raise UsageError("give --max-age and/or --max-size")
        res = _store(cache_dir).gc(parse_age(max_age) if max_age else None,
                                   parse_size(max_size) if max_size else None, dry_run, wait)
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{verb} {res.removed} blobs ({human(res.freed)}); kept {res.kept} ({human(res.kept_bytes)})")

    @cache.command("verify")
    @cache_dir
    @click.option("--full", is_flag=True, help="re-hash with sha256 even where a blake3 sidecar exists")
    @click.option("--repair", is_flag=True, help="remove blobs that do not match their digest")
    @handle_errors
    def cache_verify(cache_dir: Optional[str], full: bool, repair: bool) -> None:
        """Re-hash every cached blob; exit 1 if any does not match its name."""
        res = _store(cache_dir).verify(full, repair)
        for d in res.bad:
            click.echo(f"corrupt: {d}" + (" (removed)" if repair else ""), err=True)
        click.echo(f"verified {res.checked} blobs ({res.fast} by blake3 sidecar): {len(res.bad)} corrupt")
        if res.bad:
            sys.exit(1)


def _display(quiet: bool, dry_run: bool = False) -> tuple[Any, Any, Any]:
    """(display, context manager around the job, event sink): bars on a terminal, skopeo's log lines
    otherwise."""
    if quiet:
        return None, nullcontext(), None
    if sys.stderr.isatty():
        from fastsync.cli.render import RichProgress

        bars = RichProgress(sys.stderr)
        return bars, bars, bars
    from fastsync.cli.render import PerImageReport
    from fastsync.progress import fan_out

    log = SkopeoSyncLog(sys.stderr, dry_run)        # and each image's copy report on stdout, as skopeo
    return log, nullcontext(), fan_out(log, PerImageReport(sys.stdout))
