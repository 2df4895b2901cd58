"""`completion` and `help`, with skopeo's exit statuses and wording where scripts see them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, fastsync, ok


@pytest.fixture
def on_path(tmp_path: Path) -> dict:
    """An environment whose PATH has a `fastsync` that runs this source tree (what completion calls)."""
    wrapper = tmp_path / "bin" / "fastsync"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m fastsync "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{wrapper.parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}


def _complete_in_bash(script: str, words: str, env: dict) -> list[str]:
    """Source the completion script in a real bash and run its function as bash would on TAB."""
    line = f"""
{script}
COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
[[ "{words}" == *" " ]] && COMP_CWORD=${{#COMP_WORDS[@]}}
_fastsync_completion fastsync
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    proc = subprocess.run(["bash", "-c", line], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().split()


def test_bash_completion_completes_commands_and_flags(on_path: dict) -> None:
    script = ok(fastsync("completion", "bash")).stdout.decode()
    assert "complete -o nosort -F _fastsync_completion fastsync" in script
    assert {"copy", "completion"} <= set(_complete_in_bash(script, "fastsync co", on_path))
    assert "--format" in _complete_in_bash(script, "fastsync inspect --fo", on_path)
    assert _complete_in_bash(script, "fastsync list-t", on_path) == ["list-tags"]


@pytest.mark.parametrize("shell,marker", [("zsh", "#compdef fastsync"),
                                          ("fish", "complete --no-files --command fastsync")])
def test_zsh_and_fish_scripts_call_fastsync_back(shell: str, marker: str) -> None:
    script = ok(fastsync("completion", shell)).stdout.decode()
    assert marker in script and "_FASTSYNC_COMPLETE" in script


@pytest.mark.parametrize("args", [(), ("tcsh",)])
def test_completion_without_a_known_shell_shows_help_and_succeeds_as_skopeo(args: tuple, run_skopeo) -> None:
    theirs = run_skopeo("completion", *args, check=False)
    ours = fastsync("completion", *args)
    assert ours.returncode == theirs.returncode == 0
    assert b"bash" in ours.stdout and b"zsh" in ours.stdout and b"fish" in ours.stdout


@pytest.mark.parametrize("words", [(), ("copy",), ("sync",), ("completion", "bash"), ("copy", "extra")])
def test_help_shows_the_commands_help(words: tuple) -> None:
    want = ok(fastsync(*[w for w in words if w != "extra"], "--help")).stdout
    assert ok(fastsync("help", *words)).stdout == want


def test_help_for_an_unknown_topic_says_so_as_skopeo(run_skopeo) -> None:
    theirs = run_skopeo("help", "nonexist", check=False)
    ours = fastsync("help", "nonexist")
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout == b""
    assert ours.stderr.splitlines()[0] == theirs.stderr.splitlines()[0] == b"Unknown help topic [`nonexist`]"
    assert b"Usage: fastsync [OPTIONS] COMMAND" in ours.stderr
