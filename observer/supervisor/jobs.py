"""The jobs' runs: when due, when missed while no supervisor ran, after the jobs they follow.

Each due run a supervisor deals with (runs, queues behind the jobs it follows, or skips) is
recorded per job in ``<run_dir>/schedule.json`` (owner-only, replaced atomically). At its
start a supervisor runs once the latest run of each job that came due within ``catch_up``
(``[supervisor] catch_up_s``, 6 h) and after what that record says was dealt with: a
backup due at 21:00 while supervisord restarted the supervisor runs at 21:00:30, instead of
not at all that day. Without a record (a first start) a run due within ``catch_up`` is run
too. A job that runs at every start (``run_on_start``) is not run a second time for a
missed run.

A job stopped by a command (``held``) is not run by the schedule, nor by a run that waited
for the jobs it follows, until ``ctl run`` runs it.
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
from observer.phases import KST
from observer.private_files import write_private
from observer.runtime import ShortTasks
from observer.supervisor.program import Program
from observer.supervisor.schedule import due_runs, missed_run, next_run
from observer.timeline import Timeline

__all__ = ["Jobs", "running_before"]

log = logging.getLogger(__name__)

_Record = dict[str, Annotated[datetime, msgspec.Meta(tz=True)]]


def running_before(job: Program, programs: Mapping[str, Program]) -> list[Program]:
    """The jobs ``job`` follows (its ``after``) that run on this host now."""
    return [
        programs[name] for name in job.settings.after if name in programs and programs[name].active
    ]


class Jobs:
    """Run the jobs among ``programs`` (see the module docstring).

    Parameters
    ----------
    programs:
        This host's programs; the jobs are those of kind ``job``.
    timeline:
        The calendar the schedule's days follow.
    record:
        The file of each job's last due run dealt with.
    tasks:
        Where a run waiting for the jobs it follows waits.
    publish:
        Sends the supervisor's events (an overlap's alert).
    catch_up:
        How long ago a run missed while no supervisor ran may have come due and still run.
    """

    def __init__(
        self,
        programs: Mapping[str, Program],
        timeline: Timeline,
        record: Path,
        tasks: ShortTasks,
        publish: Callable[[Event], None],
        catch_up: timedelta,
    ) -> None:
        self.programs = programs
        self._catch_up = catch_up
        self.jobs = [p for p in programs.values() if p.kind == "job"]
        self._timeline = timeline
        self._record = record
        self._tasks = tasks
        self._publish = publish
        self._handled = self._read()

    def start(self, now: datetime) -> None:
        """At the supervisor's start: the start-up runs, then each run missed meanwhile."""
        missed = []
        for job in self.jobs:
            run = missed_run(
                self._timeline,
                job.settings.schedule,
                now,
                self._catch_up,
                self._handled.get(job.name),
            )
            if job.settings.run_on_start:
                self.run(job, (), "start-up")
                if run is not None:  # the start-up run is this one
                    self._note(job, run[0])
            elif run is not None:
                missed.append((run, job))
        for (at, entry), job in sorted(missed, key=lambda each: each[0][0]):
            hhmm = f"{at.astimezone(KST):%H:%M}"
            log.warning("running the %s %s run missed while no supervisor ran", hhmm, job.name)
            self.run(job, entry.args, f"missed at {hhmm}", at)

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
        if due is not None:
            self._note(job, due)
        if job.held:
            log.info("%s is held (stopped by a command): skipping its %s run", job.name, why)
            return
        if job.active or job.queued is not None:
            log.warning("%s is still running; skipping its %s run", job.name, why)
            message = f"{job.name} still running ({why})"
            self._publish(Alert(severity="warning", code="job_overlap", message=message))
            return
        before = running_before(job, self.programs)
        if not before:
            log.info("running %s (%s)", job.name, why)
            job.launch(args)
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
        job.launch(args)

    def drop_queued(self) -> None:
        """Drop every run waiting for the jobs it follows (the supervisor stops)."""
        for job in self.jobs:
            job.unqueue("the supervisor stops")

    def _read(self) -> dict[str, datetime]:
        try:
            return msgspec.json.decode(self._record.read_bytes(), type=_Record)
        except FileNotFoundError:
            return {}
        except (OSError, msgspec.DecodeError) as exc:  # unreadable: as if none were kept
            log.warning("%s cannot be read (%s); judging missed runs without it", self._record, exc)
            return {}

    def _note(self, job: Program, due: datetime) -> None:
        """Record ``due`` as ``job``'s last due run dealt with."""
        if due <= self._handled.get(job.name, due - timedelta(1)):
            return
        self._handled[job.name] = due
        try:
            write_private(self._record, msgspec.json.encode(self._handled))
        except OSError as exc:  # a full disk must not stop the schedule
            log.error("cannot record %s's %s run in %s: %s", job.name, due, self._record, exc)
