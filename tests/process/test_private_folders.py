"""The data, run, log and token folders are made owner-only; shared, working and home folders
are never touched, and the production layout keeps the data from other users.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from observer.cli.support import settings_or_exit
from observer.process.private_files import tighten_folders
from tests.support import ROOT, wait_until


def modes_under(folder: Path) -> dict[str, str]:
    """Every folder and file under ``folder`` (itself included) that others may use."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            found[str(path.relative_to(folder.parent))] = f"{mode:o}"
    return found


def test_existing_folders_are_tightened_and_shared_ones_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / "var"
    mine.mkdir(mode=0o755)
    mine.chmod(0o755)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    changed = tighten_folders([mine, shared, tmp_path / "missing", mine])
    assert changed == [(mine, 0o755)]
    assert mine.stat().st_mode & 0o777 == 0o700
    assert shared.stat().st_mode & 0o7777 == 0o1777


def test_the_working_and_home_folders_are_never_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--db sqlite:///up.db`` or ``data_dir = "."``: the data's files are owner-only, but
    the folder the user works in (or a parent, or home) keeps its mode."""
    work = tmp_path / "project"
    work.mkdir()
    work.chmod(0o775)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path))
    tmp_path.chmod(0o755)
    config = work / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "."\nrun_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///up.db"\n'
        '[kis]\ntoken_dir = "tokens"\n'
    )
    (work / "tokens").mkdir(mode=0o755)
    (work / "tokens").chmod(0o755)
    settings_or_exit("observer test", config)
    assert work.stat().st_mode & 0o777 == 0o775
    assert tmp_path.stat().st_mode & 0o777 == 0o755
    assert (work / "tokens").stat().st_mode & 0o777 == 0o700  # the data's own folder


def test_the_production_layout_keeps_data_from_other_users(tmp_path: Path) -> None:
    """``mkdir -p var/log var/run`` under umask 022, then the writer: nothing readable by others."""
    var = tmp_path / "var"
    for folder in (var, var / "log", var / "run"):
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{var}"\n[database]\nurl = "sqlite:///{var / "observer.db"}"\n'
        f'[kis]\ntoken_dir = "{var / "tokens"}"\n'
    )
    log = tmp_path / "writer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "writer", "--config", str(config)],
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )
    try:
        wait_until(lambda: "writer ready" in log.read_text() or proc.poll() is not None, 60)
        assert proc.poll() is None, log.read_text()
        assert (var / "observer.db-wal").exists()
        assert modes_under(var) == {}
        assert "tightened" in log.read_text()  # said so
    finally:
        proc.terminate()
        proc.wait(30)
