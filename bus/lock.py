"""One process at a time: an exclusive flock, held until closed or until the process dies.

Every single-instance guard of the product (the supervisor, the writer, a producer's
outbox, the universe build, the master-file run) is one of these. The kernel drops a flock
with its holder, kill -9 included, so a crash never leaves a stale lock behind; the holder
writes its pid into the file, so the process refused can name it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bus.errors import LockHeld

__all__ = ["InstanceLock", "LockHeld", "holder"]


class InstanceLock:
    """An exclusive, non-blocking flock on ``path`` (created owner-only).

    Raises
    ------
    LockHeld
        Another process holds it; its ``holder`` is that process's pid as it wrote it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockHeld(path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd: int | None = fd

    def close(self) -> None:
        """Release the lock (again is harmless)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder(path: Path) -> str | None:
    """The pid of the process holding ``path``'s lock; None if none does.

    The probe takes the lock for an instant (a process starting in that instant is refused
    it). A lock file that cannot be opened counts as held, ``"unknown"``: the safe side.
    """
    if not path.is_file():
        return None
    try:
        InstanceLock(path).close()
    except LockHeld as exc:
        return exc.holder
    except OSError:
        return "unknown"
    return None
