"""Whether the after-markets trade what the client holds no feed of, read off minute bars.

KRX's after-market (16:00-20:00 since 2026-09-14) excludes ETFs and ETNs by KRX's rules
(kis-market-2026-09.md §1, CONFIRMED-2nd), so Track B holds no feed of a pinned ETF from KRX's
close (`observer.market.after_markets`); Nextrade's excludes stocks under some market measures
(§3: "투자경고, 관리, ...", the list UNCONFIRMED: ``[venues.nxt] after_market_excludes``), so
a watched one holds KRX's feeds alone there. Were a rule wrong, those evening trades would go
unrecorded and no reconciliation would see it (nothing is watched then): each row asks the
target's bars (FHKST03010200, J or NX) of the after-market so far, ten minutes in at least.
Whether KRX's after-market excludes any measure is UNCONFIRMED (no rule names one:
``[venues.krx] after_market_excludes``, none by default): its row asks a stock under one of
Nextrade's measures whether it trades there (or under one KRX's setting excludes, whether it
does not). Each row's stock is the largest of today's universe (the database's) the venue
lists under such a measure (`measured_target`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bus.events import Venue
from observer.calendar.phases import KST
from observer.calendar.venues import Venues
from observer.db.queries import universe_references
from observer.db.settings import DatabaseSettings
from observer.errors import KisError
from observer.kis.client import KisClient
from observer.kis.schemas import MinuteBarRow
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report
from observer.kis_check.stored import read_stored
from observer.market.after_markets import AFTER_MARKETS_EXCLUDE

__all__ = [
    "ITEM",
    "MEASURED_AFTER",
    "MEASURED_ITEMS",
    "MeasuredTarget",
    "etf_after_market_finding",
    "measured_after_market_finding",
    "measured_target",
]

ITEM = "ETF in KRX's after-market"
MEASURED_ITEMS: dict[Venue, str] = {
    "NXT": "stock under a measure in Nextrade's after-market",
    "KRX": "stock under a measure in KRX's after-market",
}
MEASURED_AFTER = timedelta(minutes=10)  # into the after-market: a liquid name has traded by then
_NAMES: dict[Venue, str] = {"NXT": "Nextrade", "KRX": "KRX"}


@dataclass(frozen=True, slots=True)
class MeasuredTarget:
    """The stock ``venue``'s row asks, and its measures; ``symbol`` "" with ``unread``.

    ``excluded``: whether the venue's ``after_market_excludes`` names its measures (the row
    then holds a trade a mismatch), or not (it holds no trade unsettled).
    """

    venue: Venue = "NXT"
    symbol: str = ""
    measures: tuple[str, ...] = ()
    unread: str = ""  # why there is none
    excluded: bool = True


def measured_target(
    database: DatabaseSettings,
    day: date,
    venue: Venue,
    excludes: tuple[str, ...],
    otherwise: tuple[str, ...] = (),
) -> MeasuredTarget:
    """The largest member of ``day``'s universe ``venue`` lists under one of ``excludes``.

    With ``excludes`` empty (the venue's after-market believed to trade every measure), under
    one of ``otherwise``: the measures asked about. Never raises for the database: a target
    of none says why.
    """
    asked, excluded = excludes or otherwise, bool(excludes)
    if not asked:
        return MeasuredTarget(venue, unread="no measure to ask about", excluded=excluded)
    rows, unread = read_stored(database, lambda c: universe_references(c, day))
    if unread:
        return MeasuredTarget(venue, unread=unread, excluded=excluded)
    if rows is None:
        return MeasuredTarget(venue, unread=f"no universe of {day} stored", excluded=excluded)
    under = [r for r in rows if (venue != "NXT" or r.nxt) and set(r.measures) & set(asked)]
    if not under:
        lists = "Nextrade lists " if venue == "NXT" else ""
        unread = f"no stock of {day}'s universe {lists}is under one"
        return MeasuredTarget(venue, unread=unread, excluded=excluded)
    largest = max(under, key=lambda r: (r.market_cap, r.symbol))
    return MeasuredTarget(venue, largest.symbol, tuple(largest.measures), excluded=excluded)


async def etf_after_market_finding(
    client: KisClient, etf: str, venues: Venues, now: datetime, report: Report
) -> None:
    """A row for ``etf``'s KRX bars in today's after-market to ``now`` (KST-aware).

    OK when none holds volume, as the rule says; a mismatch names the first such minute.
    Not measured before `MEASURED_AFTER` into the after-market, or on a day without one.
    """
    traded = await _traded(client, etf, "KRX", venues, now, report, ITEM)
    if traded is None:
        return
    minutes, span = traded
    if minutes:
        excluded = ", ".join(sorted(AFTER_MARKETS_EXCLUDE))
        report.add(
            ITEM,
            MISMATCH,
            f"{etf} traded in {len(minutes)} minutes of {span}, from {minutes[0]}: the rule "
            f"that no after-market trades {excluded} (observer/market/after_markets.py) is "
            "wrong, and Track B records no pinned ETF's evening trades",
        )
        return
    report.add(ITEM, OK, f"no trade of {etf} in {span}, as KRX's rules say")


async def measured_after_market_finding(
    client: KisClient, target: MeasuredTarget, venues: Venues, now: datetime, report: Report
) -> None:
    """A row for ``target``'s bars on its venue in today's after-market to ``now`` (KST-aware).

    Excluded by the venue's ``after_market_excludes``: OK when no bar holds volume, a mismatch
    naming the first minute that does. Not excluded: OK when one does, not measured when none
    (an excluding rule, or a stock that did not trade). Not measured without a target, before
    `MEASURED_AFTER` into the after-market, or on a day without one.
    """
    item = MEASURED_ITEMS[target.venue]
    if not target.symbol:
        report.add(item, NOT_MEASURED, target.unread)
        return
    traded = await _traded(client, target.symbol, target.venue, venues, now, report, item)
    if traded is None:
        return
    minutes, span = traded
    name, venue = f"{target.symbol} ({', '.join(target.measures)})", _NAMES[target.venue]
    setting = f"[venues.{target.venue.lower()}] after_market_excludes"
    if minutes and target.excluded:
        report.add(
            item,
            MISMATCH,
            f"{name} traded on {venue} in {len(minutes)} minutes of {span}, from "
            f"{minutes[0]}: take its measures out of {setting}, or Track B records none of "
            "such a stock's after-market trades",
        )
    elif minutes:
        report.add(
            item,
            OK,
            f"{name} traded on {venue} in {len(minutes)} minutes of {span}, as {setting} "
            "(none of its measures) says",
        )
    elif target.excluded:
        report.add(item, OK, f"no trade of {name} in {span}, as {venue}'s rules say")
    else:
        report.add(
            item,
            NOT_MEASURED,
            f"no trade of {name} in {span}: {venue}'s after-market may exclude its measures "
            f"(then name them in {setting}: Track B's feeds of such stocks are silent there), "
            "or it did not trade; ask again later in the evening",
        )


async def _traded(
    client: KisClient,
    symbol: str,
    venue: Venue,
    venues: Venues,
    now: datetime,
    report: Report,
    item: str,
) -> tuple[list[str], str] | None:
    """The minutes (HH:MM) ``symbol`` traded on ``venue``'s after-market so far, and the span.

    None where ``item``'s row is written already (not measured).
    """
    local = now.astimezone(KST)
    day = venues.spans(venue, local.date())
    spans = [(s, e) for s, e, span in day if span.session == "after_market"]
    whose = "KRX's" if venue == "KRX" else "Nextrade's"
    if not spans or local < spans[0][0] + MEASURED_AFTER:
        when = f"after {(spans[0][0] + MEASURED_AFTER):%H:%M}" if spans else "on a session day"
        report.add(item, NOT_MEASURED, f"{whose} after-market not under way (run it {when})")
        return None
    start, end = spans[0]
    until = min(local, end)
    try:
        rows = (
            await client.minute_bars_span(symbol, f"{start:%H%M%S}", f"{until:%H%M%S}", venue=venue)
        ).rows
    except KisError as exc:
        report.add(item, NOT_MEASURED, f"{symbol}'s {whose} bars not read: {exc}")
        return None
    since = f"{start:%H%M%S}"
    traded = sorted(r.stck_cntg_hour for r in rows if r.stck_cntg_hour >= since and _volume(r))
    return [f"{t[:2]}:{t[2:4]}" for t in traded], f"{start:%H:%M}-{until:%H:%M}"


def _volume(row: MinuteBarRow) -> bool:
    """Whether a bar holds a trade (its ``cntg_vol`` a positive number)."""
    try:
        return int(row.cntg_vol or "0") > 0
    except ValueError:
        return False
