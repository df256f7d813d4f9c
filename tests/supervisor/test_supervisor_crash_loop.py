"""A daemon that fails again and again, each time after running long enough to be forgiven.

Its failures were forgiven at each crash (it had beaten ``stable_s``), so it was restarted
for ever: never FATAL, no alert. Now `CRASH_LOOP_COUNT` failures within an hour raise an
error ``program_crash_loop``, resolved after an hour without one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bus.events import Alert, AlertResolved, Event
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.calendar.clock import SystemClock
from observer.config.load import load_settings
from observer.supervisor.core import Supervisor
from observer.supervisor.crash_loops import CRASH_LOOP_CODE, CRASH_LOOP_COUNT, CrashLoops
from observer.supervisor.program import State
from tests.supervisor.test_supervisor_health import configure
from tests.support import until

# Says READY, beats for half a second (past stable_s), then exits 1.
CRASHES_LATE = (
    "import time; from observer.process.heartbeat import Heartbeat\n"
    "n = Heartbeat.from_env(); n.ready()\n"
    "end = time.monotonic() + 0.5\n"
    "while time.monotonic() < end:\n    n.beat(); time.sleep(0.02)\n"
    "raise SystemExit(1)"
)


def notices(events: list[Event]) -> list[tuple[str, str, str]]:
    return [
        (type(e).__name__, e.severity, e.subject)
        for e in events
        if isinstance(e, Alert | AlertResolved) and e.code == "program_crash_loop"
    ]


def test_count_failures_within_the_window_alert_once_and_a_quiet_window_resolves() -> None:
    events: list[Event] = []
    book = AlertBook(events.append, "supervisor")
    loops = CrashLoops(book, count=3, window_s=0.5)

    async def scenario() -> None:
        loops.failed("a")
        loops.failed("a")
        loops.failed("b")  # another program's failure is its own
        assert notices(events) == []
        loops.failed("a")
        assert notices(events) == [("Alert", "error", "a")] and loops.open == {"a"}
        loops.failed("a")  # still looping: no second alert; the quiet window starts again
        assert len(events) == 1
        await until(lambda: not loops.open, "the quiet window's end")
        assert notices(events) == [("Alert", "error", "a"), ("AlertResolved", "error", "a")]
        # A predecessor's open alert: resolved after a quiet window.
        book.take_over([Notice("supervisor:9", "alert", 0, "error", CRASH_LOOP_CODE, "c", "")])
        loops.taken_over(["c"])
        await until(lambda: len(events) == 3, "the inherited alert resolved")
        assert notices(events)[-1] == ("AlertResolved", "error", "c")

    asyncio.run(scenario())


def test_failures_spread_wider_than_the_window_are_no_loop() -> None:
    events: list[Event] = []
    loops = CrashLoops(AlertBook(events.append), count=2, window_s=0.05)

    async def scenario() -> None:
        loops.failed("a")
        started = time.monotonic()
        await until(lambda: time.monotonic() - started > 0.05, "the window's end")
        loops.failed("a")

    asyncio.run(scenario())
    assert events == []


def test_a_daemon_that_crashes_after_stable_s_again_and_again_is_alerted(
    tmp_path: Path, published: list[Event]
) -> None:
    (tmp_path / "crashes.py").write_text(CRASHES_LATE)
    program = (
        f'[programs.crashes]\nkind = "daemon"\ncommand = ["{sys.executable}", '
        f'"{tmp_path / "crashes.py"}"]\nstable_s = 0.1\nmax_failures = 2\n'
        "backoff_initial_s = 0.01\n"
    )
    config = configure(tmp_path, "heartbeat_interval_s = 0.05", program)
    sup = Supervisor(load_settings(config), config, SystemClock())
    crashes = sup.programs["crashes"]
    states: set[State] = set()

    def alerted() -> bool:
        states.add(crashes.state)  # each state seen on the way: never FATAL
        return bool(notices(published))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(alerted, "the loop alerted", 60)
        finally:
            stop.set()
            await task

    asyncio.run(scenario())
    assert notices(published) == [("Alert", "error", "crashes")]
    assert crashes.restarts >= CRASH_LOOP_COUNT - 1  # restarted each time: forgiven
    assert State.FATAL not in states and crashes.failures == 1
    assert not [e for e in published if isinstance(e, Alert) and e.code == "program_fatal"]


# Fails (exit 1, before READY) its first 5 starts, as while a dependency is not up, then runs.
FAILS_THEN_RUNS = (
    "import sys, time, pathlib\n"
    "p = pathlib.Path(sys.argv[1]); n = int(p.read_text()) if p.exists() else 0\n"
    "p.write_text(str(n + 1))\n"
    "if n < 5: raise SystemExit(1)\n"
    "from observer.process.heartbeat import Heartbeat; no = Heartbeat.from_env(); no.ready()\n"
    "while True: no.beat(); time.sleep(0.05)\n"
)


def _supervised(tmp_path: Path, name: str, args: str) -> tuple[Supervisor, str]:
    program = (
        f'[programs.{name}]\nkind = "daemon"\ncommand = ["{sys.executable}", {args}]\n'
        "backoff_initial_s = 0.01\nbackoff_max_s = 0.05\n"
    )
    config = configure(tmp_path, "heartbeat_interval_s = 0.05", program)
    return Supervisor(load_settings(config), config, SystemClock()), name


def _run_until(sup: Supervisor, done: Callable[[], bool], what: str) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(done, what, 60)
        finally:
            stop.set()
            await task

    asyncio.run(scenario())


def test_a_daemon_failing_fast_is_fatal_and_no_crash_loop(
    tmp_path: Path, published: list[Event]
) -> None:
    """Never forgiven, it is parked FATAL at its 8th failure: program_fatal alone, where
    program_crash_loop (error) came at the 5th failure too, and resolved while still FATAL."""
    sup, name = _supervised(tmp_path, "fastfail", '"-c", "raise SystemExit(1)"')
    _run_until(sup, lambda: any(_fatal(e) for e in published), "program_fatal")
    assert sup.programs[name].state is State.FATAL and sup.programs[name].failures == 8
    assert notices(published) == [] and sup.replacements.loops.open == set()


def test_a_daemon_failing_at_start_up_then_running_is_no_crash_loop(
    tmp_path: Path, published: list[Event]
) -> None:
    """Five failures before READY, then a healthy daemon: no loop alert left open an hour."""
    (tmp_path / "flaky.py").write_text(FAILS_THEN_RUNS)
    args = f'"{tmp_path / "flaky.py"}", "{tmp_path / "count"}"'
    sup, name = _supervised(tmp_path, "flaky", args)
    flaky = sup.programs[name]
    _run_until(sup, lambda: flaky.state is State.RUNNING, "RUNNING")
    assert flaky.restarts == 5
    assert notices(published) == [] and sup.replacements.loops.open == set()


def _fatal(event: Event) -> bool:
    return isinstance(event, Alert) and event.code == "program_fatal"
