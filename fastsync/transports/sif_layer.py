"""The one layer of a `sif:` image: the SIF's squashfs partition, extracted and packed as a tar.

containers/image (sif/load.go) runs `fakeroot -- sh -c "unsquashfs -d ROOT -f SQUASHFS && tar --acls
--xattrs -C ROOT -cpf LAYER ./"`. Here unsquashfs extracts the same way (under fakeroot, whose saved
state gives the owners, when not run as root), then the tar is written in-process, and reproducibly:
the same entries (`./`, `./etc/`, `./etc/motd`, ... with their modes, owners, mtimes, link targets,
device numbers and xattrs), in name order, without the atime/ctime records GNU tar adds. So the same
SIF file always gives the same layer digest (skopeo's differs from run to run: its ctime records
are the extraction time). Not as root, xattrs are lost: fakeroot keeps the xattrs it fakes in
memory only, not in its saved state.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tarfile
from typing import Optional

from fastsync.errors import FastsyncError

INJECTED_SCRIPT = "podman/runscript"      # containers/image's injectedScriptTargetPath, under the root


class ConversionError(FastsyncError):
    """unsquashfs or fakeroot failed, or is missing."""


def _fakeroot_state(path: str) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """fakeroot -s's saved database: (dev, ino) -> (mode, uid, gid, rdev)."""
    out: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    with open(path) as f:
        for line in f:
            fields = dict(kv.split("=", 1) for kv in line.strip().split(",") if "=" in kv)
            try:
                key = (int(fields["dev"], 16), int(fields["ino"]))
                out[key] = (int(fields["mode"], 8), int(fields["uid"]), int(fields["gid"]), int(fields["rdev"]))
            except (KeyError, ValueError):
                continue
    return out


def unsquash(sif_path: str, offset: int, root: str, state: str) -> Optional[str]:
    """Extract the squashfs at `offset` of `sif_path` into `root`; returns fakeroot's state file, if used."""
    cmd = ["unsquashfs", "-no-progress", "-quiet", "-offset", str(offset), "-d", root, "-f", sif_path]
    use_fakeroot = os.geteuid() != 0
    if use_fakeroot:
        if shutil.which("fakeroot") is None:
            raise ConversionError('converting image: exec: "fakeroot": executable file not found in $PATH')
        cmd = ["fakeroot", "-s", state, "--", *cmd]
    elif shutil.which("unsquashfs") is None:
        raise ConversionError('converting image: exec: "unsquashfs": executable file not found in $PATH '
                              "(apt-get install squashfs-tools)")
    try:
        proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ConversionError(f"converting image: {exc.strerror}: {exc.filename}") from None
    if proc.returncode != 0:
        output = " ".join((proc.stdout + proc.stderr).decode(errors="replace").split())
        raise ConversionError(f"converting image: exit status {proc.returncode}, output: {output}")
    return state if use_fakeroot else None


def inject_script(root: str, script: bytes, mtime: int) -> None:
    """containers/image's /podman/runscript (made before unsquashfs runs, as there)."""
    path = os.path.join(root, INJECTED_SCRIPT)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "wb") as f:
        f.write(script)
    os.chmod(path, 0o755)
    for p in (path, os.path.dirname(path)):
        os.utime(p, (mtime, mtime), follow_symlinks=False)


def _names(uid: int, gid: int) -> tuple[str, str]:
    try:
        uname = pwd.getpwuid(uid).pw_name
    except KeyError:
        uname = ""
    try:
        gname = grp.getgrgid(gid).gr_name
    except KeyError:
        gname = ""
    return uname, gname


def _walk(root: str) -> list[str]:
    """Every path under root, relative, parents first, siblings by name."""
    out: list[str] = []

    def visit(rel: str) -> None:
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            child = f"{rel}/{name}" if rel else name
            out.append(child)
            if stat.S_ISDIR(os.lstat(os.path.join(root, child)).st_mode):
                visit(child)
    visit("")
    return out


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return out


def write_tar(root: str, dest: str, state: Optional[str]) -> None:
    """Pack `root` as `tar -C root -cpf dest ./` would, reproducibly (see the module doc)."""
    faked = _fakeroot_state(state) if state else {}
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for rel in ["", *_walk(root)]:
            full = os.path.join(root, rel) if rel else root
            arcname = f"./{rel}" if rel else "."
            info = tar.gettarinfo(full, arcname)
            st = os.lstat(full)
            mode, uid, gid, rdev = faked.get((st.st_dev, st.st_ino), (st.st_mode, st.st_uid, st.st_gid, st.st_rdev))
            info.mode, info.uid, info.gid = stat.S_IMODE(mode), uid, gid
            info.uname, info.gname = _names(uid, gid)
            info.mtime = int(st.st_mtime)
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor, info.size = os.major(rdev), os.minor(rdev), 0
            info.pax_headers = _xattrs(full)
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
