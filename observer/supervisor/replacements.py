"""Daemons and session workers replaced after a hang or a crash: one alert each, counted.

A *replacement* is a restart after a *hung* run (missed READY or heartbeat) or a *crashed*
one (a signal, any exit, or no start); stops asked for, jobs' failures and FATAL parks are
none. The first raises a warning ``program_replaced``; later ones fold into it until the
program goes `QUIET_S` from a READY without failing (or is held stopped). Escalation:
``program_crash_loop`` (`observer.supervisor.crash_loops`), ``program_fatal``. Daily counts
(KST) are kept in ``<run_dir>/replacements.json`` across the supervisor's restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.process.private_files import write_private
from observer.process.state_files import read_state
from observer.supervisor.crash_loops import CRASH_LOOP_WINDOW_S, CrashLoops
from observer.supervisor.program import Program, State

__all__ = ["CAUSES", "QUIET_S", "REPLACED_CODE", "Replacements"]

log = logging.getLogger(__name__)

REPLACED_CODE = "program_replaced"
CAUSES = ("hung", "crashed")
# As long as a crash loop's window: replacements that keep coming within it are one alert.
QUIET_S = CRASH_LOOP_WINDOW_S
HELD = "held by a command"


class _Kept(msgspec.Struct, frozen=True):
    """The file's content: the day (KST) and, per program, its replacements by cause."""

    day: str
    counts: dict[str, dict[str, int]]


class Replacements:
    """Alert, fold, resolve and count the replacements.

    A stop asked for (``ctl stop``, ``ctl restart``, the end of its phase) is no failure; a
    job's failed run is retried, named by ``ctl status`` and alerted by the job itself; a
    failure that parks the program FATAL replaces nothing (its alert is ``program_fatal``).
    ``program_replaced`` is resolved once the program has gone ``quiet_s`` from a READY
    without failing, or at once when a command holds it stopped while it is not running.
    The counts, per program and cause, feed ``ctl status``, ``/metrics`` and the demo's day.

    Parameters
    ----------
    alerts:
        The supervisor's alert book: the replacements alerted and not resolved (its
        predecessor's too, once taken over: `taken_over`).
    clock:
        The supervisor's clock: its day (KST) is the day counted, its time the one alerted.
    path:
        Where today's counts are kept.
    quiet_s:
        Real seconds from a READY without a failure that resolve a program's alert.
    """

    def __init__(
        self,
        alerts: AlertBook,
        clock: Clock,
        path: Path,
        quiet_s: float = QUIET_S,
    ) -> None:
        self._alerts = alerts
        self._clock = clock
        self._path = path
        self._quiet_s = quiet_s
        self.loops = CrashLoops(alerts)  # the escalation of forgiven failures
        # An open alert's quiet window, from its program's READY: its end resolves it.
        self._windows: dict[str, asyncio.TimerHandle] = {}
        self._day = self._today()
        self._counts = self._restore()  # today's, by program and cause

    @property
    def open(self) -> set[str]:
        """The programs whose ``program_replaced`` is open."""
        return self._alerts.subjects(REPLACED_CODE)

    def today(self, name: str) -> dict[str, int]:
        """Program ``name``'s replacements today, by cause (each cause named, 0 or more).

        Read only: ``/metrics`` asks from its own thread.
        """
        counts = self._counts.get(name, {}) if self._day == self._today() else {}
        return {cause: counts.get(cause, 0) for cause in CAUSES}

    def seen(self, program: Program, action: str) -> None:
        """Judge a lifecycle transition of ``program`` (a job's are not judged here)."""
        if program.kind == "job":
            return
        if action == "restarting":
            self.replaced(program.name, program.hung, program.last_failure)
            # A loop counts only failures after a run that worked: its failure count was just
            # forgiven (or it is the first) and it had said READY. A daemon failing fast is
            # program_fatal's to alert, and one failing at start-up until a dependency is up,
            # then running, is no loop.
            if program.failures == 1 and program.ready_at:
                self.loops.failed(program.name)
        elif action == "ready":
            self.ran(program.name)
        elif action in ("exited", "parked"):
            self.failed(program.name)

    def replaced(self, name: str, hung: bool, why: str) -> None:
        """Program ``name`` failed (``hung``, else crashed) for ``why`` and is started again."""
        cause = CAUSES[0] if hung else CAUSES[1]
        self._count(name, cause)
        if self._alerts.is_open(REPLACED_CODE, name):  # folded into the open alert
            self.failed(name)
            log.warning("%s %s again (%s): %s today", name, cause, why, self._said(name))
            return
        at = now_utc(self._clock).astimezone(KST)
        message = (
            f"{name} {cause} ({why}) and was replaced at {at:%H:%M:%S}; later replacements "
            f"are counted in `observer ctl status` until it runs {self._window()} without one"
        )
        context = {"program": name, "cause": cause, "why": why, "at": at.isoformat()}
        self._alerts.raise_(REPLACED_CODE, name, "warning", message, context)

    def ran(self, name: str) -> None:
        """Program ``name`` said READY: its open alert ends after a quiet window from now."""
        if self._alerts.is_open(REPLACED_CODE, name):
            self.failed(name)
            loop = asyncio.get_running_loop()
            self._windows[name] = loop.call_later(self._quiet_s, self._quiet, name)

    def failed(self, name: str) -> None:
        """Program ``name``'s run failed: its quiet window, if one began, begins again later."""
        if (handle := self._windows.pop(name, None)) is not None:
            handle.cancel()

    def held(self, program: Program) -> None:
        """A command holds ``program`` stopped: the operator has taken it over.

        Its alert ends now if it had not said READY since its last failure (backing off,
        parked); stopped during its quiet window, the window ends it: it worked.
        """
        name = program.name
        if program.held and self._alerts.is_open(REPLACED_CODE, name) and name not in self._windows:
            self._resolve(name, f"{name}: {HELD}")

    def taken_over(
        self, replaced: Iterable[str], loops: Iterable[str], programs: Mapping[str, Program]
    ) -> None:
        """What a predecessor alerted, now open in the book: replacements, loops (`CrashLoops`).

        Those this supervisor alerted too are its own already. A program no longer run here
        is resolved at once, one held stopped too; one running now ends its alert after a
        quiet window from now, another after its next READY.
        """
        self.loops.taken_over(loops)
        for name in sorted(replaced):
            program = programs.get(name)
            if program is None or program.kind == "job":
                self._resolve(name, f"{name} is no longer a daemon or session worker here")
            elif program.held and not program.active:
                self._resolve(name, f"{name}: {HELD}")
            elif program.state is State.RUNNING:
                self.ran(name)

    def _quiet(self, name: str) -> None:
        self._resolve(
            name,
            f"{name} has run {self._window()} without failing since its last replacement "
            f"({self._said(name)} today)",
        )

    def _resolve(self, name: str, message: str) -> None:
        self.failed(name)
        self._alerts.resolve(REPLACED_CODE, name, message)

    def _window(self) -> str:
        minutes = self._quiet_s / 60
        return f"{minutes:g} minutes" if minutes >= 1 else f"{self._quiet_s:g} s"

    def _said(self, name: str) -> str:
        """``3 replacements (2 hung, 1 crashed)``: today's, in words."""
        counts = self.today(name)
        total = sum(counts.values())
        causes = ", ".join(f"{n} {cause}" for cause, n in counts.items() if n)
        return f"{total} replacement{'s' if total != 1 else ''} ({causes or 'none'})"

    # ------------------------------------------------------------------ the day's counts

    def _today(self) -> str:
        return now_utc(self._clock).astimezone(KST).date().isoformat()

    def _roll(self) -> None:
        """A new day (KST) counts from zero."""
        if (day := self._today()) != self._day:
            self._day, self._counts = day, {}

    def _count(self, name: str, cause: str) -> None:
        self._roll()
        counts = self._counts.setdefault(name, {})
        counts[cause] = counts.get(cause, 0) + 1
        try:
            write_private(self._path, msgspec.json.encode(_Kept(self._day, self._counts)))
        except OSError as exc:  # counted on in memory; a restart of the supervisor loses them
            log.error("cannot record today's replacements in %s: %s", self._path, exc)

    def _restore(self) -> dict[str, dict[str, int]]:
        """Today's counts kept by a predecessor; none from another day, or unreadable."""
        kept = read_state(
            self._path,
            lambda data: msgspec.json.decode(data, type=_Kept),
            "today's replacements count from 0",
            self._alerts.publish,
        )
        return kept.counts if kept is not None and kept.day == self._day else {}
