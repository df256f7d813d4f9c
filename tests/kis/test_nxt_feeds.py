"""Nextrade's and the combined feeds and minute bars, from the simulator to typed events.

A real `KisStream` against the simulator's WebSocket registers KRX's, Nextrade's and the
combined trade TRs and Nextrade's book for one name Nextrade lists, and Nextrade's trades for
one it does not; the simulator's clock runs from 08:44 to past 09:01 (Nextrade's pre-market,
the ten minutes when no venue trades, both venues' first minute).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest

from bus.events import OrderBook, TradeTick, Venue
from harness.sim.config import Faults, SimConfig, TickLoss
from harness.sim.market import KST, Market
from harness.sim.nextrade import span_at, venue_trades
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.calendar.venues import VENUES, venues_from
from observer.kis.auth import TokenManager
from observer.kis.credentials import Credentials, Secret
from observer.kis.feeds import Feed
from observer.kis.schemas import MinuteBarRow
from observer.kis.stream import KisStream
from tests.kis.test_kis_stream import Heard
from tests.support import SimThread, sim_client, until

DAY = date(2026, 11, 20)
MARKET = Market(23, TradingCalendar(), stocks=120, etfs=2)
_NS = 1_000_000_000


def _kst(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=KST)


def _ns(hh: int, mm: int) -> int:
    return int(_kst(hh, mm).timestamp()) * _NS


def _minute(tick: TradeTick) -> int:
    """The KST minute of the day a trade is stamped in."""
    return ((tick.exchange_ns // _NS + 9 * 3600) % 86_400) // 60


def _stream_day(
    tmp_path: Path,
    config: SimConfig,
    wanted: list[Feed],
    losses: tuple[TickLoss, ...] = (),
) -> tuple[Heard, dict[str, int]]:
    """Register ``wanted`` at 08:44 on a simulator at 30x, 120x from 08:48:30 (losing
    ``losses``); what the stream heard to 09:02, and the trade records the simulator withheld
    per symbol. The slow start leaves a loaded machine 9 wall s to connect and register
    before Nextrade's pre-market's last heard minute (08:48) ends: its name trades in four of
    those minutes alone, once or twice each."""
    sim = SimThread(MARKET, _kst(8, 44), config, 30.0, changes=((_kst(8, 48, 30), 120.0),))
    sim.sim.faults.tick_loss.extend(losses)
    clock = sim.sim.clock
    venues = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))
    heard = Heard()

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=sim.url) as http:
            creds = Credentials("acct1", Secret("sim-acct1-app-key"), Secret("sim-acct1-secret"))
            tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim")
            url = sim.url.replace("http", "ws", 1) + "/tryitout"
            stream = KisStream(
                url, tokens, clock, heard, account="acct1", session_of=venues.session_of_ns
            )
            for registration in wanted:
                await stream.subscribe(registration)
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            end = int(_kst(9, 2).timestamp()) * _NS
            await until(lambda: clock.now_ns() >= end or runner.done(), "09:02", timeout=60)
            assert not runner.done(), runner
            stop.set()
            await runner

    try:
        asyncio.run(scenario())
    finally:
        sim.close()
    return heard, dict(sim.sim.realtime.records_withheld)


def _ticks(heard: Heard, tr_id: str, symbol: str) -> list[TradeTick]:
    return [t for f, _ in heard.frames if f.tr_id == tr_id for t in f.ticks if t.symbol == symbol]


@pytest.mark.timed
def test_each_venue_feed_sends_its_own_trades_in_its_sessions(tmp_path: Path) -> None:
    """Nextrade's feed: its trades alone, stamped in its sessions (pre-market to 08:50, its
    main session from 09:00:30), each the simulator drew; the combined feed: KRX's and
    Nextrade's in one stream with no venue; a name Nextrade does not list: registered,
    silent. Each record is decoded with its TR's venue and that venue's session. A minute
    Nextrade's feed withholds (the session up) is missing there alone."""
    listed = sorted(MARKET.nxt_eligible(DAY), key=lambda s: -MARKET.close(s, DAY))[0]
    unlisted = sorted(s for s in MARKET.listings if s not in MARKET.nxt_eligible(DAY))[0]
    wanted = [
        Feed("trades", "KRX", listed),
        Feed("trades", "NXT", listed),
        Feed("trades", "combined", listed),
        Feed("book", "NXT", listed),
        Feed("trades", "NXT", unlisted),
    ]
    # Nextrade's feed alone loses 08:49 (the session stays up); KRX's and the combined don't.
    loss = TickLoss(_ns(8, 49), _ns(8, 50), 1.0, frozenset({listed}), frozenset({"H0NXCNT0"}))
    heard, withheld = _stream_day(tmp_path, SimConfig(realtime_layout="2026-09"), wanted, (loss,))
    assert set(heard.registered) == set(wanted) and not heard.refused
    assert not [f for f, _ in heard.frames if f.errors]

    nxt = _ticks(heard, "H0NXCNT0", listed)
    assert {t.venue for t in nxt} == {"NXT"}
    assert Counter(t.trading_session for t in nxt).keys() == {"pre_market", "regular"}
    assert Counter(t.market_session for t in nxt).keys() == {"1", "2"}
    for tick in nxt:  # none while Nextrade is closed (08:50 to 09:00:30)
        assert span_at((tick.exchange_ns // _NS + 9 * 3600) % 86_400) is not None
    # 09:00 whole: every trade the simulator drew for it, once; 08:49 withheld on this feed.
    drawn = MARKET.nxt_ticks(listed, DAY, 9 * 60)
    assert [(t.price, t.qty) for t in nxt if _minute(t) == 9 * 60] == [
        (t.price, t.qty) for t in drawn
    ]
    lost = MARKET.nxt_ticks(listed, DAY, 8 * 60 + 49)
    assert lost and not [t for t in nxt if _minute(t) == 8 * 60 + 49]
    assert withheld == {listed: len(lost)}
    assert _ticks(heard, "H0NXCNT0", unlisted) == []

    krx = _ticks(heard, "H0STCNT0", listed)
    combined = _ticks(heard, "H0UNCNT0", listed)
    assert {t.venue for t in krx} == {"KRX"} and {t.venue for t in combined} == {"combined"}
    early = [(t.price, t.qty) for t in combined if _minute(t) == 8 * 60 + 49]
    assert early == [(t.price, t.qty) for t in lost]  # the combined feed lost none of them
    assert not [t for t in krx if _minute(t) < 9 * 60]  # KRX's feed: its regular session
    nine = 9 * 60
    both = sorted((t.exchange_ns, t.price, t.qty) for t in krx + nxt if _minute(t) == nine)
    assert sorted((t.exchange_ns, t.price, t.qty) for t in combined if _minute(t) == nine) == both
    # Cumulative volume runs across both venues in the combined feed.
    volumes = [t.cum_volume for t in combined]
    assert volumes == sorted(volumes)

    books: list[OrderBook] = [b for f, _ in heard.frames if f.tr_id == "H0NXASP0" for b in f.books]
    assert books and {b.venue for b in books} == {"NXT"}
    assert all(b.mid_price is not None for b in books)  # Nextrade's own mid-point (62 fields)


def test_a_paper_account_registers_krx_feeds_and_no_other(tmp_path: Path) -> None:
    """KIS's paper host offers KRX's trades and book alone: Nextrade's and the combined TRs
    are refused (once each: the stream does not ask again), KRX's flow."""
    symbol = sorted(MARKET.nxt_eligible(DAY), key=lambda s: -MARKET.close(s, DAY))[0]
    wanted = [Feed("trades", "KRX", symbol), Feed("trades", "NXT", symbol)]
    wanted.append(Feed("book", "combined", symbol))
    heard, _ = _stream_day(tmp_path, SimConfig(paper=True), wanted)
    assert heard.registered == [Feed("trades", "KRX", symbol)]
    assert sorted((r.label, code) for r, code, _ in heard.refused) == [
        ("NXT trades", "OPSP8991"),
        ("combined book", "OPSP8991"),
    ]
    assert {f.tr_id for f, _ in heard.frames} == {"H0STCNT0"}
    assert _ticks(heard, "H0STCNT0", symbol)


def test_minute_bars_per_venue_are_each_venue_s_trades(tmp_path: Path) -> None:
    """FHKST03010200 and FHKST03010230 for J, NX and UN: KRX's bars from 09:00, Nextrade's
    from its own trades (its pre-market too, and no bar for a minute without one), the
    combined ones from both venues' trades of the minute, each row what the trades add up to;
    a name Nextrade does not list has no NX bars and its UN bars are KRX's."""
    listed = sorted(MARKET.nxt_eligible(DAY), key=lambda s: -MARKET.close(s, DAY))[0]
    unlisted = sorted(s for s in MARKET.listings if s not in MARKET.nxt_eligible(DAY))[0]
    sim = SimThread(MARKET, _kst(9, 20), SimConfig(token_min_interval_s=0))

    async def ask() -> dict[tuple[str, Venue, str], list[MinuteBarRow]]:
        client = sim_client(sim, tmp_path, "acct1")
        try:
            bars = {}
            for symbol in (listed, unlisted):
                for venue in VENUES:
                    today = await client.minute_bars_today(symbol, "091000", "084500", venue)
                    past = await client.minute_bars_on(
                        symbol, "20261116", "091000", "084500", venue
                    )
                    bars[symbol, venue, "today"], bars[symbol, venue, "past"] = today, past
            return bars
        finally:
            await client._http.aclose()  # type: ignore[attr-defined]

    try:
        bars = asyncio.run(ask())
    finally:
        sim.close()

    def expected(
        symbol: str, day: date, combined: bool
    ) -> list[tuple[str, int, int, int, int, int]]:
        rows = []
        for minute in range(8 * 60 + 45, 9 * 60 + 11):
            trades = venue_trades(MARKET, Faults(), symbol, day, minute, combined)
            if trades:
                prices = [p for _, p, _ in trades]
                volume = sum(q for _, _, q in trades)
                hhmm = f"{minute // 60:02d}{minute % 60:02d}00"
                rows.append((hhmm, prices[0], max(prices), min(prices), prices[-1], volume))
        return rows

    def read(rows: list[MinuteBarRow]) -> list[tuple[str, int, int, int, int, int]]:
        return [
            (
                r.stck_cntg_hour,
                int(r.stck_oprc),
                int(r.stck_hgpr),
                int(r.stck_lwpr),
                int(r.stck_prpr),
                int(r.cntg_vol),
            )
            for r in rows
        ]

    # past: an ordinary Monday (the CSAT day, 11-19, has its own hours)
    for when, day in (("today", DAY), ("past", date(2026, 11, 16))):
        nxt = read(bars[listed, "NXT", when])
        assert nxt == expected(listed, day, combined=False)
        assert {h for h, *_ in nxt} >= {"084900", "090000"}  # its pre-market and main session
        assert not [h for h, *_ in nxt if "085000" <= h < "090000"]  # nobody trades then
        assert read(bars[listed, "combined", when]) == expected(listed, day, combined=True)
        krx = read(bars[listed, "KRX", when])
        assert krx and min(h for h, *_ in krx) == "090000"
        assert bars[unlisted, "NXT", when] == []
        assert read(bars[unlisted, "combined", when]) == read(bars[unlisted, "KRX", when])
