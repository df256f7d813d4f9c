"""`observer supervise` refuses at start, in one message, a host that cannot reach KIS."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from observer.kis.settings import AccountSettings, KisSettings
from observer.supervisor.preflight import kis_preflight, talks_to_kis
from observer.supervisor.settings import ProgramSettings, default_programs


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_simulator_nobody_started_is_named_within_two_seconds() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    message = kis_preflight(KisSettings(environment="sim", sim_url=url))
    assert time.monotonic() - started < 2.5
    assert message is not None and url in message and "observer sim" in message


def test_a_listening_simulator_passes_at_once() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        assert kis_preflight(KisSettings(environment="sim", sim_url=url)) is None
        assert time.monotonic() - started < 0.5


def test_kis_without_credentials_says_where_they_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OBSERVER_KIS_ACCT1_APP_KEY", raising=False)
    monkeypatch.delenv("OBSERVER_KIS_ACCT1_APP_SECRET", raising=False)
    kis = KisSettings(environment="real", accounts=(AccountSettings(alias="acct1"),))
    message = kis_preflight(kis)
    assert message is not None and "OBSERVER_KIS_ACCT1_APP_KEY" in message
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_KEY", "k" * 36)
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_SECRET", "s" * 180)
    assert kis_preflight(kis) is None


def test_only_hosts_running_kis_programs_are_checked() -> None:
    writer = ProgramSettings(kind="daemon", command=("observer", "writer"))
    token = ProgramSettings(kind="daemon", command=("observer", "token", "run"))
    assert talks_to_kis([writer, token], "all") and talks_to_kis([writer, token], "collectors")
    assert not talks_to_kis([writer, token], "store")  # the writer's host: no KIS program
    assert not talks_to_kis(default_programs().values(), "all")  # the writer alone
    by_hand = ProgramSettings(kind="job", command=("observer", "track-b", "run"))
    assert not talks_to_kis([by_hand], "all")  # a job only `observer ctl run` starts


def test_supervise_stops_at_start_with_one_message(tmp_path: Path) -> None:
    config = tmp_path / "observer.toml"
    url = f"http://127.0.0.1:{closed_port()}"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{url}"\n'
        '[programs.token]\nkind = "daemon"\ncommand = ["observer", "token", "run"]\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "observer", "supervise", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "will not start" in line]
    assert len(lines) == 1 and url in lines[0]
    assert not (tmp_path / "run" / "outbox").exists()  # nothing was started
