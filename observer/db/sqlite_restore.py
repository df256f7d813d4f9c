"""A SQLite backup placed as a database file: never beside a writer, nor its stale journals.

`restore_sqlite_file` is `observer.db.backup.restore_backup`'s part for SQLite. It holds the
writer's own lock of the target (``<db>.writer.lock``) throughout, so a writer serving the file
refuses the restore and none starts during it. A crashed writer's ``-wal``, ``-shm`` and
``-journal`` are set aside, never deleted, and the file counts only once it passes ``PRAGMA
integrity_check`` and the caller's check at its final path; otherwise nothing it made is left.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from observer.db.engine import normalize_url
from observer.errors import BackupError, WriterLocked
from observer.process.private_files import fsync_path
from observer.writer.lock import WriterLock

__all__ = ["COMPANIONS", "restore_sqlite_file"]

log = logging.getLogger(__name__)

COMPANIONS = ("-wal", "-shm", "-journal")  # what SQLite keeps beside a database file


def restore_sqlite_file(dump: Path, path: Path, check: Callable[[str], None] | None) -> None:
    """Place ``dump`` at ``path`` (absent or empty), then check it there.

    ``check`` is called with the restored database's URL (None: SQLite's integrity check
    alone) and raises `BackupError` to refuse it.

    Raises
    ------
    BackupError
        A writer holds the target's lock, ``path`` holds a database, or the copy or its
        check failed (the restored file is removed).
    """
    url = f"sqlite:///{path}"
    try:
        lock = WriterLock(WriterLock.paths_for(normalize_url(url), Path(), None))
    except WriterLocked as exc:
        holder = getattr(exc.__cause__, "holder", "?")
        raise BackupError(
            f"{path} is served by a writer (pid {holder}): stop it before restoring into it"
        ) from exc
    except OSError as exc:
        raise BackupError(f"cannot restore into {path}: {_line(exc)}") from exc
    temporary = path.with_name(f".{path.name}.restoring")
    try:
        if path.exists() and path.stat().st_size > 0:
            raise BackupError(f"{path} exists: restore into a new file, never over a database")
        _set_aside_companions(path)
        placed = False
        try:
            shutil.copyfile(dump, temporary)
            os.chmod(temporary, 0o600)
            fsync_path(temporary)
            os.replace(temporary, path)
            placed = True
            _check_restored(path, check)
        except BaseException:
            for leftover in (temporary, *((path,) if placed else ()), *_companions(path)):
                leftover.unlink(missing_ok=True)  # the restore's own files: nothing is left
            raise
    except OSError as exc:
        raise BackupError(f"cannot restore into {path}: {_line(exc)}") from exc
    finally:
        lock.close()


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in COMPANIONS]


def _set_aside_companions(path: Path) -> None:
    """Rename the ``-wal``, ``-shm`` and ``-journal`` left at ``path`` to ``*.stale-<UTC time>``.

    With their database gone (moved away to keep it), SQLite would replay them onto the
    restored file at its first open: "database disk image is malformed", or their rows merged
    in. They are never deleted: a WAL may hold a crashed writer's last commits, to recover
    beside the old file.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for companion in _companions(path):
        if companion.exists() or companion.is_symlink():
            aside = companion.with_name(f"{companion.name}.stale-{stamp}")
            n = 0
            while aside.exists() or aside.is_symlink():
                n += 1
                aside = companion.with_name(f"{companion.name}.stale-{stamp}-{n}")
            companion.rename(aside)
            log.warning(
                "restore: %s was left beside %s by a database no longer there; set aside as %s",
                companion.name,
                path,
                aside.name,
            )


def _check_restored(path: Path, check: Callable[[str], None] | None) -> None:
    try:
        with sqlite3.connect(path) as conn:
            found = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        conn.close()
    except sqlite3.Error as exc:
        found = [_line(exc)]
    if found != ["ok"]:
        raise BackupError(
            f"the database restored at {path} failed SQLite's integrity check "
            f"({found[0] if found else 'no answer'}): it was removed"
        )
    if check is not None:
        try:
            check(f"sqlite:///{path}")
        except BackupError as exc:
            raise BackupError(f"{exc} (restored at {path}: removed)") from exc


def _line(exc: BaseException) -> str:
    line = " ".join(str(exc).split()) or type(exc).__name__
    return line if len(line) <= 300 else f"{line[:297]}..."
