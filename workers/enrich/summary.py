"""The summary of an ``observer enrich run`` or dry run: printed, and kept in the day's report.

`RunSummary` and `DryRunSummary` are what ``--json`` prints (their fields, in order);
`summary_text` is the lines for people, `write_summary` appends them to
``<data_dir>/enrich/report-YYYYMMDD.txt``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import msgspec

from observer.calendar.clock import Clock
from observer.calendar.phases import KST
from observer.config.tree import Settings
from workers.enrich.classify import Tally
from workers.enrich.kis_tier import CrossCheck

__all__ = ["DryRunSummary", "RunSummary", "summary_text", "write_summary"]


class DryRunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a dry run would ask, and how long it would take at most."""

    dry_run: bool = True
    mode: str  # "force" or "incremental"
    mapping_version: str
    regions: dict[str, Tally]
    kis_lookups: int
    kis_floor_s: float  # the KIS tier's wall-time floor: one call per stock at the jobs' share
    fallback_calls: int  # at most: KIS's lookups answer some of these first (retries not counted)
    fallback_max_s: float  # one limiter per host, shared by every region: the fallback's time


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a run did: its counts per region, its calls, and whether it was stopped."""

    dry_run: bool = False
    mode: str
    resumed: bool  # a killed run of the same regions and mode, taken up
    mapping_version: str
    regions: dict[str, Tally]
    kis_codes: int  # KIS industry codes fetched (HHDFS76370100)
    fallback_calls: int
    retries: int
    breaker_opens: int
    kis_calls: int
    duration_s: float
    stopped: bool
    cross_check: dict[str, CrossCheck]


def write_summary(settings: Settings, clock: Clock, summary: RunSummary) -> None:
    """Append a run's summary to the day's ``<data_dir>/enrich/report-YYYYMMDD.txt``."""
    day = datetime.fromtimestamp(clock.now_ns() / 1e9, KST).strftime("%Y%m%d")
    path = Path(settings.paths.data_dir) / "enrich" / f"report-{day}.txt"
    with path.open("a", encoding="utf-8") as out:
        out.write(summary_text(summary) + "\n")


def summary_text(summary: RunSummary | DryRunSummary) -> str:
    """A run's (or a dry run's) summary, a line per region, as ``observer enrich run`` prints it."""
    dry = isinstance(summary, DryRunSummary)
    resumed = isinstance(summary, RunSummary) and summary.resumed
    lines = [
        f"enrich {summary.mode}{' (dry run)' if dry else ''}"
        f"{' (resumed)' if resumed else ''}, map {summary.mapping_version}"
    ]
    for region, t in summary.regions.items():
        lines.append(
            f"  {region}: {t.total} stocks, {t.fresh_skipped} fresh, {t.manual} manual, "
            f"{t.kis_mapped} KIS-mapped, {t.fallback_ok} fallback, "
            f"{t.fallback_failed} failed, {t.unresolved} unresolved, "
            f"{t.kept} kept, {t.deferred} deferred, {t.changed} changed"
            + (
                f", {t.kis_needed} to ask KIS, at most {t.fallback_needed} to ask the fallback"
                if dry
                else ""
            )
        )
    if isinstance(summary, DryRunSummary):
        if summary.kis_lookups:
            lines.append(
                f"  KIS per symbol: {summary.kis_lookups} stocks, at least "
                f"{summary.kis_floor_s:g} s at the jobs' share of the KIS budget"
            )
        lines.append(
            f"  fallback: at most {summary.fallback_calls} calls (fewer as KIS answers; "
            f"retries not counted), up to {summary.fallback_max_s:g} s at the configured rate"
        )
    else:
        lines.append(
            f"  fallback: {summary.fallback_calls} calls, {summary.retries} retries, "
            f"breaker opened {summary.breaker_opens}x; {summary.duration_s:g} s"
        )
    return "\n".join(lines)
