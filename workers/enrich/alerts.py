"""What the operator hears of an enrichment run: its alerts, and the ones it resolves.

Every condition is a warning with subject ``"enrich"``: fallback failures, deferrals, an
opened breaker, failed KIS lookups, the cross-check's disagreements or failure, and the KIS
catalogs not fetched (`ALERT_CODES`). `alerts` is what a run raises; `cleared` the
conditions it judged and found over, whose open alerts the caller resolves.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from bus.events import Alert
from workers.enrich.classify import EXCHANGES_OF, Tally
from workers.enrich.run import EnrichRun

__all__ = ["ALERT_CODES", "alerts", "cleared"]

# Every condition a run alerts (all warnings, subject "enrich"), and what its resolution says.
ALERT_CODES: dict[str, str] = {
    "enrich_fallback_failed": "the fallback source answered every stock asked (no failure left)",
    "enrich_deferred": "no stock is left deferred",
    "enrich_breaker_open": "the fallback source answered without its breaker opening",
    "enrich_kis_lookup_failed": "KIS's per-symbol sector lookups answered again",
    "enrich_cross_check": "KIS's industry lists agree with the masters' codes again",
    "enrich_cross_check_failed": "the HHDFS76370000 cross-check ran again",
    "enrich_kis_codes_failed": "KIS industry catalogs (HHDFS76370100) fetched again",
}


def alerts(job: EnrichRun, tallies: dict[str, Tally]) -> list[Alert]:
    """What the operator must hear of a run: failures, deferrals, an open breaker."""
    found = list(job.problems)
    limit = job.settings.enrich.cross_check_alert_pct
    disagreeing = {r: c for r, c in job.cross.items() if c.pct > limit}
    if disagreeing:
        found.append(
            Alert(
                severity="warning",
                code="enrich_cross_check",
                subject="enrich",
                message="KIS's industry lists (HHDFS76370000) disagree with the masters' codes for "
                + ", ".join(f"{r} {c.disagreeing}/{c.compared}" for r, c in disagreeing.items())
                + f" stocks (over {limit:g} %): see observer enrich report",
                context={r: "; ".join(c.listed[:5]) for r, c in disagreeing.items()},
            )
        )
    failed = {r: t.fallback_failed for r, t in tallies.items() if t.fallback_failed}
    deferred = {r: t.deferred for r, t in tallies.items() if t.deferred}
    if job.source is not None and job.source.breaker.opened:
        found.append(
            Alert(
                severity="warning",
                code="enrich_breaker_open",
                subject="enrich",
                message=f"the fallback sector source failed {job.settings.enrich.breaker_threshold}"
                f" times in a row; its breaker opened {job.source.breaker.opened} time(s)",
            )
        )
    if job.kis is not None and job.kis.failed:
        found.append(
            Alert(
                severity="warning",
                code="enrich_kis_lookup_failed",
                subject="enrich",
                message=f"{job.kis.failed} per-symbol KIS sector lookups failed (those stocks "
                "went to the fallback source)",
            )
        )
    if failed:
        found.append(
            Alert(
                severity="warning",
                code="enrich_fallback_failed",
                subject="enrich",
                message=f"fallback failed after retries for {sum(failed.values())} stocks "
                "(they keep their stored sector; the next run asks again)",
                context={r: str(n) for r, n in failed.items()},
            )
        )
    if deferred:
        found.append(
            Alert(
                severity="warning",
                code="enrich_deferred",
                subject="enrich",
                message=f"{sum(deferred.values())} stocks deferred to the next run",
                context={r: str(n) for r, n in deferred.items()},
            )
        )
    return found


def cleared(
    job: EnrichRun,
    tallies: Mapping[str, Tally],
    earlier: Mapping[str, Mapping[str, Any]],
    raised: Collection[str],
    codes_fetched: bool,
) -> list[str]:
    """The conditions of `ALERT_CODES` this run found over: their alerts are to be resolved.

    Only what the run judged, and never what it ``raised``. The counts of regions (failed,
    deferred, cross-check disagreements) are judged on every region, this run's tallies for
    its own and for the others their newest stored run (``earlier``: region -> its
    `EnrichmentRun` row), and the failures and deferrals only by a run that got through
    (not stopped). The breaker and the KIS lookups are judged by a run that used them, the
    cross-check by one that checked each of its overseas regions, the catalogs by a fetch
    that succeeded (``codes_fetched``).
    """
    e = job.settings.enrich
    others = {r: row for r, row in earlier.items() if r not in tallies}
    over: list[str] = []
    if not job.stop.is_set():
        failed = [t.fallback_failed for t in tallies.values()]
        deferred = [t.deferred for t in tallies.values()]
        failed += [int(row.get("fallback_failed") or 0) for row in others.values()]
        deferred += [int(row.get("deferred") or 0) for row in others.values()]
        if not any(failed):
            over.append("enrich_fallback_failed")
        if not any(deferred):
            over.append("enrich_deferred")
    if job.source is not None and job.source.calls and not job.source.breaker.opened:
        over.append("enrich_breaker_open")
    if job.kis is not None and job.kis.calls and not job.kis.failed:
        over.append("enrich_kis_lookup_failed")
    overseas = [r for r in tallies if EXCHANGES_OF.get(r)]
    if overseas and all(r in job.cross for r in overseas):
        over.append("enrich_cross_check_failed")
        shares = [c.pct for c in job.cross.values()] + [
            100 * int(row.get("cross_disagreeing") or 0) / int(row.get("cross_compared") or 1)
            for row in others.values()
        ]
        if all(pct <= e.cross_check_alert_pct for pct in shares):
            over.append("enrich_cross_check")
    if codes_fetched:
        over.append("enrich_kis_codes_failed")
    return [code for code in over if code not in raised]
