"""Whether an ETF trades in KRX's after-market, read off its minute bars.

KRX's after-market (16:00-20:00 since 2026-09-14) excludes ETFs and ETNs by KRX's rules
(kis-market-2026-09.md §1, CONFIRMED-2nd), so Track B holds no feed of a pinned ETF from KRX's
close (`observer.market.after_markets`). Were the rule wrong, those evening trades would go
unrecorded and no reconciliation would see it (nothing is watched then): the check asks the
target ETF's KRX bars (FHKST03010200, J) of the after-market so far, ten minutes in at least.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from observer.calendar.phases import KST
from observer.calendar.venues import Venues
from observer.errors import KisError
from observer.kis.client import KisClient
from observer.kis.schemas import MinuteBarRow
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report
from observer.market.after_markets import AFTER_MARKETS_EXCLUDE

__all__ = ["ITEM", "MEASURED_AFTER", "etf_after_market_finding"]

ITEM = "ETF in KRX's after-market"
MEASURED_AFTER = timedelta(minutes=10)  # into the after-market: a liquid name has traded by then


async def etf_after_market_finding(
    client: KisClient, etf: str, venues: Venues, now: datetime, report: Report
) -> None:
    """A row for ``etf``'s KRX bars in today's after-market to ``now`` (KST-aware).

    OK when none holds volume, as the rule says; a mismatch names the first such minute.
    Not measured before `MEASURED_AFTER` into the after-market, or on a day without one.
    """
    local = now.astimezone(KST)
    day = venues.spans("KRX", local.date())
    spans = [(s, e) for s, e, span in day if span.session == "after_market"]
    if not spans or local < spans[0][0] + MEASURED_AFTER:
        when = f"after {(spans[0][0] + MEASURED_AFTER):%H:%M}" if spans else "on a session day"
        report.add(ITEM, NOT_MEASURED, f"KRX's after-market not under way (run it {when})")
        return
    start, end = spans[0]
    until = min(local, end)
    try:
        rows = (await client.minute_bars_span(etf, f"{start:%H%M%S}", f"{until:%H%M%S}")).rows
    except KisError as exc:
        report.add(ITEM, NOT_MEASURED, f"{etf}'s KRX bars not read: {exc}")
        return
    since = f"{start:%H%M%S}"
    traded = sorted(r.stck_cntg_hour for r in rows if r.stck_cntg_hour >= since and _volume(r))
    span = f"{start:%H:%M}-{until:%H:%M}"
    if traded:
        first = f"{traded[0][:2]}:{traded[0][2:4]}"
        excluded = ", ".join(sorted(AFTER_MARKETS_EXCLUDE))
        report.add(
            ITEM,
            MISMATCH,
            f"{etf} traded in {len(traded)} minutes of {span}, from {first}: the rule that no "
            f"after-market trades {excluded} (observer/market/after_markets.py) is wrong, and "
            "Track B records no pinned ETF's evening trades",
        )
        return
    report.add(ITEM, OK, f"no trade of {etf} in {span}, as KRX's rules say")


def _volume(row: MinuteBarRow) -> bool:
    """Whether a bar holds a trade (its ``cntg_vol`` a positive number)."""
    try:
        return int(row.cntg_vol or "0") > 0
    except ValueError:
        return False
