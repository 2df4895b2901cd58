"""Which store `containers-storage:NAME` means without a `[...]` spec: storage.conf as
containers/storage reads it (types/options.go, options_linux.go).

- the file: `$CONTAINERS_STORAGE_CONF` when set; else for root `/etc/containers/storage.conf`, or
  `/usr/share/containers/storage.conf` when that is missing; for other users
  `$XDG_CONFIG_HOME/containers/storage.conf` (`~/.config/...`), falling back to root's files for
  the driver and options only.
- defaults: root `/var/lib/containers/storage` + `/run/containers/storage`; other users
  `$XDG_DATA_HOME/containers/storage` (`~/.local/share/...`, or the file's
  `rootless_storage_path`) + `$XDG_RUNTIME_DIR/containers` (`/tmp/containers-user-UID/containers`).
- `STORAGE_DRIVER` and `STORAGE_OPTS` override the file's driver and options; with no driver at
  all, an existing store's own (its `vfs-layers`/`overlay-layers`) is used, else overlay.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from fastsync.errors import FastsyncError

try:
    import tomllib as _toml
except ImportError:                                 # Python < 3.11
    import tomli as _toml  # type: ignore[no-redef]

ROOT_CONF = "/etc/containers/storage.conf"
DEFAULT_CONF = "/usr/share/containers/storage.conf"


@dataclass(frozen=True)
class StoreConfig:
    driver: str
    graphroot: str
    runroot: str
    options: tuple[str, ...]


def _read(path: str) -> Optional[Mapping[str, Any]]:
    try:
        with open(path, "rb") as f:
            doc = _toml.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FastsyncError(f"cannot read storage configuration {path}: {exc}") from None
    storage = doc.get("storage")
    return storage if isinstance(storage, dict) else {}


def _user_paths(env: Mapping[str, str], uid: int) -> tuple[str, str, str]:
    home = env.get("HOME") or os.path.expanduser("~")
    conf = os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "containers", "storage.conf")
    data = os.path.join(env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "containers", "storage")
    run_base = env.get("XDG_RUNTIME_DIR")
    run = os.path.join(run_base, "containers") if run_base else f"/tmp/containers-user-{uid}/containers"
    return conf, data, run


def _expand(path: str, env: Mapping[str, str]) -> str:
    home = env.get("HOME") or os.path.expanduser("~")
    path = path.replace("$HOME", home)
    if path.startswith("~/"):
        path = os.path.join(home, path[2:])
    return path


def _detect_driver(graphroot: str) -> str:
    for driver in ("overlay", "vfs"):
        if os.path.isdir(os.path.join(graphroot, f"{driver}-layers")):
            return driver
    return "overlay"


def default_store(env: Optional[Mapping[str, str]] = None, uid: Optional[int] = None) -> StoreConfig:
    env = os.environ if env is None else env
    uid = os.geteuid() if uid is None else uid
    explicit = env.get("CONTAINERS_STORAGE_CONF")
    if uid == 0:
        graphroot, runroot = "/var/lib/containers/storage", "/run/containers/storage"
        if explicit:
            conf = _read(explicit)
        else:
            conf = _read(ROOT_CONF)
            if conf is None:
                conf = _read(DEFAULT_CONF)
        conf = conf or {}
        graphroot = conf.get("graphroot") or graphroot
        runroot = conf.get("runroot") or runroot
    else:
        user_conf, graphroot, runroot = _user_paths(env, uid)
        conf = _read(explicit) if explicit else _read(user_conf)
        if conf is None:
            system = _read(ROOT_CONF)
            if system is None:
                system = _read(DEFAULT_CONF)
            system = system or {}
            conf = {"driver": system.get("driver", "")}
            if system.get("rootless_storage_path"):
                graphroot = system["rootless_storage_path"]
        else:
            graphroot = conf.get("rootless_storage_path") or conf.get("graphroot") or graphroot
            runroot = conf.get("runroot") or runroot
    graphroot = _expand(str(graphroot), env)
    runroot = _expand(str(runroot), env)
    driver = env.get("STORAGE_DRIVER") or str(conf.get("driver") or "")
    opts_env = env.get("STORAGE_OPTS")
    if opts_env:
        options = tuple(o for o in opts_env.split(",") if o)
    else:
        options = ()
    if driver == "overlay2":
        driver = "overlay"
    return StoreConfig(driver or _detect_driver(graphroot), graphroot, runroot, options)
