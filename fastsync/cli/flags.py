"""Flags shared by commands, read as skopeo (Go) reads them, and turned into option values."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import click

from fastsync.errors import FastsyncError, UsageError
from fastsync.model import Platform
from fastsync.options import Credentials, GlobalOptions, NetworkOptions, TransportOptions

OPT_BOOL = dict(type=click.BOOL, is_flag=False, flag_value="true", default=None)


class GoBoolOption(click.Option):
    """A boolean flag as Go's flag package (and so skopeo) reads it: `--flag` alone is true and
    `--flag=false` sets a value, but `--flag false` is the flag followed by an argument. fastsync.cli.errors.FastsyncGroup
    rewrites a bare `--flag` to `--flag=true` before click parses, so it never swallows the image
    name that follows."""


def go_bool(name: str, help: str) -> Callable:
    return go_flag(name, help=help)


def go_flag(*decls: str, help: str, hidden: bool = False) -> Callable:
    """A Go-style boolean option: click.option's `decls` (`-a`, `--all`, `all_`)."""
    return click.option(*decls, cls=GoBoolOption, **OPT_BOOL, hidden=hidden, help=help + " (--flag or --flag=false)")


def go_bool_rewrites(cmd: click.Command) -> dict[str, str]:
    """token -> `--long=true` for the Go-style booleans of `cmd` (short names too: `-a` -> `--all=true`)."""
    out = {}
    for param in cmd.params:
        if isinstance(param, GoBoolOption):
            longs = [o for o in param.opts if o.startswith("--")]
            for o in param.opts:
                out[o] = f"{longs[0] if longs else o}=true"
    return out


def go_bool_args(group: click.Group, args: list[str]) -> list[str]:
    """`args` read as skopeo (cobra, Go's flag rules) reads them: every bare Go-style boolean made
    explicit (the root's flags before the command's name, the command's after it), and the root's
    persistent flags (all but --version/--help) accepted after the command's name too (`fastsync
    inspect --override-arch arm64 IMAGE`), moved before it unless the command has its own."""
    root = {o: p for p in group.params if isinstance(p, click.Option) and p.name not in ("version", "help")
            for o in p.opts}
    root_rewrites = go_bool_rewrites(group)
    head: list[str] = []
    tail: list[str] = []
    cmd: Optional[click.Command] = None
    rewrites = root_rewrites
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            tail += args[i:]
            break
        sub = getattr(cmd or group, "commands", {}).get(a) if not a.startswith("-") else None
        if sub is not None:
            cmd = sub
            rewrites = {**rewrites, **go_bool_rewrites(sub)}
            tail.append(a)
        elif cmd is None:
            head.append(rewrites.get(a, a))
        else:
            name = a.split("=", 1)[0]
            param = root.get(name)
            if param is not None and name not in {o for p in cmd.params for o in p.opts}:
                takes_value = not (isinstance(param, GoBoolOption) or param.is_flag or "=" in a)
                head += [root_rewrites.get(a, a)] + (args[i + 1:i + 2] if takes_value else [])
                i += 2 if takes_value else 1
                continue
            tail.append(rewrites.get(a, a))
        i += 1
    return head + tail


def transport_flags(prefix: str, daemon: bool = True, oci: bool = False) -> Callable:
    """--{prefix}creds, --{prefix}tls-verify, ... for one side ('src-', 'dest-' or ''); `daemon`: also
    --{prefix}daemon-host (docker-daemon: only); `oci`: also --{prefix}shared-blob-dir (oci: only)."""
    def deco(f: Callable) -> Callable:
        for opt in reversed([
            click.option(f"--{prefix}creds", metavar="USER[:PASS]", help="credentials for the registry"),
            click.option(f"--{prefix}username", metavar="USER", help="username for the registry"),
            click.option(f"--{prefix}password", metavar="PASS", help="password for the registry"),
            go_bool(f"--{prefix}no-creds", "access the registry anonymously"),
            click.option(f"--{prefix}cert-dir", metavar="DIR", help="CA certs (*.crt) and client.cert/.key"),
            go_bool(f"--{prefix}tls-verify", "require HTTPS and verify certificates"),
            click.option(f"--{prefix}registry-token", metavar="TOKEN", help="bearer token for the registry"),
            click.option(f"--{prefix}authfile", metavar="PATH", help="auth file (auth.json / config.json)"),
            *([click.option(f"--{prefix}daemon-host", metavar="HOST",
                            help="use the docker daemon at HOST (docker-daemon: only; default "
                                 "unix:///var/run/docker.sock)")] if daemon else []),
            *([click.option(f"--{prefix}shared-blob-dir", metavar="DIRECTORY",
                            help="DIRECTORY to use to share blobs across OCI repositories (oci: only)")]
              if oci else []),
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
    tls_verify = kw.pop(f"{p}tls_verify", None)
    if tls_verify is None:            # skopeo's hidden, deprecated root `--tls-verify`, if given
        ctx = click.get_current_context(silent=True)
        tls_verify = ((ctx.find_root().obj if ctx is not None else None) or {}).get("tls_verify")
    return TransportOptions(tls_verify=tls_verify, cert_dir=kw.pop(f"{p}cert_dir", None),
                            creds=creds,
                            no_creds=kw.pop(f"{p}no_creds", False),
                            registry_token=kw.pop(f"{p}registry_token", None),
                            authfile=kw.pop(f"{p}authfile", None) or shared_authfile,
                            daemon_host=kw.pop(f"{p}daemon_host", None),
                            shared_blob_dir=kw.pop(f"{p}shared_blob_dir", None) or None)


def deprecated_tls_verify(f: Callable) -> Callable:
    """skopeo copy's and sync's hidden, deprecated `--tls-verify`: both sides' default."""
    return go_flag("--tls-verify", "deprecated_tls_verify", hidden=True,
                   help="deprecated: use --src-tls-verify and --dest-tls-verify")(f)


def apply_deprecated_tls_verify(value: Optional[bool], kw: dict[str, Any]) -> None:
    """As skopeo: the value of the old `--tls-verify` for each side not given its own, and a warning."""
    if value is None:
        return
    click.echo("Warning: '--tls-verify' is deprecated, instead use: --src-tls-verify, --dest-tls-verify", err=True)
    for side in ("src_tls_verify", "dest_tls_verify"):
        if kw.get(side) is None:
            kw[side] = value


def additional_tags(values: tuple[str, ...]) -> tuple[str, ...]:
    """skopeo copy --additional-tag (a Go string slice: repeated and/or comma-separated), each a
    NAME:TAG, checked and normalised as skopeo checks them."""
    from fastsync.reference import parse_docker_reference

    out = []
    for value in values:
        for image in value.split(","):
            try:
                ref = parse_docker_reference(image)
            except FastsyncError as exc:
                raise FastsyncError(f"error parsing additional-tag '{image}': {exc}") from None
            if not ref.tag:
                raise FastsyncError(f"additional-tag '{image}' must be a tagged reference")
            out.append(str(ref))
    return tuple(out)


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
