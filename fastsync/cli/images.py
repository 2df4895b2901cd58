"""copy, inspect, list-tags, delete, manifest-digest: one image (or repository) at a time."""
from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional

import click

from fastsync.cli.attachments import attachment_flags, attachment_options
from fastsync.cli.errors import handle_errors, with_retries
from fastsync.cli.flags import (additional_tags, apply_deprecated_tls_verify, check_retry_times,
                                compression_options, deprecated_tls_verify, go_flag, network_flags, platform_of,
                                retry_option, topts, transport_flags, with_network, write_stdout)
from fastsync.cli.stats import print_stats, stats_flag
from fastsync.cli.trust import delete_signatures, encryption_flags, make_trust, signing_flags
from fastsync.errors import FastsyncError, UsageError
from fastsync.options import CopyOptions

if TYPE_CHECKING:
    from fastsync.options import GlobalOptions, TransportOptions


@click.command()
@click.argument("source")
@click.argument("destination")
@go_flag("-a", "--all", "all_", help="copy every image of a manifest list/index")
@click.option("--multi-arch", default=None, metavar="system|all|index-only",
              help="which images of a list to copy (default: system)")
@click.option("-f", "--format", "fmt", type=click.Choice(["oci", "v2s2"]), help="convert the manifest format")
@go_flag("--preserve-digests", help="fail instead of changing any digest")
@click.option("--retry-times", type=int, default=3, show_default=True,
              help="retries of each request or blob after a transient failure")
@network_flags
@click.option("--digestfile", metavar="PATH", help="write the digest of the copied manifest here")
@go_flag("--dest-compress", help="compress uncompressed layers (gzip unless --dest-compress-format)")
@go_flag("--dest-decompress", help="store layers uncompressed")
@click.option("--dest-compress-format", type=click.Choice(["gzip", "zstd"]), help="(re)compress layers to this format")
@click.option("--dest-compress-level", type=int, metavar="N", help="compression level (gzip 0-9, zstd 1-22)")
@go_flag("-q", "--quiet", help="no progress output")
@stats_flag
@go_flag("--remove-signatures", help="do not copy signatures from SOURCE")
@signing_flags(identity=True)
@encryption_flags
@click.option("--authfile", metavar="PATH", help="auth file for both source and destination")
@click.option("--additional-tag", "additional_tag", multiple=True, metavar="NAME:TAG",
              help="more tags for the image written (docker-archive:); repeat or separate with commas")
@go_flag("--dest-oci-accept-uncompressed-layers", help="keep uncompressed layers uncompressed in oci: and "
         "oci-archive: (by default they are gzipped, as skopeo does)")
@go_flag("--dest-precompute-digests", help="learn a layer's digest before uploading it, to skip layers the "
         "registry has (fastsync always does: recompressed layers are digested before any upload)")
@click.option("--screds", hidden=True, metavar="USER[:PASS]", help="old spelling of --src-creds")
@click.option("--dcreds", hidden=True, metavar="USER[:PASS]", help="old spelling of --dest-creds")
@attachment_flags(default_on=False)
@deprecated_tls_verify
@transport_flags("src-", oci=True)
@transport_flags("dest-", oci=True)
@click.pass_context
@handle_errors
def copy(ctx: click.Context, source: str, destination: str, all_: bool, multi_arch: Optional[str],
         fmt: Optional[str], preserve_digests: bool, retry_times: int, digestfile: Optional[str], quiet: bool,
         stats: bool, remove_signatures: bool, authfile: Optional[str], dest_compress: bool, dest_decompress: bool,
         dest_compress_format: Optional[str], dest_compress_level: Optional[int], sign_by: Optional[str],
         sigstore_key: Optional[str], sign_passphrase_file: Optional[str], sign_identity: Optional[str],
         encryption_keys: tuple[str, ...], encrypt_layers: tuple[str, ...], decryption_keys: tuple[str, ...],
         additional_tag: tuple[str, ...], dest_oci_accept_uncompressed_layers: Optional[bool],
         dest_precompute_digests: Optional[bool], screds: Optional[str], dcreds: Optional[str],
         deprecated_tls_verify: Optional[bool], attachments: Optional[bool], attachment_types: tuple[str, ...],
         **kw: Any) -> None:
    """Copy an image from SOURCE to DESTINATION (transport:details names)."""
    from fastsync import api

    del dest_precompute_digests     # what fastsync always does (see the flag's help)
    check_retry_times(retry_times)
    apply_deprecated_tls_verify(deprecated_tls_verify, kw)
    for alias, name in ((screds, "src_creds"), (dcreds, "dest_creds")):
        if alias is not None and kw.get(name) is None:
            kw[name] = alias
    if multi_arch not in (None, "system", "all", "index-only"):
        raise UsageError(f'unknown multi-arch option "{multi_arch}". Choose one of the supported options: '
                         "'system', 'all', or 'index-only'")
    if all_ and multi_arch is not None:
        raise UsageError("Cannot use --all and --multi-arch flags together")
    trust = make_trust(ctx, remove_signatures, sign_by, sign_identity, sign_passphrase_file, sigstore_key,
                       encryption_keys, encrypt_layers, decryption_keys)
    options = CopyOptions(multi_arch="all" if all_ else (multi_arch or "system"), platform=platform_of(ctx),
                          format=fmt, preserve_digests=preserve_digests, retry_times=retry_times,
                          remove_signatures=remove_signatures, trust=trust,
                          attachments=attachment_options(attachments, attachment_types, default_on=False),
                          **compression_options(dest_compress, dest_decompress, dest_compress_format,
                                                dest_compress_level))
    gopts = with_network(ctx.obj["global"], retry_times, kw)
    src_opts, dst_opts = topts(kw, "src-", authfile), topts(kw, "dest-", authfile)
    dst_opts = dataclasses.replace(dst_opts, additional_tags=additional_tags(additional_tag),
                                   oci_accept_uncompressed_layers=bool(dest_oci_accept_uncompressed_layers))
    from fastsync.cli.render import CopyPrinter, warnings_to
    from fastsync.progress import fan_out

    traffic = api.TrafficStats() if stats else None
    try:
        result = api.copy_image(source, destination, options, src_opts, dst_opts, gopts,
                                on_event=fan_out(None if quiet else CopyPrinter(sys.stdout), warnings_to(sys.stderr)),
                                traffic=traffic)
    finally:                      # a failed copy's figures too, before its error line
        if traffic is not None:
            print_stats(traffic.figures(), sys.stderr)
    if digestfile:
        with open(digestfile, "w") as f:
            f.write(str(result.digest))


@click.command()
@click.argument("image")
@go_flag("--raw", help="print the manifest (or with --config, the config) as stored")
@go_flag("--config", "config", help="print the image config")
@go_flag("-n", "--no-tags", help="do not list the repository's tags")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="format the output with a Go template, as skopeo "
              "(e.g. '{{.Digest}}', '{{range .Layers}}{{.}} {{end}}'; with --config over the image config)")
@retry_option
@transport_flags("", oci=True)
@click.pass_context
@handle_errors
def inspect(ctx: click.Context, image: str, raw: bool, config: bool, no_tags: bool, fmt: Optional[str],
            retry_times: int, **kw: Any) -> None:
    """Show an image's manifest, config or summary (skopeo's JSON, or --format's Go template)."""
    from fastsync import api
    from fastsync.engine.describe import go_json

    from fastsync.cli.inspect_format import is_json, render

    if fmt and raw:
        raise FastsyncError("raw output does not support format option")
    gopts = with_network(ctx.obj["global"], retry_times, kw)
    opts = topts(kw, "")
    out = with_retries(lambda: api.inspect_image(image, opts, raw=raw, config=config, tags=not no_tags,
                                                 platform=platform_of(ctx), global_options=gopts),
                       retry_times)
    if isinstance(out, bytes):
        write_stdout(out)
    elif fmt and not is_json(fmt):
        try:
            write_stdout(render(fmt, out, config).encode())
        except FastsyncError as exc:     # what the template printed before failing, as skopeo leaves it
            write_stdout(getattr(exc, "partial", "").encode())
            raise
    else:
        click.echo(go_json(out))


def _registry_call(ctx: click.Context, retry_times: int, kw: dict[str, Any],
                   call: Callable[[TransportOptions, GlobalOptions], Any]) -> tuple[GlobalOptions, Any]:
    """Run one whole registry operation with this command's transport and network flags, again after
    a retryable failure (--retry-times); returns the options used and the operation's result."""
    gopts = with_network(ctx.obj["global"], retry_times, kw)
    opts = topts(kw, "")
    return gopts, with_retries(lambda: call(opts, gopts), retry_times)


@click.command("list-tags")
@click.argument("repository")
@retry_option
@transport_flags("", daemon=False)
@click.pass_context
@handle_errors
def list_tags(ctx: click.Context, repository: str, retry_times: int, **kw: Any) -> None:
    """List the tags of a repository (docker://HOST/NAME)."""
    from fastsync import api
    from fastsync.engine.describe import go_json

    _, tags = _registry_call(ctx, retry_times, kw, lambda opts, gopts: api.list_tags(repository, opts, gopts))
    click.echo(go_json(tags))


@click.command()
@click.argument("image")
@retry_option
@transport_flags("", oci=True)
@click.pass_context
@handle_errors
def delete(ctx: click.Context, image: str, retry_times: int, **kw: Any) -> None:
    """Delete an image (docker://: the manifest its tag points at; oci:: the ref)."""
    from fastsync import api

    gopts, digest = _registry_call(ctx, retry_times, kw, lambda opts, gopts: api.delete_image(image, opts, gopts))
    if digest is not None:
        delete_signatures(image, digest, gopts)


@click.command("manifest-digest")
@click.argument("manifest", type=click.Path(dir_okay=False))
@handle_errors
def manifest_digest(manifest: str) -> None:
    """Print the digest of a manifest file."""
    from fastsync import api

    click.echo(str(api.manifest_digest(manifest)))



COMMANDS = [copy, inspect, list_tags, delete, manifest_digest]
