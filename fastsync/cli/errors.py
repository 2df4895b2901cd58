"""Errors as the user sees them: one `Error:` line and an exit code, never a traceback."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Optional

import click

from fastsync.cli.flags import check_retry_times, go_bool_args
from fastsync.errors import FastsyncError


class FastsyncGroup(click.Group):
    """The top-level group: Go-style boolean flags, and click's own usage errors (missing argument,
    unknown option or command, bad value) as one `Error:` line with exit code 2, like the rest."""

    def main(self, args: Optional[list[str]] = None, prog_name: Optional[str] = None, **extra: Any) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        args = go_bool_args(self, args)
        try:
            rv = super().main(args, prog_name or "fastsync", standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as exc:   # `fastsync` alone: the help and 1, as skopeo
            click.echo(exc.format_message(), err=True)
            sys.exit(1)
        except click.ClickException as exc:
            where = f" (see '{exc.ctx.command_path} --help')" \
                if isinstance(exc, click.UsageError) and exc.ctx is not None else ""
            message = " ".join(exc.format_message().split())
            click.echo(f"Error: {message}{where}", err=True)
            sys.exit(1 if isinstance(exc, click.UsageError) else exc.exit_code)   # skopeo: 1
        sys.exit(rv if isinstance(rv, int) else 0)


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
            import logging

            logging.getLogger("fastsync").debug("internal error", exc_info=True)
            text = " ".join(str(exc).split()) or type(exc).__name__
            click.echo(f"Error: internal error ({type(exc).__name__}): {text}", err=True)
            sys.exit(1)
    return wrapper


def with_retries(fn: Callable[[], Any], retry_times: int) -> Any:
    """Run a whole registry operation (inspect, list-tags, delete), again after a retryable failure
    (connection errors, 408/425/429/5xx) up to `retry_times` more times, as skopeo's --retry-times."""
    import logging

    from fastsync.retry import retrying_sync

    check_retry_times(retry_times)

    def warn(exc: BaseException, delay: float) -> None:
        logging.getLogger("fastsync").warning("%s; retrying in %.1fs", exc, delay)

    return retrying_sync(fn, retry_times, warn)
