"""Each trade's MARKET_CLS_CODE (the 2026-09 layouts) held against the venues' hours.

Track B stores a trade in the session its code names and counts a code that names another
session than ``[venues]`` does at its stamp (`workers.track_b.session_codes`). Which code KIS
gives a session is partly UNCONFIRMED (KRX's after-market "3"; Nextrade's 종가매매, a market
beside the after-market 15:30-16:00, "5"), so the check counts the codes its own session
heard per trade TR, with the session each decided, and names the first disagreement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from bus.events import TradingSession, Venue
from observer.calendar.phases import KST
from observer.calendar.venues import Venues
from observer.kis.realtime import TRADE_TRS
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report

__all__ = ["ITEM", "Coded", "session_code_finding"]

ITEM = "MARKET_CLS_CODE"
_NS = 1_000_000_000
# A trade heard: its venue, exchange stamp (UTC ns) and MARKET_CLS_CODE.
Coded = tuple[Venue, int, str]


def session_code_finding(coded: Sequence[Coded], venues: Venues, report: Report) -> None:
    """A row for the codes heard on every trade TR, held against ``venues``.

    OK when each names the session the hours say then (or a market beside it); a mismatch
    names the first that does not, which Track B would count and alert once a day.
    """
    if not coded:
        report.add(ITEM, NOT_MEASURED, "no trade of the 2026-09 layouts (no MARKET_CLS_CODE)")
        return
    heard: dict[Venue, Counter[tuple[str, TradingSession]]] = {}
    first: str = ""
    disagreeing = 0
    for venue, ns, code in coded:
        clock, session, agrees = venues.judge_code(venue, ns, code)
        heard.setdefault(venue, Counter())[code, session] += 1
        if not agrees:
            disagreeing += 1
            if not first:
                at = datetime.fromtimestamp(ns / _NS, UTC).astimezone(KST)
                first = (
                    f"{TRADE_TRS[venue]} at {at:%H:%M:%S} coded {code!r} where [venues] says "
                    f"{clock or 'no session'}"
                )
    said = "; ".join(
        f"{TRADE_TRS[venue]}: " + ", ".join(f"{code!r} {s or 'none'} x{n}" for (code, s), n in c)
        for venue, c in sorted((venue, sorted(c.items())) for venue, c in heard.items())
    )
    if not disagreeing:
        report.add(ITEM, OK, f"each trade's code names the session [venues] says ({said})")
        return
    report.add(
        ITEM,
        MISMATCH,
        f"{disagreeing} of {len(coded)} trades' codes name another session than [venues] "
        f"(first: {first}); Track B stores them as coded and alerts track_b_session_disagrees: "
        f"correct [venues] (sessions, beside) if KIS is right ({said})",
    )
