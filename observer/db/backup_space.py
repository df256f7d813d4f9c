"""A backup's footprint: the room it needs first, and nothing left behind after it.

`observer.db.backup` uses these so that a backup never fills a volume (`require_room`,
`out_of_space`) and never leaves its scratch copies for good: SIGTERM runs its cleanup
(`sigterm_ends_it`), and what a killed one left is dropped (`drop_dead_scratch_databases`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from observer.config.tree import Settings
from observer.db.backup_folders import FAILED, MANIFEST, PARTIAL
from observer.db.engine import normalize_url, sqlite_file
from observer.errors import BackupError

__all__ = [
    "admin_url",
    "drop_dead_scratch_databases",
    "out_of_space",
    "require_room",
    "scratch_prefix",
    "sigterm_ends_it",
]

log = logging.getLogger(__name__)

PG_DUMP = "database.pgdump"
# What a full volume says through a client or a copy's list of errors (no errno to read).
_FULL = ("No space left on device", "database or disk is full", "Disk quota exceeded")
# Whose a scratch database is: this host (a hash of its name) and the verifying process;
# `observer.db.scratch` adds 10 hex digits of its own.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_SCRATCH_DB = re.compile(r"observer_verify_(?P<host>[0-9a-f]{6})_(?P<pid>\d+)_[0-9a-f]{10}")


@contextmanager
def sigterm_ends_it() -> Iterator[None]:
    """Make SIGTERM raise `SystemExit` meanwhile, so a stopped backup cleans up after itself.

    The supervisor stops a job with SIGTERM, whose default ends the process at once: no
    ``finally`` runs, and a stop during a verification would leave its scratch copy (a whole
    database) for good. Only where the default would apply: on the main thread (the only
    one Python runs handlers on) of a process that set no handler of its own.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.warning("backup stopped by %s: removing its scratch copies", name)
        raise SystemExit(128 + signum)  # as the signal would have: never 0, never "done"

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def require_room(settings: Settings, url: URL, dest: Path) -> None:
    """Refuse a backup of ``url`` that would not fit in ``dest``, before it writes anything.

    A dump that fills the database's volume fails half-way and leaves it full, and the
    writer's commits fail ("database or disk is full"). A SQLite backup needs the database's
    size twice in ``dest`` (the dump, then its verification's copy beside it), a PostgreSQL
    one its dump's (the newest verified dump's size is the estimate: it is restored on the
    server); both need the files they copy. With the SQLite database on that volume, what is
    left must stay above the writer's critical free space (``[disk]``), where it pauses.

    Raises
    ------
    BackupError
        Not enough free space, naming what it needs and what is free.
    """
    data_dir = Path(settings.paths.data_dir)
    files = sum(_tree_size(data_dir / name) for name in settings.backup.files)
    database = sqlite_file(url)
    if database is not None:
        size = _size(database) + _size(database.with_name(database.name + "-wal"))
        needed, what = files + 2 * size, "the database twice: its dump and a verification copy"
    else:
        needed, what = files + _last_dump_size(dest), "as much as the newest verified dump"
    usage = shutil.disk_usage(dest)
    reserve = 0
    if database is not None and _device(database) == _device(dest):  # the writer's volume
        disk = settings.disk
        reserve = max(disk.critical_free_bytes, int(usage.total * disk.critical_free_percent / 100))
    if usage.free >= needed + reserve:
        return
    kept = f" and {reserve / 1e6:.1f} MB left for the writer ([disk] critical)" * bool(reserve)
    raise BackupError(
        f"no room for a backup in {dest}: {usage.free / 1e6:.1f} MB free, it needs "
        f"{needed / 1e6:.1f} MB ({what}, and the files){kept}; free some space, keep fewer "
        "backups ([backup] keep) or back up to another volume ([backup] dir)"
    )


def out_of_space(exc: BaseException) -> bool:
    """True if ``exc`` or what caused it is a full volume (or quota).

    A backup failed so keeps nothing of what it wrote (`observer.db.backup_folders.Making.failed`).
    """
    cause: BaseException | None = exc
    for _ in range(10):  # a chain, never a loop
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        cause = cause.__cause__ or cause.__context__
    return any(text in str(exc) for text in _FULL)  # pg_dump's last line, a copy's errors


def admin_url(server: URL | str) -> str:
    """The server's maintenance database, to create and drop scratch databases from."""
    return normalize_url(server).set(database="postgres").render_as_string(False)


def scratch_prefix() -> str:
    """The name a verification's scratch database starts with: this host and process."""
    return f"observer_verify_{_HOST}_{os.getpid()}"


def drop_dead_scratch_databases(admin: str) -> None:
    """Drop this host's scratch databases whose verifying process is dead.

    A verification killed (SIGKILL) leaves its database on the server, as big as the live
    one; it is told apart by name (`scratch_prefix`: this host and its pid). Another host's,
    and a live process's, stay. A server that cannot say is logged; the backup goes on.
    """
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            query = r"SELECT datname FROM pg_database WHERE datname LIKE 'observer\_verify\_%'"
            for name in conn.execute(text(query)).scalars():
                found = _SCRATCH_DB.fullmatch(name)
                if found and found["host"] == _HOST and not _alive(int(found["pid"])):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    log.info("dropped %s, left by a backup killed during its verification", name)
    except SQLAlchemyError as exc:
        log.warning("cannot drop the scratch databases of killed backups: %s", exc)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- internals


def _alive(pid: int) -> bool:
    """True if a process ``pid`` runs on this host (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _device(path: Path) -> int:
    try:
        return path.stat().st_dev
    except OSError:
        return -1


def _tree_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (links not followed: they are copied as links)."""
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # gone meanwhile
    return total


def _last_dump_size(dest: Path) -> int:
    """The size of the newest verified PostgreSQL dump in ``dest`` (0: none yet)."""
    dumps = [
        path / PG_DUMP
        for path in dest.glob("observer-*")
        if not path.name.endswith((FAILED, PARTIAL)) and (path / MANIFEST).is_file()
    ]
    return _size(max(dumps, key=lambda path: path.parent.name)) if dumps else 0
