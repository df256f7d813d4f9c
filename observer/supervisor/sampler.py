"""The supervisor's sampler: CPU and RSS per program, their limits, and the threshold rules.

Every ``sample_interval_s`` psutil measures each live program; the sums are checked against
``cpu_high`` and ``memory_high``, and the threshold rules (`observer.supervisor.rules`,
`observer.supervisor.rule_counters`) are judged. Each breach is one alert open in the
supervisor's `AlertBook`; while the database is read, it judges only after the first reading
has taken over its predecessor's: it neither alerts a breach again nor leaves one unresolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping

import psutil

from observer.alerts.book import AlertBook
from observer.config.tree import Settings
from observer.supervisor.program import Program, State
from observer.supervisor.readings import DatabaseReadings
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
        alerts: AlertBook,
    ) -> None:
        self.settings = settings
        self.programs = programs
        self.readings = readings
        self.samples: dict[str, tuple[float, int]] = {}  # program -> (cpu %, rss)
        self.alerts = alerts  # the supervisor's
        rules = (*settings.supervisor.rules, *enrichment_rules(settings.enrich))
        self.rules = Rules(rules, alerts)
        self.counters = RuleCounters(self.rules.rules, programs, alerts)
        self.after_reading = False  # set when the database is read: judge after its first read
        self._psutil: dict[str, psutil.Process] = {}

    @property
    def codes(self) -> set[str]:
        """The alerts it raises and resolves: the limits', the rules', unknown counters'."""
        return {*LIMIT_CODES, *(rule.code for rule in self.rules.rules), RULE_METRIC_UNKNOWN}

    def taken_over(self, rules: Iterable[str]) -> None:
        """The predecessor's open ``rule_metric_unknown`` alerts of these rules, now in the book.

        Those of a rule no longer watched here are resolved: nothing else would end them.
        """
        for event in self.counters.taken_over(rules):
            self.alerts.send(event)

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
        for change in self.rules.judge(metrics):  # raised and resolved there
            if change.breached:
                log.warning("%s: %s", change.rule.code, change.message)
        for event in self.counters.judge():
            self.alerts.send(event)

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
        if over and self.alerts.raise_(code, "", "warning", message):
            log.warning("%s", message)
        elif not over:
            self.alerts.resolve(code, "", message)
