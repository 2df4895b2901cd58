"""The root command: global flags, and every command registered from its module."""
from __future__ import annotations

import os
import sys
from typing import Optional

import click

from fastsync import __version__
from fastsync.cli.errors import FastsyncGroup
from fastsync.cli.flags import go_flag
from fastsync.cli.lazy import COMMAND_MODULES, LazyCommands


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """--version: the backend is looked up only here, so the rest of the CLI starts without it."""
    if not value or ctx.resilient_parsing:
        return
    try:
        from fastsync.core.native import BACKEND, accelerations
        used = accelerations()
    except ImportError:          # FASTSYNC_BACKEND=native without the extension: say so, as api.backend()
        from fastsync.core.codec import PYTHON_LIBRARIES as used

        BACKEND = "python"
    libs = " ".join(f"{job}={lib}" for job, lib in used.items())
    click.echo(f"fastsync version {__version__} (native core: {BACKEND}; {libs})")
    ctx.exit()


@click.group(cls=FastsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and exit.")
@go_flag("--debug", help="log requests and decisions to stderr")
@click.option("--command-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="abort the command after this long")
@click.option("--tmpdir", metavar="DIR", help="directory for temporary files")
@go_flag("--insecure-policy", help="run without any policy check (accept every image)")
@click.option("--policy", "policy_path", metavar="FILE", help="trust policy file (default: "
              "$HOME/.config/containers/policy.json, then /etc/containers/policy.json)")
@click.option("--registries.d", "registries_d", metavar="DIR", help="registries.d directory (signature storage)")
@click.option("--override-arch", metavar="ARCH", help="use ARCH instead of the host's when choosing images")
@click.option("--override-os", metavar="OS", help="use OS instead of the host's when choosing images")
@click.option("--override-variant", metavar="VARIANT", help="use VARIANT when choosing images")
@go_flag("--tls-verify", "tls_verify", hidden=True, help="deprecated: set --tls-verify on the command")
@click.pass_context
def main(ctx: click.Context, debug: bool, command_timeout: Optional[float], tmpdir: Optional[str],
         insecure_policy: bool, policy_path: Optional[str], registries_d: Optional[str], override_arch: Optional[str],
         override_os: Optional[str], override_variant: Optional[str], tls_verify: Optional[bool]) -> None:
    """fastsync: copy, sync and inspect container images (skopeo-compatible)."""
    import logging

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    if tmpdir:
        os.environ["TMPDIR"] = tmpdir
    from fastsync.manifest import host_platform
    from fastsync.options import GlobalOptions

    ctx.obj = {
        "global": GlobalOptions(debug=debug, command_timeout=command_timeout, tmpdir=tmpdir,
                                insecure_policy=insecure_policy, policy_path=policy_path,
                                registries_d=registries_d),
        "platform": host_platform(override_os or "", override_arch or "", override_variant or ""),
        "tls_verify": tls_verify,        # every command's default, as skopeo's hidden root flag
    }
    if tls_verify is not None:
        click.echo("Warning: '--tls-verify' is deprecated, please set this on the specific subcommand", err=True)




main.commands = LazyCommands(main, COMMAND_MODULES)    # each command's module imported when it is used

if __name__ == "__main__":  # pragma: no cover
    main()
