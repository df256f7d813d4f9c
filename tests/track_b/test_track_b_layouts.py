"""Track B against the simulator in the 2026-09 real-time layout, and in one it does not know.

One simulator serving the 2026-09 layout (H0STCNT0 47 fields, H0STASP0 63) and one writer,
for the module. Trades and books of that layout are stored with their session code and
mid-point. With two unknown fields appended to every record (49 and 65 wide), nothing of
those frames is stored as data: each is kept as a rejected record, and one alert is raised
per TR and width, however many frames and reconnects follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from bus.events import Alert, Event, OrderBook, TradeTick
from bus.producer import Producer
from harness.sim.config import SimConfig
from observer.kis.session import open_account, rate_limits
from observer.process.logs import mask_struct
from tests.support import SimThread, WriterProcess, db_rows, until
from tests.track_b.conftest import MARKET, STOCKS, TEN
from tests.track_b.test_collect import settings_for
from workers.track_b.collect import Collector, CollectorSettings
from workers.track_b.layouts import LAYOUT_UNKNOWN
from workers.track_b.slots import SlotBook, SlotCandidate

SYMBOLS = STOCKS[:2]


@dataclass
class Rig:
    sim: SimThread
    writer: WriterProcess
    workdir: Path


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The simulator (the 2026-09 layout, its default) and a writer on SQLite, shared by the
    module's tests."""
    workdir = tmp_path_factory.mktemp("layouts")
    writer = WriterProcess(workdir, f"sqlite:///{workdir / 'observer.db'}").start()
    sim = SimThread(MARKET, TEN, SimConfig(), speed=30)
    try:
        yield Rig(sim, writer, workdir)
    finally:
        sim.close()
        writer.kill()


def _collect(
    rig: Rig, alias: str, enough: Callable[[Collector], bool]
) -> tuple[list[Event], Collector]:
    """Stream `SYMBOLS`' trades and books on ``alias`` until ``enough`` holds of the collector,
    through a producer into the module's writer."""
    (rig.workdir / alias).mkdir(exist_ok=True)
    settings = settings_for(rig.workdir / alias, rig.sim.url, alias)
    clock = rig.sim.sim.clock
    published: list[Event] = []
    collectors: list[Collector] = []

    async def scenario(producer: Producer) -> None:
        def publish(event: Event) -> int:
            published.append(event)
            return producer.send(event)

        account = open_account(settings.kis, alias, clock, rate_limits(settings.kis, "track_a"))
        collector = Collector(
            [account], clock, publish, CollectorSettings(kinds=("trades", "book"))
        )
        collectors.append(collector)
        stop = asyncio.Event()
        running = asyncio.ensure_future(collector.run(stop))
        try:
            book = SlotBook([alias], 2)
            picks = [SlotCandidate(s, "volume_surge", 10.0 + n) for n, s in enumerate(SYMBOLS)]
            await collector.apply(book.evaluate(picks, clock.now_ns(), collector.healthy()))
            await until(lambda: enough(collector), f"enough data on {alias}", timeout=30)
        finally:
            stop.set()
            await running
            await account.aclose()

    # One outbox for the module's producers: the second goes on from the first's seq.
    with Producer("track_b", rig.writer.ingest, rig.workdir / "outbox", scrub=mask_struct) as p:
        asyncio.run(scenario(p))
        assert p.wait_acked(60)
    return published, collectors[0]


def test_the_newer_layout_stores_the_session_and_the_mid_point(rig: Rig) -> None:
    rig.sim.sim.config.realtime_extra_fields = 0
    published, collector = _collect(rig, "acct1", lambda c: c.ticks >= 10)
    ticks = [e for e in published if isinstance(e, TradeTick)]
    books = [e for e in published if isinstance(e, OrderBook)]
    assert ticks and books and not collector.layouts.counts
    assert {t.market_session for t in ticks} == {"2"}
    assert {(b.mid_qty, b.mid_side, b.market_session) for b in books} == {(300, "1", "2")}
    url = rig.writer.url
    stored = db_rows(url, "select market_session from trade_ticks where account = 'acct1'")
    assert len(stored) == len(ticks) and {row[0] for row in stored} == {"2"}
    rows = db_rows(
        url,
        "select mid_price, mid_qty, mid_side, market_session, bid_price_1 from order_books"
        " where account = 'acct1'",
    )
    assert len(rows) == len(books)
    for mid, qty, side, session, best_bid in rows:
        assert Decimal(str(mid)) > best_bid and (qty, side, session) == (300, "1", "2")


def test_the_older_layout_is_still_read_without_the_session_or_the_mid_point(rig: Rig) -> None:
    """The simulator switched to the 2026-05 layout (46 and 59 fields): stored all the same,
    with no session code and no mid-point (the belief before the 2026-09 export)."""
    rig.sim.sim.config.realtime_layout = "2026-05"
    try:
        published, collector = _collect(rig, "acct3", lambda c: c.ticks >= 10)
    finally:
        rig.sim.sim.config.realtime_layout = "2026-09"
    ticks = [e for e in published if isinstance(e, TradeTick)]
    books = [e for e in published if isinstance(e, OrderBook)]
    assert ticks and books and not collector.layouts.counts
    assert {t.market_session for t in ticks} == {None}
    assert {(b.mid_price, b.market_session) for b in books} == {(None, None)}
    stored = db_rows(rig.writer.url, "select count(*) from trade_ticks where account = 'acct3'")
    assert stored == [(len(ticks),)]


def _refused_thrice(c: Collector) -> bool:
    counts = c.layouts.counts
    return counts["H0STCNT0", "49"] >= 3 and counts["H0STASP0", "65"] >= 3


def test_an_unknown_width_stores_nothing_and_alerts_once_per_tr_and_width(rig: Rig) -> None:
    rig.sim.sim.config.realtime_extra_fields = 2  # 49 and 65 fields: no layout's
    try:
        published, _ = _collect(rig, "acct2", _refused_thrice)
    finally:
        rig.sim.sim.config.realtime_extra_fields = 0
    assert not [e for e in published if isinstance(e, (TradeTick, OrderBook))]
    alerts = [e for e in published if isinstance(e, Alert) and e.code == LAYOUT_UNKNOWN]
    assert sorted(a.subject for a in alerts) == ["H0STASP0/65", "H0STCNT0/49"]
    assert all(a.severity == "error" and "refused whole" in a.message for a in alerts)
    url = rig.writer.url
    for table in ("trade_ticks", "order_books"):
        assert db_rows(url, f"select count(*) from {table} where account = 'acct2'") == [(0,)]
    kept = db_rows(
        url,
        "select tr_id, reason from realtime_rejections where account = 'acct2'"
        " and kind = 'unknown_layout'",
    )
    assert {row[0] for row in kept} == {"H0STCNT0", "H0STASP0"}
    assert all("a layout the client does not know" in row[1] for row in kept)
    stored_alerts = db_rows(url, f"select subject from alerts where code = '{LAYOUT_UNKNOWN}'")
    assert sorted(row[0] for row in stored_alerts) == ["H0STASP0/65", "H0STCNT0/49"]
