"""`login` and `logout`, as skopeo 1.9.3 has them (containers/common's auth package).

`register(main)` builds the click commands from cli.py's helpers when cli.py asks for them, so this
module never imports cli.py at import time (either module can be imported first).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import click

from fastsync.registry.authfile import (NotLoggedIn, lookup_credentials, parse_login_key, primary_auth_file, remove_all_credentials,
                       remove_credentials, set_credentials)
from fastsync.errors import FastsyncError, Unauthorized, UsageError
from fastsync.options import Credentials, GlobalOptions, TransportOptions


def _check(key: str, registry: str, creds: Credentials, opts: TransportOptions, gopts: GlobalOptions) -> None:
    """Validate `creds` against the registry; one-line errors worded as skopeo's."""
    try:
        from fastsync.api import verify_credentials

        verify_credentials(registry, TransportOptions(tls_verify=opts.tls_verify, cert_dir=opts.cert_dir,
                                                      creds=creds), gopts)
    except Unauthorized:
        raise Unauthorized(f'logging into "{key}": invalid username/password', 401) from None
    except FastsyncError as exc:
        err = FastsyncError(f'authenticating creds for "{key}": {exc}')
        err.exit_code = exc.exit_code
        raise err from None


def _read_line(prompt: str, what: str) -> str:
    click.echo(prompt, nl=False)
    line = sys.stdin.readline()
    if not line:
        raise FastsyncError(f"reading {what}: EOF")
    return line.rstrip("\r\n")


def _ask(username: Optional[str], password: Optional[str], known_user: str) -> tuple[str, str]:
    """Prompt for what was not given, as skopeo does (Enter keeps the user name already on file)."""
    if not username:
        typed = _read_line(f"Username ({known_user}): " if known_user else "Username: ", "username").strip()
        username = typed or known_user
    if not password:
        if not sys.stdin.isatty():
            raise FastsyncError("reading password: stdin is not a terminal (use --password-stdin)")
        password = click.prompt("Password", hide_input=True, default="", show_default=False, prompt_suffix=": ")
    return username.strip(), password or ""


def login(ctx: click.Context, registry: str, username: Optional[str], password: Optional[str],
          password_stdin: bool, authfile: Optional[str], cert_dir: Optional[str], tls_verify: Optional[bool],
          get_login: bool, verbose: bool) -> None:
    """Login to a container registry (credentials are checked against it, then saved)."""
    key, host = parse_login_key(registry)
    opts = TransportOptions(tls_verify=tls_verify, cert_dir=cert_dir, authfile=authfile)
    gopts: GlobalOptions = ctx.obj["global"]
    if not get_login:
        primary_auth_file(authfile)   # fail early (one line) when $XDG_RUNTIME_DIR names a missing directory
    known = lookup_credentials(key, authfile)
    if get_login:
        if not known or not known.username:
            raise FastsyncError(f"not logged into {key}")
        click.echo(known.username)
        return
    if known and known.identity_token:
        raise FastsyncError("currently logged in, auth file contains an Identity token")
    if password_stdin:
        if password:
            raise UsageError("Can't specify both --password-stdin and --password")
        if not username:
            raise UsageError("Must provide --username with --password-stdin")
        password = "".join(sys.stdin.read().splitlines())
        if not password:
            raise UsageError("--password-stdin: standard input held no password")
    if not username and not password and known and known.username and known.password:
        click.echo(f"Authenticating with existing credentials for {key}")
        try:
            _check(key, host, known, opts, gopts)
            click.echo(f"Existing credentials are valid. Already logged in to {host}")
            return
        except Unauthorized:
            click.echo("Existing credentials are invalid, please enter valid username and password")
    user, secret = _ask(username, password, known.username if known else "")
    _check(key, host, Credentials(user, secret), opts, gopts)
    where = set_credentials(key, user, secret, authfile)
    if verbose:
        click.echo(f"Used:  {where}")
    click.echo("Login Succeeded!")


def logout(ctx: click.Context, registry: Optional[str], all_: bool, authfile: Optional[str],
           tls_verify: Optional[bool]) -> None:
    """Logout of a container registry (or, with --all, of every registry in the auth file)."""
    if all_:
        if registry:
            raise UsageError("--all takes no arguments")
        remove_all_credentials(authfile)
        click.echo("Removed login credentials for all registries")
        return
    if not registry:
        raise UsageError("please provide a registry to logout from")
    key, host = parse_login_key(registry)
    try:
        remove_credentials(key, authfile)
    except NotLoggedIn:
        known = lookup_credentials(key, authfile)
        if known and known.username and known.password:
            try:
                _check(key, host, known, TransportOptions(tls_verify=tls_verify), ctx.obj["global"])
            except FastsyncError:
                pass
            else:
                click.echo(f"Not logged into {key} with current tool. Existing credentials were established "
                           f"via docker login. Please use docker logout instead.")
                return
        raise
    click.echo(f"Removed login credentials for {key}")


def register(main: Any) -> None:
    """Add `login` and `logout` to the `main` click group (cli.py's flag helpers and error mapping)."""
    from fastsync.cli.errors import handle_errors
    from fastsync.cli.flags import go_bool, go_flag

    authfile = click.option("--authfile", metavar="PATH", help="path of the authentication file (default: "
                            "$REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json)")
    tls_verify = go_bool("--tls-verify", "require HTTPS and verify certificates when accessing the registry")
    _add(main, login, handle_errors, [
        click.argument("registry"),
        click.option("-u", "--username", metavar="USER", help="Username for registry"),
        click.option("-p", "--password", metavar="PASS", help="Password for registry"),
        go_flag("--password-stdin", help="Take the password from stdin"),
        authfile,
        click.option("--cert-dir", metavar="DIR", help="use certificates at the specified path to access the "
                     "registry"),
        tls_verify,
        go_flag("--get-login", help="Return the current login user for the registry"),
        go_flag("-v", "--verbose", help="Write more detailed information to stdout"),
    ])
    _add(main, logout, handle_errors, [
        click.argument("registry", required=False),
        go_flag("-a", "--all", "all_", help="Remove the cached credentials for all registries "
                     "in the auth file"),
        authfile,
        tls_verify,
    ])


def _add(main: Any, fn: Callable, handle_errors: Callable, params: list[Callable]) -> None:
    cmd = click.pass_context(handle_errors(fn))
    for param in reversed(params):
        cmd = param(cmd)
    main.command(fn.__name__)(cmd)
