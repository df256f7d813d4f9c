"""``[phases]`` and ``[calendar]``: when each phase starts; corrections to the trading calendar."""

from __future__ import annotations

from datetime import date, time
from itertools import pairwise
from typing import Annotated

from msgspec import Meta

from bus.events import TradingSession
from observer.market.after_markets import Measure
from observer.setting_types import ClockTime, Strict

__all__ = [
    "LATE_DAYS",
    "CalendarSettings",
    "LateDay",
    "PhaseSettings",
    "SpanSettings",
    "VenueDay",
    "VenueEra",
    "VenueHoursSettings",
    "VenueSettings",
]

# "HH:MM" or "HH:MM:SS" KST: Nextrade's main session opens at 09:00:30
SessionTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")]


class PhaseSettings(Strict, frozen=True):
    """When each phase of a session day starts (KST)."""

    warmup: ClockTime = "07:50"  # up and waiting before Nextrade opens at 08:00
    track_a_only: ClockTime = "09:00"
    full_operation: ClockTime = "09:30"
    track_a_closing: ClockTime = "15:00"
    shutdown: ClockTime = "15:30"
    idle: ClockTime = "21:00"


class LateDay(Strict, frozen=True):
    """A session day with shifted hours (CSAT: 10:00-16:30; the year's first: 10:00-15:30)."""

    day: date
    minutes: int  # its open (warmup to full_operation), and its close unless close_minutes
    close_minutes: int | None = None  # its close (track_a_closing on): the year's first, 0


# KRX's days of other hours (Nextrade's own are `NXT_HOURS.days`): the CSAT day opens and
# closes an hour late (10:00-16:30), the year's first session opens late (10:00-15:30).
LATE_DAYS = (
    LateDay(day=date(2026, 11, 19), minutes=60),
    LateDay(day=date(2027, 1, 4), minutes=60, close_minutes=0),
)


class CalendarSettings(Strict, frozen=True):
    """Corrections to exchange_calendars' XKRX."""

    extra_closed: tuple[date, ...] = (date(2026, 6, 3),)
    extra_open: tuple[date, ...] = ()
    late_days: tuple[LateDay, ...] = LATE_DAYS


class SpanSettings(Strict, frozen=True):
    """One session of a venue's day, ``[start, end)`` KST (an auction holds its end too)."""

    session: TradingSession
    start: SessionTime
    end: SessionTime
    match_at_end: bool = False  # an auction: its single-price match prints at ``end``

    def __post_init__(self) -> None:
        if not self.session:
            raise ValueError("venues: a session needs its name")
        if time.fromisoformat(self.start) >= time.fromisoformat(self.end):
            raise ValueError(
                f"venues: {self.session} {self.start}-{self.end} ends before it starts"
            )


def _in_order(spans: tuple[SpanSettings, ...], where: str) -> None:
    for a, b in pairwise(spans):
        if time.fromisoformat(b.start) < time.fromisoformat(a.end):
            raise ValueError(
                f"venues.{where}: {b.session} from {b.start} starts before {a.session} ends "
                f"({a.end}): sessions are listed in order and never overlap"
            )


class VenueDay(Strict, frozen=True):
    """A day a venue keeps other hours (Nextrade's CSAT day).

    Its sessions that day, and the markets beside them (`VenueHoursSettings.beside`).
    """

    day: date
    sessions: tuple[SpanSettings, ...]
    beside: tuple[SpanSettings, ...] = ()


class VenueEra(Strict, frozen=True):
    """A venue's sessions on the days before ``until``: its hours before they changed."""

    until: date
    sessions: tuple[SpanSettings, ...]


class VenueHoursSettings(Strict, frozen=True):
    """One venue's sessions on an ordinary session day, and its days of other hours.

    ``sessions`` are today's; ``before`` the hours of earlier eras, each for the days before
    its ``until`` (for replays and backfills of older days), ascending; ``days`` a day's own.
    ``beside``: markets that run beside the sessions, in hours of their own (Nextrade's
    종가매매, trades at KRX's closing price, beside its after-market's auction and first
    minutes): no minute is theirs, but a record KIS labels with one within its hours
    (MARKET_CLS_CODE "5") names its market, not a disagreement with the table.
    ``after_market_excludes``: the market measures (`observer.market.after_markets.MEASURES`)
    whose stocks its after-market does not trade: Track B holds no feed of the venue for them
    there.
    """

    sessions: tuple[SpanSettings, ...]
    days: tuple[VenueDay, ...] = ()
    before: tuple[VenueEra, ...] = ()
    beside: tuple[SpanSettings, ...] = ()
    after_market_excludes: tuple[Measure, ...] = ()

    def __post_init__(self) -> None:
        _in_order(self.sessions, "sessions")
        _in_order(self.beside, "beside")
        ends = [era.until for era in self.before]
        if ends != sorted(set(ends)):
            raise ValueError(f"venues.before: eras ascending by until, each once, not {ends}")
        for era in self.before:
            _in_order(era.sessions, f"before {era.until}")
        seen: set[date] = set()
        for day in self.days:
            if day.day in seen:
                raise ValueError(f"venues.days: {day.day} is listed twice")
            seen.add(day.day)
            _in_order(day.sessions, f"days {day.day}")
            _in_order(day.beside, f"days {day.day} beside")


def _span(
    session: TradingSession, start: str, end: str, match_at_end: bool = False
) -> SpanSettings:
    return SpanSettings(session=session, start=start, end=end, match_at_end=match_at_end)


# KRX's day since 2026-09-14 (shared/reference/kis-market-2026-09.md §1): opening orders from
# 08:20, its after-market (continuous, 16:00-20:00) instead of the 16:00-18:00 single price.
KRX_AFTER_MARKET_FROM = date(2026, 9, 14)
# The sessions both eras share: 시간외 종가, the opening and closing auctions, the regular day.
_KRX_DAY = (
    _span("off_hours_close", "08:30", "08:40"),
    _span("opening_auction", "08:40", "09:00", match_at_end=True),
    _span("regular", "09:00", "15:20"),
    _span("closing_auction", "15:20", "15:30", match_at_end=True),
    _span("off_hours_close", "15:40", "16:00"),
)
KRX_HOURS = VenueHoursSettings(
    sessions=(
        _span("opening_auction", "08:20", "08:30"),  # orders only: the 장전 시간외 comes first
        *_KRX_DAY,
        _span("after_market", "16:00", "20:00"),
    ),
    before=(
        VenueEra(
            until=KRX_AFTER_MARKET_FROM,
            sessions=(*_KRX_DAY, _span("off_hours_auction", "16:00", "18:00")),
        ),
    ),
)
NXT_HOURS = VenueHoursSettings(
    sessions=(
        _span("pre_market", "08:00", "08:50"),
        _span("regular", "09:00:30", "15:20"),
        # orders from 15:30, matched at 15:40 at one price; continuous trading after it
        _span("opening_auction", "15:30", "15:40", match_at_end=True),
        _span("after_market", "15:40", "20:00"),
    ),
    # 종가매매: orders from 15:00, matched at KRX's closing price 15:30-16:00 (an hour later on
    # the CSAT day, when KRX closes at 16:30)
    beside=(_span("off_hours_close", "15:30", "16:00"),),
    # 투자경고 and 관리종목 as the 2026-09-09 notice names them (CONFIRMED-2nd), 투자위험 (the
    # step after 경고) by reading: the notice's "..." is UNCONFIRMED, as is whether KRX's
    # after-market excludes any (none: its feeds are kept, silent at worst).
    after_market_excludes=("warning", "risk", "administrative"),
    days=(
        VenueDay(
            day=date(2026, 11, 19),  # the CSAT day: no pre-market
            sessions=(
                _span("regular", "10:00:30", "16:20"),
                _span("opening_auction", "16:30", "16:40", match_at_end=True),
                _span("after_market", "16:40", "20:00"),
            ),
            beside=(_span("off_hours_close", "16:30", "17:00"),),
        ),
        VenueDay(
            day=date(2027, 1, 4),  # the year's first session: no pre-market, main from 10:00:30
            sessions=(
                _span("regular", "10:00:30", "15:20"),
                _span("opening_auction", "15:30", "15:40", match_at_end=True),
                _span("after_market", "15:40", "20:00"),
            ),
            beside=(_span("off_hours_close", "15:30", "16:00"),),
        ),
    ),
)


class VenueSettings(Strict, frozen=True):
    """Each venue's sessions (KST); KRX's move with ``[calendar] late_days``."""

    krx: VenueHoursSettings = KRX_HOURS
    nxt: VenueHoursSettings = NXT_HOURS
