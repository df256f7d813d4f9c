"""Ordinary bad input to ``bench bus``, ``writer`` and ``sim``: one line and exit 2.

Each printed a traceback: ``bench bus --db postgresql`` after a whole baseline run (46
lines), ``writer --db mysql2://x`` (its fast path skipped the database mapping ``audit``
uses), ``sim --port 70000`` or a port in use (about 80 lines, from the bind).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from observer.errors import ConfigError


def observer(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OBSERVER_CONFIG", "OBSERVER_CLOCK")}
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's one line on stderr, exit 2, no traceback."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--db", "postgresql"], "observer: --db must be sqlite or postgres, not 'postgresql'"),
        (["--endpoint", "udp"], "observer: --endpoint must be ipc or tcp, not 'udp'"),
        (["--producers", "0"], "observer: --producers must be at least 1, not 0"),
    ],
)
def test_bench_bus_refuses_an_option_before_running_anything(
    tmp_path: Path, option: list[str], said: str
) -> None:
    started = time.monotonic()
    done = observer(tmp_path, "bench", "bus", "--events", "100000", *option)
    assert one_line(done) == said
    assert done.stdout == ""
    # Refused before the baselines: a 100,000-event transport baseline alone takes longer.
    assert time.monotonic() - started < 30


def test_the_bench_accepts_what_it_can_run() -> None:
    from harness.bench.bus import check_options

    check_options(1, 1, "sqlite", 1, "ipc")
    check_options(200_000, 4, "postgres", 1000, "tcp")
    with pytest.raises(ConfigError, match="--rate must be at least 1"):
        check_options(10, 1, "sqlite", 0, "ipc")


@pytest.mark.parametrize("url", ["mysql2://x", "postgresql+nodriver://u@h/db"])
def test_the_writer_names_an_unusable_database_url_in_one_line(tmp_path: Path, url: str) -> None:
    done = observer(tmp_path, "writer", "--db", url, "--run-dir", str(tmp_path / "run"))
    assert one_line(done).startswith("observer: not a usable database URL: Can't load plugin")


def test_sim_refuses_a_port_out_of_range_in_one_line(tmp_path: Path) -> None:
    done = observer(tmp_path, "sim", "--port", "70000", "--stocks", "200")
    assert one_line(done) == (
        "observer: the simulator cannot listen on 127.0.0.1:70000: bind(): port must be 0-65535."
    )


def test_sim_refuses_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = observer(tmp_path, "sim", "--port", str(port), "--stocks", "200")
    line = one_line(done)
    assert line.startswith(f"observer: the simulator cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in line.lower()
    assert done.stdout == ""  # never said it was ready


def test_sim_refuses_an_unknown_realtime_layout_before_serving() -> None:
    """Checked in process, before anything listens: the layouts it serves are named."""
    import typer
    from typer.testing import CliRunner

    from harness.cli import sim

    app = typer.Typer()
    app.command()(sim)
    done = CliRunner().invoke(app, ["--realtime-layout", "2027-01"])
    assert done.exit_code == 2
    assert "--realtime-layout: one of 2026-05, 2026-09" in done.output
