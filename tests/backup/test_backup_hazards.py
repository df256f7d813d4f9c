"""Backups that cannot hurt: no folder copying itself, no restore into memory, into nowhere
or from a damaged or failed backup without saying so in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from observer.config.load import load_settings
from observer.db import migrate
from observer.db.backup import MANIFEST, Backup, make_backup, restore_backup, verify_backup
from observer.db.engine import make_engine
from observer.errors import BackupError
from observer.writer.store import Store
from tests.backup.test_backup import config_for
from tests.backup.test_backup_recovery import add_ticks
from tests.samples import SAMPLES, T0
from tests.support import ROOT, audit
from tests.volumes import MIB, fill, free_bytes, small_volume


def observer_in(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``observer ARGS`` run from ``cwd`` (relative paths land there, never in the checkout)."""
    return subprocess.run(
        [sys.executable, "-m", "observer", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )


def tree(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def one_line(text: str) -> str:
    """The one short line an error is, whether raised or printed (after any warnings)."""
    lines = text.strip().splitlines()
    errors = [line for line in lines if line.startswith("observer: ")] if "\n" in text else lines
    assert len(errors) == 1 and len(errors[0]) < 400, text[:2000]
    assert "Traceback" not in text and len(text) < 1000, text[:2000]
    return errors[0]


@pytest.fixture
def verified(tmp_path: Path, sqlite_url: str) -> tuple[Path, Backup]:
    """A configuration and a verified backup of its (empty, migrated) database."""
    migrate.upgrade(sqlite_url)
    config = config_for(tmp_path, sqlite_url)
    return config, make_backup(load_settings(config), config, tmp_path / "backups")


def test_a_backup_into_a_folder_it_copies_is_refused_before_writing(
    tmp_path: Path, sqlite_url: str
) -> None:
    migrate.upgrade(sqlite_url)
    config = config_for(tmp_path, sqlite_url)
    settings = load_settings(config)
    universe = tmp_path / "data" / "universe"
    before = tree(tmp_path / "data")
    (tmp_path / "link").symlink_to(universe)  # the same folder by another name
    for dest in (universe, universe / "backups", tmp_path / "link" / "nested"):
        with pytest.raises(BackupError) as refused:
            make_backup(settings, config, dest)
        line = one_line(str(refused.value))
        assert f"cannot back up into {dest.resolve()}" in line and str(universe) in line
    assert tree(tmp_path / "data") == before  # nothing made, copied or kept as *.failed
    # Masters are configured as masters/current: a folder beside it is outside, and fine.
    beside = tmp_path / "data" / "masters" / "backups"
    assert make_backup(settings, config, beside).path.parent == beside
    done = observer_in(tmp_path, "db", "backup", "--config", config, "--to", "data/universe")
    assert done.returncode == 1
    assert "cannot back up into" in one_line(done.stderr) and "Traceback" not in done.stderr
    assert tree(universe) == ["20261120_kr_stocks.json"]


def test_a_copy_that_fails_says_so_in_one_short_line(tmp_path: Path, sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    config = config_for(tmp_path, sqlite_url)
    for n in range(200):  # named pipes cannot be copied: 200 copy errors
        os.mkfifo(tmp_path / "data" / "universe" / f"pipe-{n:03}")
    with pytest.raises(BackupError) as failed:
        make_backup(load_settings(config), config, tmp_path / "backups")
    line = one_line(str(failed.value))
    assert "pipe-" in line and "(and 199 more copy errors)" in line and ".failed" in line
    (kept,) = (tmp_path / "backups").iterdir()
    assert kept.name.endswith(".failed")
    # Without a manifest no restore can use what it wrote: only why it failed stays.
    assert [p.name for p in kept.iterdir()] == ["FAILED.txt"]
    assert "more copy errors" in (kept / "FAILED.txt").read_text()


@pytest.mark.parametrize("target", ["sqlite://", "sqlite:///:memory:"])
def test_a_restore_into_memory_is_refused(
    verified: tuple[Path, Backup], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    config, backup = verified
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(BackupError, match="in memory"):
        restore_backup(backup.path, target)
    done = observer_in(tmp_path, "db", "restore", backup.path, "--config", config, "--db", target)
    assert done.returncode == 1, done.stdout
    assert "SQLite database in memory" in one_line(done.stderr)
    assert tree(tmp_path) == before  # no file named None or :memory:


def test_a_backup_missing_a_part_is_refused_naming_it(
    verified: tuple[Path, Backup], tmp_path: Path
) -> None:
    config, backup = verified
    target = tmp_path / "restored.db"
    for part in ("files/config.toml", "database.sqlite"):
        (backup.path / part).rename(tmp_path / "aside")
        for attempt in (verify_backup, lambda path: restore_backup(path, f"sqlite:///{target}")):
            with pytest.raises(BackupError, match=f"{backup.path / part} is missing"):
                attempt(backup.path)
        done = observer_in(
            tmp_path,
            "db",
            "restore",
            backup.path,
            "--config",
            config,
            "--db",
            f"sqlite:///{target}",
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert one_line(done.stderr).endswith(
            f"{backup.path / part} is missing: the backup is not whole"
        )
        (tmp_path / "aside").rename(backup.path / part)
    assert not target.exists()
    restore_backup(backup.path, f"sqlite:///{target}")  # whole again: restored
    assert target.is_file()


def test_a_manifest_naming_an_unknown_database_is_refused(
    verified: tuple[Path, Backup], tmp_path: Path
) -> None:
    config, backup = verified
    manifest = json.loads((backup.path / MANIFEST).read_text())
    (backup.path / MANIFEST).write_text(json.dumps({**manifest, "database": "mysql"}))
    expected = "names an unknown database kind 'mysql' (expected sqlite or postgresql)"
    with pytest.raises(BackupError, match=r"unknown database kind 'mysql'"):
        verify_backup(backup.path)
    with pytest.raises(BackupError, match=r"unknown database kind 'mysql'"):
        restore_backup(backup.path, "mysql://observer@127.0.0.1/observer")
    for db in ("mysql://observer@127.0.0.1/observer", f"sqlite:///{tmp_path / 'new.db'}"):
        done = observer_in(tmp_path, "db", "restore", backup.path, "--config", config, "--db", db)
        assert done.returncode == 1 and one_line(done.stderr).endswith(expected)
    # A manifest that lists no database part is not a whole backup either.
    parts = [part for part in manifest["parts"] if part["name"] != "database.sqlite"]
    (backup.path / MANIFEST).write_text(json.dumps({**manifest, "parts": parts}))
    with pytest.raises(BackupError, match=r"lists no database\.sqlite"):
        restore_backup(backup.path, f"sqlite:///{tmp_path / 'new.db'}")
    assert not (tmp_path / "new.db").exists()


def test_a_failed_backup_is_restored_only_with_force(tmp_path: Path, sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    store = Store(engine)
    store.load_marks()
    store.apply([decode_parts(encode_frame([Envelope("w", 1, T0, SAMPLES[2])]))])
    with engine.begin() as conn:  # a mark beyond the rows: the audit fails, the backup too
        conn.exec_driver_sql("UPDATE bus_offsets SET seq = 5")
    engine.dispose()
    config = config_for(tmp_path, sqlite_url)
    with pytest.raises(BackupError, match="incomplete"):
        make_backup(load_settings(config), config, tmp_path / "backups")
    (failed,) = (tmp_path / "backups").iterdir()
    assert failed.name.endswith(".failed")
    assert (failed / "FAILED.txt").read_text().startswith("the restored database is incomplete")
    assert (failed / "database.sqlite").is_file()  # whole: kept for --force
    target = tmp_path / "restored.db"
    with pytest.raises(BackupError, match=r"failed its verification .* with --force"):
        restore_backup(failed, f"sqlite:///{target}")
    url = f"sqlite:///{target}"
    done = observer_in(tmp_path, "db", "restore", failed, "--config", config, "--db", url)
    assert done.returncode == 1 and "--force" in one_line(done.stderr)
    assert not target.exists()
    forced = observer_in(
        tmp_path, "db", "restore", failed, "--config", config, "--db", url, "--force"
    )
    assert forced.returncode == 0, forced.stderr
    found = audit(url)["w"]  # what was backed up, as it was: one row, marked up to 5
    assert (found.rows, found.committed, found.complete) == (1, 5, False)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs holding the database and its backups, as the shipped ``var/`` does."""
    with small_volume(tmp_path / "volume", 16) as path:
        yield path


def on_volume(tmp_path: Path, volume: Path, ticks: int) -> tuple[str, Path]:
    """A database of ``ticks`` ticks on ``volume`` and a configuration backing it up there."""
    var = volume / "var"
    var.mkdir()
    url = f"sqlite:///{var / 'observer.db'}"
    migrate.upgrade(url)
    add_ticks(url, 1, ticks)
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{var}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "{url}"\n[backup]\nfiles = []\nkeep = 1\n'
        "[disk]\nwarn_free_bytes = 0\nwarn_free_percent = 0\n"
        f"critical_free_bytes = {MIB}\ncritical_free_percent = 0\n"
    )
    return url, config


def test_a_backup_that_would_not_fit_is_refused_before_writing(
    tmp_path: Path, volume: Path
) -> None:
    """A dump that filled the database's volume failed half-way and stayed: 0 bytes free,
    and the writer's commits failed until a person deleted it."""
    url, config = on_volume(tmp_path, volume, 6000)
    size = (volume / "var" / "observer.db").stat().st_size
    dest = volume / "var" / "backups"
    first = make_backup(load_settings(config), config).path
    # Room for the dump, not for its verification's copy beside it; then for both, but not
    # for the writer's critical free space after them.
    for leave, why in ((size + MIB, "database twice"), (2 * size + MIB // 2, "critical")):
        fill(volume, leave)
        before = free_bytes(volume)
        with pytest.raises(BackupError, match="no room for a backup") as refused:
            make_backup(load_settings(config), config)
        assert why in one_line(str(refused.value))
        assert list(dest.iterdir()) == [first] and free_bytes(volume) == before
    add_ticks(url, 6001, 6100)  # the live database still commits


def test_a_backup_that_fills_its_volume_removes_what_it_wrote(
    tmp_path: Path, volume: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The volume filled after the backup measured it (another process wrote meanwhile):
    its partial dump stayed as *.failed, the volume full, the writer's commits failing."""
    import observer.db.backup as backup

    monkeypatch.setattr(backup, "require_room", lambda *args: None, raising=False)
    url, config = on_volume(tmp_path, volume, 6000)
    fill(volume, MIB)
    before = free_bytes(volume)
    with pytest.raises(BackupError, match="no room left") as failed:
        make_backup(load_settings(config), config)
    assert ".failed" in one_line(str(failed.value))
    (kept,) = (volume / "var" / "backups").iterdir()
    assert [p.name for p in kept.iterdir()] == ["FAILED.txt"]
    assert "full" in (kept / "FAILED.txt").read_text()
    assert free_bytes(volume) >= before - 64 * 1024
    add_ticks(url, 6001, 6100)  # the live database still commits
    with pytest.raises(BackupError, match="holds no database"):
        restore_backup(kept, f"sqlite:///{tmp_path / 'new.db'}", force=True)


def test_a_postgresql_dump_that_fills_its_volume_is_removed(tmp_path: Path, pg_url: str) -> None:
    """A first dump (no earlier one to measure by) that does not fit: nothing of it stays."""
    migrate.upgrade(pg_url)
    add_ticks(pg_url, 1, 2000)
    settings = load_settings(config_for(tmp_path, pg_url))
    with small_volume(tmp_path / "volume", 4) as dest:
        fill(dest, 32 * 1024)
        with pytest.raises(BackupError, match="no room left") as failed:
            make_backup(settings, None, dest)
        assert "No space left on device" in one_line(str(failed.value))
        (kept,) = (p for p in dest.iterdir() if p.name != "ballast")
        assert [p.name for p in kept.iterdir()] == ["FAILED.txt"]
        assert free_bytes(dest) >= 16 * 1024
