"""Every program the supervisor replaces after a hang or a crash is alerted, once, and counted.

A writer frozen for a minute (SIGSTOP) was noticed and replaced with log lines only: a
process that hangs every morning went unseen. Now the first replacement of a daemon or
session worker raises a warning ``program_replaced``; later ones are folded into it until it
has run a quiet window; ``ctl status``, ``/metrics`` and the demo's summary count them per
day by cause. A stop or restart by a command is none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bus.events import Alert, AlertResolved, Event
from harness.sim.server import SimConfig
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.calendar.clock import ManualClock, SystemClock
from observer.calendar.phases import KST
from observer.supervisor.program import Launch, Program, State
from observer.supervisor.replacements import REPLACED_CODE, Replacements
from observer.supervisor.settings import ProgramSettings
from tests.gap_recovery.conftest import MARKET
from tests.support import ROOT, SimThread, SupervisorProcess, db_rows, free_port, until, wait_until

_NS = 1_000_000_000
DAY = datetime(2026, 11, 20, 10, 30, tzinfo=KST)


# ------------------------------------------------------------------ the rules, in one process


def _notices(events: list[Event]) -> list[tuple[str, str]]:
    return [
        (type(e).__name__, e.subject)
        for e in events
        if isinstance(e, Alert | AlertResolved) and e.code == REPLACED_CODE
    ]


def _program(tmp_path: Path, name: str, kind: str = "daemon") -> Program:
    """A program as the supervisor holds it, never started (its state set by the test)."""
    launch = Launch(cwd=tmp_path, env={}, log_dir=tmp_path, heartbeat_interval_s=1.0)
    settings = ProgramSettings(kind=kind, command=("python",))  # type: ignore[arg-type]
    return Program(name, settings, launch, lambda *_args: None)


def test_replacements_fold_into_one_alert_until_a_quiet_window_after_ready(
    tmp_path: Path,
) -> None:
    events: list[Event] = []
    clock = ManualClock(int(DAY.timestamp()) * _NS)
    book = Replacements(
        AlertBook(events.append), clock, tmp_path / "replacements.json", quiet_s=0.2
    )

    async def scenario() -> None:
        book.replaced("writer", True, "no heartbeat for 15s")
        (alert,) = events
        assert isinstance(alert, Alert) and (alert.severity, alert.subject) == ("warning", "writer")
        assert alert.message.startswith(
            "writer hung (no heartbeat for 15s) and was replaced at 10:30:00"
        )
        assert alert.context["cause"] == "hung" and alert.context["program"] == "writer"
        book.replaced("writer", False, "killed by SIGKILL")  # folded: counted, not alerted
        book.replaced("track_b", False, "exit code 1")  # another program's is its own
        assert _notices(events) == [("Alert", "writer"), ("Alert", "track_b")]
        assert book.today("writer") == {"hung": 1, "crashed": 1}
        book.ran("writer")  # READY: the quiet window begins ...
        book.failed("writer")  # ... and a failure ends it before its time
        book.replaced("writer", True, "no READY within 30s")
        book.ran("writer")
        await until(lambda: book.open == {"track_b"}, "the writer's quiet window")
        resolved = events[-1]
        assert isinstance(resolved, AlertResolved) and resolved.subject == "writer"
        assert "(3 replacements (2 hung, 1 crashed) today)" in resolved.message
        assert "track_b" in book.open  # never READY since: not resolved
        book.replaced("writer", False, "exit code 0")  # after its end: a new alert
        assert _notices(events)[-1] == ("Alert", "writer")
        assert book.today("writer") == {"hung": 2, "crashed": 2}

    asyncio.run(scenario())


def test_counts_are_kept_for_the_day_and_start_again_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "replacements.json"
    clock = ManualClock(int(DAY.timestamp()) * _NS)
    Replacements(AlertBook(lambda _e: None), clock, path).replaced("track_b", True, "no heartbeat")
    assert path.stat().st_mode & 0o777 == 0o600
    again = Replacements(AlertBook(None), clock, path)  # a supervisor started again
    assert again.today("track_b") == {"hung": 1, "crashed": 0}
    clock.advance(14 * 3600)  # past midnight KST
    assert again.today("track_b") == {"hung": 0, "crashed": 0}
    assert Replacements(AlertBook(None), clock, path).today("track_b") == {"hung": 0, "crashed": 0}
    path.write_text('{"day": "2026-11-2')  # torn: set aside, alerted, counted from 0
    alerts: list[Event] = []
    with caplog.at_level(logging.WARNING):
        replacements = Replacements(AlertBook(alerts.append), clock, path)
        assert replacements.today("x") == {"hung": 0, "crashed": 0}
    assert "today's replacements count from 0" in caplog.text
    (alert,) = alerts
    assert isinstance(alert, Alert) and alert.code == "state_file_unreadable"
    assert not path.exists() and len(list(tmp_path.glob("replacements.json.bad-*"))) == 1


def test_a_hold_or_a_take_over_ends_what_nothing_else_would(tmp_path: Path) -> None:
    events: list[Event] = []
    clock = ManualClock(int(DAY.timestamp()) * _NS)
    alerts = AlertBook(events.append, "supervisor")
    book = Replacements(alerts, clock, tmp_path / "r.json", quiet_s=0.2)
    parked = _program(tmp_path, "gap_recovery")

    async def scenario() -> None:
        book.replaced("gap_recovery", False, "exit code 1")
        parked.state, parked.held = State.STOPPED, True  # `ctl stop` after it was parked
        book.held(parked)
        assert _notices(events) == [("Alert", "gap_recovery"), ("AlertResolved", "gap_recovery")]
        assert events[-1].message == "gap_recovery: held by a command"  # type: ignore[attr-defined]
        # A predecessor's open alerts: one of a program gone, of one held, of one running.
        running, held = _program(tmp_path, "track_a"), _program(tmp_path, "notifier")
        running.state, held.held = State.RUNNING, True
        programs = {"track_a": running, "notifier": held}
        left = ["gone", "track_a", "notifier"]
        alerts.take_over(
            Notice(f"supervisor:{n}", "alert", n, "warning", REPLACED_CODE, name, "")
            for n, name in enumerate(left)
        )
        book.taken_over(left, (), programs)
        assert _notices(events)[2:] == [("AlertResolved", "gone"), ("AlertResolved", "notifier")]
        assert book.open == {"track_a"}
        await until(lambda: not book.open, "track_a's quiet window from the take-over")

    asyncio.run(scenario())


def test_a_jobs_failed_run_is_retried_not_replaced(tmp_path: Path) -> None:
    """A job's failures are its own to alert (and `ctl status` names them until a run works)."""
    events: list[Event] = []
    book = Replacements(AlertBook(events.append), SystemClock(), tmp_path / "r.json")
    job = _program(tmp_path, "universe", "job")
    job.hung, job.last_failure = True, "no heartbeat for 60s"
    book.seen(job, "exited")
    book.seen(job, "restarting")
    assert events == [] and book.today("universe") == {"hung": 0, "crashed": 0}
    daemon = _program(tmp_path, "gap_recovery")
    daemon.hung, daemon.last_failure = True, "no heartbeat for 15s"
    book.seen(daemon, "exited")
    book.seen(daemon, "restarting")
    assert _notices(events) == [("Alert", "gap_recovery")]
    assert book.today("gap_recovery") == {"hung": 1, "crashed": 0}


# ------------------------------------------------------------------ real processes

# 2.5 s without a beat were seen at a start (imports after READY, five programs on two
# cores), and more than 6 s on a CI machine running five test processes at 1.7x its usual
# time: 10 s leaves a loaded machine room, and no hang but the test's.
TIMEOUTS = "heartbeat_timeout_s = 10.0\nstop_grace_s = 1.0\n"
DAEMONS = f"""
[programs.writer]
kind = "daemon"
command = ["observer", "writer"]
{TIMEOUTS}
[programs.gap_recovery]
kind = "daemon"
command = ["observer", "gap-recovery", "run"]
depends_on = ["writer"]
{TIMEOUTS}
[programs.notifier]
kind = "daemon"
command = ["observer", "notifier", "run"]
depends_on = ["writer"]
{TIMEOUTS}
[programs.track_a]
kind = "session"
command = ["observer", "track-a", "run"]
depends_on = ["writer"]
phases = ["full_operation"]
{TIMEOUTS}
[programs.track_b]
kind = "session"
command = ["observer", "track-b", "run"]
depends_on = ["writer"]
phases = ["full_operation"]
{TIMEOUTS}
"""


def _replaced_alerts(sup: SupervisorProcess, name: str) -> list[Any]:
    return sup.rows(
        "select severity, message from alerts "
        f"where code = '{REPLACED_CODE}' and subject = '{name}' order by seq"
    )


def _readies(sup: SupervisorProcess, name: str) -> int:
    """The READYs of ``name`` stored: each comes after whatever its start alerted."""
    query = f"select count(*) from worker_events where worker = '{name}' and action = 'ready'"
    rows = db_rows(sup.url, query, until_schema=True)  # none before the writer's schema
    return int(rows[0][0]) if rows else 0


def _hang(sup: SupervisorProcess, names: list[str]) -> dict[str, dict[str, Any]]:
    """SIGSTOP each of ``names`` at once; their status once each is replaced, READY, stored."""
    frozen = {name: sup.program(name)["pid"] for name in names}
    readies = {name: _readies(sup, name) for name in names}
    for pid in frozen.values():
        os.kill(pid, signal.SIGSTOP)

    def replaced() -> dict[str, dict[str, Any]] | None:
        shown = {p["name"]: p for p in sup.status()["programs"] if p["name"] in frozen}
        done = all(p["state"] == "running" and p["pid"] != frozen[n] for n, p in shown.items())
        return shown if done else None

    shown: dict[str, dict[str, Any]] = wait_until(replaced, 60, f"{names} replaced")
    wait_until(lambda: all(_readies(sup, n) == readies[n] + 1 for n in names), 60, "READYs stored")
    return shown


@pytest.mark.slow
@pytest.mark.timed  # a heartbeat late on a busy machine is one more hang replaced
def test_each_daemon_frozen_is_replaced_alerted_once_and_counted(tmp_path: Path) -> None:
    sim = SimThread(MARKET, DAY, SimConfig(token_min_interval_s=0))
    settings = (
        "heartbeat_interval_s = 0.25\n"
        "[writer]\ndrain_s = 1.0\n[notifier]\nsend_timeout_s = 1.0\n"
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path / "tokens"}"\n'
        '[[kis.accounts]]\nalias = "acct1"\n'
    )
    sup = SupervisorProcess(
        tmp_path,
        DAEMONS,
        clock=sim.sim.clock.spec,
        settings=settings,
        database="reader_pool_timeout_s = 1.0",  # Track A and B's heartbeats may then be 10 s
    )
    workers = ["gap_recovery", "notifier", "track_a", "track_b"]
    try:
        sup.start(healthy=False)
        names = [*workers, "writer"]
        wait_until(lambda: all(_readies(sup, n) == 1 for n in names), 90, "READYs stored")
        # A restart asked for is no replacement: none counted, none alerted by the time its
        # READY (published after anything its stop would have raised) is stored.
        assert sup.ctl("restart", "notifier").ok
        wait_until(lambda: _readies(sup, "notifier") == 2, 60, "the restart's READY stored")
        assert sup.rows(f"select count(*) from alerts where code = '{REPLACED_CODE}'") == [(0,)]
        assert sup.program("notifier")["replaced"] == {"hung": 0, "crashed": 0}
        # The workers frozen at once, then the writer (while it is frozen nothing is stored).
        shown = _hang(sup, workers) | _hang(sup, ["writer"])
        for name in names:
            assert shown[name]["replaced"] == {"hung": 1, "crashed": 0}, shown[name]
            ((severity, message),) = _replaced_alerts(sup, name)
            assert severity == "warning", message
            assert message.startswith(f"{name} hung (no heartbeat for 10s) and was replaced at")
        # A second hang of one program: counted, folded into its open alert.
        again = _hang(sup, ["gap_recovery"])["gap_recovery"]
        assert again["replaced"] == {"hung": 2, "crashed": 0}
        assert len(_replaced_alerts(sup, "gap_recovery")) == 1
        assert sup.rows(f"select count(*) from alerts where code = '{REPLACED_CODE}'") == [(5,)]
        assert sup.terminate() == 0
    finally:
        sim.close()


# Says READY and beats past stable_s, then exits 1, its first CRASHES starts; then runs.
CRASHES = 6
CRASHES_THEN_RUNS = (
    "import sys, time, pathlib\n"
    "from observer.process.heartbeat import Heartbeat\n"
    "p = pathlib.Path(sys.argv[1]); n = int(p.read_text()) if p.exists() else 0\n"
    "p.write_text(str(n + 1)); no = Heartbeat.from_env(); no.ready()\n"
    "end = time.monotonic() + 0.3\n"
    f"while n >= {CRASHES} or time.monotonic() < end:\n    no.beat(); time.sleep(0.02)\n"
    "raise SystemExit(1)\n"
)


def _ctl(sup: SupervisorProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "observer", "ctl", "--socket", str(sup.socket), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.slow
def test_a_crash_loop_is_one_alert_and_its_count(tmp_path: Path) -> None:
    (tmp_path / "crashes.py").write_text(CRASHES_THEN_RUNS)
    program = (
        '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
        f'[programs.crashes]\nkind = "daemon"\ncommand = ["python", "{tmp_path / "crashes.py"}",'
        f' "{tmp_path / "count"}"]\ndepends_on = ["writer"]\nstable_s = 0.1\n'
        "backoff_initial_s = 0.05\nbackoff_max_s = 0.1\n"
    )
    port = free_port()
    sup = SupervisorProcess(
        tmp_path, program, settings="heartbeat_interval_s = 0.05", metrics_port=port
    )
    sup.start(healthy=False)
    wait_until(lambda: _readies(sup, "crashes") == CRASHES + 1, 60, "the last start's READY")
    shown = sup.program("crashes")
    assert shown["replaced"] == {"hung": 0, "crashed": CRASHES} and shown["state"] == "running"
    codes = sup.rows("select code, severity, message from alerts order by seq")
    replaced = [row for row in codes if row[0] == REPLACED_CODE]
    assert [row[:2] for row in replaced] == [(REPLACED_CODE, "warning")]
    assert replaced[0][2].startswith("crashes crashed (exit code 1) and was replaced at ")
    # Forgiven each time (it beat past stable_s): the fifth is the loop's escalation, once.
    assert [row[:2] for row in codes if row[0] == "program_crash_loop"] == [
        ("program_crash_loop", "error")
    ]
    assert not [row for row in codes if row[0] == "program_fatal"]
    # As the operator reads it: `ctl status`, its JSON and /metrics.
    text = _ctl(sup, "status")
    row = next(
        line for line in text.stdout.splitlines() if line.startswith(("│ crashes", "crashes:"))
    )
    assert f"{CRASHES} crashed" in row, text.stdout
    as_json = json.loads(_ctl(sup, "--json", "status").stdout)
    (crashes,) = [p for p in as_json["programs"] if p["name"] == "crashes"]
    assert crashes["replaced"] == {"hung": 0, "crashed": CRASHES}
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert (
        f'observer_process_replacements_today{{cause="crashed",program="crashes"}} {CRASHES}.0'
        in scraped.decode()
    )
    assert sup.terminate() == 0
