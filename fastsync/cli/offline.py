"""`select`, `bundle` and `unbundle`: registry storage trees for offline installs."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Optional

import click

from fastsync.cli.errors import handle_errors
from fastsync.errors import UsageError


def _images(images: tuple[str, ...], list_file: Optional[str]) -> list[str]:
    from fastsync.offline.select import read_image_list

    return list(images) + (read_image_list(list_file) if list_file else [])


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        click.echo(text, err=True)


@click.command("select")
@click.argument("pool", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("images", nargs=-1)
@click.option("-l", "--list", "list_file", metavar="FILE", help="image list: one NAME[:TAG|@DIGEST] a line, # comments")
@click.option("-q", "--quiet", is_flag=True, help="no summary line")
@click.pass_context
@handle_errors
def select_cmd(ctx: click.Context, pool: str, out: str, images: tuple[str, ...], list_file: Optional[str],
               quiet: bool) -> None:
    """Build the storage tree OUT holding IMAGES from the storage tree POOL, by hardlink.

    Blobs and manifests in OUT are the pool's files (same inodes); a leading registry host in a
    name is ignored. Serve OUT with `registry serve` (rootdirectory: OUT) or bundle it.
    """
    from fastsync.offline.select import select_images

    names = _images(images, list_file)
    if not names:
        raise UsageError("name the images to select (IMAGE arguments or --list FILE)")
    results = select_images(pool, out, names, global_options=ctx.obj["global"])
    _say(quiet, f"Selected {len(results)} image{'s' if len(results) != 1 else ''} into {out} "
                f"({sum(r.blobs_copied + r.blobs_reused for r in results)} blobs linked from {pool})")


@click.command("bundle")
@click.argument("root", type=click.Path(file_okay=False))
@click.argument("archive")
@click.argument("images", nargs=-1)
@click.option("-l", "--list", "list_file", metavar="FILE", help="bundle only the images of this list")
@click.option("--compression", type=click.Choice(["auto", "zstd", "none"]), default="auto", show_default=True,
              help="auto: zstd when ARCHIVE ends in .zst/.tzst")
@click.option("--level", type=int, default=3, show_default=True, help="zstd level (1-22)")
@click.option("-q", "--quiet", is_flag=True, help="no summary line")
@click.pass_context
@handle_errors
def bundle_cmd(ctx: click.Context, root: str, archive: str, images: tuple[str, ...], list_file: Optional[str],
               compression: str, level: int, quiet: bool) -> None:
    """Write the registry storage tree ROOT (or only IMAGES of it) as one tar ARCHIVE ('-': stdout).

    Each blob is stored once; `tar x -C DIR` (zstd: `zstd -dc ARCHIVE | tar x -C DIR`) or
    `fastsync unbundle ARCHIVE DIR` restores a tree the registry serves.
    """
    from fastsync.offline.bundle import write_bundle
    from fastsync.offline.select import select_images

    names = _images(images, list_file)
    tree, tmp = root, None
    if names:     # select into a scratch tree beside ROOT (hardlinks: no data is copied)
        parent = os.path.dirname(os.path.abspath(root))
        tmp = tempfile.mkdtemp(prefix=".fastsync-bundle-", dir=parent if os.access(parent, os.W_OK) else None)
        tree = os.path.join(tmp, "tree")
        select_images(root, tree, names, global_options=ctx.obj["global"])
    try:
        out = sys.stdout.buffer if archive == "-" else archive
        if archive == "-" and compression == "auto":
            compression = "none"
        res = write_bundle(tree, out, compression, level)
        if archive == "-":
            sys.stdout.buffer.flush()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    _say(quiet, f"Bundled {res.blobs} blobs and {res.files - res.blobs} other files ({res.bytes} bytes"
                f"{f', {res.hardlinks} hardlinks' if res.hardlinks else ''}) into {archive}")


@click.command("unbundle")
@click.argument("archive")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--no-verify", is_flag=True, help="do not re-hash blobs while extracting")
@click.option("-q", "--quiet", is_flag=True, help="no summary line")
@handle_errors
def unbundle_cmd(archive: str, root: str, no_verify: bool, quiet: bool) -> None:
    """Extract a bundle ARCHIVE ('-': stdin; tar or tar.zst) into the registry storage root ROOT.

    Existing content is kept (blobs already present are not rewritten); tags come last.
    """
    from fastsync.offline.bundle import read_bundle

    res = read_bundle(sys.stdin.buffer if archive == "-" else archive, root, verify=not no_verify)
    _say(quiet, f"Extracted {res.files} files ({res.bytes} bytes), kept {res.kept} blobs already present, "
                f"into {root}")


def register(main: click.Group) -> None:
    main.add_command(select_cmd)
    main.add_command(bundle_cmd)
    main.add_command(unbundle_cmd)
