"""Flags shared by commands, read as skopeo (Go) reads them, and turned into option values."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import click

from fastsync.errors import UsageError
from fastsync.model import Platform
from fastsync.options import Credentials, GlobalOptions, NetworkOptions, TransportOptions

OPT_BOOL = dict(type=click.BOOL, is_flag=False, flag_value="true", default=None)


class GoBoolOption(click.Option):
    """A boolean flag as Go's flag package (and so skopeo) reads it: `--flag` alone is true and
    `--flag=false` sets a value, but `--flag false` is the flag followed by an argument. fastsync.cli.errors.FastsyncGroup
    rewrites a bare `--flag` to `--flag=true` before click parses, so it never swallows the image
    name that follows."""


def go_bool(name: str, help: str) -> Callable:
    return click.option(name, cls=GoBoolOption, **OPT_BOOL, help=help + " (--flag or --flag=false)")


def go_bool_names(cmd: click.Command, names: set[str]) -> set[str]:
    for param in cmd.params:
        if isinstance(param, GoBoolOption):
            names.update(o for o in param.opts if o.startswith("--"))
    for sub in getattr(cmd, "commands", {}).values():
        go_bool_names(sub, names)
    return names


def transport_flags(prefix: str, daemon: bool = True) -> Callable:
    """--{prefix}creds, --{prefix}tls-verify, ... for one side ('src-', 'dest-' or ''); `daemon`: also
    --{prefix}daemon-host (docker-daemon: only)."""
    def deco(f: Callable) -> Callable:
        for opt in reversed([
            click.option(f"--{prefix}creds", metavar="USER[:PASS]", help="credentials for the registry"),
            click.option(f"--{prefix}username", metavar="USER", help="username for the registry"),
            click.option(f"--{prefix}password", metavar="PASS", help="password for the registry"),
            click.option(f"--{prefix}no-creds", is_flag=True, help="access the registry anonymously"),
            click.option(f"--{prefix}cert-dir", metavar="DIR", help="CA certs (*.crt) and client.cert/.key"),
            go_bool(f"--{prefix}tls-verify", "require HTTPS and verify certificates"),
            click.option(f"--{prefix}registry-token", metavar="TOKEN", help="bearer token for the registry"),
            click.option(f"--{prefix}authfile", metavar="PATH", help="auth file (auth.json / config.json)"),
            *([click.option(f"--{prefix}daemon-host", metavar="HOST",
                            help="use the docker daemon at HOST (docker-daemon: only; default "
                                 "unix:///var/run/docker.sock)")] if daemon else []),
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
                            authfile=kw.pop(f"{p}authfile", None) or shared_authfile,
                            daemon_host=kw.pop(f"{p}daemon_host", None))


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


def check_retry_times(retry_times: int) -> int:
    if retry_times < 0:
        raise UsageError("--retry-times must not be negative")
    return retry_times


def retry_option(f: Callable) -> Callable:
    return click.option("--retry-times", type=int, default=0, show_default=True,
                        help="retries after network errors and 408/429/5xx answers")(network_flags(f))


_SECONDS = click.FloatRange(min=0, min_open=True)


def network_flags(f: Callable) -> Callable:
    """--retry-deadline, --connect-timeout, --read-idle-timeout (with --retry-times: NetworkOptions)."""
    d = NetworkOptions()
    for opt in reversed([
        click.option("--retry-deadline", type=_SECONDS, default=d.retry_deadline, show_default=True,
                     metavar="SECONDS", help="start no retry of a request later than this after its first attempt"),
        click.option("--connect-timeout", type=_SECONDS, default=d.connect_timeout, show_default=True,
                     metavar="SECONDS", help="give up opening a connection (TCP and TLS) after this"),
        click.option("--read-idle-timeout", type=_SECONDS, default=d.read_idle_timeout, show_default=True,
                     metavar="SECONDS", help="abandon (and retry) an answer that delivers nothing for this long"),
    ]):
        f = opt(f)
    return f


def with_network(gopts: GlobalOptions, retry_times: int, kw: dict[str, Any]) -> GlobalOptions:
    """`gopts` with the request policy of this command's --retry-times and network_flags."""
    from dataclasses import replace

    net = NetworkOptions(retry_times=check_retry_times(retry_times), retry_deadline=kw.pop("retry_deadline"),
                         connect_timeout=kw.pop("connect_timeout"), read_idle_timeout=kw.pop("read_idle_timeout"))
    return replace(gopts, network=net)


def write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def platform_of(ctx: click.Context) -> Platform:
    return ctx.obj["platform"]
