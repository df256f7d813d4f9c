"""``observer etf`` checks all its arguments before READY, and each refusal is a usage error.

* A job refused for its ``--date`` or the phase (a session under way) exits 2 before READY:
  ``ctl run etf_daily`` during a session answers ``usage_error`` and nothing is retried
  (no ``program_fatal``).
* ``status`` / ``check --date`` of a day without a session is refused, as a future day is,
  never judged a missed session.
* ``holdings --symbols`` refuses a code that is not a held ETF's before any call to KIS.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.process.heartbeat import Heartbeat
from observer.supervisor.commands import dispatch
from observer.supervisor.control import Reply, Request
from observer.supervisor.program import Launch, Program, State
from observer.supervisor.settings import ProgramSettings
from tests.etf.conftest import AFTER_CLOSE, IN_SESSION, SYMBOLS, Commands
from tests.supervisor.test_job_usage_error import Host
from workers.etf import cli

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "observer.toml"
SUNDAY = "2026-11-15"  # AFTER_CLOSE is the Friday after, 2026-11-20 16:10 KST
NEXT_SESSION = "2026-11-23"


@pytest.fixture
def commands(etf_commands: Callable[..., Commands]) -> Commands:
    return etf_commands(held=True)


@pytest.fixture
def readied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every READY a command signals (the supervisor's handshake)."""
    calls: list[str] = []
    monkeypatch.setattr(Heartbeat, "ready", lambda self, counters=None: calls.append("ready"))
    return calls


def said(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("observer etf:")]
    assert len(lines) == 1, output
    return lines[0]


# ------------------------------------------------- 1. every refusal comes before READY


@pytest.mark.parametrize(
    ("clock", "args", "reason"),
    [
        (IN_SESSION, ["daily"], "a session is under way"),
        (IN_SESSION, ["holdings"], "a session is under way"),
        (IN_SESSION, ["backfill"], "a session is under way"),
        (AFTER_CLOSE, ["daily", "--date", "2026-11-18"], "--date 2026-11-18"),
        (AFTER_CLOSE, ["holdings", "--date", "2026-11-18"], "--date 2026-11-18"),
        (AFTER_CLOSE, ["backfill", "--date", NEXT_SESSION], "completed sessions only"),
        (AFTER_CLOSE, ["daily", "--date", "11/20"], "--date:"),
        (AFTER_CLOSE, ["check", "--date", SUNDAY], "not a KRX session"),
        (AFTER_CLOSE, ["holdings", "--symbols", "ABC"], "not a KRX code"),
        (AFTER_CLOSE, ["holdings", "--symbols", "999999"], "not an ETF of the held list"),
    ],
)
def test_a_refused_job_exits_2_before_ready(
    commands: Commands, readied: list[str], clock: str, args: list[str], reason: str
) -> None:
    result = commands.etf(clock, *args)
    assert result.exit_code == 2, result.output
    assert reason in said(result.output)
    assert readied == []  # the supervisor sees a usage error, not a failed run
    assert commands.ran == [] and commands.producer.sent == []


def test_an_accepted_job_signals_ready_once(commands: Commands, readied: list[str]) -> None:
    assert commands.etf(AFTER_CLOSE, "daily").exit_code == 0
    assert readied == ["ready"] and commands.ran == [("daily", date(2026, 11, 20))]


@pytest.mark.parametrize("job", ["daily", "holdings", "backfill"])
def test_ctl_run_in_a_session_is_refused_and_the_job_is_not_fatal(tmp_path: Path, job: str) -> None:
    """A real `Program` running the real command, asked to run by `dispatch` (``ctl run``)."""
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "observer.db"}"\n'
        f'[kis]\nenvironment = "sim"\ntoken_dir = "{tmp_path / "tokens"}"\n'
        '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 20\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSERVER_")}
    env["OBSERVER_CLOCK"] = IN_SESSION
    actions: list[str] = []
    program = Program(
        f"etf_{job}",
        ProgramSettings(
            kind="job",
            command=("observer", "etf", job, "--config", str(config)),
            backoff_initial_s=0.01,
            max_failures=2,
        ),
        Launch(tmp_path, env, tmp_path / "log", 1.0),
        lambda _program, action, _pid, _code, _detail: actions.append(action),
    )

    async def scenario() -> Reply:
        reply = await dispatch(Host(program), Request("run", [program.name]))
        await program.ended()
        return reply

    reply = asyncio.run(scenario())
    assert not reply.ok and reply.code == "usage_error", reply
    assert "a session is under way" in reply.reason
    assert actions == ["spawned", "exited"]  # no "restarting", no "parked"
    assert program.state is not State.FATAL
    assert (program.failures, program.restarts) == (0, 0)


# ------------------------------------------- 3. status and check judge sessions only


@pytest.mark.parametrize("command", ["status", "check"])
def test_a_day_without_a_session_or_a_future_one_is_not_judged(
    commands: Commands, command: str
) -> None:
    for day, reason in (
        (SUNDAY, f"{SUNDAY} is not a KRX session (the one before it: 2026-11-13)"),
        (NEXT_SESSION, f"{NEXT_SESSION} is in the future (today is 2026-11-20)"),
    ):
        result = commands.etf(AFTER_CLOSE, command, "--date", day)
        assert result.exit_code == 2, (day, result.output)
        assert reason in said(result.output)
    assert commands.producer.sent == []  # no etf_stale that nothing could end
    # A session is judged as before: nothing held there, so it is stale.
    judged = commands.etf(AFTER_CLOSE, command, "--date", "2026-11-19")
    assert judged.exit_code == (1 if command == "status" else 0), judged.output
    assert "ETFs 2026-11-19: 0 of 3 collected STALE" in judged.output
    if command == "check":
        stale = [e for e in commands.producer.sent if isinstance(e, Alert)]
        assert [(a.code, a.subject) for a in stale] == [("etf_stale", "2026-11-19")]


# --------------------------------------------- 4. --symbols: held ETFs' codes only


def test_holdings_of_codes_not_held_are_refused_before_any_call(commands: Commands) -> None:
    refused = commands.etf(AFTER_CLOSE, "holdings", "--symbols", "999999,ABC")
    assert refused.exit_code == 2 and "ABC: not a KRX code" in said(refused.output)
    refused = commands.etf(AFTER_CLOSE, "holdings", "--symbols", f"{SYMBOLS[0]},999999")
    assert refused.exit_code == 2
    assert "999999: not an ETF of the held list (3 active" in said(refused.output)
    assert commands.ran == [] and commands.producer.sent == []
    accepted = commands.etf(AFTER_CLOSE, "holdings", "--symbols", f" {SYMBOLS[0]}, {SYMBOLS[1]}")
    assert accepted.exit_code == 0, accepted.output
    assert commands.ran == [("holdings", date(2026, 11, 20))]


HELD = {"069500", "102110", "0091C0"}
_CODE = re.compile(r"[0-9A-Z]{6}")
piece = st.one_of(
    st.sampled_from(["069500", " 102110 ", "0091c0", "999999", "", " "]),
    st.text(alphabet="0123456789ABCZabz .-", max_size=8),
)


@given(st.lists(piece, max_size=5))
def test_symbols_are_held_krx_codes_or_refused(pieces: list[str]) -> None:
    settings: Settings = load_settings(SHIPPED)
    wanted = [p.strip().upper() for p in pieces if p.strip()]
    ok = all(_CODE.fullmatch(w) and w in HELD for w in wanted)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_held_symbols", lambda _settings: HELD)
        if ok:
            assert cli._symbols(settings, ",".join(pieces)) == wanted
        else:
            with pytest.raises(SystemExit) as refused:
                cli._symbols(settings, ",".join(pieces))
            assert refused.value.code == 2
