"""The skopeo-compatible command line. Each command: flags -> options -> library call -> exit code."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable, Optional

import click

from . import __version__, api
from .errors import FastsyncError, UsageError
from .describe import go_json
from .model import Platform
from .options import Credentials, CopyOptions, GlobalOptions, TransportOptions

OPT_BOOL = dict(type=click.BOOL, is_flag=False, flag_value="true", default=None)


def _bool(name: str, help: str) -> Callable:
    return click.option(name, **OPT_BOOL, help=help + " (--flag or --flag=false)")


def transport_flags(prefix: str) -> Callable:
    """--{prefix}creds, --{prefix}tls-verify, ... for one side ('src-', 'dest-' or '')."""
    def deco(f: Callable) -> Callable:
        for opt in reversed([
            click.option(f"--{prefix}creds", metavar="USER[:PASS]", help="credentials for the registry"),
            click.option(f"--{prefix}no-creds", is_flag=True, help="access the registry anonymously"),
            click.option(f"--{prefix}cert-dir", metavar="DIR", help="CA certs (*.crt) and client.cert/.key"),
            _bool(f"--{prefix}tls-verify", "require HTTPS and verify certificates"),
            click.option(f"--{prefix}registry-token", metavar="TOKEN", help="bearer token for the registry"),
            click.option(f"--{prefix}authfile", metavar="PATH", help="auth file (auth.json / config.json)"),
        ]):
            f = opt(f)
        return f
    return deco


def topts(kw: dict[str, Any], prefix: str, shared_authfile: Optional[str] = None) -> TransportOptions:
    p = prefix.replace("-", "_")
    creds = kw.pop(f"{p}creds", None)
    return TransportOptions(tls_verify=kw.pop(f"{p}tls_verify", None), cert_dir=kw.pop(f"{p}cert_dir", None),
                            creds=Credentials.parse(creds) if creds else None,
                            no_creds=kw.pop(f"{p}no_creds", False),
                            registry_token=kw.pop(f"{p}registry_token", None),
                            authfile=kw.pop(f"{p}authfile", None) or shared_authfile)


def compression_options(compress: bool, decompress: bool, fmt: Optional[str], level: Optional[int]) -> dict[str, Any]:
    """CopyOptions fields for skopeo's --dest-compress/--dest-decompress/--dest-compress-format/-level."""
    if decompress and (compress or fmt or level is not None):
        raise UsageError("--dest-decompress conflicts with --dest-compress, --dest-compress-format and "
                         "--dest-compress-level")
    limits = {"gzip": (0, 9), "zstd": (1, 22)}
    if level is not None:
        lo, hi = limits[fmt or "gzip"]
        if not lo <= level <= hi:
            raise UsageError(f"--dest-compress-level {level} is out of range for {fmt or 'gzip'} ({lo}-{hi})")
    return dict(dest_compress=compress or level is not None, dest_decompress=decompress,
                dest_compress_format=fmt, dest_compress_level=level)


def handle_errors(f: Callable) -> Callable:
    """Map FastsyncError to a one-line message and its exit code; never show a traceback."""
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except FastsyncError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except OSError as exc:
            click.echo(f"Error: {exc.strerror or exc}{': ' + exc.filename if exc.filename else ''}", err=True)
            sys.exit(1)
    return wrapper


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="fastsync",
                      message=f"%(prog)s version %(version)s (native core: {api.backend()})")
@click.option("--debug", is_flag=True, help="log requests and decisions to stderr")
@click.option("--command-timeout", type=float, metavar="SECONDS", help="abort the command after this long")
@click.option("--tmpdir", metavar="DIR", help="directory for temporary files")
@click.option("--insecure-policy", is_flag=True, help="accepted for skopeo compatibility (no signature policy "
              "is enforced yet)")
@click.option("--override-arch", metavar="ARCH", help="use ARCH instead of the host's when choosing images")
@click.option("--override-os", metavar="OS", help="use OS instead of the host's when choosing images")
@click.option("--override-variant", metavar="VARIANT", help="use VARIANT when choosing images")
@click.pass_context
def main(ctx: click.Context, debug: bool, command_timeout: Optional[float], tmpdir: Optional[str],
         insecure_policy: bool, override_arch: Optional[str], override_os: Optional[str],
         override_variant: Optional[str]) -> None:
    """fastsync: copy, sync and inspect container images (skopeo-compatible)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    if tmpdir:
        os.environ["TMPDIR"] = tmpdir
    from .manifest import host_platform

    ctx.obj = {
        "global": GlobalOptions(debug=debug, command_timeout=command_timeout, tmpdir=tmpdir,
                                insecure_policy=insecure_policy),
        "platform": host_platform(override_os or "", override_arch or "", override_variant or ""),
    }


def _platform(ctx: click.Context) -> Platform:
    return ctx.obj["platform"]


@main.command()
@click.argument("source")
@click.argument("destination")
@click.option("-a", "--all", "all_", is_flag=True, help="copy every image of a manifest list/index")
@click.option("--multi-arch", type=click.Choice(["system", "all", "index-only"]), default=None,
              help="which images of a list to copy (default: system)")
@click.option("-f", "--format", "fmt", type=click.Choice(["oci", "v2s2"]), help="convert the manifest format")
@click.option("--preserve-digests", is_flag=True, help="fail instead of changing any digest")
@click.option("--retry-times", type=int, default=3, show_default=True, help="retries per blob on network errors")
@click.option("--digestfile", metavar="PATH", help="write the digest of the copied manifest here")
@click.option("--dest-compress", is_flag=True, help="compress uncompressed layers (gzip unless --dest-compress-format)")
@click.option("--dest-decompress", is_flag=True, help="store layers uncompressed")
@click.option("--dest-compress-format", type=click.Choice(["gzip", "zstd"]), help="(re)compress layers to this format")
@click.option("--dest-compress-level", type=int, metavar="N", help="compression level (gzip 0-9, zstd 1-22)")
@click.option("-q", "--quiet", is_flag=True, help="no progress output")
@click.option("--authfile", metavar="PATH", help="auth file for both source and destination")
@transport_flags("src-")
@transport_flags("dest-")
@click.pass_context
@handle_errors
def copy(ctx: click.Context, source: str, destination: str, all_: bool, multi_arch: Optional[str],
         fmt: Optional[str], preserve_digests: bool, retry_times: int, digestfile: Optional[str], quiet: bool,
         authfile: Optional[str], dest_compress: bool, dest_decompress: bool, dest_compress_format: Optional[str],
         dest_compress_level: Optional[int], **kw: Any) -> None:
    """Copy an image from SOURCE to DESTINATION (transport:details names)."""
    if all_ and multi_arch not in (None, "all"):
        raise UsageError("--all conflicts with --multi-arch " + str(multi_arch))
    options = CopyOptions(multi_arch="all" if all_ else (multi_arch or "system"), platform=_platform(ctx),
                          format=fmt, preserve_digests=preserve_digests, retry_times=retry_times,
                          **compression_options(dest_compress, dest_decompress, dest_compress_format,
                                                dest_compress_level))
    src_opts, dst_opts = topts(kw, "src-", authfile), topts(kw, "dest-", authfile)
    from .render import CopyPrinter

    result = api.copy_image(source, destination, options, src_opts, dst_opts, ctx.obj["global"],
                            on_event=None if quiet else CopyPrinter(sys.stderr))
    if digestfile:
        with open(digestfile, "w") as f:
            f.write(str(result.digest))


@main.command()
@click.argument("image")
@click.option("--raw", is_flag=True, help="print the manifest (or with --config, the config) as stored")
@click.option("--config", "config", is_flag=True, help="print the image config")
@click.option("-n", "--no-tags", is_flag=True, help="do not list the repository's tags")
@click.option("--format", "fmt", hidden=True)
@transport_flags("")
@click.pass_context
@handle_errors
def inspect(ctx: click.Context, image: str, raw: bool, config: bool, no_tags: bool, fmt: Optional[str],
            **kw: Any) -> None:
    """Show an image's manifest, config or summary (skopeo's JSON)."""
    if fmt:
        raise UsageError("--format templates are not supported; use --raw or the JSON output with jq")
    out = api.inspect_image(image, topts(kw, ""), raw=raw, config=config, tags=not no_tags,
                            platform=_platform(ctx), global_options=ctx.obj["global"])
    if isinstance(out, bytes):
        _write_stdout(out)
    else:
        click.echo(go_json(out))


@main.command("list-tags")
@click.argument("repository")
@transport_flags("")
@click.pass_context
@handle_errors
def list_tags(ctx: click.Context, repository: str, **kw: Any) -> None:
    """List the tags of a repository (docker://HOST/NAME)."""
    click.echo(go_json(api.list_tags(repository, topts(kw, ""), ctx.obj["global"])))


@main.command()
@click.argument("image")
@transport_flags("")
@click.pass_context
@handle_errors
def delete(ctx: click.Context, image: str, **kw: Any) -> None:
    """Delete an image (docker://: the manifest its tag points at; oci:: the ref)."""
    api.delete_image(image, topts(kw, ""), ctx.obj["global"])


@main.command("manifest-digest")
@click.argument("manifest", type=click.Path(dir_okay=False))
@handle_errors
def manifest_digest(manifest: str) -> None:
    """Print the digest of a manifest file."""
    click.echo(str(api.manifest_digest(manifest)))


# Commands defined in their own modules register here, one line each.
# (keep this block at the end of the file)
from .cli_auth import register as _reg_auth; _reg_auth(main)  # noqa: E402,E702
from .cli_sync import register as _reg_sync; _reg_sync(main)  # noqa: E402,E702
from .cli_storage import register as _reg_storage; _reg_storage(main)  # noqa: E402,E702

if __name__ == "__main__":  # pragma: no cover
    main()
