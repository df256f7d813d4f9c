"""An operator's slip at the command line is one line and exit 2, never a traceback or a secret.

Each case was a traceback, a success that did nothing, or a password in the output.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from observer.config.load import load_settings
from observer.db.engine import display_url, normalize_url
from observer.db.settings import url_shape_problem
from observer.errors import ConfigError


def observer(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    return line


# ------------------------------------------------------------------------ database URLs


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite://var/observer.db", "sqlite:///relative/path"),
        ("postgresql://observer:hunter2SECRET@127.0.0.1:5432x/observer", "port '5432x'"),
        ("postgresql://observer:pa55@w0rdTAIL@127.0.0.1/observer", "written %40"),
        ("var/observer.db", "not a database URL"),
    ],
)
def test_a_malformed_database_url_is_refused_without_quoting_it(
    tmp_path: Path, url: str, problem: str
) -> None:
    reason = url_shape_problem(url)
    assert reason is not None and problem in reason
    for secret in ("hunter2SECRET", "pa55", "w0rdTAIL"):
        assert secret not in reason
    path = tmp_path / "observer.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match=r"database\.url") as refused:
        load_settings(path)
    assert "w0rdTAIL" not in str(refused.value) and "hunter2" not in str(refused.value)
    line = one_line(observer(tmp_path, "db", "current", "--db", url))
    assert problem in line and "w0rdTAIL" not in line and "hunter2" not in line


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/observer.db",
        "sqlite:////srv/observer.db",
        "sqlite://",
        "postgresql://observer@127.0.0.1:5432/observer",
        "postgresql+psycopg://u:p%40ss@[::1]:5432/x?sslmode=require",
        "postgresql://observer@/observer?host=/var/run/postgresql",
    ],
)
def test_well_formed_database_urls_pass(url: str) -> None:
    assert url_shape_problem(url) is None
    normalize_url(url)


def test_a_password_in_the_query_is_masked_too(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u@127.0.0.1:1/x?password=S3cretQuery"
    assert "S3cretQuery" not in display_url(url)
    line = one_line(observer(tmp_path, "db", "current", "--db", url))
    assert "S3cretQuery" not in line and "password=***" in line


# ---------------------------------------------------------------- configuration files


def test_a_configuration_that_is_a_folder_or_not_text_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe[database]\n")
    (tmp_path / "extends.toml").write_text('extends = "adir"\n')
    for name, reason in (
        ("adir", "Is a directory"),
        ("binary.toml", "not valid TOML"),
        ("extends.toml", "Is a directory"),
    ):
        assert reason in one_line(observer(tmp_path, "db", "current", "--config", name))
    assert "Is a directory" in one_line(observer(tmp_path, "ctl", "--config", "adir", "status"))


# --------------------------------------------------------------------------- key names


@pytest.mark.parametrize("name", ["bad name", "con.key", "a" * 65, "../x"])
def test_a_key_name_no_configuration_could_give_is_refused(tmp_path: Path, name: str) -> None:
    result = observer(tmp_path, "keys", "generate", "--name", name, "--keys-dir", "keys")
    assert "invalid key name" in one_line(result)
    assert not (tmp_path / "keys").exists()


def test_a_keys_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    result = observer(tmp_path, "keys", "generate", "--name", "x", "--keys-dir", "afile")
    assert "cannot write a key pair in afile" in one_line(result)


# --------------------------------------------------------------------- days and reports


@pytest.fixture
def database(tmp_path: Path) -> Path:
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "observer.db"}"\n')
    assert observer(tmp_path, "db", "upgrade", "--config", str(config)).returncode == 0
    return config


@pytest.mark.parametrize(
    "args",
    [
        ("alerts", "--since", "2300-01-01"),
        ("alerts", "--since", "0001-01-01"),
        ("gap-recovery", "report", "--date", "9999-12-31"),
    ],
)
def test_a_day_beyond_nanosecond_timestamps_is_refused(
    tmp_path: Path, database: Path, args: tuple[str, ...]
) -> None:
    line = one_line(observer(tmp_path, *args, "--config", str(database)))
    assert "is outside 1678-01-01 to 2262-04-10" in line


def test_json_reports_print_no_prose_when_empty(tmp_path: Path, database: Path) -> None:
    args = ("track-a", "cycles", "--date", "2025-01-02", "--json", "--config", str(database))
    empty = observer(tmp_path, *args)
    assert empty.returncode == 0 and empty.stdout == ""


# ---------------------------------------------------------------------------- the writer


def test_a_writer_whose_endpoint_is_taken_says_so_in_one_line(tmp_path: Path) -> None:
    assert observer(tmp_path, "keys", "generate", "--keys-dir", "keys").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "observer.toml").write_text(
            f'[paths]\ndata_dir = "var"\n[database]\nurl = "sqlite:///var/observer.db"\n'
            f'[bus]\ningest_endpoint = "tcp://127.0.0.1:{port}"\n'
            f'feed_endpoint = "tcp://127.0.0.1:{port}"\n'
            '[bus.curve]\nkeys_dir = "keys"\nkey = "writer"\n'
        )
        line = one_line(observer(tmp_path, "writer", "--config", "observer.toml"))
    assert f"cannot bind tcp://127.0.0.1:{port}: Address already in use" in line


@pytest.mark.parametrize(
    ("args", "path", "reason"),
    [
        (
            ("etf", "report", "--date", "2025-01-02", "--csv", "no/dir/f.csv"),
            "no/dir/f.csv",
            "No such",
        ),
        (("gap-recovery", "report", "--date", "2025-01-02", "--chart", "."), ".", "Is a directory"),
        (("master-file", "restore", "--exchange", "NAS", "--backup", "."), ".", "Is a directory"),
    ],
)
def test_an_output_or_input_path_the_system_refuses_is_one_line(
    tmp_path: Path, database: Path, args: tuple[str, ...], path: str, reason: str
) -> None:
    line = one_line(observer(tmp_path, *args, "--config", str(database)))
    assert line.startswith(f"observer: {path}: {reason}")


def test_db_check_reports_a_database_behind_without_writing_to_it(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("create table t (x)")
    before = foreign.read_bytes()
    checked = observer(tmp_path, "db", "check", "--db", f"sqlite:///{foreign}")
    assert checked.returncode == 1, checked.stderr
    assert "at revision none (never migrated)" in checked.stdout
    assert checked.stdout.strip().endswith("1 difference")
    assert foreign.read_bytes() == before  # no version table, no WAL: untouched
    old = f"sqlite:///{tmp_path / 'old.db'}"
    assert observer(tmp_path, "db", "upgrade", "--db", old, "--revision", "0010").returncode == 0
    behind = observer(tmp_path, "db", "check", "--db", old)
    assert behind.returncode == 1 and "at revision 0010, the newest is" in behind.stdout
