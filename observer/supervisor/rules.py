"""Threshold rules: alerts when a metric passes its limit, resolutions when it is back.

The supervisor is where the metrics are: every program's heartbeat counters arrive here,
it knows how long each program has run, and it reads the ages of data and each region's
enrichment figures from the database (`observer.supervisor.readings`) every ``data_age_s``.
`metrics_of` names them as the rules do (``gap_recovery.success_pct``,
``universe.running_s``, ``age_h.master_file``, ``enrichment.coverage_pct.kr``); `Rules`
remembers which rules are breached and says what changed, so each breach is one alert and
its end one resolution (`bus.events.AlertResolved` with the rule's code). A supervisor started
again takes over the breaches its predecessor alerted (`Rules.inherit`). A metric is checked
when the file loads (`observer.config.checks`), a heartbeat counter once its program reports
(`observer.supervisor.rule_counters`): a misspelled one would leave its rule silent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from observer.alerts.settings import ThresholdRule, enrichment_rules
from observer.supervisor.program import Program, State

__all__ = ["Change", "Rules", "enrichment_rules", "metrics_of"]

_RUNNING = (State.STARTING, State.RUNNING)


def metrics_of(
    programs: Iterable[Program],
    ages_h: Mapping[str, float],
    enrichment: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, float]:
    """Every metric a rule can name, as it stands now (``enrichment``: readings per region)."""
    metrics: dict[str, float] = {}
    now = time.monotonic()
    for program in programs:
        for name, value in program.counters.items():
            metrics[f"{program.name}.{name}"] = value
        running = program.state in _RUNNING and program.started_at
        metrics[f"{program.name}.running_s"] = now - program.started_at if running else 0.0
    for name, hours in ages_h.items():
        metrics[f"age_h.{name}"] = hours
    for region, figures in (enrichment or {}).items():  # every figure the file may name
        for figure, value in figures.items():
            metrics[f"enrichment.{figure}.{region.lower()}"] = value
    return metrics


@dataclass(frozen=True, slots=True)
class Change:
    """A rule that became breached (``breached``) or came back within its limit."""

    rule: ThresholdRule
    value: float
    breached: bool

    @property
    def message(self) -> str:
        """What an operator reads."""
        rule = self.rule
        limit = f"above {rule.above:g}" if rule.above is not None else f"below {rule.below:g}"
        verb = "is" if self.breached else "is no longer"
        return f"{rule.metric} {verb} {limit}: {self.value:g}"


@dataclass(slots=True)
class Rules:
    """The configured rules and which of them are breached."""

    rules: tuple[ThresholdRule, ...]
    breached: set[str] = field(default_factory=set)

    def inherit(self, codes: Set[str]) -> set[str]:
        """Take the rules among ``codes`` as breached (alerted by a predecessor); which."""
        taken = {rule.code for rule in self.rules if rule.code in codes}
        self.breached |= taken
        return taken

    def judge(self, metrics: Mapping[str, float]) -> list[Change]:
        """The rules whose state changed; a metric nobody reports leaves its rule as it was."""
        changes = []
        for rule in self.rules:
            value = metrics.get(rule.metric)
            if value is None:
                continue
            over = (rule.above is not None and value > rule.above) or (
                rule.below is not None and value < rule.below
            )
            if over != (rule.code in self.breached):
                (self.breached.add if over else self.breached.discard)(rule.code)
                changes.append(Change(rule, value, over))
        return changes
