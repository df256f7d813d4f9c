"""The jobs' runs: when due, when missed while no supervisor ran, after the jobs they follow.

Each due run is recorded per job in ``<run_dir>/schedule.json`` (owner-only, replaced
atomically and durably; an unreadable one is set aside, alerted): *pending* once started or
queued, *done* once dealt with. At its start a supervisor runs the latest run missed within
``catch_up`` (or left pending by a stop) once, and warns ``job_run_skipped`` about older ones
(`Jobs`). A job held by a command is run only by ``ctl run``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import msgspec

from bus.events import Alert, Event
from observer.alerts.book import AlertBook
from observer.calendar.phases import KST
from observer.calendar.timeline import Timeline
from observer.process.private_files import write_private
from observer.process.state_files import read_state
from observer.runtime import ShortTasks
from observer.supervisor.program import Program, State
from observer.supervisor.schedule import due_runs, missed_run, next_run
from observer.supervisor.settings import ScheduleEntry

__all__ = ["JOB_OVERLAP", "RUN_SKIPPED", "Jobs", "running_before"]

log = logging.getLogger(__name__)

_Time = Annotated[datetime, msgspec.Meta(tz=True)]
_MISSED = "missed while no supervisor ran"
_INTERRUPTED = "interrupted by the supervisor's restart"
RUN_SKIPPED = "job_run_skipped"  # the alert of due runs a supervisor's start gave up
# A due run skipped because the job's previous run was still under way (subject: the job),
# resolved when the job's next run starts
JOB_OVERLAP = "job_overlap"
# How far back a start looks for runs it gives up (a host off for months: one alert still).
_SKIPPED_LOOKBACK = timedelta(days=31)
_BEYOND = "due, or interrupted, over [supervisor] catch_up_s ago while no supervisor ran it"


class _Pending(msgspec.Struct, omit_defaults=True):
    """A job's record while a due run of it is under way (started or queued, not ended)."""

    pending: _Time
    done: _Time | None = None


# A plain time: the last due run dealt with, nothing under way (the only form before the
# pending runs were kept: such a file still reads the same).
_Record = dict[str, _Time | _Pending]


def _decode(data: bytes) -> _Record:
    return msgspec.json.decode(data, type=_Record)


def running_before(job: Program, programs: Mapping[str, Program]) -> list[Program]:
    """The jobs ``job`` follows (its ``after``) that run on this host now."""
    return [
        programs[name] for name in job.settings.after if name in programs and programs[name].active
    ]


class Jobs:
    """Run the jobs among ``programs``: when due, caught up at start, after those they follow.

    A run is *done* once it exited 0, was parked FATAL (alerted), was skipped (held, or the
    job still ran: alerted), or the job was stopped by a command; one a supervisor's stop
    ended (its process killed, or its queued run dropped) stays pending. At its start a
    supervisor runs once the latest run of each job due within ``catch_up`` after the
    record's last done one, or the pending one if no older (without a record, one due within
    ``catch_up``): a backup due at 21:00 while supervisord restarted it runs at 21:00:30. A
    ``run_on_start`` job's start-up run takes a missed run's place, with that entry's
    ``args`` (the token's 08:30 ``--renew``). Older missed or pending runs are not run: one
    ``job_run_skipped`` warning per job says so at the start, and how to run it by hand.

    Parameters
    ----------
    programs:
        This host's programs; the jobs are those of kind ``job``.
    timeline:
        The calendar the schedule's days follow.
    record:
        The file of each job's last due run dealt with, and the one under way.
    tasks:
        Where a run waiting for the jobs it follows waits.
    publish:
        Sends the supervisor's events (an overlap's alert).
    catch_up:
        How long ago a run missed while no supervisor ran, or one a restart interrupted, may
        have come due and still run.
    """

    def __init__(
        self,
        programs: Mapping[str, Program],
        timeline: Timeline,
        record: Path,
        tasks: ShortTasks,
        publish: Callable[[Event], None],
        catch_up: timedelta,
        alerts: AlertBook | None = None,
    ) -> None:
        """``alerts``: the supervisor's book, publishing as ``publish`` does (else its own)."""
        self.programs = programs
        self._catch_up = catch_up
        self.jobs = [p for p in programs.values() if p.kind == "job"]
        self._timeline = timeline
        self._record = record
        self._tasks = tasks
        self._publish = publish
        self._alerts = alerts or AlertBook(publish)
        self._done: dict[str, datetime] = {}
        self._pending: dict[str, datetime] = {}
        self._read()

    def start(self, now: datetime) -> None:
        """At the supervisor's start: the start-up runs, then each run missed meanwhile."""
        missed = []
        for job in self.jobs:
            owed = self._owed(job, now)
            if job.settings.run_on_start:  # the start-up run is the one owed, with its args
                if owed is None:
                    self.run(job, (), "start-up")
                    continue
                (at, entry), why = owed
                log.warning(
                    "%s's start-up run takes the place of its %s run %s%s",
                    job.name,
                    f"{at.astimezone(KST):%H:%M}",
                    why,
                    f" (with {' '.join(entry.args)})" if entry.args else "",
                )
                self.run(job, entry.args, "start-up", at)
            elif owed is not None:
                missed.append((owed, job))
        for ((at, entry), why), job in sorted(missed, key=lambda each: each[0][0][0]):
            hhmm = f"{at.astimezone(KST):%H:%M}"
            log.warning("running the %s %s run %s", hhmm, job.name, why)
            short = (
                f"missed at {hhmm}" if why == _MISSED else f"due {hhmm}, interrupted by a restart"
            )
            self.run(job, entry.args, short, at)

    def run_due(self, since: datetime, until: datetime) -> None:
        """Run each job's runs due in ``(since, until]``."""
        for job in self.jobs:
            for at, entry in due_runs(self._timeline, job.settings.schedule, since, until):
                self.run(job, entry.args, f"scheduled {at.astimezone(KST):%H:%M}", at)

    def next_due(self, now: datetime, until: datetime) -> datetime:
        """The first run due after ``now``, or ``until`` if none is due before it."""
        for job in self.jobs:
            for entry in job.settings.schedule:
                until = min(until, next_run(self._timeline, entry, now))
        return until

    def run(
        self, job: Program, args: tuple[str, ...], why: str, due: datetime | None = None
    ) -> None:
        """Run ``job`` now, or once the jobs it follows have ended; ``due``: its due time."""
        if job.held:
            log.info("%s is held (stopped by a command): skipping its %s run", job.name, why)
            self._deal(job, due, settle=True)
            return
        if job.active or job.queued is not None:
            log.warning("%s is still running; skipping its %s run", job.name, why)
            message = f"{job.name} still running ({why})"
            # Each skipped run said; the next run that starts ends them all
            self._alerts.raise_(JOB_OVERLAP, job.name, "warning", message, again=True)
            self._deal(job, due, settle=False)  # the run under way stays pending
            return
        if due is not None:
            self._pending[job.name] = due
            self._write()
        before = running_before(job, self.programs)
        if not before:
            log.info("running %s (%s)", job.name, why)
            self._launch(job, args, why)
            return
        names = ", ".join(p.name for p in before)
        log.info("%s (%s) waits for %s to end", job.name, why, names)
        job.detail = f"due ({why}), waiting for {names} to end"
        job.queued = self._tasks.spawn(self._run_after(job, before, args, why), f"after-{job.name}")

    async def _run_after(
        self, job: Program, before: list[Program], args: tuple[str, ...], why: str
    ) -> None:
        try:
            # Again until none runs: two jobs waiting for the same one both wake at its end,
            # and the one launched first is then running for the other.
            while before:
                await asyncio.gather(*(p.ended() for p in before))
                before = running_before(job, self.programs)
        finally:
            if job.queued is asyncio.current_task():
                job.queued = None
        if job.held:  # stopped by a command meanwhile
            log.info("%s is held (stopped by a command): skipping its %s run", job.name, why)
            return
        log.info("running %s (%s, after the jobs it follows)", job.name, why)
        self._launch(job, args, why)

    def _launch(self, job: Program, args: tuple[str, ...], why: str) -> None:
        job.launch(args)
        self._alerts.resolve(JOB_OVERLAP, job.name, f"{job.name} runs again ({why})")

    def drop_queued(self) -> None:
        """Drop every run waiting for the jobs it follows (the supervisor stops).

        Their due runs stay pending: the next supervisor runs them (`start`).
        """
        for job in self.jobs:
            job.unqueue("the supervisor stops")

    def ended(self, job: Program, action: str, code: int | None) -> None:
        """A lifecycle transition of ``job``: a run that exited 0 or was parked is dealt with.

        A run that failed and is retried is not (its retry may be a stop's victim), nor one
        a stop ended: a command's stop holds the job (`settle`), the supervisor's does not.
        """
        if action == "parked" or (action == "exited" and code == 0 and job.state is State.EXITED):
            self.settle(job)

    def settle(self, job: Program) -> None:
        """Record ``job``'s due run under way, if any, as dealt with."""
        self._deal(job, None, settle=True)

    def _owed(
        self, job: Program, now: datetime
    ) -> tuple[tuple[datetime, ScheduleEntry], str] | None:
        """The run of ``job`` a supervisor that starts at ``now`` runs, and why; None if none."""
        schedule, window = job.settings.schedule, self._catch_up
        handled = self._done.get(job.name)
        missed = missed_run(self._timeline, schedule, now, window, handled)
        pending = self._pending.get(job.name)
        if pending is None:
            if missed is None:  # else it takes the place of any older one
                self._give_up(job, now, handled, None, _BEYOND)
            return None if missed is None else (missed, _MISSED)
        hhmm = f"{pending.astimezone(KST):%H:%M}"
        if missed is not None and missed[0] > pending:  # a later entry takes its place
            log.warning(
                "the %s %s run was %s; its later run takes its place", hhmm, job.name, _INTERRUPTED
            )
            return missed, _MISSED
        if not window or pending <= now - window:
            log.warning(
                "the %s %s run was %s over [supervisor] catch_up_s ago: not run again",
                hhmm,
                job.name,
                _INTERRUPTED,
            )
            self._give_up(job, now, handled, pending, _BEYOND)
        elif runs := due_runs(
            self._timeline, schedule, pending - timedelta(microseconds=1), pending
        ):
            return runs[-1], _INTERRUPTED
        else:
            log.warning(
                "the %s %s run was %s and is no longer scheduled: not run again",
                hhmm,
                job.name,
                _INTERRUPTED,
            )
            self._give_up(job, now, handled, pending, "interrupted, and no longer scheduled")
        self.settle(job)  # said so: not again at every start
        return None

    def _give_up(
        self,
        job: Program,
        now: datetime,
        handled: datetime | None,
        pending: datetime | None,
        why: str,
    ) -> None:
        """Alert the runs of ``job`` this start does not run (``why``); record them as dealt with.

        They are ``pending`` (interrupted), and those due over ``catch_up`` ago after the
        record's last dealt with. Without a record (a first start) none is known to be missed.
        """
        since = max((t for t in (handled, pending) if t is not None), default=None)
        if since is None:
            return
        since = max(since, now - _SKIPPED_LOOKBACK)
        older = due_runs(self._timeline, job.settings.schedule, since, now - self._catch_up)
        given_up = ([pending] if pending is not None else []) + [at for at, _ in older]
        if not given_up:
            return
        latest = max(given_up)
        runs = f"{len(given_up)} due run{'s' * (len(given_up) > 1)}"
        message = (
            f"{job.name}: {runs} not run, the latest due {latest.astimezone(KST):%Y-%m-%d %H:%M} "
            f"KST ({why}); `observer ctl run {job.name}` runs it now"
        )
        log.warning("%s", message)
        self._publish(
            Alert(severity="warning", code=RUN_SKIPPED, message=message, subject=job.name)
        )
        self._deal(job, latest, settle=False)

    def _deal(self, job: Program, due: datetime | None, *, settle: bool) -> None:
        """Record ``due`` as dealt with, and with ``settle`` the run under way too."""
        pending = self._pending.pop(job.name, None) if settle else None
        latest = max((t for t in (due, pending) if t is not None), default=None)
        done = self._done.get(job.name)
        if latest is not None and (done is None or latest > done):
            self._done[job.name] = latest
        elif pending is None:
            return  # nothing changed
        self._write()

    def _read(self) -> None:
        lost = (
            "the jobs' missed and interrupted runs are judged without it, as at a first start: "
            "each job's latest run due within catch_up_s runs"
        )
        record = read_state(self._record, _decode, lost, self._publish)
        for name, entry in (record or {}).items():
            if isinstance(entry, datetime):
                self._done[name] = entry
                continue
            self._pending[name] = entry.pending
            if entry.done is not None:
                self._done[name] = entry.done

    def _write(self) -> None:
        record: _Record = dict(self._done)
        for name, pending in self._pending.items():
            record[name] = _Pending(pending, self._done.get(name))
        try:
            write_private(self._record, msgspec.json.encode(record))
        except OSError as exc:  # a full disk must not stop the schedule
            log.error("cannot record the jobs' due runs in %s: %s", self._record, exc)
