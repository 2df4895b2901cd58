"""`completion bash|zsh|fish` and `help [COMMAND...]`, as skopeo 1.9.3 (cobra) has them.

The completion scripts are click's: they call `fastsync` back with `_FASTSYNC_COMPLETE` set, which
click handles before anything else. As in skopeo, `completion` with no shell, or one it does not
know, prints its help and exits 0, and `help` for an unknown command says so and prints the root
help on stderr, and exits 0. `register(main)` adds both to the root group.
"""
from __future__ import annotations

from typing import Any, Optional

import click
from click.shell_completion import get_completion_class

PROG = "fastsync"
COMPLETE_VAR = "_FASTSYNC_COMPLETE"

_HOWTO = {
    "bash": "source <(fastsync completion bash)\n\nTo load completions for every new session, execute once:\n\n"
            "  fastsync completion bash > /etc/bash_completion.d/fastsync",
    "zsh": "source <(fastsync completion zsh)\n\nTo load completions for every new session, execute once:\n\n"
           '  fastsync completion zsh > "${fpath[1]}/_fastsync"',
    "fish": "fastsync completion fish | source\n\nTo load completions for every new session, execute once:\n\n"
            "  fastsync completion fish > ~/.config/fish/completions/fastsync.fish",
}


def completion_script(main: click.Command, shell: str) -> str:
    """click's completion script for `shell` (bash, zsh or fish)."""
    cls = get_completion_class(shell)
    assert cls is not None, shell
    return cls(main, {}, PROG, COMPLETE_VAR).source()


class _CompletionGroup(click.Group):
    """cobra's behaviour: an unknown shell is not an error, it shows the help."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands:
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().resolve_command(ctx, args)


def _find(main: click.Group, ctx: click.Context, words: list[str]) -> Optional[click.Context]:
    """The context of the command `words` names (extra words after a plain command are ignored)."""
    cmd: click.Command = main
    sub_ctx = ctx
    for word in words:
        if not isinstance(cmd, click.Group):
            break
        nxt = cmd.get_command(sub_ctx, word)
        if nxt is None:
            return None
        cmd = nxt
        sub_ctx = click.Context(cmd, info_name=word, parent=sub_ctx)
    return sub_ctx


def register(main: click.Group) -> None:
    @main.group("completion", cls=_CompletionGroup, invoke_without_command=True)
    @click.pass_context
    def completion(ctx: click.Context) -> None:
        """Generate the autocompletion script for the specified shell (bash, zsh or fish)."""
        if ctx.invoked_subcommand is None:
            click.echo(ctx.get_help())

    for shell in ("bash", "zsh", "fish"):
        def make(shell: str) -> click.Command:
            def run() -> None:
                click.echo(completion_script(main, shell), nl=False)
            run.__doc__ = (f"Generate the autocompletion script for {shell}.\n\n"
                           f"To load completions in your current shell session:\n\n  {_HOWTO[shell]}")
            return click.command(shell)(run)
        completion.add_command(make(shell))

    @main.command("help", context_settings={"ignore_unknown_options": True})
    @click.argument("words", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def help_(ctx: click.Context, words: tuple[str, ...]) -> None:
        """Help about any command (fastsync help [path to command])."""
        root = ctx.parent or ctx
        found = _find(main, root, list(words))
        if found is None:
            click.echo(f"Unknown help topic [`{' '.join(words)}`]", err=True)     # stderr, exit 0: as cobra
            click.echo(root.get_help(), err=True)
            return
        click.echo(found.get_help())
