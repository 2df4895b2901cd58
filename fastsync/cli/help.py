"""`help [COMMAND]` and `completion bash|zsh|fish`, as skopeo's (cobra's) commands of those names;
the completion scripts are click's, which call back into fastsync (`_FASTSYNC_COMPLETE`)."""
from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

PROG = "fastsync"
COMPLETE_VAR = "_FASTSYNC_COMPLETE"

_HOW = {
    "bash": "To load completions in the current shell: source <(fastsync completion bash)",
    "zsh": "To load completions in the current shell: source <(fastsync completion zsh)",
    "fish": "To load completions in the current shell: fastsync completion fish | source",
}


def completion_script(root: click.Command, shell: str) -> str:
    cls = get_completion_class(shell)
    if cls is None:                                  # pragma: no cover - the three are click's own
        raise click.UsageError(f"no completion for shell {shell!r}")
    return cls(root, {}, PROG, COMPLETE_VAR).source()


def register(main: click.Group) -> None:
    def commands(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(n) for n in main.list_commands(ctx) if n.startswith(incomplete)]

    @main.command("help")
    @click.argument("command", nargs=-1, shell_complete=commands)
    @click.pass_context
    def help_(ctx: click.Context, command: tuple[str, ...]) -> None:
        """Help about any command: `help COMMAND` prints COMMAND's --help."""
        root = ctx.find_root()
        cmd: click.Command = root.command
        parent: click.Context = root
        for name in command:
            sub = cmd.get_command(parent, name) if isinstance(cmd, click.Group) else None
            if sub is None:
                # as skopeo: the unknown topic, then the root's help, and success
                click.echo(f"Unknown help topic [`{' '.join(command)}`]")
                click.echo(root.get_help())
                return
            parent = click.Context(sub, info_name=name, parent=parent)
            cmd = sub
        click.echo(parent.get_help())

    @main.group("completion")
    def completion() -> None:
        """Generate the autocompletion script for fastsync for the specified shell."""

    for shell in ("bash", "zsh", "fish"):
        def make(shell: str) -> None:
            @completion.command(shell, help=f"Generate the autocompletion script for {shell}.\n\n{_HOW[shell]}")
            @click.pass_context
            def script(ctx: click.Context) -> None:
                click.echo(completion_script(ctx.find_root().command, shell), nl=False)
        make(shell)
