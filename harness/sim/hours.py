"""The simulator's hours of a day, read from the observer's dated table (`observer.calendar`).

KRX's regular session is 391 minute bars, 09:00 to its 15:30 match on an ordinary day
(`harness.sim.paths`). A day of other hours (``[calendar] late_days``) moves them as the table
says (`DayHours`): the year's first session (10:00-15:30) opens late, and the bars before its
opening trade nothing (``first``); the CSAT day (10:00-16:30) moves the whole regular day an
hour (``shift``: bar 0 at 10:00, the closing auction 16:20-16:30), its after-market to
17:00-20:00. The auctions and status records move with the bars; Nextrade keeps the day's own
sessions (`observer.calendar.settings.NXT_HOURS`: the CSAT day has no pre-market, its main
session 10:00:30-16:20, its after-market's auction 16:30-16:40 and 종가매매 16:30-17:00).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time

from bus.events import TradingSession, Venue
from observer.calendar.settings import (
    KRX_HOURS,
    NXT_HOURS,
    CalendarSettings,
    PhaseSettings,
    SpanSettings,
    VenueHoursSettings,
    VenueSettings,
)
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from

__all__ = [
    "AFTER_AUCTION",
    "CLOSING_PRICE_SPAN",
    "KRX_AFTER_SPAN",
    "NXT_SPANS",
    "OPEN_MINUTE",
    "ORDINARY",
    "DayHours",
    "NxtSpan",
    "day_hours",
    "spans",
]

OPEN_MINUTE = 9 * 60  # bar 0 on an ordinary day: KRX's opening, minutes of the KST day
_CLOSE_MINUTE = 15 * 60 + 30  # the last bar on an ordinary day: KRX's closing match
_TABLE = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))


@dataclass(frozen=True, slots=True)
class NxtSpan:
    """One session of a day: seconds of the KST day [start, end), and its records' code.

    ``market_code`` is the MARKET_CLS_CODE of the 2026-09 layouts: "1" pre-market, "2" main,
    "3" after-market ("5" Nextrade's 종가매매). Nextrade's sessions, and KRX's after-market.
    """

    start_s: int
    end_s: int
    market_code: str


def _of_day(clock: str) -> int:
    """Seconds of the KST day at a table's ``HH:MM[:SS]``."""
    at = time.fromisoformat(clock)
    return at.hour * 3600 + at.minute * 60 + at.second


def _of_instant(at: datetime) -> int:
    """Seconds of the KST day at ``at``."""
    return at.hour * 3600 + at.minute * 60 + at.second


def _ordinary(hours: VenueHoursSettings, session: str) -> SpanSettings:
    """The ordinary day's span of ``session`` in the venues' table (its only one)."""
    (span,) = (s for s in hours.sessions if s.session == session)
    return span


def _seconds(span: SpanSettings) -> tuple[int, int]:
    return _of_day(span.start), _of_day(span.end)


_PRE, _MAIN, _AUCTION, _AFTER = (
    _seconds(_ordinary(NXT_HOURS, session))
    for session in ("pre_market", "regular", "opening_auction", "after_market")
)
# The 2026-09 codes of Nextrade's sessions; its after-market's one from its opening auction.
_CODES = {"pre_market": "1", "regular": "2", "opening_auction": "3", "after_market": "3"}
# An ordinary day's Nextrade sessions, its after-market from its opening auction's orders.
NXT_SPANS: tuple[NxtSpan, ...] = (
    NxtSpan(*_PRE, "1"),
    NxtSpan(*_MAIN, "2"),
    NxtSpan(_AUCTION[0], _AFTER[1], "3"),
)
# Nextrade's after-market's opening auction, seconds of the KST day [start, end): its match
# at end.
AFTER_AUCTION = _AUCTION
# KRX's after-market (from `KRX_AFTER_MARKET_FROM`): continuous, the 2026-09 layouts' "3".
KRX_AFTER_SPAN = NxtSpan(*_seconds(_ordinary(KRX_HOURS, "after_market")), "3")
# Nextrade's 종가매매: matched at KRX's closing price 15:30-16:00, beside the after-market.
(_CLOSING_PRICE,) = NXT_HOURS.beside
CLOSING_PRICE_SPAN = NxtSpan(*_seconds(_CLOSING_PRICE), "5")


@dataclass(frozen=True, slots=True)
class DayHours:
    """One day's hours as the simulator trades them: an ordinary day's by default.

    ``first``: KRX's first bar that trades (minutes after bar 0: the year's first session,
    60); ``shift``: minutes KRX's whole regular day moved (bar 0 at 09:00 + shift, the close's
    auction and match with it: the CSAT day, 60). ``nxt``: Nextrade's sessions;
    ``nxt_auction``: its after-market's opening auction [start, end) in seconds of the day
    (`AFTER_AUCTION`); ``closing_price``: its 종가매매; ``krx_after``: KRX's after-market's
    hours (whether it has one that day is `harness.sim.market.Market.trades_krx_after`'s).
    """

    first: int = 0
    shift: int = 0
    nxt: tuple[NxtSpan, ...] = NXT_SPANS
    nxt_auction: tuple[int, int] = AFTER_AUCTION
    closing_price: NxtSpan = CLOSING_PRICE_SPAN
    krx_after: NxtSpan = KRX_AFTER_SPAN

    @property
    def open_minute(self) -> int:
        """Bar 0's minute of the KST day (09:00 on an ordinary day)."""
        return OPEN_MINUTE + self.shift

    @property
    def morning(self) -> int:
        """Minutes KRX's opening, and its morning auction, moved from 09:00."""
        return self.shift + self.first

    def bar(self, minute: int) -> int:
        """The bar index of ``minute`` of the KST day (outside 0-390: not a regular minute)."""
        return minute - self.open_minute

    @property
    def nxt_after_from_s(self) -> int:
        """Nextrade's after-market's first second (its opening auction's orders)."""
        return self.nxt[-1].start_s


ORDINARY = DayHours()


@functools.cache
def day_hours(day: date) -> DayHours:
    """``day``'s hours as the table has them (an ordinary day's on a day it has no session).

    ValueError: a day whose KRX regular session is not 391 minutes (the bars'), or moves back.
    """
    krx = {session: (start, end) for start, end, session in spans("KRX", day)}
    if "regular" not in krx:
        return ORDINARY
    opens, closes = krx["regular"][0], krx["closing_auction"][1]
    shift = _minute(closes) - _CLOSE_MINUTE
    first = _minute(opens) - OPEN_MINUTE - shift
    if shift < 0 or first < 0:
        raise ValueError(f"{day}: KRX {opens:%H:%M}-{closes:%H:%M} is not drawn by the bars")
    after = krx.get("after_market")
    found: list[NxtSpan] = []
    auction = AFTER_AUCTION
    for start, end, session in spans("NXT", day):
        start_s, end_s = _of_instant(start), _of_instant(end)
        if session == "opening_auction":
            auction = (start_s, end_s)
        if session == "after_market" and found and found[-1].market_code == "3":
            found[-1] = NxtSpan(found[-1].start_s, end_s, "3")  # from its opening auction
            continue
        found.append(NxtSpan(start_s, end_s, _CODES[session]))
    (beside,) = _TABLE.hours["NXT"].beside_on(day)
    return DayHours(
        first=first,
        shift=shift,
        nxt=tuple(found),
        nxt_auction=auction,
        closing_price=NxtSpan(_of_instant(beside[0]), _of_instant(beside[1]), "5"),
        krx_after=(
            NxtSpan(_of_instant(after[0]), _of_instant(after[1]), "3") if after else KRX_AFTER_SPAN
        ),
    )


def spans(venue: Venue, day: date) -> list[tuple[datetime, datetime, TradingSession]]:
    """``venue``'s sessions on ``day`` (KST start, end, session) as the table has them.

    Whether ``day`` is a session is the simulator's calendar's to say, not asked here.
    """
    return [(start, end, span.session) for start, end, span in _TABLE.hours[venue].on(day)]


def _minute(at: datetime) -> int:
    return at.hour * 60 + at.minute
