"""The supervisor's sampler: CPU and RSS per program, their limits, and the threshold rules.

Every ``sample_interval_s`` psutil measures each live program; the sums are checked against
the configured limits (``cpu_high``, ``memory_high``) and the threshold rules are judged
(`observer.supervisor.rules`), each breach one alert and its end one resolution, and so are
the rules whose heartbeat counter their program does not report
(`observer.supervisor.rule_counters`). What is breached is in memory: a supervisor started
again takes over its predecessor's open alerts of these codes (`inherit`, at its first
database reading) and, while the database is read, judges only after that reading, so it
neither alerts a breach again nor leaves one unresolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Set

import psutil

from bus.events import Alert, AlertResolved, Event
from observer.alerts.states import parse_alert_id
from observer.cluster.hosts import own_source
from observer.config.tree import Settings
from observer.supervisor.program import Program, State
from observer.supervisor.readings import DatabaseReadings
from observer.supervisor.roles import supervisor_source
from observer.supervisor.rule_counters import RULE_METRIC_UNKNOWN, RuleCounters
from observer.supervisor.rules import Rules, enrichment_rules, metrics_of

__all__ = ["LIMIT_CODES", "Sampler"]

log = logging.getLogger(__name__)

_ALIVE = (State.STARTING, State.RUNNING, State.STOPPING)
LIMIT_CODES = ("cpu_high", "memory_high")


class Sampler:
    """Measure the programs and judge the limits and rules (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        programs: Mapping[str, Program],
        readings: DatabaseReadings,
        publish: Callable[[Event], None],
    ) -> None:
        self.settings = settings
        self.programs = programs
        self.readings = readings
        self.samples: dict[str, tuple[float, int]] = {}  # program -> (cpu %, rss)
        self.rules = Rules((*settings.supervisor.rules, *enrichment_rules(settings.enrich)))
        self.counters = RuleCounters(self.rules.rules, programs)
        self.alerting: set[str] = set()  # of LIMIT_CODES
        self.after_reading = False  # set when the database is read: judge after its first read
        self._publish = publish
        self._psutil: dict[str, psutil.Process] = {}

    def inherit(self, codes: Set[str]) -> set[str]:
        """Take over these open alerts' breaches (codes alerted without a subject); which.

        Also this supervisor's open ``rule_metric_unknown`` alerts, one per rule (its
        subject), from the reading being taken over (`DatabaseReadings.open_alerts`).
        """
        limits = {code for code in LIMIT_CODES if code in codes}
        self.alerting |= limits
        taken = limits | self.rules.inherit(codes)
        settings = self.settings  # the producer's source (`observer.runtime.producer_for`)
        ours = own_source(
            settings.supervisor,
            supervisor_source(settings.supervisor.role, settings.supervisor.host),
        )
        rules = {
            notice.subject
            for notice in self.readings.open_alerts
            if notice.code == RULE_METRIC_UNKNOWN and parse_alert_id(notice.id)[0] == ours
        }
        if rules:
            taken.add(RULE_METRIC_UNKNOWN)
            for event in self.counters.inherit(rules):
                self._publish(event)
        return taken

    async def follow(self, stop: asyncio.Event) -> None:
        """Sample every interval until ``stop``."""
        interval = self.settings.supervisor.sample_interval_s
        while not stop.is_set():
            for program in list(self.programs.values()):
                self.samples[program.name] = self._measure(program)
            self.counters.observe()  # every sample: a beat seen only while not judging counts
            if not self.after_reading or self.readings.up is not None:
                self._judge()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    def _judge(self) -> None:
        cpu = sum(s[0] for s in self.samples.values())
        rss = sum(s[1] for s in self.samples.values())
        limits = self.settings.supervisor
        self._threshold(
            "cpu_high",
            cpu > limits.cpu_alert_percent,
            f"programs use {cpu:.0f}% CPU (limit {limits.cpu_alert_percent:g}%)",
        )
        self._threshold(
            "memory_high",
            rss > limits.rss_alert_bytes,
            f"programs use {rss >> 20} MiB (limit {limits.rss_alert_bytes >> 20} MiB)",
        )
        readings = self.readings
        metrics = metrics_of(self.programs.values(), readings.ages_h, readings.enrichment)
        for change in self.rules.judge(metrics):
            rule = change.rule
            if change.breached:
                log.warning("%s: %s", rule.code, change.message)
                self._publish(Alert(severity=rule.severity, code=rule.code, message=change.message))
            else:
                self._publish(
                    AlertResolved(code=rule.code, severity=rule.severity, message=change.message)
                )
        for event in self.counters.judge():
            self._publish(event)

    def _measure(self, program: Program) -> tuple[float, int]:
        if program.state not in _ALIVE or not program.pid:
            self._psutil.pop(program.name, None)
            return (0.0, 0)
        proc = self._psutil.get(program.name)
        try:
            if proc is None or proc.pid != program.pid:
                proc = self._psutil[program.name] = psutil.Process(program.pid)
            return (proc.cpu_percent(None), proc.memory_info().rss)
        except psutil.Error:
            return (0.0, 0)

    def _threshold(self, code: str, over: bool, message: str) -> None:
        if over and code not in self.alerting:
            self.alerting.add(code)
            log.warning("%s", message)
            self._publish(Alert(severity="warning", code=code, message=message))
        elif not over and code in self.alerting:
            self.alerting.discard(code)
            self._publish(AlertResolved(code=code, severity="warning", message=message))
