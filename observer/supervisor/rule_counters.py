"""Threshold rules that name a heartbeat counter their program does not report.

The file's check (`observer.config.checks`) cannot know a program's free-form heartbeat
counters, so a misspelled one (``gap_recovery.sucess_pct``) would leave its rule silent.
`RuleCounters` alerts, once the program has shown its counters, one warning
``rule_metric_unknown`` per such rule (subject: its code), naming what the program reports;
resolved when the counter appears. Alerts are open in the supervisor's `AlertBook`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from bus.events import Event
from observer.alerts.book import AlertBook
from observer.alerts.settings import ThresholdRule
from observer.supervisor.program import Program, State

__all__ = ["RULE_METRIC_UNKNOWN", "RuleCounters"]

log = logging.getLogger(__name__)

RULE_METRIC_UNKNOWN = "rule_metric_unknown"
_NAMED_MAX = 20  # counters an alert names (Track B has some per account)


@dataclass(slots=True)
class _Reported:
    """What one program has reported, and whether it has shown all it reports."""

    names: set[str] = field(default_factory=set)  # every counter of every run
    shown: bool = False
    run: float = -1.0  # the run followed (its spawn time)
    last: Mapping[str, float] | None = None  # the counters of the latest beat seen
    beats: int = 0  # beats with counters seen in this run after the first one seen


@dataclass(frozen=True, slots=True)
class _Watched:
    rule: ThresholdRule
    program: str
    counter: str


class RuleCounters:
    """Alert the rules whose counter a program does not report.

    A daemon has shown its counters after two heartbeats with counters after READY; a session
    worker or job when a run that reached READY ends well (a session stopped at its phases'
    end with exit 0, a job that exited 0), since some counters come late (Track B's
    ``context_sync_s`` hours after READY, a job's figures in its last beat). A counter seen
    once stays known across runs. A predecessor's alerts, once taken over (`taken_over`),
    are resolved when their counter appears, or at once if no rule here names it.
    """

    def __init__(
        self,
        rules: Iterable[ThresholdRule],
        programs: Mapping[str, Program],
        alerts: AlertBook | None = None,
    ) -> None:
        self.programs = programs
        self.alerts = alerts or AlertBook(None)  # it hands its events over (`judge`)
        # The rules that name a heartbeat counter of a program this host runs.
        self.watched: dict[str, _Watched] = {}
        for rule in rules:
            name, _, counter = rule.metric.partition(".")
            if name in programs and counter != "running_s":  # running_s is the supervisor's
                self.watched[rule.code] = _Watched(rule, name, counter)
        self._reported: dict[str, _Reported] = {}

    def observe(self) -> None:
        """Take note of what the programs report now (every sample, judged or not)."""
        for name in {w.program for w in self.watched.values()}:
            _follow(self.programs[name], self._reported.setdefault(name, _Reported()))

    def judge(self) -> list[Event]:
        """The alerts and resolutions of rules whose counter became unknown or known."""
        events: list[Event] = []
        for code, watched in self.watched.items():
            reported = self._reported.get(watched.program)
            if reported is None:
                continue
            event: Event | None
            if watched.counter in reported.names:
                message = f"rule {code}: {watched.program} reports {watched.counter} now"
                if (
                    event := self.alerts.resolution(RULE_METRIC_UNKNOWN, code, message)
                ) is not None:
                    events.append(event)
            elif reported.shown and not self.alerts.is_open(RULE_METRIC_UNKNOWN, code):
                message = _message(watched, reported.names)
                log.warning("%s", message)
                if (
                    event := self.alerts.alert(RULE_METRIC_UNKNOWN, code, "warning", message)
                ) is not None:
                    events.append(event)
        return events

    def taken_over(self, subjects: Iterable[str]) -> list[Event]:
        """The predecessor's open alerts of these rules, now in the book: which to resolve.

        Those of a rule no longer watched here (corrected, removed, or its program runs
        elsewhere): nothing else would end them.
        """
        events: list[Event] = []
        for code in sorted(set(subjects) - self.watched.keys()):
            message = f"rule {code} names no counter of a program here any more"
            if (event := self.alerts.resolution(RULE_METRIC_UNKNOWN, code, message)) is not None:
                events.append(event)
        return events


def _follow(program: Program, reported: _Reported) -> None:
    """Add what ``program`` reports now; judge whether it has shown its counters."""
    if program.started_at != reported.run:  # a new run
        reported.run, reported.last, reported.beats = program.started_at, None, 0
    counters = program.counters
    reported.names.update(counters)
    if reported.shown or not counters:
        return
    if program.kind == "daemon":
        # Each notice with counters brings a dict of its own, so a new one is a new beat; the
        # first seen while running may be the READY's.
        if program.state is State.RUNNING and counters is not reported.last:
            reported.beats += reported.last is not None
            reported.last = counters
        reported.shown = reported.beats >= 2
    elif program.ready_at:  # this run reached READY: has it ended well?
        if program.kind == "job":
            reported.shown = program.state is State.EXITED
        else:
            reported.shown = program.state is State.STOPPED and program.last_exit == 0


def _message(watched: _Watched, names: Set[str]) -> str:
    """What an operator reads: the rule, the counter, and the counters there are."""
    listed = sorted(names)
    more = len(listed) - _NAMED_MAX
    reports = ", ".join(listed[:_NAMED_MAX]) + (f" and {more} more" if more > 0 else "")
    return (
        f"rule {watched.rule.code}: {watched.program} reports no counter "
        f"{watched.counter!r}, so {watched.rule.metric} is never judged "
        f"(it reports {reports})"
    )
