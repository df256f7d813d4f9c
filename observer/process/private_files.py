"""Owner-only files and folders: files replaced atomically and durably, data folders tightened.

Every ``observer`` process runs under umask 077 (`observer.cli.main.main`), so what it creates
is owner-only; `tighten_folders` makes the folders that were already there owner-only too.
Every state file the product writes for itself goes through `write_private`: once it
returns, a power cut keeps the new contents, and a reader never sees a part.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["fsync_path", "fsync_tree", "set_aside", "tighten_folders", "write_private"]


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's: its entries') contents to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` (``root`` included) to the disk.

    Symbolic links are not followed: what they name is not part of the tree.
    """
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                fsync_path(path)
        fsync_path(Path(folder))


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Replace ``path`` with ``data``, atomically and durably (mode 0600).

    The bytes go to a temporary file in the same folder, which is fsynced, renamed over
    ``path``, and the folder fsynced: readers see the old file or the new one, never a
    part, and a power cut after the return keeps the new one. A new parent folder gets
    0700. ``exclusive``: ``path`` is created, never replaced (`FileExistsError` if it is
    there). On any failure the temporary file is removed and ``path`` is as it was.
    """
    folder = path.parent
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    # Writers never share one: another process, or another thread of this one.
    temporary = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            os.link(temporary, path)  # fails if the file is there: never replaced
            temporary.unlink()
        else:
            temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk: the part written goes with it
        raise
    fsync_path(folder)  # the rename itself survives a power cut only once this returns


def set_aside(path: Path, *, copy: bool = False, now_ns: int | None = None) -> Path:
    """Move ``path`` to ``<name>.bad-<UTC time>`` beside it, owner-only; return that path.

    For a state file that does not read: kept for a post-mortem, out of its reader's way.
    ``copy``: the file stays where it is and a copy is set aside, for an owner that writes
    the file again at once and must never find it missing. The time is the wall clock's
    (``now_ns``, else now): when the file was found, for a person. What is set aside is
    made durable like a write.
    """
    at = datetime.fromtimestamp((time.time_ns() if now_ns is None else now_ns) / 1e9, UTC)
    base = f"{path.name}.bad-{at:%Y%m%dT%H%M%SZ}"
    aside = path.with_name(base)
    n = 1
    while aside.exists() or aside.is_symlink():  # two in one second: neither is lost
        n += 1
        aside = path.with_name(f"{base}-{n}")
    if copy:
        write_private(aside, path.read_bytes(), exclusive=True)
        return aside
    path.rename(aside)
    aside.chmod(0o600)  # a hand-edited file may have been open; it may hold a secret
    fsync_path(path.parent)
    return aside


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
