"""The command line (click): skopeo's commands and flags, and fastsync's own.

main.py     the root group, global flags, copy / inspect / list-tags / delete / manifest-digest
auth.py     login, logout
sync.py     sync, cache
offline.py  select, bundle, unbundle
render.py   progress lines and bars, the --report JSON

The only package that imports click, prints or exits.
"""
from fastsync.cli.main import main

__all__ = ["main"]
