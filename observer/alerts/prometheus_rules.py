"""Prometheus twins of the supervisor's threshold rules: config/prometheus/thresholds.yml.

`prometheus_rules` renders the threshold rules (`observer.alerts.settings`) that have a twin in
`TWINS` as a Prometheus rules file: each twin keeps its rule's limit, comparison and severity,
reads the metric the supervisor serves for the rule's figure (`observer.supervisor.families`)
and adds what only Prometheus has: a name, a ``for:`` hold, annotations. A rule without a twin
is judged by the supervisor alone and the file's header names it; the rules Prometheus alone
evaluates are in config/prometheus/alerts.yml. ``observer alerts prometheus-rules`` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from observer.alerts.settings import ThresholdRule

__all__ = ["TWINS", "Twin", "prometheus_rules"]

GROUP = "observer-thresholds"


@dataclass(frozen=True, slots=True)
class Twin:
    """The Prometheus alert of the rule ``code`` on ``metric``.

    A rule per region (``<code>_<region>`` on ``<metric>.<region>``, `enrichment_rules`) has one
    twin over every region's series when the regions share their limit. ``unit`` converts the
    rule's limit into the served metric's: ``percent`` to a 0-1 ratio, ``hours`` to seconds.
    ``description`` may name the limit as ``{limit}``, in the rule's own unit.
    """

    code: str
    metric: str
    alert: str
    expr: str  # the PromQL of the rule's figure, compared with the limit
    hold: str  # for: how long the limit is passed before the alert fires
    summary: str
    description: str
    unit: Literal["", "percent", "hours"] = ""


TWINS = (
    Twin(
        "gap_success_low",
        "gap_recovery.success_pct",
        "ObserverGapRecoveryLow",
        "observer_gap_recovery_success_ratio",
        "10m",
        "Gap recovery recovers {{ $value | humanizePercentage }} of the settled gaps",
        "Below {limit} %: `observer gap-recovery report` lists what could not be recovered.",
        unit="percent",
    ),
    Twin(
        "gap_queue_high",
        "gap_recovery.queue_depth",
        "ObserverGapQueueHigh",
        "observer_gap_recovery_queue_depth",
        "5m",
        "{{ $value }} gaps wait for recovery",
        "Gap recovery falls behind (rate limits, or KIS errors on minute bars).",
    ),
    Twin(
        "master_file_stale",
        "age_h.master_file",
        "ObserverMasterFileStale",
        "observer_master_file_age_seconds",
        "10m",
        "The master files were last checked {{ $value | humanizeDuration }} ago",
        "The master-file job has not run or failed: `observer ctl status`, its log.",
        unit="hours",
    ),
    Twin(  # the newest run of any region, as the supervisor reads age_h.enrichment
        "enrichment_stale",
        "age_h.enrichment",
        "ObserverEnrichmentStale",
        "min(observer_enrichment_last_run_age_seconds)",
        "10m",
        "The latest sector enrichment ran {{ $value | humanizeDuration }} ago",
        "The enrich job has not run or failed: `observer ctl status`, its log, "
        "`observer enrich report`.",
        unit="hours",
    ),
    Twin(
        "enrichment_coverage_low",
        "enrichment.coverage_pct",
        "ObserverEnrichmentCoverageLow",
        "observer_enrichment_coverage_percent",
        "10m",
        "{{ $labels.region }}: {{ $value }}% of the stocks have a sector",
        "Codes without a mapping or a failing fallback: `observer enrich unmapped`, "
        "`observer enrich report`.",
    ),
)


def _twin_of(rule: ThresholdRule) -> Twin | None:
    for twin in TWINS:
        if (rule.code, rule.metric) == (twin.code, twin.metric):
            return twin
        region = rule.metric.removeprefix(f"{twin.metric}.")
        if region != rule.metric and rule.code == f"{twin.code}_{region}":
            return twin
    return None


def _limit(value: float, unit: str) -> str:
    if unit == "percent":
        return f"{value / 100:.12g}"
    if unit == "hours":
        return f"{value:.12g} * 3600"
    return f"{value:.12g}"


def _rule_lines(twin: Twin, rule: ThresholdRule) -> list[str]:
    above = rule.above is not None
    value = rule.above if rule.above is not None else rule.below
    assert value is not None  # ThresholdRule takes exactly one
    description = twin.description.replace("{limit}", f"{value:g}")
    return [
        f"      - alert: {twin.alert}",
        f"        expr: {twin.expr} {'>' if above else '<'} {_limit(value, twin.unit)}",
        f"        for: {twin.hold}",
        "        labels:",
        f"          severity: {rule.severity}",
        "        annotations:",
        f"          summary: {json.dumps(twin.summary, ensure_ascii=False)}",
        f"          description: {json.dumps(description, ensure_ascii=False)}",
    ]


def prometheus_rules(rules: Iterable[ThresholdRule]) -> str:
    """The rules file of the twins of ``rules``, in `TWINS`' order.

    Raises ValueError when the rules of one twin (a rule per region) differ in their limit,
    comparison or severity: one Prometheus rule could not stand for them all.
    """
    judged: dict[Twin, ThresholdRule] = {}
    alone: list[str] = []
    for rule in rules:
        twin = _twin_of(rule)
        if twin is None:
            alone.append(rule.code)
            continue
        first = judged.setdefault(twin, rule)
        if (first.above, first.below, first.severity) != (rule.above, rule.below, rule.severity):
            raise ValueError(f"rules {first.code} and {rule.code} differ: {twin.alert} is one rule")
    lines = [
        "# Generated by `observer alerts prometheus-rules` from the supervisor's threshold rules",
        "# ([supervisor] rules, and [enrich]'s): do not edit; change the rules, then regenerate.",
        "# Each alert here is a rule's twin: its limit, comparison and severity on the metric the",
        "# supervisor serves, held for `for:`; it still fires when the observer cannot alert.",
        f"# Judged by the supervisor alone: {', '.join(alone) or 'none'}.",
        "groups:",
        f"  - name: {GROUP}",
        "    rules:",
    ]
    twins = [twin for twin in TWINS if twin in judged]
    for n, twin in enumerate(twins):
        lines += ([""] if n else []) + _rule_lines(twin, judged[twin])
    if not twins:
        lines[-1] += " []"
    return "\n".join(lines) + "\n"
