"""The supervisor's faults around hangs, missed, interrupted and held runs, `after`, and a clock.

Each test drives a real supervisor (a process, or one in this process for the clock step) over
small fake programs on a simulated clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bus.errors import OutboxFull
from bus.events import Alert, AlertResolved, Event
from observer.calendar.clock import SimulatedClock, now_utc
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.runtime import ShortTasks
from observer.supervisor.commands import dispatch
from observer.supervisor.control import Request
from observer.supervisor.core import Supervisor
from observer.supervisor.jobs import JOB_OVERLAP, RUN_SKIPPED, Jobs
from observer.supervisor.program import Launch, Program, State
from observer.supervisor.settings import ProgramSettings
from tests.support import WRITER_PROGRAM, SupervisorProcess, wait_until

pytestmark = pytest.mark.slow

# name mode [seconds]: records its start, says READY, then: "job" beats for SECONDS and exits
# 0, "daemon" beats for ever, "hang" never beats, "wait" beats until the record's .release
# file exists and exits 0.
FAKE = """
import os, sys, time
from observer.process.heartbeat import Heartbeat
name, mode = sys.argv[1], sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
with open(os.environ["FAKE_RECORD"], "a") as record:
    record.write(name + "\\n")
notifier = Heartbeat.from_env()
notifier.ready()
if mode == "hang":
    time.sleep(3600)
while mode == "wait" and not os.path.exists(os.environ["FAKE_RECORD"] + ".release"):
    notifier.beat()
    time.sleep(0.05)
end = time.monotonic() + seconds
while mode == "daemon" or time.monotonic() < end:
    notifier.beat()
    time.sleep(0.05)
"""


class Fakes:
    """The fake program in ``workdir`` and the record of its runs."""

    def __init__(self, workdir: Path) -> None:
        self.script = workdir / "fake.py"
        self.script.write_text(FAKE)
        self.record = workdir / "runs.txt"

    def program(self, name: str, mode: str, seconds: float = 0.0, extra: str = "") -> str:
        kind = "daemon" if mode in ("daemon", "hang") else "job"
        return (
            f"\n[programs.{name}]\nkind = {kind!r}\n"
            f'command = ["python", "{self.script}", "{name}", "{mode}", "{seconds}"]\n'
            f'env = {{ FAKE_RECORD = "{self.record}" }}\n{extra}\n'
        )

    def runs(self, name: str) -> int:
        if not self.record.exists():
            return 0
        return self.record.read_text().splitlines().count(name)


# The supervisors below without a writer: nothing would acknowledge their own events, and
# each stop waited the default 5 s for that before ending.
NO_WRITER = "stop_ack_wait_s = 0"


def sim_clock(at: datetime, speed: float) -> str:
    return SimulatedClock(int(at.timestamp() * 1e9), speed).spec


def kst(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 20, hour, minute, second, tzinfo=KST)  # a Friday session


def test_a_program_that_hangs_after_ready_is_unhealthy_then_parked_fatal(tmp_path: Path) -> None:
    # stable_s is below the heartbeat timeout: measured from READY to the kill, every hang
    # "ran long enough" and was forgiven, for ever, while status said healthy.
    fakes = Fakes(tmp_path)
    hangs = fakes.program(
        "hangs",
        "hang",
        extra="heartbeat_timeout_s = 2.0\nstable_s = 0.5\nmax_failures = 2\n"
        "backoff_initial_s = 0.05",
    )
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + hangs).start(healthy=False)
    report = wait_until(
        lambda: (
            (r := sup.status())
            and any(p.startswith("hangs: no heartbeat for") for p in r["problems"])
            and r
        ),
        30,
        "the hang named in status",
    )
    assert not report["healthy"]
    parked = wait_until(
        lambda: (p := sup.program("hangs"))["state"] == "fatal" and p, 30, "hangs parked fatal"
    )
    assert parked["failures"] == 2
    assert "no heartbeat for 2s" in parked["detail"]
    assert fakes.runs("hangs") == 2
    alerts = wait_until(
        lambda: sup.rows(
            "select message from alerts where code = 'program_fatal'", until_schema=True
        ),
        90,  # through the writer, on a loaded machine
        "alert",
    )
    assert any("hangs is FATAL" in row[0] for row in alerts)


def test_a_run_missed_while_no_supervisor_ran_is_run_once_at_start(tmp_path: Path) -> None:
    fakes = Fakes(tmp_path)
    daily = '{{ at = "{}", days = "daily" }}'
    programs = (
        fakes.program("backup", "job", extra=f"schedule = [{daily.format('21:00')}]")
        # Due 8 h before the start: beyond the catch-up window, not run.
        + fakes.program("late", "job", extra=f"schedule = [{daily.format('13:00')}]")
        # Run at every start, and due earlier: its start-up run is the one run.
        + fakes.program(
            "token", "job", extra=f"run_on_start = true\nschedule = [{daily.format('20:00')}]"
        )
    )
    # The supervisor restarted at 21:00:30: the 21:00 backup had not run.
    sup = SupervisorProcess(
        tmp_path, programs, clock=sim_clock(kst(21, 0, 30), 1.0), settings=NO_WRITER
    )
    sup.start(healthy=False)
    wait_until(
        lambda: all(sup.program(n)["state"] == "exited" for n in ("backup", "token")),
        30,
        "the missed backup and the start-up token run",
    )
    assert sup.program("late")["state"] == "stopped" and fakes.runs("late") == 0
    assert fakes.runs("backup") == 1 and fakes.runs("token") == 1
    assert "running the 21:00 backup run missed while no supervisor ran" in sup.log.read_text()
    assert "still running" not in sup.log.read_text()  # token was not due twice at start
    record = tmp_path / "data" / "run" / "schedule.json"
    assert record.stat().st_mode & 0o777 == 0o600
    assert sup.terminate() == 0

    # Restarted again at 21:01:30: the backup's 21:00 run is recorded as done, so it is not
    # run again; a job due at 21:01, which no supervisor ran, is; and with a catch-up window
    # of 9 h, so is the 13:00 run of `late`.
    programs += fakes.program("other", "job", extra=f"schedule = [{daily.format('21:01')}]")
    again = SupervisorProcess(
        tmp_path,
        programs,
        clock=sim_clock(kst(21, 1, 30), 1.0),
        settings=f"catch_up_s = 32400.0\n{NO_WRITER}",
    )
    again.start(healthy=False)
    wait_until(
        lambda: all(again.program(n)["state"] == "exited" for n in ("other", "late")),
        30,
        "the missed other and late runs",
    )
    assert again.program("backup")["state"] == "stopped"
    assert fakes.runs("backup") == 1 and fakes.runs("late") == 1


def test_stop_holds_a_job_and_run_waits_for_the_jobs_it_follows(tmp_path: Path) -> None:
    fakes = Fakes(tmp_path)
    at = '[{{ at = "{}", days = "daily" }}]'
    programs = (
        fakes.program("a", "wait", extra=f"schedule = {at.format('09:00')}")
        + fakes.program("b", "job", extra=f'after = ["a"]\nschedule = {at.format("09:01")}')
        + fakes.program("c", "job", extra=f'after = ["a"]\nschedule = {at.format("09:01")}')
        + fakes.program("j", "job", extra=f"schedule = {at.format('09:01')}")
    )
    # 09:00 33 s after the start, 09:01 3 s later, while a runs (until the test releases it).
    # j must be stopped before 09:01: on a loaded machine the supervisor's start alone took
    # more than the 7 s this window once was.
    sup = SupervisorProcess(
        tmp_path, programs, clock=sim_clock(kst(8, 49), 20.0), settings=NO_WRITER
    )
    sup.start(healthy=False)
    assert sup.ctl("stop", "j").ok
    wait_until(
        lambda: all("waiting for a" in sup.program(n)["detail"] for n in ("b", "c")),
        90,
        "b and c due at 09:01, waiting for a",
    )
    # The 09:01 pass launched nothing held: j stays stopped.
    assert sup.program("j")["state"] == "stopped" and fakes.runs("j") == 0
    assert sup.program("a")["state"] == "running"

    busy = sup.ctl("run", "b")  # beside the job it must follow: refused, nothing started
    assert not busy.ok and busy.code == "busy", busy
    assert "a" in busy.reason
    assert sup.ctl("stop", "b").ok  # drops its run waiting for a
    assert "waiting" not in sup.program("b")["detail"]

    assert sup.program("c")["state"] != "exited"  # c waits for a
    Path(f"{fakes.record}.release").touch()  # a ends
    wait_until(lambda: sup.program("c")["state"] == "exited", 60, "c ran after a")
    assert sup.program("a")["state"] == "exited"
    assert sup.program("b")["state"] == "stopped" and fakes.runs("b") == 0

    reply = sup.ctl("run", "b")  # a run by hand clears the hold; a has ended
    assert reply.ok, reply
    wait_until(lambda: sup.program("b")["state"] == "exited", 30, "b run by hand")
    assert fakes.runs("b") == 1 and fakes.runs("c") == 1 and fakes.runs("a") == 1


def test_a_run_by_hand_takes_the_place_of_a_queued_one(tmp_path: Path) -> None:
    """A run waiting for the jobs it follows is dropped when the job is run by hand."""
    launch = Launch(tmp_path, dict(os.environ), tmp_path / "log", 1.0)
    code = "from observer.process.heartbeat import Heartbeat; Heartbeat.from_env().ready()"
    settings = ProgramSettings(kind="job", command=(sys.executable, "-c", code))
    job = Program("job", settings, launch, lambda *_: None)

    class Host:
        programs = {"job": job}

        def in_phase(self, program: Program) -> bool:
            return True

        def status(self) -> dict[str, Any]:
            return {}

    async def scenario() -> tuple[bool, bool]:
        queued = asyncio.create_task(asyncio.sleep(3600))
        job.queued = queued  # as the scheduler leaves a run due while the jobs it follows ran
        reply = await dispatch(Host(), Request("run", ["job"]))  # type: ignore[arg-type]
        await job.ended()
        await asyncio.sleep(0)  # the cancellation is delivered at the task's next step
        return reply.ok, queued.cancelled()

    ok, cancelled = asyncio.run(scenario())
    assert ok and cancelled and job.queued is None


class SteppedClock(SimulatedClock):
    """A simulated clock an NTP step or a VM resume can set back."""

    offset_ns = 0

    def now_ns(self) -> int:
        return super().now_ns() + self.offset_ns

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


def test_a_clock_stepping_back_does_not_run_a_job_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fakes = Fakes(tmp_path)
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "data" / "o.db"}"\n'
        "[supervisor]\nmetrics_port = 0\n"
        + fakes.program("backup", "job", extra='schedule = [{ at = "21:00", days = "daily" }]')
    )
    clock = SteppedClock(int(kst(20, 59, 0).timestamp() * 1e9), 60.0)  # 21:00 in 1 s
    sup = Supervisor(load_settings(config), config, clock)
    backup = sup.programs["backup"]
    launches: list[datetime] = []
    launch = backup.launch

    def counted(*args: Any, **kwargs: Any) -> bool:
        launches.append(now_utc(clock))
        return launch(*args, **kwargs)

    backup.launch = counted  # type: ignore[method-assign]
    passes: list[tuple[int, datetime]] = []  # (offset, instant) of each scheduler pass
    publish_for = sup._rosters.publish_for  # called on each pass, with its instant

    def seen(now: datetime) -> None:
        passes.append((clock.offset_ns, now))
        publish_for(now)

    sup._rosters.publish_for = seen  # type: ignore[method-assign]

    async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)  # the poll interval of a deadline-bound wait

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(lambda: backup.state.value == "exited", 30, "the 21:00 backup")
            clock.offset_ns = -120 * 10**9  # the clock steps back two minutes
            await until(lambda: any(o and t >= kst(21, 0) for o, t in passes), 30, "21:00 again")
        finally:
            stop.set()
            await task

    with caplog.at_level(logging.WARNING, logger="observer.supervisor"):
        asyncio.run(scenario())
    assert len(launches) == 1, launches
    assert fakes.runs("backup") == 1
    assert any("the clock went back" in r.getMessage() for r in caplog.records)


def test_a_run_a_restart_ended_runs_again_at_the_next_start(tmp_path: Path) -> None:
    # Before, a due run was recorded as dealt with when it started: one killed by the
    # supervisor's stop (supervisord's restart, a deploy), or queued behind the job it
    # follows and dropped, never ran again, and nothing said so.
    fakes = Fakes(tmp_path)
    at = '[{{ at = "{}", days = "daily" }}]'
    programs = fakes.program("a", "wait", extra=f"schedule = {at.format('21:00')}") + fakes.program(
        "b", "job", extra=f'after = ["a"]\nschedule = {at.format("21:01")}'
    )
    clock = sim_clock(kst(20, 59, 58), 10.0)  # 21:00 at once, 21:01 six seconds later
    sup = SupervisorProcess(tmp_path, programs, clock=clock, settings=NO_WRITER)
    sup.start(healthy=False)
    wait_until(
        lambda: "waiting for a" in sup.program("b")["detail"], 60, "b due at 21:01, waiting for a"
    )
    assert sup.program("a")["state"] == "running"
    record = tmp_path / "data" / "run" / "schedule.json"
    assert json.loads(record.read_text()) == {
        "a": {"pending": "2026-11-20T21:00:00+09:00"},
        "b": {"pending": "2026-11-20T21:01:00+09:00"},
    }
    assert sup.terminate() == 0  # a killed, b's queued run dropped
    assert fakes.runs("a") == 1 and fakes.runs("b") == 0

    Path(f"{fakes.record}.release").touch()  # the runs from now on finish
    again = SupervisorProcess(tmp_path, programs, clock=clock, settings=NO_WRITER)
    again.start(healthy=False)
    wait_until(
        lambda: all(again.program(n)["state"] == "exited" for n in ("a", "b")),
        60,
        "a and b run again",
    )
    assert fakes.runs("a") == 2 and fakes.runs("b") == 1
    log = again.log.read_text()
    assert "running the 21:00 a run interrupted by the supervisor's restart" in log
    assert "running the 21:01 b run interrupted by the supervisor's restart" in log
    assert "b (due 21:01, interrupted by a restart) waits for a to end" in log
    # Done: the form of the record before pending runs were kept.
    assert json.loads(record.read_text()) == {
        "a": "2026-11-20T21:00:00+09:00",
        "b": "2026-11-20T21:01:00+09:00",
    }
    assert record.stat().st_mode & 0o777 == 0o600
    assert again.terminate() == 0


def test_the_record_of_due_runs_reads_the_earlier_form_and_a_run_under_way(
    tmp_path: Path,
) -> None:
    config = tmp_path / "observer.toml"
    fakes = Fakes(tmp_path)
    daily = 'schedule = [{{ at = "{}", days = "daily" }}]'
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        + fakes.program("done", "job", extra=daily.format("21:00"))
        + fakes.program("under_way", "job", extra=daily.format("21:00"))
        + fakes.program("old", "job", extra=daily.format("14:00"))
    )
    settings = load_settings(config)
    launch = Launch(tmp_path, dict(os.environ), tmp_path / "log", 1.0)
    programs = {n: Program(n, p, launch, lambda *_: None) for n, p in settings.programs.items()}
    launched: list[str] = []

    def launcher(name: str) -> Callable[..., bool]:
        def launch(*_: Any, **__: Any) -> bool:
            launched.append(name)
            return True

        return launch

    for program in programs.values():
        program.launch = launcher(program.name)  # type: ignore[method-assign]
    record = tmp_path / "schedule.json"
    # "done": as the release before this one wrote it, a plain time: dealt with. "under_way":
    # started and never ended. "old": started 7 h ago, over the catch-up window.
    record.write_text(
        '{"done": "2026-11-20T21:00:00+09:00",'
        ' "under_way": {"pending": "2026-11-20T21:00:00+09:00",'
        ' "done": "2026-11-19T21:00:00+09:00"},'
        ' "old": {"pending": "2026-11-20T14:00:00+09:00"}}'
    )
    timeline = timeline_from(settings.phases, settings.calendar)
    published: list[Event] = []
    jobs = Jobs(programs, timeline, record, ShortTasks(), published.append, timedelta(hours=6))
    jobs.start(kst(21, 0, 30))
    assert launched == ["under_way"]
    [skipped] = published  # "old": alerted, as the run it gives up
    assert isinstance(skipped, Alert)
    assert (skipped.code, skipped.severity, skipped.subject) == (RUN_SKIPPED, "warning", "old")
    assert "1 due run not run, the latest due 2026-11-20 14:00 KST" in skipped.message
    written = json.loads(record.read_text())
    assert written == {
        "done": "2026-11-20T21:00:00+09:00",
        "under_way": {"pending": "2026-11-20T21:00:00+09:00", "done": "2026-11-19T21:00:00+09:00"},
        "old": "2026-11-20T14:00:00+09:00",  # said so once, and not again
    }
    under_way = programs["under_way"]
    under_way.state = State.EXITED
    jobs.ended(under_way, "exited", 0)
    assert json.loads(record.read_text())["under_way"] == "2026-11-20T21:00:00+09:00"


def _daily_backup(tmp_path: Path) -> tuple[Settings, Program]:
    """A job ``backup`` (a fake's program) due daily at 21:00, and the settings around it."""
    config = tmp_path / "observer.toml"
    fakes = Fakes(tmp_path)
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        + fakes.program("backup", "job", extra='schedule = [{ at = "21:00", days = "daily" }]')
    )
    settings = load_settings(config)
    launch = Launch(tmp_path, dict(os.environ), tmp_path / "log", 1.0)
    return settings, Program("backup", settings.programs["backup"], launch, lambda *_: None)


def test_runs_missed_beyond_the_catch_up_window_are_alerted_once(tmp_path: Path) -> None:
    """A host down from Wednesday evening to Saturday 05:00: the backups due Thursday and
    Friday at 21:00 are over the 6 h window, so not run. They were given up without a word
    (only an interrupted run was logged); now one warning says so, once."""
    settings, backup = _daily_backup(tmp_path)
    programs = {"backup": backup}
    programs["backup"].launch = lambda *_, **__: True  # type: ignore[method-assign]
    timeline = timeline_from(settings.phases, settings.calendar)
    record = tmp_path / "schedule.json"
    published: list[Event] = []

    def start(at: datetime) -> None:
        jobs = Jobs(programs, timeline, record, ShortTasks(), published.append, timedelta(hours=6))
        jobs.start(at)

    start(kst(5, 0).replace(day=18))  # a first start: no record, nothing known to be missed
    assert published == []
    record.write_text('{"backup": "2026-11-18T21:00:00+09:00"}')  # Wednesday's ran
    start(kst(5, 0).replace(day=21))
    [skipped] = published
    assert isinstance(skipped, Alert) and skipped.subject == "backup"
    assert (skipped.code, skipped.severity) == (RUN_SKIPPED, "warning")
    assert "2 due runs not run, the latest due 2026-11-20 21:00 KST" in skipped.message
    assert "observer ctl run backup" in skipped.message
    assert json.loads(record.read_text()) == {"backup": "2026-11-20T21:00:00+09:00"}
    start(kst(5, 1).replace(day=21))  # restarted again: said once
    assert len(published) == 1


def test_a_run_due_while_the_last_runs_is_one_overlap_alert_each_ended_by_the_next_run(
    tmp_path: Path,
) -> None:
    """Each run due while the job's last runs is a `job_overlap` warning naming the job; the
    next run that starts ends them all."""
    settings, backup = _daily_backup(tmp_path)
    launched: list[tuple[str, ...]] = []
    backup.launch = lambda args, **_: launched.append(args) or True  # type: ignore[method-assign]
    timeline = timeline_from(settings.phases, settings.calendar)
    published: list[Event] = []
    runs = {"backup": backup}
    jobs = Jobs(runs, timeline, tmp_path / "s.json", ShortTasks(), published.append, timedelta(1))
    backup._runner = SimpleNamespace(done=lambda: False)  # type: ignore[assignment]  # running
    jobs.run(backup, (), "scheduled 21:00")
    jobs.run(backup, (), "by hand")
    assert launched == []
    skipped = [e for e in published if isinstance(e, Alert) and e.severity == "warning"]
    assert [(e.code, e.subject) for e in skipped] == [(JOB_OVERLAP, "backup")] * 2
    backup._runner = None  # its run ended
    jobs.run(backup, (), "by hand")
    assert launched == [()]
    [ended] = published[2:]  # one resolution ends both
    assert isinstance(ended, AlertResolved)
    assert (ended.code, ended.subject) == (JOB_OVERLAP, "backup")
    jobs.run(backup, (), "by hand")  # nothing open: nothing to end
    assert len(published) == 3


def test_a_hold_outlasts_a_restart_of_the_supervisor(tmp_path: Path) -> None:
    # Before, holds were kept in memory only: after a restart a held daemon started again
    # and a held job ran at its next due time, silently.
    fakes = Fakes(tmp_path)
    daily = 'schedule = [{ at = "21:00", days = "daily" }]'
    programs = fakes.program("d", "daemon") + fakes.program("j", "job", extra=daily)
    gone = fakes.program("gone", "daemon")
    sup = SupervisorProcess(
        tmp_path, programs + gone, clock=sim_clock(kst(12, 0), 1.0), settings=NO_WRITER
    )
    sup.start(healthy=False)
    wait_until(
        lambda: all(sup.program(n)["state"] == "running" for n in ("d", "gone")), 30, "daemons"
    )
    for name in ("d", "gone", "j"):
        assert sup.ctl("stop", name).ok
    holds = tmp_path / "data" / "run" / "holds.json"
    assert json.loads(holds.read_text()) == ["d", "gone", "j"]
    assert holds.stat().st_mode & 0o777 == 0o600
    assert sup.terminate() == 0

    # Restarted 2 s before j is due, without `gone` in the configuration.
    again = SupervisorProcess(
        tmp_path, programs, clock=sim_clock(kst(20, 59, 58), 1.0), settings=NO_WRITER
    )
    again.start(healthy=False)
    wait_until(
        lambda: "j is held (stopped by a command): skipping its" in again.log.read_text(),
        30,
        "j's 21:00 run skipped",
    )
    assert fakes.runs("j") == 0
    assert again.program("d")["state"] == "stopped" and fakes.runs("d") == 1
    assert "held" in again.program("d")["detail"]
    log = again.log.read_text()
    assert "d stays stopped: held by a command before the supervisor restarted" in log
    assert "gone was held by a command; it is no longer run here: hold dropped" in log
    assert json.loads(holds.read_text()) == ["d", "j"]

    assert again.ctl("run", "j").ok  # a run by hand ends the hold, and so does a start
    assert json.loads(holds.read_text()) == ["d"]
    assert again.ctl("start", "d").ok
    assert json.loads(holds.read_text()) == []
    assert fakes.runs("j") == 1 and fakes.runs("d") == 2
    assert again.terminate() == 0


def test_an_outbox_that_fails_is_said_and_the_supervisor_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox raises the bus's errors, which are no `ObserverError`: the handler meant to
    say so and supervise on never caught them, and the alert's failure ended the caller."""
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[supervisor]\nmetrics_port = 0\n'
    )
    clock = SimulatedClock(int(kst(21, 0).timestamp() * 1e9), 1.0)
    sup = Supervisor(load_settings(config), config, clock)

    def full(event: Event) -> int:
        raise OutboxFull("the outbox's volume is full")

    try:
        sup.producer.send = full  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="observer.supervisor"):
            sup._publish(Alert(severity="warning", code="job_overlap", message="backup"))
    finally:
        sup.producer.close(0)
    assert "cannot publish Alert: the outbox's volume is full" in caplog.text
