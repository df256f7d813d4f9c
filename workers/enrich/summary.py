"""The summary of an ``observer enrich run``: printed, and kept in the day's report file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from observer.calendar.clock import Clock
from observer.calendar.phases import KST
from observer.config.tree import Settings

__all__ = ["summary_text", "write_summary"]


def write_summary(settings: Settings, clock: Clock, summary: dict[str, Any]) -> None:
    """Append a run's summary to the day's ``<data_dir>/enrich/report-YYYYMMDD.txt``."""
    day = datetime.fromtimestamp(clock.now_ns() / 1e9, KST).strftime("%Y%m%d")
    path = Path(settings.paths.data_dir) / "enrich" / f"report-{day}.txt"
    with path.open("a", encoding="utf-8") as out:
        out.write(summary_text(summary) + "\n")


def summary_text(summary: dict[str, Any]) -> str:
    """A run's (or a dry run's) summary, a line per region, as ``observer enrich run`` prints it."""
    lines = [
        f"enrich {summary['mode']}{' (dry run)' if summary['dry_run'] else ''}"
        f"{' (resumed)' if summary.get('resumed') else ''}, map {summary['mapping_version']}"
    ]
    for region, t in summary["regions"].items():
        lines.append(
            f"  {region}: {t['total']} stocks, {t['fresh_skipped']} fresh, {t['manual']} manual, "
            f"{t['kis_mapped']} KIS-mapped, {t['fallback_ok']} fallback, "
            f"{t['fallback_failed']} failed, {t['unresolved']} unresolved, "
            f"{t['kept']} kept, {t['deferred']} deferred, {t['changed']} changed"
            + (
                f", {t['kis_needed']} to ask KIS, at most {t['fallback_needed']} to ask the "
                "fallback"
                if summary["dry_run"]
                else ""
            )
        )
    if summary["dry_run"]:
        if summary["kis_lookups"]:
            lines.append(
                f"  KIS per symbol: {summary['kis_lookups']} stocks, at least "
                f"{summary['kis_floor_s']:g} s at the jobs' share of the KIS budget"
            )
        lines.append(
            f"  fallback: at most {summary['fallback_calls']} calls (fewer as KIS answers; "
            f"retries not counted), up to {summary['fallback_max_s']:g} s at the configured rate"
        )
    else:
        lines.append(
            f"  fallback: {summary['fallback_calls']} calls, {summary['retries']} retries, "
            f"breaker opened {summary['breaker_opens']}x; {summary['duration_s']:g} s"
        )
    return "\n".join(lines)
