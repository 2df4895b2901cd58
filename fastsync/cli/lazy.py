"""The root group's commands, each module imported when one of its commands is first looked up.

`fastsync sync ...` imports cli/sync.py and not the modules of copy, login, bundle or the trust
commands; `fastsync --help` (which lists every command) imports them all. The table names, for
every command, the cli/ module that adds it: its `register(main)` when it has one, else its
`COMMANDS` list. tests/test_startup.py checks the table against what the modules register.
"""
from __future__ import annotations

import importlib
from typing import Any, Iterator

import click

COMMAND_MODULES = {
    "copy": "images", "inspect": "images", "list-tags": "images", "delete": "images", "manifest-digest": "images",
    "login": "auth", "logout": "auth",
    "sync": "sync", "cache": "sync",
    "select": "offline", "bundle": "offline", "unbundle": "offline",
    "completion": "help", "help": "help",
    "standalone-sign": "trust", "standalone-verify": "trust",
    "bench": "bench",
}


def register_module(group: click.Group, module: str) -> None:
    """Add the commands of fastsync.cli.<module> to `group`."""
    mod = importlib.import_module(f"fastsync.cli.{module}")
    register = getattr(mod, "register", None)
    if register is not None:
        register(group)
    else:
        for cmd in mod.COMMANDS:
            group.add_command(cmd)


class LazyCommands(dict):
    """`group.commands`: a dict that fills itself from COMMAND_MODULES as names are looked up, and
    completely before it is listed (click's list_commands, help, completion, the Go-flag parser)."""

    def __init__(self, group: click.Group, table: dict[str, str]) -> None:
        super().__init__()
        self._group = group
        self._table = dict(table)
        self._loaded: set[str] = set()

    def _load(self, module: str) -> None:
        if module not in self._loaded:
            self._loaded.add(module)
            register_module(self._group, module)

    def _load_for(self, name: Any) -> None:
        if not dict.__contains__(self, name) and name in self._table:
            self._load(self._table[name])

    def _load_all(self) -> None:
        for module in dict.fromkeys(self._table.values()):
            self._load(module)

    def get(self, name: Any, default: Any = None) -> Any:
        self._load_for(name)
        return dict.get(self, name, default)

    def __getitem__(self, name: Any) -> Any:
        self._load_for(name)
        return dict.__getitem__(self, name)

    def __contains__(self, name: object) -> bool:
        return name in self._table or dict.__contains__(self, name)

    def __iter__(self) -> Iterator[Any]:
        self._load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load_all()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._load_all()
        return dict.keys(self)

    def values(self) -> Any:
        self._load_all()
        return dict.values(self)

    def items(self) -> Any:
        self._load_all()
        return dict.items(self)
