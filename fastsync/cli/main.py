"""The skopeo-compatible command line. Each command: flags -> options -> library call -> exit code."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable, Optional

import click

from fastsync import __version__, api
from fastsync.errors import FastsyncError, UsageError
from fastsync.engine.describe import go_json
from fastsync.model import Platform
from fastsync.options import Credentials, CopyOptions, GlobalOptions, TransportOptions

OPT_BOOL = dict(type=click.BOOL, is_flag=False, flag_value="true", default=None)


class GoBoolOption(click.Option):
    """A boolean flag as Go's flag package (and so skopeo) reads it: `--flag` alone is true and
    `--flag=false` sets a value, but `--flag false` is the flag followed by an argument. FastsyncGroup
    rewrites a bare `--flag` to `--flag=true` before click parses, so it never swallows the image
    name that follows."""


def _bool(name: str, help: str) -> Callable:
    return click.option(name, cls=GoBoolOption, **OPT_BOOL, help=help + " (--flag or --flag=false)")


def _go_bool_names(cmd: click.Command, names: set[str]) -> set[str]:
    for param in cmd.params:
        if isinstance(param, GoBoolOption):
            names.update(o for o in param.opts if o.startswith("--"))
    for sub in getattr(cmd, "commands", {}).values():
        _go_bool_names(sub, names)
    return names


class FastsyncGroup(click.Group):
    """The top-level group: Go-style boolean flags, and click's own usage errors (missing argument,
    unknown option or command, bad value) as one `Error:` line with exit code 2, like the rest."""

    def main(self, args: Optional[list[str]] = None, prog_name: Optional[str] = None, **extra: Any) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        bools = _go_bool_names(self, set())
        end = args.index("--") if "--" in args else len(args)
        args = [a + "=true" if i < end and a in bools else a for i, a in enumerate(args)]
        try:
            rv = super().main(args, prog_name or "fastsync", standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as exc:   # `fastsync` alone: the help, as skopeo
            click.echo(exc.format_message(), err=True)
            sys.exit(2)
        except click.ClickException as exc:
            where = f" (see '{exc.ctx.command_path} --help')" \
                if isinstance(exc, click.UsageError) and exc.ctx is not None else ""
            message = " ".join(exc.format_message().split())
            click.echo(f"Error: {message}{where}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def transport_flags(prefix: str) -> Callable:
    """--{prefix}creds, --{prefix}tls-verify, ... for one side ('src-', 'dest-' or '')."""
    def deco(f: Callable) -> Callable:
        for opt in reversed([
            click.option(f"--{prefix}creds", metavar="USER[:PASS]", help="credentials for the registry"),
            click.option(f"--{prefix}username", metavar="USER", help="username for the registry"),
            click.option(f"--{prefix}password", metavar="PASS", help="password for the registry"),
            click.option(f"--{prefix}no-creds", is_flag=True, help="access the registry anonymously"),
            click.option(f"--{prefix}cert-dir", metavar="DIR", help="CA certs (*.crt) and client.cert/.key"),
            _bool(f"--{prefix}tls-verify", "require HTTPS and verify certificates"),
            click.option(f"--{prefix}registry-token", metavar="TOKEN", help="bearer token for the registry"),
            click.option(f"--{prefix}authfile", metavar="PATH", help="auth file (auth.json / config.json)"),
        ]):
            f = opt(f)
        return f
    return deco


def _credentials(creds: Optional[str], user: Optional[str], password: Optional[str],
                 prefix: str) -> Optional[Credentials]:
    """--creds USER[:PASS] or --username/--password, checked as skopeo checks them."""
    if creds is not None:
        if user is not None or password is not None:
            raise UsageError(f"--{prefix}creds and --{prefix}username/--{prefix}password are mutually exclusive")
        if creds == "":
            raise UsageError(f"--{prefix}creds: credentials can't be empty")
        parsed = Credentials.parse(creds)
        if not parsed.username:
            raise UsageError(f"--{prefix}creds: username can't be empty")
        return parsed
    if user is not None or password is not None:
        if not user:
            raise UsageError(f"--{prefix}password needs --{prefix}username")
        return Credentials(user, password or "")
    return None


def topts(kw: dict[str, Any], prefix: str, shared_authfile: Optional[str] = None) -> TransportOptions:
    p = prefix.replace("-", "_")
    creds = _credentials(kw.pop(f"{p}creds", None), kw.pop(f"{p}username", None), kw.pop(f"{p}password", None),
                         prefix)
    return TransportOptions(tls_verify=kw.pop(f"{p}tls_verify", None), cert_dir=kw.pop(f"{p}cert_dir", None),
                            creds=creds,
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
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:   # a bug or an input nobody foresaw: still one line (--debug: the traceback)
            logging.getLogger("fastsync").debug("internal error", exc_info=True)
            text = " ".join(str(exc).split()) or type(exc).__name__
            click.echo(f"Error: internal error ({type(exc).__name__}): {text}", err=True)
            sys.exit(1)
    return wrapper


def check_retry_times(retry_times: int) -> int:
    if retry_times < 0:
        raise UsageError("--retry-times must not be negative")
    return retry_times


def with_retries(fn: Callable[[], Any], retry_times: int) -> Any:
    """Run a whole registry operation (inspect, list-tags, delete), again after a retryable failure
    (connection errors, 408/429/5xx) up to `retry_times` more times, as skopeo's --retry-times."""
    import time

    from fastsync.engine.job import retry_delay

    check_retry_times(retry_times)
    for attempt in range(retry_times + 1):
        try:
            return fn()
        except FastsyncError as exc:
            if attempt >= retry_times or not getattr(exc, "retryable", False):
                raise
            delay = retry_delay(attempt, getattr(exc, "retry_after", None))
            logging.getLogger("fastsync").warning("%s; retrying in %.1fs", exc, delay)
            time.sleep(delay)


def _retry_option(f: Callable) -> Callable:
    return click.option("--retry-times", type=int, default=0, show_default=True,
                        help="retries after network errors and 408/429/5xx answers")(f)


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@click.group(cls=FastsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="fastsync",
                      message=f"%(prog)s version %(version)s (native core: {api.backend()})")
@click.option("--debug", is_flag=True, help="log requests and decisions to stderr")
@click.option("--command-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="abort the command after this long")
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
    from fastsync.manifest import host_platform

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
@click.option("--remove-signatures", is_flag=True, help="do not copy signatures (fastsync copies none)")
@click.option("--authfile", metavar="PATH", help="auth file for both source and destination")
@transport_flags("src-")
@transport_flags("dest-")
@click.pass_context
@handle_errors
def copy(ctx: click.Context, source: str, destination: str, all_: bool, multi_arch: Optional[str],
         fmt: Optional[str], preserve_digests: bool, retry_times: int, digestfile: Optional[str], quiet: bool,
         remove_signatures: bool, authfile: Optional[str], dest_compress: bool, dest_decompress: bool,
         dest_compress_format: Optional[str], dest_compress_level: Optional[int], **kw: Any) -> None:
    """Copy an image from SOURCE to DESTINATION (transport:details names)."""
    check_retry_times(retry_times)
    if all_ and multi_arch not in (None, "all"):
        raise UsageError("--all conflicts with --multi-arch " + str(multi_arch))
    options = CopyOptions(multi_arch="all" if all_ else (multi_arch or "system"), platform=_platform(ctx),
                          format=fmt, preserve_digests=preserve_digests, retry_times=retry_times,
                          **compression_options(dest_compress, dest_decompress, dest_compress_format,
                                                dest_compress_level))
    src_opts, dst_opts = topts(kw, "src-", authfile), topts(kw, "dest-", authfile)
    from fastsync.cli.render import CopyPrinter

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
@_retry_option
@transport_flags("")
@click.pass_context
@handle_errors
def inspect(ctx: click.Context, image: str, raw: bool, config: bool, no_tags: bool, fmt: Optional[str],
            retry_times: int, **kw: Any) -> None:
    """Show an image's manifest, config or summary (skopeo's JSON)."""
    if fmt:
        raise UsageError("--format templates are not supported; use --raw or the JSON output with jq")
    opts = topts(kw, "")
    out = with_retries(lambda: api.inspect_image(image, opts, raw=raw, config=config, tags=not no_tags,
                                                 platform=_platform(ctx), global_options=ctx.obj["global"]),
                       retry_times)
    if isinstance(out, bytes):
        _write_stdout(out)
    else:
        click.echo(go_json(out))


@main.command("list-tags")
@click.argument("repository")
@_retry_option
@transport_flags("")
@click.pass_context
@handle_errors
def list_tags(ctx: click.Context, repository: str, retry_times: int, **kw: Any) -> None:
    """List the tags of a repository (docker://HOST/NAME)."""
    opts = topts(kw, "")
    click.echo(go_json(with_retries(lambda: api.list_tags(repository, opts, ctx.obj["global"]), retry_times)))


@main.command()
@click.argument("image")
@_retry_option
@transport_flags("")
@click.pass_context
@handle_errors
def delete(ctx: click.Context, image: str, retry_times: int, **kw: Any) -> None:
    """Delete an image (docker://: the manifest its tag points at; oci:: the ref)."""
    opts = topts(kw, "")
    with_retries(lambda: api.delete_image(image, opts, ctx.obj["global"]), retry_times)


@main.command("manifest-digest")
@click.argument("manifest", type=click.Path(dir_okay=False))
@handle_errors
def manifest_digest(manifest: str) -> None:
    """Print the digest of a manifest file."""
    click.echo(str(api.manifest_digest(manifest)))


# Commands defined in their own modules register here, one line each.
# (keep this block at the end of the file)
from fastsync.cli.auth import register as _reg_auth; _reg_auth(main)  # noqa: E402,E702
from fastsync.cli.sync import register as _reg_sync; _reg_sync(main)  # noqa: E402,E702
from fastsync.cli.offline import register as _reg_storage; _reg_storage(main)  # noqa: E402,E702

if __name__ == "__main__":  # pragma: no cover
    main()
