"""`Catalog.coverage` and `Catalog.bars` (the best bars): each minute's standing, before and
after the day's reconciliation, and the bar that stands for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import (
    Bar,
    Event,
    GapDetected,
    GapStateChanged,
    MinuteBars,
    MinuteCheck,
    Reconciliation,
    SlotDecision,
)
from harness.loadgen import synthetic_tick
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from observer.data import Catalog
from observer.data.bars import BEST_BARS_SCHEMA
from observer.data.coverage import COVERAGE_SCHEMA
from observer.writer.store import Store

DAY = date(2026, 11, 18)  # a Wednesday session
_NS = 10**9


def at(hhmmss: str) -> int:
    return int(datetime.combine(DAY, time.fromisoformat(hhmmss), KST).timestamp()) * _NS


def publish(store: Store, source: str, timed: list[tuple[int, Event]]) -> None:
    """Commit ``timed`` events of ``source``, each produced at its instant."""
    first = store.marks.get(source, 0) + 1
    envelopes = [Envelope(source, first + i, ns, e) for i, (ns, e) in enumerate(timed)]
    store.apply([decode_parts(encode_frame(envelopes))])


def trade(hhmmss: str, price: int, qty: int) -> Event:
    tick = synthetic_tick(0, at(hhmmss))
    return msgspec.structs.replace(tick, symbol="005930", price=price, qty=qty)


def slot(action: str) -> Event:
    return SlotDecision(
        account="a1",
        action=action,  # type: ignore[arg-type]
        symbol="005930",
        slot=0,
        trigger="market_cap",
        score=Decimal(1),
        reason="test",
    )


@pytest.fixture
def day(store: Store, tmp_path: Path) -> Iterator[Catalog]:
    """005930 watched 09:30-09:40 with trades, a recovered gap and an unrecoverable one."""
    publish(
        store, "track_b", [(at("09:30:00"), slot("allocate")), (at("09:40:00"), slot("release"))]
    )
    publish(
        store,
        "track_b_ticks",
        [
            (at(t), trade(t, p, q))
            for t, p, q in (
                ("09:31:10", 70_100, 5),
                ("09:31:40", 70_300, 3),
                ("09:31:50", 70_000, 2),
                ("09:33:05", 70_200, 1),
            )
        ],
    )
    recovered = GapDetected(
        gap_id="g1",
        symbol="005930",
        start_ns=at("09:34:00"),
        end_ns=at("09:36:00"),
        reason="disconnect",
    )
    lost = GapDetected(
        gap_id="g2",
        symbol="005930",
        start_ns=at("09:37:00"),
        end_ns=at("09:37:30"),
        reason="disconnect",
    )
    bars = tuple(
        Bar(
            minute_ns=at(m),
            open=71_000,
            high=71_500,
            low=70_900,
            close=71_200,
            volume=40,
            value=2_840_000,
        )
        for m in ("09:34:00", "09:35:00")
    )
    publish(
        store,
        "gap_recovery",
        [
            (at("09:36:10"), recovered),
            (at("09:37:40"), lost),
            (
                at("09:40:00"),
                MinuteBars(symbol="005930", quality="recovered", bars=bars, gap_id="g1"),
            ),
            (at("09:40:01"), GapStateChanged(gap_id="g1", state="recovered", bars=2)),
            (at("09:50:00"), GapStateChanged(gap_id="g2", state="unrecoverable")),
        ],
    )
    url = store.engine.url.render_as_string(hide_password=False)
    with Catalog(url, tmp_path / "archive") as catalog:
        yield catalog


def _by_minute(catalog: Catalog) -> dict[str, tuple[str, bool, int, int]]:
    table = catalog.coverage("005930", DAY)
    assert table.schema == COVERAGE_SCHEMA
    return {
        f"{row['minute_time']:%H:%M}": (row["status"], row["verified"], row["ticks"], row["volume"])
        for row in table.to_pylist()
    }


def test_each_minute_says_where_it_stands_before_the_reconciliation(day: Catalog) -> None:
    minutes = _by_minute(day)
    assert minutes["09:00"] == ("not_watched", False, 0, 0)  # KRX's session: every minute
    assert minutes["15:29"][0] == "not_watched"
    assert minutes["09:30"][0] == "not_watched"  # the slot taken at 09:30:00: not whole
    assert minutes["09:31"] == ("ticks", False, 3, 10)
    assert minutes["09:32"] == ("quiet", False, 0, 0)
    assert minutes["09:33"] == ("ticks", False, 1, 1)
    assert minutes["09:34"][0] == minutes["09:35"][0] == "recovered"
    assert minutes["09:36"][0] == "quiet"
    assert minutes["09:37"][0] == "missing"  # the unrecoverable gap
    assert minutes["09:38"][0] == "quiet"
    assert minutes["09:39"][0] == "not_watched"  # released at 09:40:00: not whole
    assert day.coverage("000660", DAY)["status"].unique().to_pylist() == ["not_watched"]


def test_a_minute_s_session_is_its_first_instant_s_as_its_trades_bar_and_check_say(
    day: Catalog,
) -> None:
    """An auction's match prints at the first instant of a minute: KRX's 09:00 and 15:30,
    Nextrade's 15:40 are the auctions' (as `Venues.session_of_ns` labels a trade, a
    recovered bar and a reconciled minute), and KRX's 15:30, which no session follows, is
    in the grid; a minute a session opens within (Nextrade's 09:00, from 09:00:30) is that
    session's; every minute once, at its opening instant."""
    venues = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))
    krx = {
        "09:00": "opening_auction",
        "09:01": "regular",
        "15:19": "regular",
        "15:20": "closing_auction",
        "15:30": "closing_auction",
        "15:40": "off_hours_close",
        "16:00": "after_market",
        "19:59": "after_market",
    }
    nxt = {
        "08:49": "pre_market",
        "08:50": "",
        "09:00": "regular",
        "09:01": "regular",
        "15:40": "opening_auction",
        "15:41": "after_market",
    }
    for venue, edges in (("KRX", krx), ("NXT", nxt)):
        table = day.coverage("005930", DAY, venue=venue)
        sessions = {
            f"{row['minute_time']:%H:%M}": row["trading_session"] for row in table.to_pylist()
        }
        assert {hhmm: sessions.get(hhmm, "") for hhmm in edges} == edges
        assert len(sessions) == table.num_rows  # one row a minute
        assert all(row["minute_ns"] % (60 * _NS) == 0 for row in table.to_pylist())
        for hhmm, session in sessions.items():
            assert session == (venues.session_of_ns(venue, at(f"{hhmm}:00")) or session) != ""
    assert "20:00" not in sessions


def test_the_reconciliation_decides_once_it_has_run(day: Catalog, store: Store) -> None:
    checks = (
        MinuteCheck(minute_ns=at("09:31:00"), status="complete", stored_volume=10, bar_volume=10),
        MinuteCheck(minute_ns=at("09:32:00"), status="complete", stored_volume=0, bar_volume=0),
        MinuteCheck(minute_ns=at("09:33:00"), status="short", stored_volume=1, bar_volume=6),
        # Short, naming a gap recovered since the verdict, and one that never was
        MinuteCheck(
            minute_ns=at("09:35:00"), status="short", stored_volume=0, bar_volume=40, gap_id="g1"
        ),
        MinuteCheck(
            minute_ns=at("09:37:00"), status="short", stored_volume=0, bar_volume=7, gap_id="g2"
        ),
    )
    reconciliation = Reconciliation(trade_date=DAY, symbol="005930", minutes=checks)
    publish(store, "gap_recovery", [(at("15:33:00"), reconciliation)])
    minutes = _by_minute(day)
    assert minutes["09:31"] == ("ticks", True, 3, 10)
    assert minutes["09:32"] == ("quiet", True, 0, 0)
    assert minutes["09:33"] == ("missing", True, 1, 1)  # the exchange traded 6
    assert minutes["09:34"] == ("recovered", False, 0, 0)  # not compared: the gap's word
    assert minutes["09:35"] == ("recovered", True, 0, 0)
    assert minutes["09:37"] == ("missing", True, 0, 0)


def test_the_best_bars_come_from_the_trades_where_whole_else_from_kis(day: Catalog) -> None:
    bars = day.bars("005930", DAY)
    assert bars.schema == BEST_BARS_SCHEMA and bars.equals(day.bars("005930", DAY, source="best"))
    rows = {f"{r['minute_time']:%H:%M}": r for r in bars.to_pylist()}
    assert sorted(rows) == ["09:31", "09:33", "09:34", "09:35"]  # no bar: quiet, missing
    first = rows["09:31"]
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        70_100,
        70_300,
        70_000,
        70_000,
    )
    assert (first["volume"], first["value"], first["trades"]) == (10, 701_400, 3)
    assert first["built_from"] == "ticks" and first["trading_session"] == "regular"
    kis = rows["09:34"]
    assert (kis["open"], kis["close"], kis["volume"], kis["trades"]) == (71_000, 71_200, 40, None)
    assert kis["built_from"] == "kis"
    # A range inside the day: its minutes alone
    part = day.bars("005930", f"{DAY} 09:33", f"{DAY} 09:35")
    assert [f"{t:%H:%M}" for t in part["minute_time"].to_pylist()] == ["09:33", "09:34"]


def test_a_day_still_going_on_is_watched_up_to_the_catalog_s_clock(
    day: Catalog, store: Store
) -> None:
    """The project's clock (a simulated day's), not the machine's, says what has closed."""
    early = Catalog(day.url, day.archive.root, clock=ManualClock(at("09:35:30")))
    with early:
        table = early.coverage("005930", DAY)
    minutes = {f"{r['minute_time']:%H:%M}": r["status"] for r in table.to_pylist()}
    assert minutes["09:34"] == "recovered"  # closed by 09:35:30
    assert minutes["09:36"] == minutes["09:38"] == "not_watched"  # not yet


def test_a_minute_made_whole_by_the_exchange_s_trades_says_so_and_has_its_bar(
    day: Catalog, store: Store
) -> None:
    """09:38: an outage measured by the chain (45 shares), its trades recovered: the minute
    is ``recovered_trades`` and its best bar is built from the streamed and recovered trades
    together; a minute with a KIS bar recovered is ``recovered`` whatever covers it too."""
    streamed = trade("09:38:05", 70_500, 5)

    def chained(gap_id: str, span: tuple[str, str], reason: str, before: int, after: int) -> Event:
        """005930's gap over ``span``, measured by the chain: ``before`` to ``after`` shares."""
        return GapDetected(
            gap_id=gap_id,
            symbol="005930",
            start_ns=at(span[0]),
            end_ns=at(span[1]),
            reason=reason,  # type: ignore[arg-type]
            missing_volume=after - before,
            cum_before=before,
            cum_after=after,
        )

    measured = chained("g3", ("09:38:05", "09:38:40"), "disconnect", 1_005, 1_050)
    # a chain-measured gap over 09:35, whose bar is stored already
    over_bars = chained("g4", ("09:35:10", "09:35:20"), "volume_chain", 900, 903)
    recovered = [trade(t, p, q) for t, p, q in (("09:38:20", 70_600, 40), ("09:38:30", 70_400, 5))]
    # its minute's bar fetched for another gap: no trades, no bars
    elsewhere = chained("g5", ("09:36:10", "09:36:12"), "volume_chain", 950, 957)
    publish(store, "track_b_ticks", [(at("09:38:05"), streamed)])
    publish(
        store,
        "gap_recovery",
        [
            (at("09:38:41"), measured),
            (at("09:38:42"), over_bars),
            (at("09:38:43"), elsewhere),
            (at("09:38:44"), GapStateChanged(gap_id="g5", state="recovered")),
            *((at("09:39:30"), t) for t in recovered),
            (
                at("09:39:31"),
                GapStateChanged(gap_id="g3", state="recovered", trades=2, trade_volume=45),
            ),
            (
                at("09:39:32"),
                GapStateChanged(gap_id="g4", state="recovered", trades=1, trade_volume=3),
            ),
        ],
    )
    minutes = _by_minute(day)
    assert minutes["09:38"] == ("recovered_trades", False, 3, 50)
    assert minutes["09:35"][0] == "recovered"  # KIS's bar stands for it
    assert minutes["09:36"][0] == "recovered"  # neither its trades nor a bar of its own
    bars = {f"{r['minute_time']:%H:%M}": r for r in day.bars("005930", DAY).to_pylist()}
    whole = bars["09:38"]
    assert (whole["open"], whole["high"], whole["low"], whole["close"]) == (
        70_500,
        70_600,
        70_400,
        70_400,
    )
    assert (whole["volume"], whole["trades"], whole["built_from"]) == (50, 3, "ticks")
    assert bars["09:35"]["built_from"] == "kis"
