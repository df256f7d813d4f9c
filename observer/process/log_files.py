"""A supervised program's log file, rotated by size by the program itself.

The supervisor opens ``<log_dir>/<program>.log`` (append) as the child's stdout and stderr, so
what the child prints before its logging is set up, and a crash's traceback, lands there. The
child then owns the file: `RotatingStderrHandler` writes every log line to stderr and rotates the
file under the logging lock, so no line is lost or split. A process with no supervisor above it
adopts a file the same way (`adopt_log_file`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = [
    "LOG_FILE_ENV",
    "LOG_KEEP_ENV",
    "LOG_MAX_BYTES_ENV",
    "RotatingStderrHandler",
    "adopt_log_file",
    "rotated_names",
    "stderr_handler",
]

LOG_FILE_ENV = "OBSERVER_LOG_FILE"  # the file the supervisor made our stdout and stderr
LOG_MAX_BYTES_ENV = "OBSERVER_LOG_MAX_BYTES"
LOG_KEEP_ENV = "OBSERVER_LOG_KEEP"


def rotated_names(path: Path, keep: int) -> list[Path]:
    """The log file and its rotated copies, newest first: ``x.log, x.log.1, ... x.log.keep``."""
    return [path, *(path.with_name(f"{path.name}.{n}") for n in range(1, keep + 1))]


class RotatingStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines to stderr, which is ``path``; rotate it by size, keep ``keep`` old files.

    Before a line would take the file past ``max_bytes`` it is renamed ``.1`` (``.1`` to
    ``.2`` ..., the oldest beyond ``keep`` goes), a new one is opened and descriptors 1 and 2
    point at it. If another tool moved the file away (logrotate), the next line notices (the
    path names another file, or none) and reopens it: the lines written in between are in the
    moved file.

    Parameters
    ----------
    path:
        The file descriptors 1 and 2 write to.
    max_bytes:
        A line that would take the file past this size goes to a new file.
    keep:
        Rotated files kept (``path.1`` newest ... ``path.keep`` oldest).
    """

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        super().__init__(sys.stderr)
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotations = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Write one line, first reopening or rotating the file if need be (lock held)."""
        try:
            line = self.format(record) + self.terminator
            current = os.fstat(2)
            try:
                named = os.stat(self.path)
            except FileNotFoundError:
                named = None
            if named is None or (named.st_dev, named.st_ino) != (current.st_dev, current.st_ino):
                self._point_stderr_at_path()  # moved away by another tool
            elif current.st_size and current.st_size + len(line.encode()) > self.max_bytes:
                self._rotate()
            self.stream.write(line)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _rotate(self) -> None:
        names = rotated_names(self.path, self.keep)
        for older, newer in zip(reversed(names[1:]), reversed(names[:-1]), strict=True):
            if newer.exists():
                os.replace(newer, older)  # the oldest is replaced, i.e. dropped
        self.rotations += 1
        self._point_stderr_at_path()

    def _point_stderr_at_path(self) -> None:
        # No flush of sys.stdout or sys.stderr here: another thread may be half-way through a
        # print (its text written, its newline not yet), and flushing its buffer from this
        # thread would put a log line in the middle of it. What they hold reaches the new
        # file when its own writer flushes; every log line was flushed when it was written.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        finally:
            os.close(fd)


def adopt_log_file(path: Path, max_bytes: int, keep: int) -> RotatingStderrHandler:
    """Make ``path`` this process's stdout and stderr (append, owner-only) and rotate it.

    For ``observer supervise --log-file`` outside supervisord, where nothing else would rotate its
    output. Not through the environment as for a supervised program: the supervisor's children would
    inherit it and two processes would rotate one file.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    handler = RotatingStderrHandler(path, max_bytes, keep)
    handler._point_stderr_at_path()
    return handler


def stderr_handler() -> logging.StreamHandler:  # type: ignore[type-arg]
    """A rotating handler if the supervisor gave us a log file as stderr, else a plain one."""
    path = os.environ.get(LOG_FILE_ENV)
    if path:
        try:
            named, current = os.stat(path), os.fstat(2)
            max_bytes = int(os.environ.get(LOG_MAX_BYTES_ENV, "0"))
            keep = int(os.environ.get(LOG_KEEP_ENV, "0"))
        except (OSError, ValueError):
            pass  # no such file, or not ours: log to stderr as it is
        else:
            ours = (named.st_dev, named.st_ino) == (current.st_dev, current.st_ino)
            if ours and max_bytes > 0 and keep > 0:
                return RotatingStderrHandler(Path(path), max_bytes, keep)
    return logging.StreamHandler()
