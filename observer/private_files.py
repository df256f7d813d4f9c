"""Owner-only files and folders: files replaced atomically, data folders tightened.

Every ``observer`` process runs under umask 077 (`observer.cli.main`), so what it creates
is owner-only; `tighten_folders` makes the folders that were already there owner-only too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["fsync_path", "tighten_folders", "write_private"]


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's: its entries') contents to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600; a new parent folder gets 0700).

    Readers see the old file or the new one, never a part.
    """
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # writers never share one
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk: the part written goes with it
        raise


def tighten_folders(folders: Iterable[Path]) -> list[tuple[Path, int]]:
    """Make each existing folder this user owns owner-only; return those changed, old modes.

    The owner keeps its permissions; group and others lose theirs. A missing folder, one
    owned by another user and a shared one (the sticky bit, like /tmp) are left alone.
    """
    changed: list[tuple[Path, int]] = []
    for folder in dict.fromkeys(folders):
        try:
            info = folder.stat()
        except OSError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.geteuid()
            or mode & stat.S_ISVTX
            or not mode & 0o077
        ):
            continue
        folder.chmod(mode & ~0o077)
        changed.append((folder, mode))
    return changed
