"""Each venue's sessions: KRX's and Nextrade's hours, KRX's late days, Nextrade's CSAT day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, LateDay, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import SESSIONS, Venues, session_by_code, stream_ends, venues_from
from observer.config.load import load_settings

LATE = (
    LateDay(day=date(2026, 11, 19), minutes=60),  # CSAT day
    LateDay(day=date(2027, 1, 4), minutes=60, close_minutes=0),  # the year's first session
)
VENUES = venues_from(
    VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings(late_days=LATE))
)
DAY = date(2026, 11, 20)


def at(day: date, text: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(text), tzinfo=KST)


@pytest.mark.parametrize(
    ("venue", "when", "session"),
    [
        ("KRX", "08:19:59", ""),
        ("KRX", "08:20", "opening_auction"),  # its orders from 08:20 since 2026-09-14
        ("KRX", "08:29:59", "opening_auction"),
        ("KRX", "08:30", "off_hours_close"),
        ("KRX", "08:45", "opening_auction"),
        ("KRX", "09:00", "opening_auction"),  # the opening match prints at 09:00:00
        ("KRX", "09:00:01", "regular"),
        ("KRX", "15:19:59", "regular"),
        ("KRX", "15:20", "closing_auction"),
        ("KRX", "15:30", "closing_auction"),  # the closing match
        ("KRX", "15:30:01", ""),
        ("KRX", "15:45", "off_hours_close"),
        ("KRX", "15:59:59", "off_hours_close"),
        ("KRX", "16:00", "after_market"),  # KRX's after-market since 2026-09-14
        ("KRX", "19:59:59", "after_market"),
        ("KRX", "20:00", ""),
        ("NXT", "07:59:59", ""),
        ("NXT", "08:00", "pre_market"),
        ("NXT", "08:50", ""),  # paused for KRX's opening auction
        ("NXT", "09:00:29", ""),
        ("NXT", "09:00:30", "regular"),
        ("NXT", "15:25", ""),  # paused for KRX's closing auction
        ("NXT", "15:30", "opening_auction"),  # the after-market's orders, matched at 15:40
        ("NXT", "15:40", "opening_auction"),
        ("NXT", "15:40:01", "after_market"),
        ("NXT", "19:59:59", "after_market"),
        ("NXT", "20:00", ""),
        ("combined", "08:10", "pre_market"),  # Nextrade's alone
        ("combined", "10:00", "regular"),
        ("combined", "15:25", "closing_auction"),  # KRX's where it has one
        ("combined", "15:35", "opening_auction"),  # Nextrade's after-market's
        ("combined", "19:00", "after_market"),
        # Where one venue trades continuously and the other is in an auction (nothing prints
        # there before its match): the continuous one's, never KRX's by default.
        ("combined", "08:45", "pre_market"),
        ("combined", "15:45", "after_market"),
        ("combined", "16:30", "after_market"),
        ("combined", "09:00", "opening_auction"),  # KRX's opening match, Nextrade paused
        ("combined", "15:30", "closing_auction"),  # KRX's closing match
        # Nextrade's after-market's match, as KRX's 시간외 종가 opens: the match's, Nextrade's
        ("combined", "15:40", "opening_auction"),
        ("combined", "15:40:01", "after_market"),
    ],
)
def test_an_ordinary_day_s_sessions(venue: str, when: str, session: str) -> None:
    assert VENUES.session_at(venue, at(DAY, when)) == session  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("when", "session"),
    [
        ("08:25", ""),  # opening orders from 08:30 then
        ("16:00", "off_hours_auction"),
        ("17:59:59", "off_hours_auction"),
        ("18:00", ""),
        ("19:00", ""),
    ],
)
def test_a_day_before_krx_s_after_market_keeps_its_own_hours(when: str, session: str) -> None:
    """2026-09-11, the 16:00-18:00 single price's last day: replays of it read its hours."""
    assert VENUES.session_at("KRX", at(date(2026, 9, 11), when)) == session


def test_the_year_s_first_session_has_no_nextrade_pre_market_and_a_late_main() -> None:
    first = date(2027, 1, 4)
    assert VENUES.session_at("NXT", at(first, "08:10")) == ""
    assert VENUES.session_at("NXT", at(first, "10:00:29")) == ""
    assert VENUES.session_at("NXT", at(first, "10:00:30")) == "regular"
    assert VENUES.session_at("KRX", at(first, "10:00:01")) == "regular"
    assert VENUES.session_at("NXT", at(first, "15:41")) == "after_market"


def test_late_days_move_krx_s_hours_and_nextrade_keeps_its_own_csat_day() -> None:
    csat, first = date(2026, 11, 19), date(2027, 1, 4)
    assert VENUES.session_at("KRX", at(csat, "09:35")) == "off_hours_close"
    assert VENUES.session_at("KRX", at(csat, "09:45")) == "opening_auction"
    assert VENUES.session_at("KRX", at(csat, "16:25")) == "closing_auction"
    assert VENUES.session_at("NXT", at(csat, "08:10")) == ""  # no pre-market that day
    assert VENUES.session_at("NXT", at(csat, "10:00:30")) == "regular"
    assert VENUES.session_at("NXT", at(csat, "16:25")) == ""
    assert VENUES.session_at("NXT", at(csat, "16:30")) == "opening_auction"
    assert VENUES.session_at("NXT", at(csat, "16:41")) == "after_market"
    # KRX's after-market moves with its day, never past 20:00: 17:00-20:00 on the CSAT day
    assert VENUES.session_at("KRX", at(csat, "16:59")) == "off_hours_close"
    assert VENUES.session_at("KRX", at(csat, "17:00")) == "after_market"
    assert VENUES.session_at("KRX", at(csat, "20:00")) == ""
    assert VENUES.close("KRX", csat) == at(csat, "20:00")
    # The year's first session opens an hour late and closes as ever.
    assert VENUES.session_at("KRX", at(first, "09:50")) == "opening_auction"
    assert VENUES.session_at("KRX", at(first, "15:25")) == "closing_auction"
    assert VENUES.day_bounds(DAY) == (at(DAY, "08:00"), at(DAY, "20:00"))
    # The combined feed closes with the later venue (not KRX's last session, which starts last).
    assert VENUES.close("combined", DAY) == VENUES.close("NXT", DAY) == at(DAY, "20:00")
    assert VENUES.day_bounds(date(2026, 11, 21)) is None  # a Saturday
    assert VENUES.session_at("NXT", at(date(2026, 11, 21), "10:00")) == ""


# Days of both regimes of KRX's hours and the special days: the era's last days and the
# first of the after-market, the CSAT day, the year's first session.
DAYS = [
    *(date(2026, 9, 10), date(2026, 9, 11), date(2026, 9, 14), date(2026, 9, 15)),
    *(date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20), date(2027, 1, 4)),
]


@given(
    st.sampled_from(DAYS),
    st.integers(0, 86_400 - 1),
    st.sampled_from(["KRX", "NXT", "combined"]),
)
def test_every_instant_is_in_one_session_or_none_and_a_second_agrees(
    day: date, offset_s: int, venue: str
) -> None:
    """At most one session holds an instant (the spans never overlap), on days of either
    regime and the special days, and the cached per-second reading equals the direct one."""
    instant = at(day, "00:00") + timedelta(seconds=offset_s)
    found = VENUES.session_at(venue, instant)  # type: ignore[arg-type]
    assert found in ("", *SESSIONS)
    if venue != "combined":
        holding = [
            span.session
            for start, end, span in VENUES.spans(venue, instant.date())  # type: ignore[arg-type]
            if start <= instant < end or (span.match_at_end and instant == end)
        ]
        assert holding == ([found] if found else [])
    ns = int(instant.astimezone(UTC).timestamp()) * 1_000_000_000
    fresh = Venues(VENUES.calendar, VENUES.hours)
    assert fresh.session_of_ns(venue, ns) == found  # type: ignore[arg-type]
    assert fresh.session_of_ns(venue, ns) == found  # type: ignore[arg-type]  # remembered


def test_the_shipped_configuration_is_the_default() -> None:
    assert load_settings(None).venues == VenueSettings()


def test_a_venue_s_hours_of_one_s_own_keep_the_built_in_days_unless_they_list_theirs(
    tmp_path: Path,
) -> None:
    """Nextrade's hours written for an ordinary day (its after-market to 18:00) keep its
    year's first session and CSAT day, KRX's its era before 2026-09-14; an empty list
    drops them."""
    own = (
        "[venues.nxt]\nsessions = [\n"
        '  { session = "pre_market", start = "08:00", end = "08:50" },\n'
        '  { session = "regular", start = "09:00:30", end = "15:20" },\n'
        '  { session = "after_market", start = "15:40", end = "18:00" },\n]\n'
        "[venues.krx]\n"
        'sessions = [{ session = "regular", start = "09:00", end = "15:30" }]\n'
    )
    (tmp_path / "own.toml").write_text(own)
    venues = load_settings(tmp_path / "own.toml").venues
    assert venues.nxt.sessions[-1].end == "18:00"
    assert venues.nxt.days == VenueSettings().nxt.days and len(venues.nxt.days) == 2
    assert venues.nxt.beside == VenueSettings().nxt.beside
    assert venues.krx.before == VenueSettings().krx.before
    table = venues_from(venues, timeline_from(PhaseSettings(), CalendarSettings()))
    first = date(2027, 1, 4)
    assert table.session_at("NXT", datetime.combine(first, time(8, 30), KST)) == ""
    (tmp_path / "dropped.toml").write_text(own.replace("[venues.krx]", "days = []\n[venues.krx]"))
    dropped = venues_from(
        load_settings(tmp_path / "dropped.toml").venues,
        timeline_from(PhaseSettings(), CalendarSettings()),
    )
    assert dropped.session_at("NXT", datetime.combine(first, time(8, 30), KST)) == "pre_market"


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (
            {"krx": {"sessions": [{"session": "regular", "start": "15:20", "end": "09:00"}]}},
            "ends before it starts",
        ),
        (
            {
                "nxt": {
                    "sessions": [
                        {"session": "pre_market", "start": "08:00", "end": "09:10"},
                        {"session": "regular", "start": "09:00", "end": "15:20"},
                    ]
                }
            },
            "starts before pre_market ends",
        ),
        (
            {"nxt": {"sessions": [{"session": "night", "start": "20:00", "end": "21:00"}]}},
            "Invalid enum value 'night'",
        ),
        (
            {
                "nxt": {
                    "sessions": [],
                    "beside": [
                        {"session": "off_hours_close", "start": "15:30", "end": "16:00"},
                        {"session": "after_market", "start": "15:50", "end": "17:00"},
                    ],
                }
            },
            "venues.beside: after_market from 15:50 starts before off_hours_close ends",
        ),
        (
            {"nxt": {"sessions": [{"session": "regular", "start": "9:00", "end": "15:20"}]}},
            "Expected `str` matching regex",
        ),
    ],
)
def test_a_venue_table_that_cannot_be_is_refused_naming_it(table: object, error: str) -> None:
    with pytest.raises((msgspec.ValidationError, ValueError), match=error):
        msgspec.convert(table, VenueSettings)


def test_track_b_s_streams_follow_krx_s_after_market_on_the_days_it_has_one() -> None:
    def ends(day: date, **switches: bool) -> tuple[str, ...]:
        closing = at(day, "15:00")
        found = stream_ends(
            VENUES, day, closing, krx_to_close=True, nxt_after_market=True, **switches
        )
        kept = (found.close, found.krx, found.nxt, found.last, found.evening)
        return tuple("" if t is None else f"{t.astimezone(KST):%H:%M:%S}" for t in kept)

    # KRX's feeds to its 15:31:30 close, again from 16:00 to its after-market's close
    assert ends(DAY, krx_after_market=True) == (
        "15:31:30",
        "20:00:30",
        "20:00:30",
        "20:00:30",
        "16:00:00",
    )
    assert ends(DAY) == ("15:31:30", "15:31:30", "20:00:30", "20:00:30", "")  # not followed
    # a day of the old regime has no after-market to follow: KRX's feeds end at the close
    old = date(2026, 9, 11)
    assert ends(old, krx_after_market=True) == ("15:31:30", "15:31:30", "20:00:30", "20:00:30", "")
    # the CSAT day's: 17:00 to 20:00, its close an hour late
    csat = ends(date(2026, 11, 19), krx_after_market=True)
    assert csat == ("16:31:30", "20:00:30", "20:00:30", "20:00:30", "17:00:00")


@given(
    st.sampled_from(["1", "2", "3", "5", "4", "", None]),
    st.sampled_from(["", *SESSIONS]),
    st.frozensets(st.sampled_from(SESSIONS)),
)
def test_a_code_decides_where_it_names_a_session_and_the_clock_refines_it(
    code: str | None, clock: str, beside: frozenset[str]
) -> None:
    session, agrees = session_by_code(code, clock, beside)  # type: ignore[arg-type]
    named = {
        "1": {"pre_market"},
        "2": {"regular", "opening_auction", "closing_auction"},
        "3": {"after_market", "opening_auction", "off_hours_auction"},
        "5": {"off_hours_close"},
    }.get(code or "")
    if named is None or clock in named:  # no word, or the same word: the clock's, agreed
        assert (session, agrees) == (clock, True)
    else:  # the record's word: a disagreement unless it names a market running beside
        assert session in named and session != clock and agrees == (session in beside)


def test_nextrade_s_closing_price_market_runs_beside_its_sessions() -> None:
    def beside(venue: str, day: date, hhmmss: str) -> frozenset[str]:
        return VENUES.beside_of_ns(venue, int(at(day, hhmmss).timestamp()) * 10**9)  # type: ignore[arg-type]

    closing = frozenset({"off_hours_close"})
    assert beside("NXT", DAY, "15:30:00") == beside("NXT", DAY, "15:59:59") == closing
    assert beside("combined", DAY, "15:45:00") == closing
    assert not beside("NXT", DAY, "16:00:00") and not beside("NXT", DAY, "15:29:59")
    assert not beside("KRX", DAY, "15:45:00")  # KRX's 시간외 종가 is a session of its own
    assert beside("NXT", date(2026, 11, 19), "16:30:00") == closing  # the CSAT day's hour
    assert not beside("NXT", date(2026, 11, 19), "15:45:00")
    assert not beside("NXT", date(2026, 11, 21), "15:45:00")  # a Saturday
    # beside the sessions: no minute is its, the after-market's auction and minutes stand
    assert VENUES.session_at("NXT", at(DAY, "15:45")) == "after_market"
