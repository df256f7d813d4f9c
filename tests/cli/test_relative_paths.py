"""Relative paths as a user types them: `--config ./x.toml`, `--db sqlite:///rel.db`, and a
configuration whose folders are relative. They are relative to the working directory of the
command, for the command and for every process it starts. (`observer demo --data-dir` with a
relative folder is run by test_demo.py and, verbatim from the README, by CI.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support import wait_until

OBSERVER = [sys.executable, "-m", "observer"]


def _observer(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OBSERVER, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_relative_database_url_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    upgraded = _observer(tmp_path, "db", "upgrade", "--db", "sqlite:///rel.db")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "rel.db").is_file()
    checked = _observer(tmp_path, "db", "check", "--db", "sqlite:///rel.db")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    audited = _observer(tmp_path, "audit", "--db", "sqlite:///rel.db")
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_a_relative_config_with_relative_folders_runs_its_programs(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(
        '[paths]\ndata_dir = "var"\n[database]\nurl = "sqlite:///var/observer.db"\n'
        "[supervisor]\nmetrics_port = 0\n"
        '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
    )
    log = (tmp_path / "supervisor.log").open("wb")
    supervisor = subprocess.Popen(
        [*OBSERVER, "supervise", "--config", "./x.toml"], cwd=tmp_path, stdout=log, stderr=log
    )
    try:

        def healthy() -> bool:
            assert supervisor.poll() is None, (tmp_path / "supervisor.log").read_text()
            return _observer(tmp_path, "ctl", "--config", "./x.toml", "status").returncode == 0

        wait_until(healthy, 60, "a healthy supervisor from ./x.toml")
        assert (tmp_path / "var" / "run" / "control.sock").is_socket()
        assert (tmp_path / "var" / "observer.db").is_file()  # the writer's, relative to cwd
        assert (tmp_path / "var" / "log" / "writer.log").is_file()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0
        log.close()
    audited = _observer(tmp_path, "audit", "--config", "./x.toml")
    assert audited.returncode == 0, audited.stdout + audited.stderr
