"""Each venue's sessions on a day, and which one an instant falls in: the market as a dated table.

KRX and Nextrade (NXT) trade on the same days (the KRX calendar) in hours of their own, all
configuration (`VenueSettings`, ``[venues]``), dated: KRX's since 2026-09-14 are its opening
orders from 08:20, 시간외 종가 (08:30-08:40, 15:40-16:00), opening auction (its match at
09:00), regular session (09:00-15:20), closing auction (15:20-15:30) and after-market
(continuous, 16:00-20:00); before it (``before`` eras, for replays of older days) its
시간외 단일가 (16:00-18:00) stood where the after-market is. Nextrade's: pre-market
(08:00-08:50), main session (09:00:30-15:20) and after-market, whose orders from 15:30 are
matched at one price at 15:40 (its opening auction) before it trades continuously to 20:00.
KRX's late days (``[calendar] late_days``) shift its hours as they shift the phases;
Nextrade's special days (the CSAT day: no pre-market, 10:00-16:20, 16:30-20:00; the year's
first session: no pre-market, main from 10:00:30) are days of their own in its table. KIS's
combined feed names no venue: its session is the one of a venue trading continuously, else
KRX's where KRX has one, else Nextrade's (`Venues.session_at`). Beside the sessions, a market
of its own hours may run (Nextrade's 종가매매, 15:30-16:00, at KRX's closing price): no minute
is its, but a record labelled with it in its hours agrees with the table (`Venues.beside_of_ns`).

An auction's single-price match prints at its end instant (a KRX trade stamped 15:30:00 is
the closing auction's), so that instant belongs to the auction (`Span.match_at_end`). The
pre-market, regular and after-market sessions trade continuously (`CONTINUOUS`): a pause in a
feed is judged there alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import get_args

from bus.events import TradingSession, Venue
from observer.calendar.phases import KST
from observer.calendar.settings import SpanSettings, VenueHoursSettings, VenueSettings
from observer.calendar.timeline import Timeline
from observer.calendar.trading import TradingCalendar

__all__ = [
    "CLOSE_GRACE_S",
    "CONTINUOUS",
    "SESSIONS",
    "VENUES",
    "CodeJudge",
    "SessionOf",
    "Span",
    "StreamEnds",
    "VenueHours",
    "Venues",
    "no_session",
    "session_by_code",
    "stream_ends",
    "venues_from",
]

SESSIONS: tuple[TradingSession, ...] = tuple(s for s in get_args(TradingSession) if s)
CONTINUOUS: frozenset[TradingSession] = frozenset({"pre_market", "regular", "after_market"})
# A trade stamped at a venue's close arrives within seconds (Track B's lag alert is at 10 s):
# a stream that follows the venue to its close is kept this much longer (`Venues.followed`).
CLOSE_GRACE_S = 30.0
VENUES: tuple[Venue, ...] = get_args(Venue)
_NS = 1_000_000_000
# Which of a venue's sessions a UTC-ns instant falls in (`Venues.session_of_ns`).
SessionOf = Callable[[Venue, int], TradingSession]
# A record's MARKET_CLS_CODE judged at its venue and UTC-ns stamp (`Venues.judge_code`).
CodeJudge = Callable[[Venue, int, str | None], tuple[TradingSession, TradingSession, bool]]


# KIS's MARKET_CLS_CODE (the 2026-09 layouts' last field: 1 프리, 2 정규, 3 애프터, 5 종가): the
# sessions of the table each code spans, the first the one it names where the clock says
# another. A regular market's auctions are "2" (their match opens or closes it), Nextrade's
# after-market opening auction "3"; that "5" is KRX's 시간외 종가 (and Nextrade's 종가매매) is
# UNCONFIRMED.
_BY_CODE: dict[str, tuple[TradingSession, ...]] = {
    "1": ("pre_market",),
    "2": ("regular", "opening_auction", "closing_auction"),
    "3": ("after_market", "opening_auction", "off_hours_auction"),
    "5": ("off_hours_close",),
}


def session_by_code(
    code: str | None, clock: TradingSession, beside: frozenset[TradingSession] = frozenset()
) -> tuple[TradingSession, bool]:
    """A record's session: KIS's ``code`` where it names one, else the ``clock``'s.

    The clock refines a code that spans several (an auction's records are "2") and decides
    where the code is absent or unknown. Second: whether the two agree (always where the
    code says nothing): a disagreement is the record's word against the table's. A code
    naming a market running ``beside`` the clock's session then (Nextrade's 종가매매) agrees.
    """
    spans = _BY_CODE.get(code or "")
    if spans is None or clock in spans:
        return clock, True
    return spans[0], spans[0] in beside


def no_session(venue: Venue, ns: int) -> TradingSession:
    """The `SessionOf` of a reader given no venues' hours: every instant in none ("")."""
    return ""


_CACHED_SECONDS = 4096  # the instants a stream classifies: a second's ticks share theirs


@dataclass(frozen=True, slots=True)
class Span:
    """One session of a venue's day, ``[start, end)`` KST; an auction holds its end too."""

    session: TradingSession
    start: time
    end: time
    match_at_end: bool = False  # an auction: its single-price match prints at ``end``


@dataclass(frozen=True, slots=True)
class VenueHours:
    """One venue's sessions on an ordinary session day, and its days of other hours.

    ``shift(day, at)`` moves a time of ``day`` (KRX's late days: the phases' shift).
    """

    venue: Venue
    spans: tuple[Span, ...]
    days: Mapping[date, tuple[Span, ...]] = field(default_factory=dict)
    shift: Callable[[date, time], timedelta] = lambda day, at: timedelta(0)
    # (until, spans): the sessions of the days before ``until``, earlier eras first
    eras: tuple[tuple[date, tuple[Span, ...]], ...] = ()
    # the markets beside the sessions (`VenueHoursSettings.beside`), and a day's own
    beside: tuple[Span, ...] = ()
    beside_days: Mapping[date, tuple[Span, ...]] = field(default_factory=dict)

    def beside_on(self, day: date) -> list[tuple[datetime, datetime, Span]]:
        """``day``'s markets beside its sessions as KST instants (start, end, span)."""
        spans = self.beside_days.get(day, self.beside)  # a day of its own: its own
        return [(_at(day, s.start), _at(day, s.end), s) for s in spans]

    def on(self, day: date) -> list[tuple[datetime, datetime, Span]]:
        """``day``'s sessions as KST instants (start, end, span), in order.

        A day of its own first, else its era's (the first whose ``until`` is later), else
        today's; KRX's late days shift the era's as today's, never past its ordinary day's
        last hour (the CSAT day's after-market 17:00-20:00, not 21:00: both venues end at
        20:00).
        """
        if day in self.days:
            return [(_at(day, s.start), _at(day, s.end), s) for s in self.days[day]]
        spans = next((spans for until, spans in self.eras if day < until), self.spans)
        latest = _at(day, max(s.end for s in spans)) if spans else None
        found = []
        for s in spans:
            start = _at(day, s.start) + self.shift(day, s.start)
            end = _at(day, s.end) + self.shift(day, s.end)
            if latest is not None:
                end = min(end, latest)
            if start < end:
                found.append((start, end, s))
        return found


@dataclass(slots=True)
class Venues:
    """The sessions of every venue over the trading calendar."""

    calendar: TradingCalendar
    hours: Mapping[Venue, VenueHours]
    _seconds: dict[tuple[Venue, int], TradingSession] = field(default_factory=dict)

    def spans(self, venue: Venue, day: date) -> list[tuple[datetime, datetime, Span]]:
        """``venue``'s sessions on ``day`` (none on a day without a session).

        The combined feed's are KRX's and Nextrade's, by start.
        """
        if not self.calendar.is_session(day):
            return []
        if venue == "combined":
            both = self.hours["KRX"].on(day) + self.hours["NXT"].on(day)
            return sorted(both, key=lambda found: found[0])
        return self.hours[venue].on(day)

    def session_at(self, venue: Venue, instant: datetime) -> TradingSession:
        """The session ``instant`` falls in on ``venue``; "" in none (its dead hours).

        The combined feed names no venue: a trade prints where a venue trades continuously,
        so its session is the continuous one of either (Nextrade's pre-market at 08:45, not
        KRX's opening auction, in which nothing prints before the match); where neither
        trades continuously, the venue whose auction matches at ``instant`` (Nextrade's
        after-market's at 15:40:00, beside KRX's 시간외 종가 opening), else KRX's, else
        Nextrade's.
        """
        if venue == "combined":
            krx, nxt = self.session_at("KRX", instant), self.session_at("NXT", instant)
            if krx not in CONTINUOUS and nxt in CONTINUOUS:
                return nxt
            if nxt and not self._matches("KRX", instant) and self._matches("NXT", instant):
                return nxt
            return krx or nxt
        local = instant.astimezone(KST)
        for start, end, span in self.spans(venue, local.date()):
            if start <= local < end or (span.match_at_end and local == end):
                return span.session
        return ""

    def _matches(self, venue: Venue, instant: datetime) -> bool:
        """Whether an auction of ``venue``'s prints its match at ``instant`` (its end)."""
        local = instant.astimezone(KST)
        return any(
            span.match_at_end and local == end for _, end, span in self.spans(venue, local.date())
        )

    def session_of_ns(self, venue: Venue, ns: int) -> TradingSession:
        """`session_at` of a UTC-ns instant, remembered per second (a stream's hot path)."""
        key = (venue, ns // _NS)
        found = self._seconds.get(key)
        if found is None:
            if len(self._seconds) >= _CACHED_SECONDS:
                self._seconds.clear()
            found = self.session_at(venue, datetime.fromtimestamp(ns / _NS, UTC))
            if ns % _NS == 0:  # a whole second, as KIS stamps: every instant of it agrees
                self._seconds[key] = found
        return found

    def beside_of_ns(self, venue: Venue, ns: int) -> frozenset[TradingSession]:
        """The markets running beside ``venue``'s sessions at ``ns`` (UTC; combined: either's)."""
        if venue == "combined":
            return self.beside_of_ns("KRX", ns) | self.beside_of_ns("NXT", ns)
        local = datetime.fromtimestamp(ns / _NS, UTC).astimezone(KST)
        if not self.calendar.is_session(local.date()):
            return frozenset()
        return frozenset(
            span.session
            for start, end, span in self.hours[venue].beside_on(local.date())
            if start <= local < end
        )

    def judge_code(
        self, venue: Venue, ns: int, code: str | None
    ) -> tuple[TradingSession, TradingSession, bool]:
        """A record's ``code`` against the hours: (the clock's session, the record's, agreed).

        The record's is `session_by_code`'s; the markets beside the sessions are asked only
        for a code the clock's session does not take (the hot path: a code that agrees).
        """
        clock = self.session_of_ns(venue, ns)
        session, agrees = session_by_code(code, clock)
        if not agrees:
            session, agrees = session_by_code(code, clock, self.beside_of_ns(venue, ns))
        return clock, session, agrees

    def continuous(self, venue: Venue, ns: int) -> bool:
        """Whether ``venue`` trades continuously at ``ns`` (UTC; the combined feed: either)."""
        if venue == "combined":
            return self.continuous("KRX", ns) or self.continuous("NXT", ns)
        return self.session_of_ns(venue, ns) in CONTINUOUS

    def close(self, venue: Venue, day: date) -> datetime | None:
        """When ``venue``'s last session of ``day`` ends (None: it has none that day).

        The combined feed's: the later of the two venues' (its spans are ordered by start).
        """
        spans = self.spans(venue, day)
        return max(end for _, end, _ in spans) if spans else None

    def followed(
        self, venue: Venue, day: date, until: datetime, session: TradingSession | None = None
    ) -> datetime:
        """When a stream of ``day`` kept to ``venue``'s close ends, ``until`` at the earliest.

        With ``session``, kept to the end of that session of ``venue``'s (its last of the day)
        instead. The end and `CLOSE_GRACE_S`, and the minute of an auction's match besides
        (its bar holds the match: the stream holds the minute whole); ``until`` if the end
        is no later, or the venue has no such session that day.
        """
        spans = [f for f in self.spans(venue, day) if session is None or f[2].session == session]
        if not spans or spans[-1][1] <= until:
            return until
        _, end, span = spans[-1]
        return end + timedelta(seconds=CLOSE_GRACE_S + (60 if span.match_at_end else 0))

    def day_bounds(self, day: date) -> tuple[datetime, datetime] | None:
        """When ``day``'s first session on any venue opens and its last closes (None: none)."""
        spans = [found for venue in ("KRX", "NXT") for found in self.spans(venue, day)]
        if not spans:
            return None
        return min(start for start, _, _ in spans), max(end for _, end, _ in spans)


@dataclass(frozen=True, slots=True)
class StreamEnds:
    """When Track B's streams of a day end.

    ``close``: KRX's regular day's feeds (its close); ``krx``: KRX's last (its after-market's
    close when followed, else ``close``); ``nxt``: Nextrade's feed's and the combined one's
    (``close`` unless Nextrade's after-market is followed); ``evening``: when KRX's followed
    after-market opens (None: not followed that day).
    """

    close: datetime
    krx: datetime
    nxt: datetime
    evening: datetime | None = None

    @property
    def last(self) -> datetime:
        """When the last of the day's feeds ends."""
        return max(self.krx, self.nxt)


def stream_ends(
    venues: Venues,
    day: date,
    closing: datetime,
    *,
    krx_to_close: bool,
    nxt_after_market: bool,
    krx_after_market: bool = False,
) -> StreamEnds:
    """When Track B's streams of ``day`` end, ``closing`` (15:00, the phases') at the earliest.

    KRX's regular feeds at ``closing``, or with ``krx_to_close`` through KRX's closing
    auction (15:31:30: its 15:30 match's minute whole and the grace); with
    ``krx_after_market`` KRX's feeds again through its after-market (16:00-20:00 since
    2026-09-14) to its close and the grace (20:00:30), on a day KRX has one. Nextrade's feed
    and the combined one with KRX's regular ones, or with ``nxt_after_market`` at Nextrade's
    close (20:00:30).
    """
    close = venues.followed("KRX", day, closing, "closing_auction") if krx_to_close else closing
    nxt = venues.followed("NXT", day, close) if nxt_after_market else close
    evening = [
        start
        for start, _, span in venues.spans("KRX", day)
        if span.session == "after_market" and start >= close
    ]
    if not krx_after_market or not evening:
        return StreamEnds(close, close, nxt)
    return StreamEnds(close, venues.followed("KRX", day, close, "after_market"), nxt, evening[-1])


def _at(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=KST)


def _time(text: str) -> time:
    return time.fromisoformat(text)


def _spans(settings: tuple[SpanSettings, ...]) -> tuple[Span, ...]:
    return tuple(Span(s.session, _time(s.start), _time(s.end), s.match_at_end) for s in settings)


def _hours(
    venue: Venue, settings: VenueHoursSettings, shift: Callable[[date, time], timedelta]
) -> VenueHours:
    days = {d.day: _spans(d.sessions) for d in settings.days}
    eras = tuple((era.until, _spans(era.sessions)) for era in settings.before)
    beside_days = {d.day: _spans(d.beside) for d in settings.days}
    return VenueHours(
        venue, _spans(settings.sessions), days, shift, eras, _spans(settings.beside), beside_days
    )


def venues_from(settings: VenueSettings, timeline: Timeline) -> Venues:
    """The `Venues` a configuration describes, KRX's hours shifted as ``timeline``'s phases."""
    return Venues(
        timeline.calendar,
        {
            "KRX": _hours("KRX", settings.krx, timeline.schedule.shift),
            "NXT": _hours("NXT", settings.nxt, lambda day, at: timedelta(0)),
        },
    )
