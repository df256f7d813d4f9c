"""How the supervisor judges health: parked jobs, its own restarts, accounts and stale figures.

* A job parked FATAL and started again is not well at its READY: its alert stays open and
  ``ctl status`` unhealthy until a run exits 0, and a run that fails again parks it at once.
* A supervisor started again takes over the alerts its predecessor left open (at its first
  database reading): it resolves them when they clear and does not raise them again.
* A store host shows no accounts, in ``ctl status`` and on ``/metrics`` alike.
* A program that is not running has no current figures: its last REST errors and counters
  are history.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bus.events import Alert, AlertResolved, Event
from observer.calendar.clock import SystemClock
from observer.calendar.phases import Phase
from observer.config.load import load_settings
from observer.supervisor.accounts import accounts_status
from observer.supervisor.commands import problems
from observer.supervisor.core import Supervisor
from observer.supervisor.metrics import SupervisorCollector
from observer.supervisor.program import State
from tests.support import until

# Says READY with counters, then: "daemon" beats for ever; "job" waits for the file `release`
# (a deadline-bound wait) and exits 0 if the file `fixed` exists, else 1.
FAKE = """
import json, os, sys, time
from observer.process.heartbeat import Heartbeat
mode, counters = sys.argv[1], json.loads(sys.argv[2])
notifier = Heartbeat.from_env()
notifier.ready(counters)
if mode == "daemon":
    while True:
        notifier.beat(lambda: counters)
        time.sleep(0.02)
deadline = time.monotonic() + 30
while not os.path.exists("release") and time.monotonic() < deadline:
    notifier.beat()
    time.sleep(0.01)
os.remove("release")
sys.exit(0 if os.path.exists("fixed") else 1)
"""


def program(name: str, kind: str, workdir: Path, counters: dict[str, float], extra: str) -> str:
    mode = "daemon" if kind == "daemon" else "job"
    command = [sys.executable, str(workdir / "fake.py"), mode, json.dumps(counters)]
    return f"\n[programs.{name}]\nkind = {kind!r}\ncommand = {json.dumps(command)}\n{extra}\n"


def configure(tmp_path: Path, supervisor: str, programs: str, more: str = "") -> Path:
    (tmp_path / "fake.py").write_text(FAKE)
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "data" / "o.db"}"\n'
        f"{more}[supervisor]\nmetrics_port = 0\n{supervisor}\n{programs}"
    )
    return config


def fatal_notices(events: list[Event], name: str) -> list[str]:
    return [
        type(e).__name__
        for e in events
        if isinstance(e, Alert | AlertResolved) and e.code == "program_fatal" and e.subject == name
    ]


# ------------------------------------------------------------------ a parked job


def test_a_parked_job_is_well_again_only_when_a_run_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published: list[Event]
) -> None:
    """Before, its next READY resolved the alert ("running again"), ``ctl status`` was healthy
    during the run, and it took max_failures more failures to alert again."""
    monkeypatch.chdir(tmp_path)
    extra = "max_failures = 2\nbackoff_initial_s = 0.01\nbackoff_max_s = 0.01"
    config = configure(tmp_path, "", program("token", "job", tmp_path, {}, extra))
    sup = Supervisor(load_settings(config), config, SystemClock())
    job = sup.programs["token"]
    release = tmp_path / "release"

    def exited(pid: int) -> Callable[[], bool]:
        return lambda: job.state is not State.RUNNING or job.pid != pid

    async def run_once(parked: bool) -> None:
        """Run the job as scheduled; each READY is seen, judged, then released to exit."""
        sup.jobs.run(job, (), "scheduled")
        while job.active:
            await until(lambda: job.state is State.RUNNING or not job.active, "a READY")
            if job.state is not State.RUNNING:
                continue
            if parked:  # the alert stays open at READY, and ctl status unhealthy meanwhile
                assert fatal_notices(published, "token")[-1] == "Alert"
                assert problems([job], sup.wanted)
            release.touch()
            await until(exited(job.pid), "its exit")
        await job.ended()

    async def scenario() -> None:
        await run_once(parked=False)  # two failures: parked
        assert (job.state, job.failures) == (State.FATAL, 2)
        assert fatal_notices(published, "token") == ["Alert"]
        spawned = job.restarts
        await run_once(parked=True)  # the next scheduled run fails too: parked at once
        assert (job.state, job.failures, job.restarts) == (State.FATAL, 3, spawned)
        assert fatal_notices(published, "token") == ["Alert", "Alert"]
        (tmp_path / "fixed").touch()
        await run_once(parked=True)  # a run that succeeds: resolved
        assert (job.state, job.failures) == (State.EXITED, 0)
        assert not problems([job], sup.wanted)

    try:
        asyncio.run(scenario())
    finally:
        sup._lock.close()
        sup.producer.close(0)
    assert fatal_notices(published, "token") == ["Alert", "Alert", "AlertResolved"]
    resolved = [e for e in published if isinstance(e, AlertResolved)]
    assert resolved[0].message == "token ran successfully"


# ------------------------------------------------------------------ a supervisor started again


def _predecessors_alerts(url: str) -> None:
    """The alerts a supervisor left open when supervisord restarted it, and others'."""
    from bus.codec import decode_parts, encode_frame
    from bus.envelope import Envelope
    from observer.db import migrate
    from observer.db.engine import make_engine
    from observer.writer.store import Store

    def alert(code: str, subject: str = "", severity: str = "warning") -> Alert:
        return Alert(severity=severity, code=code, message=code, subject=subject)  # type: ignore[arg-type]

    ours = [
        alert("program_fatal", "gap_recovery", "critical"),  # runs again now
        alert("program_fatal", "universe", "critical"),  # a job: parked until a run works
        alert("program_fatal", "retired", "critical"),  # no longer in the configuration
        alert("gap_queue_high"),  # clear now
        alert("queue_not_empty"),  # still breached: not alerted again
        alert("cpu_high"),  # clear now
    ]
    others = [alert("depth_huge")]  # an operator's alert of a rule's code: not ours to end
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        store = Store(engine)
        store.load_marks()
        now = time.time_ns() - 60 * 10**9
        frames = [
            [Envelope("supervisor", n, now + n, e) for n, e in enumerate(ours, start=1)],
            [Envelope("operator", n, now + n, e) for n, e in enumerate(others, start=1)],
        ]
        store.apply([decode_parts(encode_frame(f)) for f in frames])
    finally:
        engine.dispose()


def test_a_supervisor_started_again_takes_over_the_alerts_its_predecessor_left_open(
    tmp_path: Path, published: list[Event]
) -> None:
    """Before, they stayed open for ever: ObserverCriticalAlertsOpen, reminders every 30 min."""
    (tmp_path / "data").mkdir()
    rules = (
        "data_age_s = 0.1\nsample_interval_s = 0.05\nrules = [\n"
        '  { code = "gap_queue_high", metric = "gap_recovery.queue_depth", above = 100.0 },\n'
        '  { code = "queue_not_empty", metric = "gap_recovery.queue_depth", above = 1.0 },\n'
        '  { code = "depth_huge", metric = "gap_recovery.queue_depth", above = 1000.0 },\n'
        "]"
    )
    programs = program("gap_recovery", "daemon", tmp_path, {"queue_depth": 5.0}, "") + program(
        "universe", "job", tmp_path, {}, ""
    )
    config = configure(tmp_path, rules, programs)
    settings = load_settings(config)
    _predecessors_alerts(settings.database.url)
    sup = Supervisor(settings, config, SystemClock())

    def resolved() -> set[tuple[str, str]]:
        return {(e.code, e.subject) for e in published if isinstance(e, AlertResolved)}

    expected = {
        ("program_fatal", "gap_recovery"),
        ("program_fatal", "retired"),
        ("gap_queue_high", ""),
        ("cpu_high", ""),
    }

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(lambda: resolved() >= expected, "the predecessor's alerts resolved")
        finally:
            stop.set()
            await task

    asyncio.run(scenario())
    assert resolved() == expected  # not the operator's depth_huge, nor what still holds
    # queue_not_empty: not again (a loaded machine's cpu_high is the machine's, not a take-over)
    assert not [e for e in published if isinstance(e, Alert) and e.code != "cpu_high"]
    universe = sup.programs["universe"]
    assert universe.state is State.FATAL and universe.parked  # its next failure parks it
    assert any(p.startswith("universe is fatal") for p in sup.status()["problems"])


# ------------------------------------------------------------------ accounts and stale figures


def _scrape(sup: Supervisor) -> list[str]:
    registry = CollectorRegistry()
    registry.register(SupervisorCollector(sup))
    return [
        line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")
    ]


KIS = '[kis]\nenvironment = "sim"\ntoken_dir = "{}"\n[[kis.accounts]]\nalias = "acct1"\n'


def test_a_store_host_shows_no_accounts_on_metrics_as_in_ctl_status(tmp_path: Path) -> None:
    """Before, /metrics judged the accounts from the store host's own (stale) token cache."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    now = time.time_ns()
    expired = {"value": "x", "issued_ns": now - 90_000 * 10**9, "expires_ns": now - 10**12}
    (tokens / "acct1-sim-access_token.json").write_text(json.dumps(expired))
    config = configure(tmp_path, 'role = "store"', "[programs]\n", KIS.format(tokens))
    sup = Supervisor(load_settings(config), config, SystemClock())
    try:
        sup.phase = Phase.FULL_OPERATION
        assert sup.status()["accounts"] == []
        assert not [line for line in _scrape(sup) if line.startswith("observer_account_")]
    finally:
        sup._lock.close()
        sup.producer.close(0)


def test_a_stopped_programs_figures_are_not_current(tmp_path: Path) -> None:
    """Track A's last heartbeat at 21:00 said 37 REST errors: not 'of the last 5 minutes' at
    10:00 the next day; nor is the notifier's count of channels without a URL once stopped."""
    phases = '\nphases = ["warmup", "track_a_only"]'
    programs = program("track_a", "session", tmp_path, {}, phases) + program(
        "notifier", "daemon", tmp_path, {}, ""
    )
    config = configure(tmp_path, "", programs, KIS.format(tmp_path / "tokens"))
    settings = load_settings(config)
    sup = Supervisor(settings, config, SystemClock())
    try:
        track_a, notifier = sup.programs["track_a"], sup.programs["notifier"]
        track_a.counters = {"account.acct1.rest_errors_5m": 37.0}
        notifier.counters = {"channels_without_url": 1.0}
        sup.phase = Phase.IDLE
        for state in (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF):
            track_a.state = notifier.state = state
            row = accounts_status(
                settings.kis, settings.supervisor, sup.programs, sup.phase, sup.clock.now_ns()
            )[0]
            assert row["rest_errors_5m"] == 0, state
            assert not [line for line in _scrape(sup) if "observer_program_counter" in line]
        track_a.state = notifier.state = State.RUNNING
        row = accounts_status(
            settings.kis, settings.supervisor, sup.programs, sup.phase, sup.clock.now_ns()
        )[0]
        assert row["rest_errors_5m"] == 37
        lines = _scrape(sup)
        assert (
            'observer_program_counter{counter="channels_without_url",program="notifier"} 1.0'
            in lines
        )
    finally:
        sup._lock.close()
        sup.producer.close(0)


def test_an_open_readiness_failed_stands_for_the_check_until_the_job_reports(
    tmp_path: Path,
) -> None:
    """The readiness job's verdict lived in its last heartbeat only: a supervisor started
    again showed a degraded account as healthy until the next morning's check."""
    from observer.alerts.states import Notice

    accounts = KIS.format(tmp_path / "tokens") + '[[kis.accounts]]\nalias = "acct2"\n'
    config = configure(tmp_path, "", program("readiness", "job", tmp_path, {}, ""), accounts)
    settings = load_settings(config)
    sup = Supervisor(settings, config, SystemClock())
    try:
        an_hour_ago = time.time_ns() - 3600 * 10**9

        def failed(source: str, alias: str) -> Notice:
            return Notice(
                f"{source}:1", "alert", an_hour_ago, "critical", "readiness_failed", alias, ""
            )

        # acct1's check failed at 08:10; acct2's alert is another host's (named c2).
        sup.readings.open_alerts = (failed("readiness", "acct1"), failed("readiness@c2", "acct2"))
        status = sup.status()
        rows = {row["account"]: row for row in status["accounts"]}
        assert rows["acct1"]["problems"] == ["not ready (readiness_failed): degraded"]
        assert 3599 < rows["acct1"]["readiness"]["age_s"] < 3700
        assert rows["acct2"]["ok"] and rows["acct2"]["readiness"] is None
        assert "account acct1: not ready (readiness_failed): degraded" in status["problems"]
        # The job checks again and acct1 passes: its heartbeat is the verdict.
        checks = {"ready": 1.0, "ready_token": 1.0, "ready_rest": 1.0, "ready_ws": 1.0}
        sup.programs["readiness"].counters = {f"account.acct1.{k}": v for k, v in checks.items()}
        assert all(row["ok"] for row in sup.status()["accounts"])
    finally:
        sup._lock.close()
        sup.producer.close(0)
