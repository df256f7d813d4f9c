"""Backups after a crash: a crashed writer's stale WAL, a backup killed half-way, and
failed backups that would otherwise pile up night after night."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.lock import InstanceLock
from harness.loadgen import synthetic_tick
from observer.config.load import load_settings
from observer.db import migrate
from observer.db.backup import MANIFEST, make_backup, restore_backup
from observer.db.engine import make_engine
from observer.errors import BackupError
from observer.writer.store import Store
from tests.backup.test_backup import config_for
from tests.support import ROOT, audit, wait_until

T0 = 1_790_000_000 * 10**9


def add_ticks(url: str, first: int, last: int, source: str = "w") -> None:
    """Commit ticks ``first..last`` of ``source`` as the writer does."""
    engine = make_engine(url)
    store = Store(engine)
    store.load_marks()
    envelopes = [
        Envelope(source, n, T0 + n, synthetic_tick(n, T0 + n)) for n in range(first, last + 1)
    ]
    for i in range(0, len(envelopes), 500):
        store.apply([decode_parts(encode_frame(envelopes[i : i + 500]))])
    engine.dispose()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def crash_leaving_wal(db: Path, first: int, last: int) -> dict[str, bytes]:
    """Commit ``first..last`` so that they sit in the WAL, and return the -wal and -shm as a
    writer killed then would have left them (the last connection to close checkpoints)."""
    holder = sqlite3.connect(db)  # keeps the WAL from being checkpointed away meanwhile
    holder.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL holds only what follows
    add_ticks(f"sqlite:///{db}", first, last)
    left = {suffix: db.with_name(db.name + suffix).read_bytes() for suffix in ("-wal", "-shm")}
    holder.close()
    assert len(left["-wal"]) > 100_000
    return left


def test_a_restore_sets_aside_a_crashed_writers_wal_and_checks_the_file(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The stale WAL was replayed onto the restored file: 'database disk image is
    malformed' (or its rows merged in), and the restore said it succeeded."""
    migrate.upgrade(sqlite_url)
    add_ticks(sqlite_url, 1, 200)
    config = config_for(tmp_path, sqlite_url)
    backup = make_backup(load_settings(config), config, tmp_path / "backups")
    add_ticks(sqlite_url, 201, 3000)
    live = tmp_path / "observer.db"
    left = crash_leaving_wal(live, 3001, 4000)
    live.rename(tmp_path / "broken.db")  # the damaged database, moved away to keep it
    for suffix, data in left.items():
        live.with_name(live.name + suffix).write_bytes(data)
    restore_backup(backup.path, sqlite_url)
    conn = sqlite3.connect(live)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM trade_ticks").fetchone() == (200,)
    finally:
        conn.close()
    found = audit(sqlite_url)["w"]
    assert (found.rows, found.max_seq, found.complete) == (200, 200, True)
    # Set aside, never deleted: the crashed writer's last commits are still there.
    for suffix, data in left.items():
        (aside,) = tmp_path.glob(f"observer.db{suffix}.stale-*")
        assert aside.read_bytes() == data


def test_a_restore_is_refused_while_a_writer_holds_the_database(
    tmp_path: Path, sqlite_url: str
) -> None:
    migrate.upgrade(sqlite_url)
    config = config_for(tmp_path, sqlite_url)
    backup = make_backup(load_settings(config), config, tmp_path / "backups")
    target = tmp_path / "new.db"
    wal = target.with_name("new.db-wal")
    wal.write_bytes(b"a writer's WAL")
    writer = InstanceLock(target.with_name("new.db.writer.lock"))  # as `WriterLock` takes it
    try:
        with pytest.raises(BackupError, match=r"served by a writer .*stop it before restoring"):
            restore_backup(backup.path, f"sqlite:///{target}")
    finally:
        writer.close()
    assert not target.exists() and wal.read_bytes() == b"a writer's WAL"  # nothing touched
    restore_backup(backup.path, f"sqlite:///{target}")  # the writer gone: restored
    assert target.is_file() and not wal.exists()


def test_a_restore_that_fails_its_integrity_check_leaves_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A database part damaged with its manifest made to match (the checksums prove only
    that the file is the one listed): the restored file itself is checked."""
    migrate.upgrade(sqlite_url)
    add_ticks(sqlite_url, 1, 300)
    config = config_for(tmp_path, sqlite_url)
    backup = make_backup(load_settings(config), config, tmp_path / "backups")
    dump = backup.path / "database.sqlite"
    data = bytearray(dump.read_bytes())
    page = 4096
    data[page:] = b"\xff" * (len(data) - page)  # every page but the first (the schema)
    dump.write_bytes(bytes(data))
    manifest = json.loads((backup.path / MANIFEST).read_text())
    for part in manifest["parts"]:
        if part["name"] == "database.sqlite":
            part["sha256"] = sha(dump)
    (backup.path / MANIFEST).write_text(json.dumps(manifest))
    target = tmp_path / "restored.db"
    with pytest.raises(BackupError, match="integrity check"):
        restore_backup(backup.path, f"sqlite:///{target}")
    left = sorted(p.name for p in tmp_path.glob("*restored*"))
    assert left == ["restored.db.writer.lock"]  # the lock a writer takes too: nor a temporary


KILLED = """
import sys, threading
from pathlib import Path
import observer.db.backup as backup
flag = Path(sys.argv[2])
def held(*args, **kwargs):
    flag.touch()
    threading.Event().wait()  # until killed
backup.verify_backup = held
sys.argv = ["observer", "db", "backup", "--config", sys.argv[1]]
from observer.cli.entry import main
main()
"""


def kill_during_verification(config: Path, tmp_path: Path) -> None:
    """``observer db backup`` killed (-9) while it verifies its copy."""
    flag = tmp_path / "verifying"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(config), str(flag)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_until(lambda: flag.exists() or child.poll() is not None, 120, "its verification")
        assert child.poll() is None, "the backup ended before its verification"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    flag.unlink()


def test_a_backup_killed_during_verification_is_never_counted_nor_restored(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It was taken for verified: restored without --force, and it pushed a verified
    backup out of the rotation; a folder killed during its dump was never removed."""
    migrate.upgrade(sqlite_url)
    add_ticks(sqlite_url, 1, 100)
    config = config_for(tmp_path, sqlite_url, "[backup]\nkeep = 2\n")
    dest = tmp_path / "data" / "backups"
    first = make_backup(load_settings(config), config).path
    kill_during_verification(config, tmp_path)
    (killed,) = (p for p in dest.iterdir() if p != first and p.is_dir())
    assert (killed / MANIFEST).is_file()  # whole, checksums right: only never verified
    target = tmp_path / "restored.db"
    with pytest.raises(BackupError, match=r"never verified .* with --force"):
        restore_backup(killed, f"sqlite:///{target}")
    assert not target.exists()
    restore_backup(killed, f"sqlite:///{target}", force=True)  # its maker is dead: on demand
    assert audit(f"sqlite:///{target}")["w"].rows == 100
    # A folder an earlier version left, killed during its dump (no manifest), a day old;
    # and one that is only minutes old (such a backup may still be running).
    old, recent = dest / "observer-20200101T000000Z", dest / "observer-20200102T000000Z"
    for folder in (old, recent):
        folder.mkdir()
        (folder / "database.sqlite").write_bytes(b"half a dump")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    with caplog.at_level(logging.INFO, logger="observer.db.backup_folders"):
        second = make_backup(load_settings(config), config).path
    assert sorted(dest.iterdir()) == sorted([first, second, recent])  # keep = 2 verified
    assert killed.name in caplog.text and old.name in caplog.text


def test_a_backup_being_made_is_left_alone_and_not_restored(
    tmp_path: Path, sqlite_url: str
) -> None:
    migrate.upgrade(sqlite_url)
    config = config_for(tmp_path, sqlite_url, "[backup]\nkeep = 1\n")
    dest = tmp_path / "data" / "backups"
    dest.mkdir(parents=True)
    made = make_backup(load_settings(config), config).path
    making = dest / "observer-20990101T000000Z.partial"
    shutil.copytree(made, making)
    maker = InstanceLock(dest / "observer-20990101T000000Z.partial.lock")  # a live maker
    try:
        with pytest.raises(BackupError, match=rf"is being made \(pid {os.getpid()}\)"):
            restore_backup(making, f"sqlite:///{tmp_path / 'new.db'}", force=True)
        newest = make_backup(load_settings(config), config).path
        assert sorted(dest.iterdir()) == sorted([newest, making, maker.path])
    finally:
        maker.close()
    assert not (tmp_path / "new.db").exists()


def test_only_the_newest_failed_backups_are_kept(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that stays incomplete added a full copy every night, for good."""
    migrate.upgrade(sqlite_url)
    add_ticks(sqlite_url, 1, 50)
    config = config_for(tmp_path, sqlite_url, "[backup]\nkeep = 3\n")
    dest = tmp_path / "backups"
    verified = make_backup(load_settings(config), config, dest).path
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:  # a mark beyond the rows: every verification fails now
        conn.exec_driver_sql("UPDATE bus_offsets SET seq = 60")
    engine.dispose()
    errors = []
    with caplog.at_level(logging.INFO, logger="observer.db.backup_folders"):
        for _ in range(4):
            with pytest.raises(BackupError, match="incomplete") as failed:
                make_backup(load_settings(config), config, dest)
            errors.append(str(failed.value))
    kept = sorted(p.name for p in dest.iterdir() if p.name.endswith(".failed"))
    assert len(kept) == 2 and all(name in errors[-1] + errors[-2] for name in kept)
    assert sorted(dest.iterdir()) == sorted([verified, *(dest / name for name in kept)])
    assert "1 older failed removed, the newest 2 kept" in errors[-1]
    assert "removed" not in errors[0]
    assert "backups rotated" in caplog.text and "newest 2 failed" in caplog.text


def test_rotation_keeps_the_newest_in_the_order_they_were_made(tmp_path: Path) -> None:
    """Within one second names go -1, -2, ... -10: as text -10 came before -9, and a name
    freed by rotation was taken again, so the newest backup was the one removed."""
    from datetime import UTC, datetime

    from observer.db.backup_folders import Making, rotate

    second = datetime(2026, 11, 24, 5, 3, 0, tzinfo=UTC)
    base = "observer-20261124T050300Z"
    for n in (0, 9, 10):
        (tmp_path / (f"{base}-{n}.failed" if n else f"{base}.failed")).mkdir()
    assert rotate(tmp_path, 1) == [f"{base}.failed"]
    making = Making(tmp_path, second)  # the name rotation freed is not taken again
    assert making.folder.name == f"{base}-11.partial"
    newest = making.failed()
    rotate(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{base}-10.failed", newest.name]


def test_rotation_touches_only_the_names_a_backup_gives(tmp_path: Path) -> None:
    """``[backup] dir = "~"``: a checkout called observer-main, a day old and without a
    manifest, was taken for a backup an earlier version left, and removed."""
    from observer.db.backup_folders import rotate

    ours = tmp_path / "observer-20200101T000000Z"  # an earlier version's, killed in its dump
    theirs = [tmp_path / name for name in ("observer-main", "observer-20200101T000000Z-old")]
    for folder in (ours, *theirs):
        (folder / "var").mkdir(parents=True)
        os.utime(folder, (0, 0))  # long before a day ago
    (tmp_path / "observer-notes.partial").mkdir()
    os.utime(tmp_path / "observer-notes.partial", (0, 0))
    assert rotate(tmp_path, 1) == [ours.name]
    assert all(folder.is_dir() for folder in theirs)
    assert (tmp_path / "observer-notes.partial").is_dir()


def test_a_new_backup_is_kept_beside_backups_named_later_than_now(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Backups made while the clock was ahead sorted as the newest: each new backup was
    removed as soon as it was made, and reported verified."""
    from observer.db.backup_folders import MANIFEST, rotate

    ahead = [tmp_path / f"observer-2099010{d}T210000Z" for d in (1, 2)]
    made = tmp_path / "observer-20261124T103739Z"
    for folder in (*ahead, made):
        folder.mkdir()
        (folder / MANIFEST).write_text("{}")
    assert rotate(tmp_path, 2, made=made) == [ahead[0].name]
    assert "named later than now" in caplog.text and ahead[1].name in caplog.text
    later = tmp_path / "observer-20261125T103739Z"
    later.mkdir()
    (later / MANIFEST).write_text("{}")
    assert rotate(tmp_path, 2, made=later) == [ahead[1].name]  # not the older real one
    assert sorted(p.name for p in tmp_path.iterdir()) == [made.name, later.name]


STOPPED = """
import sys, threading
from pathlib import Path
import observer.db.backup as backup
flag = Path(sys.argv[2])
def held(url):
    flag.with_suffix(".tmp").write_text(url)
    flag.with_suffix(".tmp").rename(flag)
    threading.Event().wait()  # until stopped
backup._check_database = held
sys.argv = ["observer", *sys.argv[3:], "--config", sys.argv[1]]
from observer.cli.entry import main
main()
"""


def stop_during_verification(config: Path, tmp_path: Path, *command: str) -> tuple[str, int]:
    """``observer COMMAND`` stopped (SIGTERM, as the supervisor stops a job) while it checks
    its restored copy; the copy's URL and the exit code."""
    flag, scratch_tmp = tmp_path / "verifying", tmp_path / "tmpdir"
    scratch_tmp.mkdir(exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", STOPPED, str(config), str(flag), *command],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch_tmp)},
    )
    try:
        wait_until(lambda: flag.exists() or child.poll() is not None, 120, "its verification")
        assert child.poll() is None, "the backup ended before its verification"
        url = flag.read_text()
        child.send_signal(signal.SIGTERM)
        code = child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert list(scratch_tmp.iterdir()) == []  # nothing in $TMPDIR, ever
    return url, code


@pytest.mark.parametrize("command", [("db", "backup"), ("backup", "run")])
def test_a_backup_stopped_during_verification_removes_its_scratch_copy(
    tmp_path: Path, sqlite_url: str, command: tuple[str, ...]
) -> None:
    """The supervisor's SIGTERM ended the process with no cleanup: every stop left a whole
    copy of the database in $TMPDIR for good (a small tmpfs /tmp, on Debian, filled)."""
    migrate.upgrade(sqlite_url)
    add_ticks(sqlite_url, 1, 100)
    config = config_for(tmp_path, sqlite_url)
    dest = tmp_path / "data" / "backups"
    url, code = stop_during_verification(config, tmp_path, *command)
    copy = Path(url.removeprefix("sqlite:///"))
    assert copy.parent.parent == dest  # beside the backups, on their volume, not in $TMPDIR
    assert code == 128 + signal.SIGTERM  # stopped, not done
    assert not copy.parent.exists()
    (partial,) = dest.glob("*.partial")  # never counted; the next backup removes it
    assert sorted(p.name for p in dest.iterdir()) == [partial.name, f"{partial.name}.lock"]


def test_a_postgresql_backup_stopped_during_verification_drops_its_scratch_database(
    tmp_path: Path, pg_url: str
) -> None:
    """Each stop left a database as big as the live one on the server (57 MB each)."""
    migrate.upgrade(pg_url)
    add_ticks(pg_url, 1, 100)
    url, code = stop_during_verification(config_for(tmp_path, pg_url), tmp_path, "db", "backup")
    scratch = url.rsplit("/", 1)[1]
    assert scratch.startswith("observer_verify_") and code == 128 + signal.SIGTERM
    assert scratch not in pg_databases()


def pg_databases() -> set[str]:
    from sqlalchemy import create_engine, text

    from tests.conftest import PG_ADMIN_URL

    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait(30)
    return child.pid


def test_a_backup_removes_the_scratch_copies_killed_backups_left(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A verification killed (-9) left its copy for good; one running beside it stays."""
    migrate.upgrade(sqlite_url)
    config = config_for(tmp_path, sqlite_url)
    dest = tmp_path / "backups"
    killed = dest / f"observer-verify-{dead_pid()}-abcdef"  # its lock free: its maker died
    killed.mkdir(parents=True)
    (killed / "restored.sqlite").write_bytes(b"a whole copy of the database")
    (dest / f"{killed.name}.lock").write_text("0")
    running = dest / f"observer-verify-{os.getpid()}-012345"
    running.mkdir()
    lock = InstanceLock(dest / f"{running.name}.lock")
    try:
        made = make_backup(load_settings(config), config, dest).path
        assert sorted(p.name for p in dest.iterdir()) == sorted(
            [made.name, running.name, lock.path.name]
        )
    finally:
        lock.close()


def test_a_postgresql_backup_drops_the_scratch_databases_killed_backups_left(
    tmp_path: Path, pg_url: str
) -> None:
    """Named ``observer_verify_<host>_<pid>_...``: this host's whose process is dead go;
    a live process's and another host's stay."""
    from sqlalchemy import create_engine, text

    from tests.conftest import PG_ADMIN_URL

    migrate.upgrade(pg_url)
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
    other = "000000" if host != "000000" else "111111"
    gone = dead_pid()
    names = {
        "killed": f"observer_verify_{host}_{gone}_{os.urandom(5).hex()}",
        "running": f"observer_verify_{host}_{os.getpid()}_{os.urandom(5).hex()}",
        "elsewhere": f"observer_verify_{other}_{gone}_{os.urandom(5).hex()}",
    }
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        make_backup(load_settings(config_for(tmp_path, pg_url)), None, tmp_path / "backups")
        left = pg_databases()
        assert names["killed"] not in left
        assert names["running"] in left and names["elsewhere"] in left
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
