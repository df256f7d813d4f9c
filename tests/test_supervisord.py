"""The shipped supervisord.conf under real supervisord: up, a restart through ctl, a clean stop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from observer.db.engine import make_engine
from observer.db.queries import audit_sources
from observer.supervisor.control import request
from tests.support import ROOT, WRITER_PROGRAM, load_program, wait_until

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    """A deployment folder: the shipped supervisord.conf and a test observer.toml."""
    shutil.copy(ROOT / "supervisord.conf", tmp_path / "supervisord.conf")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "observer.toml").write_text(
        '[paths]\ndata_dir = "var"\n[database]\nurl = "sqlite:///var/observer.db"\n'
        "[supervisor]\nmetrics_port = 0\n" + WRITER_PROGRAM + load_program(rate=300)
    )
    (tmp_path / "var" / "log").mkdir(parents=True)
    (tmp_path / "var" / "run").mkdir(mode=0o700)
    yield tmp_path


def _ctl(deployment: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(deployment / "supervisord.conf"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_supervisord_runs_restarts_and_stops_the_tree(deployment: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-c", str(deployment / "supervisord.conf")],
        cwd=deployment,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0o077,  # as the README starts it
    )
    sock = deployment / "var" / "run" / "control.sock"
    try:
        # The tree comes up: supervisord -> observer supervise -> writer, load.
        def healthy() -> dict[str, object] | None:
            if not sock.exists():
                return None
            reply = request(sock, "status", [], 30)
            return reply.data if reply.data.get("healthy") else None

        status = wait_until(healthy, 90, "a healthy tree under supervisord")
        pids = {p["name"]: p["pid"] for p in status["programs"]}  # type: ignore[attr-defined]
        supervisor_pid = psutil.Process(pids["writer"]).ppid()
        assert psutil.Process(supervisor_pid).ppid() == supervisord.pid

        # One worker restarted through `observer ctl`, the rest untouched.
        restarted = subprocess.run(
            [str(BIN / "observer"), "ctl", "--data-dir", str(deployment / "var"), "restart",
             "load", "--json"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert restarted.returncode == 0, restarted.stderr
        reply = json.loads(restarted.stdout.splitlines()[-1])
        assert reply["ok"] and reply["ready_s"] > 0
        after = request(sock, "status", [], 30).data
        new_pids = {p["name"]: p["pid"] for p in after["programs"]}
        assert new_pids["writer"] == pids["writer"] and new_pids["load"] != pids["load"]

        # Stopped through supervisorctl: the drain leaves nothing behind and loses nothing.
        stopped = _ctl(deployment, "stop", "observer")
        assert "observer: stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        for pid in [supervisor_pid, *new_pids.values()]:
            assert not psutil.pid_exists(pid) or (
                psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            )
        log = (deployment / "var" / "log" / "observer.log").read_text()
        assert "stopped" in log and "SIGKILL" not in log
    finally:
        _ctl(deployment, "shutdown")
        try:
            supervisord.wait(60)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait()

    engine = make_engine(f"sqlite:///{deployment / 'var' / 'observer.db'}")
    try:
        with engine.connect() as conn:
            audit = {r.source: r for r in audit_sources(conn)}
    finally:
        engine.dispose()
    reports = [
        json.loads(line)
        for line in (deployment / "var" / "log" / "load.log").read_text().splitlines()
        if line.startswith('{"source"')
    ]
    assert len(reports) == 2  # one per load process: the restarted one and the stopped one
    assert all(r["drained"] for r in reports)
    assert audit["load"].complete
    assert reports[-1]["last_seq"] == audit["load"].max_seq  # every event sent was committed
    # The folders were made by `mkdir -p` under umask 022 (the fixture's): still nothing is open.
    open_to_others = [
        f"{p.relative_to(deployment)} {p.stat().st_mode & 0o777:o}"
        for p in [deployment / "var", *(deployment / "var").rglob("*")]
        if p.stat().st_mode & 0o077
    ]
    assert open_to_others == []
