"""A feed that lies stores nothing false, and a bad frame costs that frame alone.

Through a proxy between Track B's collector and the simulator's WebSocket (`tests.feed_proxy`),
real trades are rewritten and frames injected: a record of a symbol the session never asked
for (unlisted ``999999``, and a listed one), a negative price, a zero quantity, one beyond
the day's limits, a time outside the session, a 10 MB frame, a
frame whose count does not match its records, one that is not UTF-8 (and holds the app key
and the approval key). The collector publishes through a real producer to a real writer;
the database is read afterwards: no such tick, a rejected row with its text for each, one
alert per kind and symbol, and a session that never reconnected for them. A price off the
tick grid is a trade like any other (a mid-point): stored, and counted. Then a burst of
bad frames: one alert, exactly one reconnect, and the episode's end resolved; a 10 MB
frame ends no session (no close code 1009, no gap for every symbol of the account).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bus.events import AlertResolved, Event, GapDetected
from bus.producer import Producer
from harness.sim.price_units import round_tick, tick_size
from observer.kis.parse import price_snapshot
from observer.kis.realtime import TRADE_TRS
from observer.kis.record_checks import Checks
from observer.kis.schemas import CurrentPriceOutput
from observer.kis.session import open_account, rate_limits
from observer.kis.stream import StreamSettings
from observer.process.logs import mask_struct
from tests.feed_proxy import FeedProxy, records, with_records
from tests.support import SimThread, WriterProcess, db_rows, until
from tests.track_b.conftest import MARKET, STOCKS, TEN
from tests.track_b.test_collect import settings_for
from tests.track_b.test_track_b_faults import quote
from workers.track_b.collect import Collector, CollectorSettings
from workers.track_b.gaps import SilenceRule
from workers.track_b.layouts import LAYOUT_UNKNOWN
from workers.track_b.rejections import BAD_FRAMES, DATA_REJECTED
from workers.track_b.slots import SlotBook, SlotCandidate

_NS = 1_000_000_000
PRICE, VOLUME, TIME = 2, 12, 1  # H0STCNT0 fields: STCK_PRPR, CNTG_VOL, STCK_CNTG_HOUR
BIG = 10_000_000  # characters of the oversized frame
BURST = 12  # malformed frames at once: above the 10 a minute the test's limits allow
TRADE_RECORD = "^".join(["005930", "100000", "73100", *["1"] * 43])  # 46 fields

_CHANGED = (  # the kinds of the real trades rewritten
    "price_not_positive",
    "volume_not_positive",
    "outside_limits",
    "outside_session",
)

TRADE = TRADE_TRS["KRX"]  # the frames are KRX's trades


Row = list[str]
Rewrite = Callable[[str], list[str | bytes] | None]


def _first(change: Callable[[Row], Row | None]) -> Rewrite:
    """A rewrite of a trade frame's first record ``change`` applies to (it returns it)."""

    def rewrite(text: str) -> list[str | bytes] | None:
        tr_id, rows = records(text)
        if tr_id != TRADE:
            return None
        for n, row in enumerate(rows):
            if (new := change(list(row))) is not None:
                rows[n] = new
                return [with_records(tr_id, rows)]
        return None

    return rewrite


def _field(field: int, value: Callable[[Row], str], seen: list[Row]) -> Rewrite:
    """A trade record's ``field`` set to ``value`` of it (the record kept in ``seen``)."""

    def change(row: Row) -> Row:
        row[field] = value(row)
        seen.append(row)
        return row

    return _first(change)


def _extra(symbol: str, seen: list[str]) -> Rewrite:
    """One record more in a trade frame: a copy of its first, of ``symbol``."""

    def rewrite(text: str) -> list[str | bytes] | None:
        tr_id, rows = records(text)
        if tr_id != TRADE:
            return None
        seen.append(symbol)
        return [with_records(tr_id, [*rows, [symbol, *rows[0][1:]]])]

    return rewrite


def _after(*extra: str | bytes) -> Rewrite:
    """The frame, then ``extra`` frames."""
    return lambda text: [text, *extra]


def test_a_hostile_feed_stores_nothing_false_and_a_bad_frame_costs_that_frame(
    tmp_path: Path, db_url: str
) -> None:
    writer = WriterProcess(tmp_path, db_url).start()
    sim = SimThread(MARKET, TEN, speed=30)
    proxy = FeedProxy(sim.url.replace("http", "ws", 1) + "/tryitout")
    settings = settings_for(tmp_path, sim.url, "acct1")
    clock = sim.sim.clock
    limits: dict[str, tuple[int, int]] = {}
    for symbol in STOCKS[:3]:  # the day's limits, as Track A's snapshots give them
        answer = msgspec.convert(quote(sim, symbol), CurrentPriceOutput)
        snapshot = price_snapshot(answer, symbol, "KOSPI", "c", 0)
        limits[symbol] = (snapshot.lower_limit, snapshot.upper_limit)
    injected: dict[str, list[Row]] = {kind: [] for kind in _CHANGED}
    extra: list[str] = []
    published: list[Event] = []
    seen: dict[str, Any] = {}

    def off_grid(row: Row) -> Row | None:
        price = int(row[PRICE])
        if tick_size(price) == 1:
            return None
        row[PRICE] = str(price + 1)
        seen["off_grid"] = row
        return row

    def beyond(row: Row) -> Row:
        row[PRICE] = str(round_tick(limits[row[0]][1] * 2))  # on the grid, twice the upper
        injected["outside_limits"].append(row)
        return row

    async def scenario(producer: Producer) -> None:
        def publish(event: Event) -> int:
            published.append(event)
            return producer.send(event)

        account = open_account(settings.kis, "acct1", clock, rate_limits(settings.kis, "track_a"))
        account.ws_url = proxy.url  # the hostile feed in between
        collector = Collector(
            [account],
            clock,
            publish,
            CollectorSettings(
                silence=SilenceRule(5.0, 900.0),
                refused_quiet_s=3600,
                checks=Checks(),
                stream=StreamSettings(bad_frames_per_minute=10),
            ),
            limits=limits,
        )
        stream, counts = collector.streams["acct1"], collector.rejections.counts
        stop = asyncio.Event()
        running = asyncio.ensure_future(collector.run(stop))
        try:
            book = SlotBook(["acct1"], 3)
            picks = [SlotCandidate(s, "volume_surge", 10.0 + n) for n, s in enumerate(limits)]
            await collector.apply(book.evaluate(picks, clock.now_ns(), collector.healthy()))
            await until(lambda: collector.ticks > 30, "ticks of the three", timeout=30)
            key = account.tokens.approval_key_now()
            assert key is not None
            secrets = "^".join(["005930", "sim-acct1-app-key", key.reveal()]).encode()
            seen["miscounted"] = f"0|H0STCNT0|002|{TRADE_RECORD}"  # one record, count 2
            proxy.rewrite(
                _extra("999999", extra),  # neither registered nor listed
                _extra(STOCKS[10], extra),  # listed, not asked for
                _field(PRICE, lambda row: f"-{row[PRICE]}", injected["price_not_positive"]),
                _field(VOLUME, lambda row: "0", injected["volume_not_positive"]),
                _first(off_grid),
                _first(beyond),
                _field(TIME, lambda row: "030000", injected["outside_session"]),
                _after("0|H0STCNT0|001|" + "9" * (BIG - 15)),
                _after(seen["miscounted"]),
                _after(b"0|H0STCNT0|001|\xff\xfe" + secrets),
            )
            await until(
                lambda: (
                    proxy.pending == 0
                    and counts["acct1", "malformed_frame"] == 1
                    and counts["acct1", "unknown_layout"] == 1
                ),
                "each fault",
                timeout=60,
            )
            seen["before"] = (proxy.connections, stream.reconnects)
            proxy.rewrite(_after(*(f"0|H0STCNT0|00{n % 9 + 2}|x" for n in range(BURST))))
            await until(lambda: proxy.connections == 2, "one reconnect on the burst", timeout=60)
            await until(lambda: _resolved(published, BAD_FRAMES), "the burst's end", timeout=60)
            ticks = collector.ticks
            await until(lambda: collector.ticks > ticks + 30, "ticks after it", timeout=30)
            seen["after"] = (proxy.connections, stream.reconnects)
            seen["dropped"] = stream.dropped
            seen["counters"] = collector.account_counters()
            seen["price_kinds"] = dict(collector.off_grid)
        finally:
            stop.set()
            await running
            await account.aclose()

    try:
        with Producer("track_b", writer.ingest, tmp_path / "outbox", scrub=mask_struct) as producer:
            asyncio.run(scenario(producer))
            assert producer.wait_acked(60)
        _check(writer.url, limits, injected, extra, seen, published)
    finally:
        proxy.close()
        sim.close()
        writer.kill()


def _resolved(published: list[Event], code: str) -> bool:
    return any(isinstance(e, AlertResolved) and e.code == code for e in published)


def _check(
    url: str,
    limits: dict[str, tuple[int, int]],
    injected: dict[str, list[Row]],
    extra: list[str],
    seen: dict[str, Any],
    published: list[Event],
) -> None:
    # Nothing false stored as a tick: only what was asked for, and what can be.
    ticks = db_rows(url, "select symbol, exchange_ns, price, qty from trade_ticks")
    assert len(ticks) > 60 and {t[0] for t in ticks} == set(limits)
    for symbol, stamp, price, qty in ticks:
        lower, upper = limits[symbol]
        assert qty > 0 and 0 < lower <= price <= upper
        assert 9 <= (stamp // _NS + 9 * 3600) % 86_400 // 3600 < 16, (symbol, stamp)
    # The price off the grid (a mid-point of its record's spread) is stored, and counted.
    off = seen["off_grid"]
    assert (off[0], int(off[PRICE])) in {(t[0], t[2]) for t in ticks}
    stored_off = sum(price % tick_size(price) != 0 for _, _, price, _ in ticks)
    assert seen["price_kinds"].get(("KRX", "mid_point"), 0) >= 1
    assert sum(seen["price_kinds"].values()) == stored_off
    # A rejected row for each, with its frame's text.
    rows = db_rows(url, "select kind, symbol, tr_id, reason, text, length from realtime_rejections")
    by_kind: dict[str, list[Any]] = {}
    for row in rows:
        by_kind.setdefault(row[0], []).append(row)
    figures = {kind: len(found) for kind, found in sorted(by_kind.items())}
    print(f"\nrejected kinds, hostile feed ({url.split(':')[0]}): {json.dumps(figures)}")
    assert sorted(r[1] for r in by_kind["unregistered"]) == sorted(extra) == ["007230", "999999"]
    for kind in _CHANGED:
        [row] = by_kind[kind]
        [record] = injected[kind]
        assert (row[1], row[2]) == (record[0], TRADE) and "^".join(record) in row[4], kind
    [big] = by_kind["oversized_frame"]
    assert big[5] == BIG and big[4] == "0|H0STCNT0|001|" + "9" * (4096 - 15)
    [not_utf8] = by_kind["malformed_frame"]
    # A count that does not match its records reads as a width no layout has (46 / 2: 23).
    miscounted, *burst = by_kind["unknown_layout"]
    assert miscounted[4] == seen["miscounted"] and "23 fields wide" in miscounted[3]
    assert miscounted[2] == TRADE and {row[2] for row in burst} == {TRADE}
    assert "not UTF-8" in not_utf8[3] and not_utf8[4].startswith("0|H0STCNT0|001|\ufffd")
    # The app key and the approval key in that frame are masked, as in any event.
    assert not_utf8[4].endswith("005930^***^***"), not_utf8[4]
    assert 0 < len(burst) <= BURST  # those the burst's connection read before it closed
    # Counted, per kind (and in all, as the stream counts frames).
    counters = seen["counters"]
    for kind, count in figures.items():
        assert counters[f"account.acct1.rejected.{kind}"] == count
    assert counters["account.acct1.rejected_records"] == 6
    dropped = ("oversized_frame", "malformed_frame", "unknown_layout")
    assert seen["dropped"] == sum(figures[kind] for kind in dropped)
    # One alert per kind and symbol; a refused trade of a streamed symbol is a gap.
    alerts = db_rows(url, "select code, subject from alerts")
    expected = {f"acct1/unregistered/{symbol}" for symbol in extra} | {
        f"acct1/{kind}/{injected[kind][0][0]}" for kind in _CHANGED
    }
    assert Counter(s for c, s in alerts if c == DATA_REJECTED) == Counter(expected)
    assert [s for c, s in alerts if c == BAD_FRAMES] == ["acct1"]
    # The miscounted frame and the burst's (whose fields make no whole records): one each.
    layouts = sorted(s for c, s in alerts if c == LAYOUT_UNKNOWN)
    assert layouts == ["H0STCNT0/23", "H0STCNT0/uneven"]
    resolved = db_rows(url, "select code, subject from alert_resolutions")
    assert [(c, s) for c, s in resolved if c == BAD_FRAMES] == [(BAD_FRAMES, "acct1")]
    gaps = {
        e.symbol for e in published if isinstance(e, GapDetected) and e.reason == "dropped_record"
    }
    assert {injected[kind][0][0] for kind in _CHANGED} <= gaps
    # No reconnect for a single bad frame; exactly one for the burst.
    assert seen["before"] == (1, 0) and seen["after"] == (2, 1)
