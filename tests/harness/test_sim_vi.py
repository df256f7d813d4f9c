"""The simulator's VI feeds, as the client reads them: under the date the market's, under a
symbol its own, the same VIs the flows job's FHPST01390000 lists."""

from __future__ import annotations

from datetime import date, datetime, time

from bus.events import ViNotice
from harness.sim.flows import vi_rows
from harness.sim.market import KST, Market
from harness.sim.vi import DayVis, vi_key_taken
from observer.calendar.trading import TradingCalendar
from observer.kis.realtime import RealtimeDecoder

MARKET = Market(7, TradingCalendar(), stocks=300, etfs=20)
DAY = date(2026, 11, 20)
NS = 1_000_000_000


def at(hour: int, minute: int) -> datetime:
    return datetime.combine(DAY, time(hour, minute), KST)


def decoded(tr_id: str, records: list[str]) -> list[ViNotice]:
    frame = f"0|{tr_id}|{len(records):03d}|{'^'.join(records)}"
    events = RealtimeDecoder("acct1").decode(frame, 0)
    assert not events.errors
    return list(events.vis)


def test_under_the_date_every_vi_of_the_day_starts_and_ends_in_time_order() -> None:
    vis = DayVis(MARKET)
    windows = {
        (s, code): w
        for venue, code, names in (
            ("KRX", "1", MARKET.listings),
            ("NXT", "2", MARKET.nxt_eligible(DAY)),  # the stocks Nextrade trades, its own VIs
        )
        for s in names
        if (w := MARKET.vi_window(s, DAY, venue)) is not None
    }
    krx = sum(code == "1" for _, code in windows)
    assert 10 <= krx <= 60 and 1 <= len(windows) - krx < krx  # one stock in ten on each
    notices = decoded("H0UNVIC0", vis.records("H0UNVIC0", "20261120", at(8, 0), at(20, 0)))
    assert len(notices) == 2 * len(windows)
    assert [n.received_ns for n in notices] == sorted(n.received_ns for n in notices)
    for notice in notices:
        assert notice.exchange is not None
        start, end = windows[notice.symbol, notice.exchange]
        assert notice.started_ns == int(start.timestamp()) * NS
        assert notice.ended_ns == (0 if notice.applies else int(end.timestamp()) * NS)
        assert (notice.venue, notice.trade_date) == ("combined", DAY)
    # A window sends only what falls in it; each venue's feed its own.
    first = min(w[0] for (_, code), w in windows.items() if code == "1")
    (only,) = decoded("H0STVIC0", vis.records("H0STVIC0", "20261120", at(8, 0), first))
    assert only.applies and only.venue == "KRX" and only.exchange is None
    nxt = decoded("H0NXVIC0", vis.records("H0NXVIC0", "20261120", at(8, 0), at(20, 0)))
    assert {n.symbol for n in nxt} == {s for s, code in windows if code == "2"}
    assert all(n.venue == "NXT" for n in nxt) and len(nxt) == 2 * (len(windows) - krx)
    # Before 2026-09-14 Nextrade had no static VI
    old = date(2026, 9, 11)
    morning, evening = (datetime.combine(old, time(h), KST) for h in (8, 20))
    assert not vis.records("H0NXVIC0", "20260911", morning, evening)
    assert vis.records("H0STVIC0", "20260911", morning, evening)  # KRX's, as ever
    assert all(MARKET.vi_window(s, old, "NXT") is None for s in MARKET.nxt_eligible(old))


def test_under_a_symbol_its_own_vis_alone_the_same_as_the_rest_list() -> None:
    vis = DayVis(MARKET)
    symbol = next(s for s in sorted(MARKET.listings) if MARKET.vi_window(s, DAY))
    notices = decoded("H0STVIC0", vis.records("H0STVIC0", symbol, at(8, 0), at(20, 0)))
    assert [(n.symbol, n.applies) for n in notices] == [(symbol, True), (symbol, False)]
    (row,) = vi_rows(MARKET, symbol, DAY, at(20, 0))
    lifted = notices[1]
    assert (str(lifted.price), str(lifted.static_base), f"{lifted.static_move_pct:.2f}") == (
        row["vi_prc"],
        row["vi_stnd_prc"],
        row["vi_dprt"],
    )
    other = next(s for s in sorted(MARKET.listings) if not MARKET.vi_window(s, DAY))
    assert not vis.records("H0STVIC0", other, at(8, 0), at(20, 0))


def test_which_key_is_taken() -> None:
    assert vi_key_taken("date", "20261120", MARKET) and not vi_key_taken("date", "005930", MARKET)
    assert vi_key_taken("symbol", "005930", MARKET) and not vi_key_taken(
        "symbol", "20261120", MARKET
    )
    assert vi_key_taken("any", "005930", MARKET) and vi_key_taken("any", "20261120", MARKET)
    assert not vi_key_taken("any", "nonsense", MARKET)
