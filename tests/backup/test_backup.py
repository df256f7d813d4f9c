"""Backups that restore: made while the writer commits, verified, damaged ones refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import PhaseChanged
from observer.config.load import load_settings
from observer.db import migrate
from observer.db.backup import MANIFEST, make_backup, restore_backup, verify_backup
from observer.db.scratch import scratch_postgres
from observer.errors import BackupError
from observer.writer.store import Store
from tests.conftest import PG_ADMIN_URL
from tests.samples import SAMPLES, T0
from tests.support import ROOT, ProducerProcess, WriterProcess, audit, db_rows, wait_until


def config_for(tmp_path: Path, url: str, extra: str = "") -> Path:
    data = tmp_path / "data"
    (data / "universe").mkdir(parents=True, exist_ok=True)
    (data / "universe" / "20261120_kr_stocks.json").write_text('{"members": []}\n')
    (data / "masters" / "current").mkdir(parents=True, exist_ok=True)
    (data / "masters" / "current" / "kospi_code.mst.zip").write_bytes(b"PK\x03\x04 master")
    path = tmp_path / "observer.toml"
    path.write_text(
        f'[paths]\ndata_dir = "{data}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "{url}"\n{extra}'
    )
    return path


def observer(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


SENT = 1_000_000


def test_a_backup_taken_while_the_writer_commits_restores_complete(
    tmp_path: Path, sqlite_url: str, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(sqlite_url).start()
    # 50 s of ticks at 20,000/s: still sending when the backup ends, however busy the machine.
    producer = ProducerProcess(tmp_path, "load", writer.ingest).start(events=SENT, rate=20_000)
    wait_until(lambda: writer.offsets().get("load", 0) > 2000, 60, "the writer committing")
    real = config_for(tmp_path, sqlite_url)
    base = tmp_path / "shared" / "base.toml"  # a file that extends another is not whole alone
    base.parent.mkdir()
    base.write_text("[backup]\nkeep = 3\n")
    real.write_text('extends = "site/base.toml"\n' + real.read_text())
    # Through a link in another folder, as /etc/observer.toml -> /srv/...: the base is found
    # from the link's folder (etc/site/), as the configuration itself finds it.
    config = tmp_path / "etc" / "observer.toml"
    config.parent.mkdir()
    config.symlink_to(real)
    (tmp_path / "etc" / "site").symlink_to(base.parent)
    assert not (tmp_path / "site").exists()
    before = writer.offsets()["load"]
    done = observer("db", "backup", "--config", config, "--json")
    after = writer.offsets()["load"]
    producer.kill()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    folder = Path(summary["path"])
    assert folder.parent == tmp_path / "data" / "backups" and folder.stat().st_mode & 0o777 == 0o700
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["config"] == [str(config), str(base)]
    assert (folder / "files" / "config.extends-1.toml").read_text() == base.read_text()
    names = {part["name"] for part in manifest["parts"]}
    assert names == {
        "database.sqlite",
        "files/config.toml",
        "files/config.extends-1.toml",
        "files/universe/20261120_kr_stocks.json",
        "files/masters/current/kospi_code.mst.zip",
    }
    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    done = observer("db", "restore", folder, "--config", config, "--db", restored)
    assert done.returncode == 0, done.stderr
    found = audit(restored)["load"]
    assert found.complete and found.rows == found.max_seq
    assert before <= found.max_seq <= after < SENT  # a snapshot taken while it committed
    again = observer("db", "restore", folder, "--config", config, "--db", restored)
    assert again.returncode == 1 and "never over a database" in again.stderr


def test_a_damaged_backup_fails_verification_and_is_not_restored(
    tmp_path: Path, sqlite_url: str
) -> None:
    migrate.upgrade(sqlite_url)
    settings = load_settings(config_for(tmp_path, sqlite_url))
    backup = make_backup(settings, None, tmp_path / "backups")
    assert verify_backup(backup.path).parts == backup.parts
    dump = backup.path / "database.sqlite"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="damaged"):
        verify_backup(backup.path)
    with pytest.raises(BackupError, match="damaged"):
        restore_backup(backup.path, f"sqlite:///{tmp_path / 'new.db'}")
    assert not (tmp_path / "new.db").exists()


def test_an_incomplete_database_is_not_a_verified_backup(tmp_path: Path, sqlite_url: str) -> None:
    """A copy whose audit fails is kept as *.failed and never counted as a backup."""
    migrate.upgrade(sqlite_url)
    from observer.db.engine import make_engine

    engine = make_engine(sqlite_url)
    store = Store(engine)
    store.load_marks()
    # A phase change: its table is the same at 0016 and now (today's trades and snapshots
    # carry columns that came later, which only a migrated database has).
    phase = next(e for e in SAMPLES if isinstance(e, PhaseChanged))
    store.apply([decode_parts(encode_frame([Envelope("w", 1, T0, phase)]))])
    with engine.begin() as conn:  # a mark beyond the rows: a hole, as a damaged copy would have
        conn.exec_driver_sql("UPDATE bus_offsets SET seq = 5")
    engine.dispose()
    settings = load_settings(config_for(tmp_path, sqlite_url))
    with pytest.raises(BackupError, match="incomplete"):
        make_backup(settings, None, tmp_path / "backups")
    (kept,) = (tmp_path / "backups").iterdir()
    assert kept.name.endswith(".failed")


def test_a_backup_of_an_earlier_release_restores_at_this_release_schema(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Restoring last week's backup after an upgrade: the models' check refused it, and the
    restored file was removed with advice to upgrade a file no longer there."""
    earlier, newest = "0016", migrate.head()
    assert earlier != newest
    migrate.upgrade(sqlite_url, earlier)
    from observer.db.engine import make_engine

    engine = make_engine(sqlite_url)
    store = Store(engine)
    store.load_marks()
    # A phase change: its table is the same at 0016 and now (today's trades and snapshots
    # carry columns that came later, which only a migrated database has).
    phase = next(e for e in SAMPLES if isinstance(e, PhaseChanged))
    store.apply([decode_parts(encode_frame([Envelope("w", 1, T0, phase)]))])
    engine.dispose()
    config = config_for(tmp_path, sqlite_url)
    backup = make_backup(load_settings(config), None, tmp_path / "backups")
    assert backup.revision == earlier and migrate.current(sqlite_url) == earlier
    target = tmp_path / "restored.db"
    done = observer("db", "restore", backup.path, "--config", config, "--db", f"sqlite:///{target}")
    assert done.returncode == 0, done.stderr
    assert f"upgraded from revision {earlier} to {newest}" in done.stdout
    assert migrate.current(f"sqlite:///{target}") == newest
    assert migrate.check(f"sqlite:///{target}") == []
    assert audit(f"sqlite:///{target}")["w"].complete


def test_only_the_newest_verified_backups_are_kept(tmp_path: Path, sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    settings = load_settings(config_for(tmp_path, sqlite_url, "[backup]\nkeep = 2\n"))
    made = [make_backup(settings, None, tmp_path / "backups").path for _ in range(3)]
    assert sorted(p for p in (tmp_path / "backups").iterdir()) == sorted(made[1:])


def test_a_database_whose_name_has_uri_characters_is_backed_up(tmp_path: Path) -> None:
    """``?``, ``#`` and ``%`` in the file's path are its own, not a URI's query or fragment."""
    folder = tmp_path / "odd?#%x"
    folder.mkdir()
    url = f"sqlite:///{quote(str(folder / 'observer.db'))}"  # the URL's own encoding
    migrate.upgrade(url)
    settings = load_settings(config_for(tmp_path, url))
    made = make_backup(settings, None, tmp_path / "backups")
    assert (made.path / MANIFEST).is_file()


def test_a_postgresql_backup_restores_into_an_empty_database(tmp_path: Path, pg_url: str) -> None:
    migrate.upgrade(pg_url)
    from observer.db.engine import make_engine

    engine = make_engine(pg_url)
    store = Store(engine)
    store.load_marks()
    envelopes = [Envelope("pg", n, T0 + n, event) for n, event in enumerate(SAMPLES, 1)]
    store.apply([decode_parts(encode_frame(envelopes))])
    engine.dispose()
    settings = load_settings(config_for(tmp_path, pg_url))
    backup = make_backup(settings, None, tmp_path / "backups")
    assert (backup.path / "database.pgdump").is_file() and backup.database == "postgresql"
    with scratch_postgres(PG_ADMIN_URL, "observer_restore") as empty:
        restore_backup(backup.path, empty)
        assert audit(empty)["pg"].max_seq == len(SAMPLES) and audit(empty)["pg"].complete
        with pytest.raises(BackupError, match="tables"):
            restore_backup(backup.path, empty)  # it holds the restored tables now
    with pytest.raises(BackupError, match="tables"):
        restore_backup(backup.path, pg_url)  # the live database


def test_a_postgresql_backup_connects_as_the_writer_does_with_the_urls_options(
    tmp_path: Path, pg_url: str
) -> None:
    """A server on a port of its own reached through its socket folder, as a second cluster
    on a host is: the URL's query says where. The dump, its verification's scratch database
    and the restore went to 127.0.0.1:6543 instead (nothing there), and a query holding a
    "/" broke the scratch database's URL."""
    from sqlalchemy import create_engine, text

    probe = create_engine(pg_url)
    with probe.connect() as conn:
        folders = conn.execute(text("SHOW unix_socket_directories")).scalar_one()
        port = conn.execute(text("SHOW port")).scalar_one()
    probe.dispose()
    real = next(
        (Path(f.strip()) / f".s.PGSQL.{port}" for f in folders.split(",") if f.strip()), None
    )
    if real is None or not real.exists():
        pytest.skip(f"the PostgreSQL server has no socket on this host ({folders!r})")
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    (sockets / ".s.PGSQL.6543").symlink_to(real)  # the "cluster" listening on 6543 only
    database = pg_url.rsplit("/", 1)[1]
    url = f"postgresql://postgres@:6543/{database}?host={sockets}&application_name=observer"
    migrate.upgrade(url)
    settings = load_settings(config_for(tmp_path, url))
    backup = make_backup(settings, None, tmp_path / "backups")
    assert backup.database == "postgresql" and (backup.path / "database.pgdump").is_file()
    with scratch_postgres(PG_ADMIN_URL, "observer_restore") as empty:
        name = empty.rsplit("/", 1)[1]
        restore_backup(backup.path, f"postgresql://postgres@:6543/{name}?host={sockets}")
        assert migrate.current(empty) == migrate.head() and migrate.check(empty) == []


def test_a_postgresql_clients_password_is_in_its_environment_never_its_command_line(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any user of the host can read a process's command line (``ps``)."""
    seen = tmp_path / "seen"
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    for client in ("pg_dump", "pg_restore"):
        real = shutil.which(client)
        assert real is not None, f"{client} is not installed"
        wrapper = wrappers / client
        wrapper.write_text(
            f'#!/bin/sh\necho "{client} $*" >> {seen}\n'
            f'[ "$PGPASSWORD" = "s3cret-pw" ] && echo "{client} has it" >> {seen}\n'
            f'exec {real} "$@"\n'
        )
        wrapper.chmod(0o700)
    monkeypatch.setenv("PATH", f"{wrappers}:{os.environ['PATH']}")
    url = pg_url.replace("postgres@", "postgres:s3cret-pw@", 1)  # trust: any password goes
    migrate.upgrade(url)
    make_backup(load_settings(config_for(tmp_path, url)), None, tmp_path / "backups")
    lines = seen.read_text().splitlines()
    assert "pg_dump has it" in lines and "pg_restore has it" in lines  # dump, verification
    assert not [line for line in lines if "s3cret" in line]


def test_a_postgresql_backup_of_an_earlier_release_restores_upgraded_and_checked(
    tmp_path: Path, pg_url: str
) -> None:
    migrate.upgrade(pg_url, "0016")
    settings = load_settings(config_for(tmp_path, pg_url))
    backup = make_backup(settings, None, tmp_path / "backups")
    assert backup.revision == "0016"
    with scratch_postgres(PG_ADMIN_URL, "observer_restore") as empty:
        restore_backup(backup.path, empty)
        assert migrate.current(empty) == migrate.head() and migrate.check(empty) == []


def test_the_backup_job_alerts_its_outcome(
    tmp_path: Path, sqlite_url: str, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(sqlite_url).start()
    config = config_for(tmp_path, sqlite_url)
    config.write_text(config.read_text().replace(str(tmp_path / "run"), str(writer.run_dir)))
    done = observer("backup", "run", "--config", config)
    assert done.returncode == 0, done.stderr
    assert "INFO alembic" not in done.stderr  # its notes on each migration context are noise
    alerts = db_rows(
        sqlite_url, "SELECT severity, code, context FROM alerts WHERE source = 'backup'"
    )
    assert [(severity, code) for severity, code, _ in alerts] == [("info", "backup_made")]
    assert Path(json.loads(alerts[0][2])["path"]).is_dir()
    # A backup folder that cannot be made: a critical alert and exit 1.
    (tmp_path / "blocked").write_text("a file where the folder should be")
    config.write_text(config.read_text() + f'[backup]\ndir = "{tmp_path / "blocked"}"\n')
    failed = observer("backup", "run", "--config", config)
    assert failed.returncode == 1 and "cannot make a backup folder" in failed.stderr
    codes = db_rows(sqlite_url, "SELECT severity, code FROM alerts WHERE source = 'backup'")
    assert ("critical", "backup_failed") in [tuple(row) for row in codes]
    resolutions = "SELECT code FROM alert_resolutions WHERE source = 'backup'"
    assert db_rows(sqlite_url, resolutions) == []  # the first backup had nothing to resolve
    # The next backup made resolves the failure (it was reminded every half hour for good).
    config.write_text(config.read_text().replace(str(tmp_path / "blocked"), str(tmp_path / "ok")))
    assert observer("backup", "run", "--config", config).returncode == 0
    assert db_rows(sqlite_url, resolutions) == [("backup_failed",)]
    states = observer("alerts", "--config", config, "--json")
    assert [json.loads(line)["state"] for line in states.stdout.splitlines()] == [
        "info",
        "resolved",
        "info",
    ]
    # Another one made: nothing open, no resolution sent to every channel again.
    assert observer("backup", "run", "--config", config).returncode == 0
    assert db_rows(sqlite_url, resolutions) == [("backup_failed",)]
