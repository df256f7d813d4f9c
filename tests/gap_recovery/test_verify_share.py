"""A hand-run ``observer gap-recovery verify`` beside the daemon stays inside the budget.

The daemon paces at the ``gap_recovery`` share all day; verify run at the same share beside
it took the account to 1.05 of its budget (EGW00201). While the daemon's outbox is held,
verify takes ``kis.process_share.manual``, or what the shares leave, or is refused (exit 2).
The daemon here is its real producer (`observer.runtime.producer_for`), holding its outbox.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bus.errors import OutboxLocked
from bus.outbox import Outbox
from bus.producer import Producer
from observer.calendar.clock import SystemClock
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.runtime import producer_for
from tests.support import WriterProcess
from tests.track_b.test_track_b_resume import Sent
from workers.gap_recovery import SOURCE
from workers.gap_recovery.cli import _verify
from workers.gap_recovery.cli import app as gaps_app

RATE = 20.0  # each account's REST budget, calls/s
HEADROOM = 0.95  # what `[kis] rest_headroom` (0.05) leaves of it to the processes
DAY = date(2025, 1, 6)
LEAVES_NOTHING = "process_share = { track_a = 0.6, gap_recovery = 0.25, jobs = 0.15 }\n"


class Opened(Exception):  # verify got as far as opening an account
    pass


def write_config(tmp_path: Path, kis: str = "", extra: str = "") -> Path:
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "observer.db"}"\n'
        f'[kis]\nenvironment = "sim"\ntoken_dir = "{tmp_path}"\n{kis}'
        f'[[kis.accounts]]\nalias = "acct1"\nrest_per_second = {RATE}\n{extra}'
    )
    return config


@pytest.fixture
def daemon() -> Iterator[list[Producer]]:
    """The daemons `start_daemon` started, stopped at the end of the test."""
    running: list[Producer] = []
    yield running
    for producer in running:
        producer.close(drain_timeout=0)


def start_daemon(running: list[Producer], settings: Settings) -> Producer:
    producer = producer_for(settings, SOURCE)  # what `observer gap-recovery run` holds
    running.append(producer)
    return producer


def verify_rate(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> float:
    """The calls/s of acct1's limiter verify builds; it stops as it opens the account."""
    import observer.kis.session

    def opened(settings: Settings, alias: str, clock: Any, limits: Any, *a: Any, **k: Any) -> Any:
        limiter = limits.for_account(alias)
        raise Opened(limiter.rate)

    monkeypatch.setattr(observer.kis.session, "open_account", opened)
    with pytest.raises(Opened) as caught:
        asyncio.run(_verify(settings, SystemClock(), Sent(), DAY))  # type: ignore[arg-type]
    rate: float = caught.value.args[0]
    return rate


@pytest.mark.parametrize("host", ["", "c2"])
def test_beside_the_daemon_verify_takes_the_manual_share(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    daemon: list[Producer],
    host: str,
) -> None:
    settings = load_settings(
        write_config(tmp_path, extra=f'[supervisor]\nhost = "{host}"\n' if host else "")
    )
    producer = start_daemon(daemon, settings)
    caplog.set_level("INFO", logger="workers.gap_recovery.share")
    assert verify_rate(settings, monkeypatch) == pytest.approx(RATE * HEADROOM * 0.05)
    assert settings.kis.process_share["manual"] == 0.05  # the defaults add up to exactly 1
    assert sum(settings.kis.process_share.values()) == pytest.approx(1.0)
    assert "manual share (0.05, kis.process_share.manual)" in caplog.text
    assert f"daemon (pid {os.getpid()})" in caplog.text
    # The probe left the daemon its lock.
    with pytest.raises(OutboxLocked):
        Outbox(producer._outbox.directory)


def test_without_a_manual_share_verify_takes_what_the_shares_leave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daemon: list[Producer]
) -> None:
    kis = "process_share = { track_a = 0.55, gap_recovery = 0.25, jobs = 0.1 }\n"
    settings = load_settings(write_config(tmp_path, kis))
    start_daemon(daemon, settings)
    assert verify_rate(settings, monkeypatch) == pytest.approx(RATE * HEADROOM * 0.1)


def test_with_no_daemon_verify_keeps_the_gap_recovery_share(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    daemon: list[Producer],
) -> None:
    settings = load_settings(write_config(tmp_path, LEAVES_NOTHING))
    caplog.set_level("INFO", logger="workers.gap_recovery.share")
    assert verify_rate(settings, monkeypatch) == pytest.approx(RATE * HEADROOM * 0.25)  # never ran
    start_daemon(daemon, settings)
    daemon.pop().close(drain_timeout=0)  # it ran, and stopped: its LOCK file is left
    assert (settings.paths.run / "outbox" / SOURCE / "LOCK").is_file()
    assert verify_rate(settings, monkeypatch) == pytest.approx(RATE * HEADROOM * 0.25)
    assert "gap_recovery share (0.25): no gap-recovery daemon holds" in caplog.text


def test_beside_the_daemon_shares_leaving_nothing_refuse_verify(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    daemon: list[Producer],
) -> None:
    settings = load_settings(write_config(tmp_path, LEAVES_NOTHING))
    start_daemon(daemon, settings)
    with pytest.raises(SystemExit) as exited:
        verify_rate(settings, monkeypatch)
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert message.startswith(
        f"observer gap-recovery verify: the gap-recovery daemon (pid {os.getpid()})"
    )
    assert "stop the daemon, or give kis.process_share a manual entry" in message


def test_the_command_refuses_with_exit_2_beside_the_daemon(
    tmp_path: Path, daemon: list[Producer]
) -> None:
    """The whole command, with its writer: exit 2 and the one line, no KIS call made."""
    writer = WriterProcess(tmp_path, f"sqlite:///{tmp_path / 'observer.db'}").start()
    try:
        config = write_config(tmp_path, LEAVES_NOTHING)
        start_daemon(daemon, load_settings(config))
        result = CliRunner().invoke(
            gaps_app, ["verify", "--date", DAY.isoformat(), "--config", str(config)]
        )
        assert result.exit_code == 2, result.output
        assert "leaves none for verify: stop the daemon" in result.stderr
    finally:
        writer.kill()
