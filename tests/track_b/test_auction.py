"""KRX's opening auction: which names' expected matches each idle session holds, and when."""

from __future__ import annotations

from datetime import date, datetime, time

from hypothesis import given
from hypothesis import strategies as st

from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from workers.track_b.auction import auction_registrations, closing_auction, opening_auction
from workers.track_b.registrations import RegistrationPolicy

DAY = date(2026, 11, 20)
NAMES = st.lists(st.sampled_from([f"{n:06d}" for n in range(60)]), max_size=80)


@given(
    NAMES,
    st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3),
    st.integers(0, 8),
    st.sets(st.sampled_from([f"{n:06d}" for n in range(60)]), max_size=10),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 2)),
)
def test_names_are_dealt_in_order_within_each_session_and_barred_ones_passed_over(
    names: list[str],
    accounts: list[str],
    capacity: int,
    barred: set[str],
    reserved: dict[str, int],
) -> None:
    held = auction_registrations(
        RegistrationPolicy(),
        names,
        accounts,
        capacity,
        dict.fromkeys(barred, "refused"),
        reserved,
    )
    assert held.keys() == set(accounts)
    # Each session within its capacity less what is reserved of it (the VI feed's).
    assert all(len(each) <= max(0, capacity - reserved.get(a, 0)) for a, each in held.items())
    got = [r.symbol for each in held.values() for r in each]
    assert len(got) == len(set(got))  # a name on one session, once
    assert {r.label for each in held.values() for r in each} <= {"KRX auction"}
    wanted = [n for n in dict.fromkeys(names) if n not in barred]
    room = sum(max(0, capacity - reserved.get(a, 0)) for a in accounts)
    assert sorted(got) == sorted(wanted[:room])  # the first that fit


def test_paper_accounts_hold_no_expected_matches() -> None:
    paper = RegistrationPolicy(paper=True)
    assert auction_registrations(paper, ["005930"], ["a"], 41, {}) == {"a": set()}


def test_the_auction_runs_from_its_start_or_the_pre_market_s_end_to_the_match_and_grace() -> None:
    venues = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))

    def kst(hh: int, mm: int, ss: int = 0) -> datetime:
        return datetime.combine(DAY, time(hh, mm, ss), KST)

    # Its orders from 08:20 since 2026-09-14 (the 시간외 종가 between), its match at 09:00.
    assert opening_auction(venues, DAY, None) == (kst(8, 20), kst(9, 0, 30))
    assert opening_auction(venues, date(2026, 9, 11), None) == (
        datetime.combine(date(2026, 9, 11), time(8, 40), KST),
        datetime.combine(date(2026, 9, 11), time(9, 0, 30), KST),
    )
    assert opening_auction(venues, DAY, (kst(8, 0), kst(8, 50))) == (kst(8, 50), kst(9, 0, 30))
    # Followed by the first half hour's trades: to 10 s before the match, for its print.
    assert opening_auction(venues, DAY, (kst(8, 0), kst(8, 50)), trades_at_match=True) == (
        kst(8, 50),
        kst(8, 59, 50),
    )
    assert opening_auction(venues, DAY, (kst(8, 0), kst(9, 5))) is None
    assert opening_auction(venues, date(2026, 11, 21), None) is None  # a Saturday
    # The closing auction to 10 s before its match, if KRX's feeds reach it.
    assert closing_auction(venues, DAY, kst(15, 31, 30)) == (kst(15, 20), kst(15, 29, 50))
    assert closing_auction(venues, DAY, kst(15, 0)) is None  # krx_to_close off
