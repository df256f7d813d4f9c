"""Threshold rules: alerts when a metric passes its limit, resolutions when it is back.

The supervisor holds the metrics: heartbeat counters, run times, and the data ages and
enrichment figures it reads (`observer.supervisor.readings`). `metrics_of` names them as the
rules do (``gap_recovery.success_pct``, ``age_h.master_file``, ``enrichment.coverage_pct.kr``);
`Rules` raises each breach once and resolves its end in the supervisor's `AlertBook`. Names
are checked at load (`observer.config.checks`) and counters as programs report them
(`observer.supervisor.rule_counters`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from observer.alerts.book import AlertBook
from observer.alerts.settings import ThresholdRule, enrichment_rules
from observer.supervisor.program import Program, State

__all__ = ["RuleChange", "Rules", "enrichment_rules", "metrics_of"]

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
class RuleChange:
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
    """The configured rules; a breach is its rule's alert, open in ``alerts`` until it ends."""

    rules: tuple[ThresholdRule, ...]
    alerts: AlertBook

    def judge(self, metrics: Mapping[str, float]) -> list[RuleChange]:
        """Raise or resolve the rules whose state changed; those changes.

        A metric nobody reports leaves its rule as it was.
        """
        changes = []
        for rule in self.rules:
            value = metrics.get(rule.metric)
            if value is None:
                continue
            over = (rule.above is not None and value > rule.above) or (
                rule.below is not None and value < rule.below
            )
            if over != self.alerts.is_open(rule.code):
                change = RuleChange(rule, value, over)
                if over:
                    self.alerts.raise_(rule.code, "", rule.severity, change.message)
                else:
                    self.alerts.resolve(rule.code, "", change.message)
                changes.append(change)
        return changes
