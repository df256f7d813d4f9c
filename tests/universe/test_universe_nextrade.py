"""Each universe member's Nextrade standing (CTPF1002R), asked every morning and kept per day:
KIS keeps no history of it, so the universe's record is the only one."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, time
from typing import Any

import pytest

from harness.sim.market import KST, NXT_SHARE, Market
from observer.calendar.clock import SimulatedClock
from observer.calendar.trading import TradingCalendar
from tests.universe.conftest import CALENDAR, MARKET, Harness, expected

# The simulator's clock stands at 2026-11-20 05:00: the latest day with its previous
# session's bars is the 20th.
EARLIER, DAY = date(2026, 11, 19), date(2026, 11, 20)


def standing(h: Harness, day: date) -> dict[str, tuple[bool | None, bool | None]]:
    """The stored members' (eligible, halted) of ``day``'s universe."""
    rows = h.rows(
        "select m.symbol, m.nxt_eligible, m.nxt_halted from universe_members m join "
        "universe_snapshots s on m.source = s.source and m.seq = s.seq "
        f"where s.trade_date = '{day}'"
    )

    def read(flag: object) -> bool | None:  # SQLite's 0 and 1
        return None if flag is None else bool(flag)

    return {symbol: (read(eligible), read(halted)) for symbol, eligible, halted in rows}


def test_each_member_s_standing_is_kept_per_day_with_nextrade_s_changes(harness: Harness) -> None:
    """The file and the database say what KIS answered that morning; a name Nextrade drops or
    halts in between changes the next day's record alone."""
    h = harness
    env = h.env
    h.env = {"OBSERVER_CLOCK": SimulatedClock(_ns(EARLIER, 6, 10), 1.0).spec}  # that morning
    try:
        summary = h.build(EARLIER.isoformat())
    finally:
        h.env = env
    selected = MARKET.nxt_eligible(EARLIER)
    members = expected(EARLIER)
    want = {s: (s in selected, False) for s in members}
    assert standing(h, EARLIER) == want
    assert 0 < summary["nxt"]["eligible"] < len(members)
    assert summary["nxt"] == {"eligible": len(selected & set(members)), "halted": 0, "unknown": 0}
    file = json.loads((h.data / "universe" / "20261119_kr_stocks.json").read_text())
    assert {s["code"]: (s["nxt_eligible"], s["nxt_halted"]) for s in file["symbols"]} == want
    assert file["metadata"]["nxt_unknown"] == {} and file["metadata"]["nxt_not_asked"] == ""
    assert h.sim.gateway.calls["CTPF1002R"] == len(members)  # members only, once each
    # The market measures the masters list each member under (what Nextrade's after-market
    # trades depends on): kept beside its standing, in the file and the database.
    measures = {s: list(MARKET.listings[s].measures) for s in members}
    assert any(measures.values())  # some members are under 투자경고 or 투자위험
    assert {s["code"]: s.get("measures", []) for s in file["symbols"]} == measures
    rows = h.rows(
        "select m.symbol, m.measures from universe_members m join universe_snapshots s on "
        f"m.source = s.source and m.seq = s.seq where s.trade_date = '{EARLIER}'"
    )
    assert {symbol: json.loads(kept) for symbol, kept in rows} == measures

    dropped, halted = sorted(selected & set(expected(DAY)))[:2]
    h.sim.faults.nxt.apply({"remove": [dropped], "halt": [halted]})
    try:
        assert h.build(DAY.isoformat())["outcome"] == "built"
    finally:
        h.sim.faults.nxt.apply({"add": [dropped], "resume": [halted]})
    after = standing(h, DAY)
    assert after[dropped] == (False, False) and after[halted] == (True, True)
    unchanged = {s: v for s, v in after.items() if s not in (dropped, halted)}
    assert unchanged == {s: (s in selected, False) for s in unchanged}
    assert standing(h, EARLIER) == want  # the earlier day's record stands


def test_another_day_s_universe_records_no_standing(harness: Harness) -> None:
    """KIS answers today's standing: a universe built for another day does not take it as
    that day's (the masters, charts and ranks are that day's, the standing unknown)."""
    h = harness
    before = h.sim.gateway.calls["CTPF1002R"]
    summary = h.build(EARLIER.isoformat())  # the simulator's clock says the 20th
    assert summary["outcome"] == "built" and h.sim.gateway.calls["CTPF1002R"] == before
    assert set(standing(h, EARLIER).values()) == {(None, None)}
    assert "not of 2026-11-19" in summary["nxt_not_asked"]
    assert h.rows("select code from alerts") == []


def _ns(day: date, hour: int, minute: int) -> int:
    return int(datetime.combine(day, time(hour, minute), KST).timestamp() * 1e9)


def test_a_member_whose_standing_fails_twice_is_unknown_and_named(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The universe stands (its members' figures are sound); the standing is NULL, never a
    guess, and a warning names the members."""
    from harness.sim import quotes
    from harness.sim.protocol import fail

    h = harness
    first, *lost = expected(DAY)[:3]
    route = ("domestic-stock/v1/quotations/search-stock-info", "CTPF1002R")
    answer = quotes._ROUTES[route]
    calls: Counter[str] = Counter()

    def flaky(self: Any, query: Any) -> Any:
        symbol = query["PDNO"]
        calls[symbol] += 1
        if symbol in lost or (symbol == first and calls[symbol] == 1):
            return fail(200, "OPSQ0003", "조회 처리 중 오류가 발생했습니다.")
        return answer(self, query)

    monkeypatch.setitem(quotes._ROUTES, route, flaky)
    summary = h.build(DAY.isoformat())
    assert summary["outcome"] == "built" and summary["excluded"]["failed"] == 0
    assert {s: calls[s] for s in (first, *lost)} == {first: 2, lost[0]: 2, lost[1]: 2}
    stored = standing(h, DAY)
    assert stored[first] == (first in MARKET.nxt_eligible(DAY), False)
    assert [stored[s] for s in lost] == [(None, None), (None, None)]
    assert summary["nxt"]["unknown"] == 2 and sorted(summary["nxt_unknown"]) == sorted(lost)
    ((severity, code, message),) = h.rows("select severity, code, message from alerts")
    assert (severity, code) == ("warning", "universe_nxt_unknown")
    assert f"2 of {len(stored)} members is not known" in message
    assert all(s in message for s in lost) and "OPSQ0003" in message


def test_paper_accounts_record_the_standing_as_unknown_without_asking(harness: Harness) -> None:
    """KIS answers CTPF1002R on real accounts alone: said once in the file, never asked."""
    h = harness
    h.config.write_text(h.config.read_text().replace("[kis]\n", '[kis]\nsim_accounts = "paper"\n'))
    before = h.sim.gateway.calls["CTPF1002R"]
    summary = h.build(DAY.isoformat())
    assert summary["outcome"] == "built" and h.sim.gateway.calls["CTPF1002R"] == before
    assert set(standing(h, DAY).values()) == {(None, None)}
    assert "real accounts alone" in summary["nxt_not_asked"] and summary["nxt_unknown"] == {}
    assert h.rows("select code from alerts") == []


def test_nextrade_selects_each_quarter_from_the_previous_quarter_s_last_close() -> None:
    """The simulator's list: the largest by listed value at the quarter's eve, administrative
    issues out, unchanged within a quarter; the quarters' lists differ as prices move."""
    market = Market(13, TradingCalendar(), stocks=300, etfs=3)
    stocks = [
        x
        for x in market.listings.values()
        if x.group == "ST" and x.market in ("KOSPI", "KOSDAQ") and not x.administrative
    ]
    lists = []
    for quarter in (date(2025, 10, 1), date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1)):
        eve = CALENDAR.previous_session(quarter)
        ranked = sorted(
            stocks, key=lambda x: (-market.close(x.symbol, eve) * x.listed_shares, x.symbol)
        )
        top = frozenset(x.symbol for x in ranked[: round(len(stocks) * NXT_SHARE)])
        first = CALENDAR.next_session(eve)
        following = date(quarter.year + (quarter.month == 10), (quarter.month + 2) % 12 + 1, 1)
        last = CALENDAR.previous_session(following)
        assert market.nxt_eligible(first) == top == market.nxt_eligible(last)
        lists.append(top)
    assert len(set(lists)) > 1
