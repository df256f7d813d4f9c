"""Trades whose MARKET_CLS_CODE names another session than the venues' hours: each counted per
venue, the first of a venue's day alerted, once (a restart takes the alert over)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from bus.events import Alert, Event, TradeTick, Venue
from observer.alerts.book import AlertBook
from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from workers.track_b.session_codes import SESSION_DISAGREES, SessionCodes

VENUES = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))


def _tick(hhmmss: str, code: str, venue: Venue = "KRX", day: int = 20) -> TradeTick:
    at = datetime.strptime(f"2026-11-{day} {hhmmss}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=KST)
    return TradeTick(
        symbol="005930",
        exchange_ns=int(at.timestamp()) * 10**9,
        received_ns=0,
        price=71_000,
        qty=1,
        cum_volume=1,
        cum_value=71_000,
        change_rate=Decimal(0),
        market_session=code,
        venue=venue,
    )


def test_disagreements_are_counted_per_venue_and_alerted_once_a_day() -> None:
    sent: list[Event] = []
    codes = SessionCodes(AlertBook(sent.append), VENUES.judge_code)
    for tick in (_tick("19:00:00", "3"), _tick("10:00:00", "2"), _tick("08:10:00", "1", "NXT")):
        codes.on_trade(tick)  # each as the hours say
    assert not codes.disagreements and not sent
    for _ in range(3):
        codes.on_trade(_tick("19:00:00", "2"))  # KRX's after-market by the hours
    codes.on_trade(_tick("12:00:00", "3", "NXT"))
    codes.on_trade(_tick("19:00:00", "2", day=23))  # the next session day
    assert codes.disagreements == {"KRX": 4, "NXT": 1}
    alerts = [e for e in sent if isinstance(e, Alert)]
    assert [(a.code, a.subject, a.severity) for a in alerts] == [
        (SESSION_DISAGREES, "KRX 2026-11-20", "warning"),
        (SESSION_DISAGREES, "NXT 2026-11-20", "warning"),
        (SESSION_DISAGREES, "KRX 2026-11-23", "warning"),
    ]
    assert "MARKET_CLS_CODE 2" in alerts[0].message and "after_market" in alerts[0].message


def test_nextrade_closing_price_trades_agree_in_their_hours_alone() -> None:
    # 종가매매 runs beside Nextrade's after-market auction and first minutes (15:30-16:00; on
    # the CSAT day an hour later): its records' "5" there is its market, not a disagreement.
    sent: list[Event] = []
    codes = SessionCodes(AlertBook(sent.append), VENUES.judge_code)
    for at in ("15:30:00", "15:35:10", "15:45:00", "15:59:59"):
        codes.on_trade(_tick(at, "5", "NXT"))
    codes.on_trade(_tick("16:45:00", "5", "NXT", day=19))  # the CSAT day's, at 16:30-17:00
    codes.on_trade(_tick("15:45:00", "5", "combined"))  # the combined feed carries them too
    assert not codes.disagreements and not sent
    codes.on_trade(_tick("16:00:00", "5", "NXT"))  # its market has closed
    codes.on_trade(_tick("15:45:00", "5", "NXT", day=19))  # the CSAT day: not yet open
    # Without the markets beside the sessions, every one disagrees (the belief before).
    hours = VenueSettings()
    alone = msgspec.structs.replace(hours, nxt=msgspec.structs.replace(hours.nxt, beside=()))
    timeline = timeline_from(PhaseSettings(), CalendarSettings())
    plain = SessionCodes(AlertBook(sent.append), venues_from(alone, timeline).judge_code)
    plain.on_trade(_tick("15:45:00", "5", "NXT"))
    assert codes.disagreements == {"NXT": 2} and plain.disagreements == {"NXT": 1}
