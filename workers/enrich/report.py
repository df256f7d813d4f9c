"""``observer enrich report``: a run per region (the latest, or a day's) read from the database.

Per region: the run's counts (KIS-mapped, KIS per-symbol, fallback, manual, failed,
deferred, unresolved), coverage as it stood at the run's end, the codes still unmapped,
the cross-check's disagreements, calls and time, and the symbols whose sector the run
changed (old -> new and where the new one came from), from the ``sector_metadata`` history:
every change since the region's previous run, so a killed run's changes are listed with the
run that resumed it (a killed run stores no `EnrichmentRun` of its own).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, time
from typing import Any

import msgspec
from sqlalchemy import Connection

from observer.calendar.phases import KST
from observer.db.sector_queries import (
    changes,
    code_counts,
    code_names,
    coverage,
    coverage_at,
    latest_runs,
    previous_run_ns,
)
from observer.reference.sector_map import SectorMap

__all__ = ["UnmappedCode", "report_rows", "report_text", "unmapped_rows"]

DAY_NS = 86_400 * 10**9


class UnmappedCode(msgspec.Struct, frozen=True, kw_only=True):
    """A KIS industry code the sector map leaves unmapped, and its stocks."""

    exchange: str
    icod: str
    name: str  # KIS's name of the code ("" when no catalog named it)
    stocks: int


def report_rows(conn: Connection, sector_map: SectorMap, day: date | None) -> list[dict[str, Any]]:
    """One dict per region: its run (the latest, or the last on ``day`` in KST) and more."""
    if day is None:
        runs, now = latest_runs(conn), coverage(conn)
    else:
        start = int(datetime.combine(day, time(0), KST).timestamp()) * 10**9
        runs, now = latest_runs(conn, start, start + DAY_NS), {}
    counts = code_counts(conn, tuple(r["region"] for r in runs))
    for row in runs:
        region, end = row["region"], row["produced_ns"]
        origins = now.get(region) if day is None else coverage_at(conn, end).get(region)
        origins = origins or {}
        classified = sum(n for o, n in origins.items() if o != "unresolved")
        row["origins"] = origins
        row["classified"] = classified
        row["coverage_pct"] = round(100 * classified / max(row["total"], 1), 1)
        row["run_at"] = datetime.fromtimestamp(end / 1e9, KST).isoformat(timespec="seconds")
        unmapped = {
            key: n
            for key, n in counts.items()
            if key[0] in _markets(region) and sector_map.for_code(*key) is None
        }
        row["unmapped_codes"] = len(unmapped)
        row["unmapped_stocks"] = sum(unmapped.values())
        # Not end - duration: a resumed run's window must hold what the killed run changed.
        start = previous_run_ns(conn, region, end) + 1
        row["changes"] = [asdict(c) for c in changes(conn, region, start, end)]
    return runs


def _markets(region: str) -> tuple[str, ...]:
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.enrich.classify import EXCHANGES_OF

    return EXCHANGES_OF.get(region, ())


def report_text(rows: list[dict[str, Any]], with_changes: bool) -> list[str]:
    """The report's lines (the JSON is ``rows`` itself)."""
    lines = []
    for r in rows:
        lines.append(
            f"{r['region']}: {r['coverage_pct']:g}% of {r['total']} stocks classified "
            f"({', '.join(f'{o} {n}' for o, n in sorted(r['origins'].items()))}); "
            f"run {r['run_at']} {r['mode']}: {r['kis_mapped']} KIS-mapped, "
            f"{r['kis_detail'] + r['kis_info']} KIS per symbol, {r['fallback_ok']} fallback, "
            f"{r['manual']} manual, {r['fallback_failed']} failed, {r['deferred']} deferred, "
            f"{r['unresolved']} unresolved, {r['changed']} changed; "
            f"{r['unmapped_codes']} codes unmapped ({r['unmapped_stocks']} stocks); "
            f"{r['calls']} fallback + {r['kis_calls']} KIS calls in {r['duration_ms'] / 1000:g} s"
        )
        if r["cross_compared"]:
            lines.append(
                f"  cross-check: {r['cross_disagreeing']} of {r['cross_compared']} stocks "
                "disagree with KIS's industry lists"
                + "".join(f"\n    {d}" for d in r["cross_disagreements"] if with_changes)
            )
        if with_changes:
            lines += [
                f"  {c['market']}:{c['symbol']} {c['old_code']} {c['old_sector']} -> "
                f"{c['new_code']} {c['new_sector']} ({c['origin']})"
                for c in r["changes"]
            ]
    return lines


def unmapped_rows(
    conn: Connection, sector_map: SectorMap, regions: tuple[str, ...]
) -> list[UnmappedCode]:
    """The regions' KIS industry codes the map leaves unmapped, most stocks first."""
    counts, names = code_counts(conn, regions), code_names(conn)
    found = sorted(
        (-n, market, code)
        for (market, code), n in counts.items()
        if sector_map.for_code(market, code) is None
    )
    return [
        UnmappedCode(exchange=market, icod=code, name=names.get((market, code), ""), stocks=-n)
        for n, market, code in found
    ]
