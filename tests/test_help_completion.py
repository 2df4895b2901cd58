"""`help [COMMAND]` and `completion bash|zsh|fish` (click's completion, calling back into fastsync)."""
from __future__ import annotations

import os
import subprocess

import pytest

from helpers import ROOT, fastsync, ok


@pytest.mark.parametrize("cmd", ["copy", "sync", "inspect", "list-tags", "login"])
def test_help_command_is_the_commands_help(cmd: str) -> None:
    assert ok(fastsync("help", cmd)).stdout == ok(fastsync(cmd, "--help")).stdout


def test_help_alone_is_the_root_help_and_an_unknown_topic_says_so_as_skopeo(run_skopeo) -> None:
    assert ok(fastsync("help")).stdout == ok(fastsync("--help")).stdout
    ours, theirs = fastsync("help", "nosuch"), run_skopeo("help", "nosuch", check=False)
    assert ours.returncode == theirs.returncode == 0
    assert b"Unknown help topic [`nosuch`]" in ours.stdout
    assert b"Unknown help topic [`nosuch`]" in theirs.stderr + theirs.stdout


def _complete(shell: str, words: str, cword: int) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_FASTSYNC_COMPLETE": f"{shell}_complete",
           "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return ok(fastsync(env=env)).stdout.decode()


def test_completion_offers_commands_flags_and_help_topics() -> None:
    assert "plain,copy" in _complete("bash", "fastsync co", 1).splitlines()
    assert "plain,--dest-shared-blob-dir" in _complete("bash", "fastsync copy --dest-sh", 2).splitlines()
    assert "plain,list-tags" in _complete("bash", "fastsync help li", 2).splitlines()
    assert "list-tags" in _complete("zsh", "fastsync li", 1)


@pytest.mark.parametrize("shell,needle", [("bash", "complete -o nosort -F _fastsync_completion fastsync"),
                                          ("zsh", "#compdef fastsync"),
                                          ("fish", "complete --no-files --command fastsync")])
def test_completion_scripts_name_the_callback(shell: str, needle: str) -> None:
    script = ok(fastsync("completion", shell)).stdout.decode()
    assert needle in script and "_FASTSYNC_COMPLETE" in script


def test_the_bash_script_loads_and_registers(tmp_path) -> None:
    script = tmp_path / "c.bash"
    script.write_bytes(ok(fastsync("completion", "bash")).stdout)
    out = subprocess.run(["bash", "-c", f"source {script} && complete -p fastsync"], capture_output=True, text=True)
    assert out.returncode == 0 and "_fastsync_completion" in out.stdout, out.stderr


def test_an_unknown_shell_is_one_line(tmp_path) -> None:
    proc = fastsync("completion", "powershell")
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1
