"""Offline installers: a release's registry tree selected from a pool, bundled into one tar.

select.py   select: hardlink a list of images from a pool tree into a new tree
bundle.py   bundle / unbundle: one tar (optionally zstd), each blob once, verified on extraction

May import: everything but cli.
"""
