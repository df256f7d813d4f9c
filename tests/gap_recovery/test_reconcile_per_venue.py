"""The daemon's day: each venue reconciled once its own stream has ended (KRX's after its
close, Nextrade's after its close when Track B follows it there), not all at the last one;
each stream's end reported once its reconciliation settled."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time

import msgspec

from bus.events import Venue
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.config.workers import FeedTable, Kinds, TrackBSettings
from observer.writer.store import Store
from tests.support import ROOT
from workers.gap_recovery.verify import DayResult, Verifier, day_stream_ends

_NS = 10**9
DAY = date(2026, 11, 20)  # a Friday session


def _at(hhmm: str) -> datetime:
    return datetime.combine(DAY, time.fromisoformat(hhmm), tzinfo=KST)


def _settings(after_market: bool, to_close: bool = True, krx_evening: bool = False) -> Settings:
    trades: Kinds = ("trades",)
    feeds = FeedTable(
        nxt_after_market=trades if after_market else (),
        krx_closing_auction=trades if to_close else (),
        krx_after_market=trades if krx_evening else (),
    )
    return Settings(track_b=TrackBSettings(feeds=feeds))


def _verifier(
    store: Store,
    after_market: bool,
    clock: ManualClock,
    to_close: bool = True,
    settled: list[datetime] | None = None,
) -> Verifier:
    return Verifier(
        _settings(after_market, to_close),
        clock,
        lambda event: None,
        store.engine,
        [],
        settled=None if settled is None else settled.append,
    )


def test_each_venue_s_stream_end(store: Store) -> None:
    clock = ManualClock(int(_at("08:00").timestamp()) * _NS)
    followed = _verifier(store, True, clock)
    # Nextrade's feeds to its 20:00 close and the grace of 30 s; KRX's through its closing
    # auction, the 15:30 match's minute whole and the grace
    assert followed.stream_ends(DAY) == [
        (_at("15:31:30"), frozenset({"KRX"})),
        (_at("20:00:30"), None),
    ]
    assert followed.stream_end(DAY, "KRX") == _at("15:31:30")
    assert day_stream_ends(_settings(True), DAY) == followed.stream_ends(DAY)  # the demo's
    assert followed.stream_end(DAY, "NXT") == followed.stream_end(DAY) == _at("20:00:30")
    assert _verifier(store, False, clock).stream_ends(DAY) == [(_at("15:31:30"), None)]
    # To 15:00, the track_a_closing phase, without krx_to_close; the CSAT day an hour later
    assert _verifier(store, False, clock, False).stream_ends(DAY) == [(_at("15:00"), None)]
    shipped = load_settings(ROOT / "config" / "observer.toml")  # its CSAT day: 10:00-16:30
    csat = Verifier(shipped, clock, lambda event: None, store.engine, [])
    assert f"{csat.stream_end(date(2026, 11, 19), 'KRX'):%H:%M:%S}" == "20:00:30"
    # KRX's after-market followed (the default): both venues' streams end at 20:00:30, and
    # the day is reconciled once then; a day before 2026-09-14 has none to follow
    evening = Verifier(_settings(True, krx_evening=True), clock, lambda e: None, store.engine, [])
    assert evening.stream_ends(DAY) == [(_at("20:00:30"), None)]
    assert evening.stream_ends(date(2026, 9, 11)) == [
        (datetime(2026, 9, 11, 15, 31, 30, tzinfo=KST), frozenset({"KRX"})),
        (datetime(2026, 9, 11, 20, 0, 30, tzinfo=KST), None),
    ]
    shipped_old = Verifier(
        msgspec.structs.replace(
            shipped,
            track_b=msgspec.structs.replace(
                shipped.track_b,
                feeds=msgspec.structs.replace(shipped.track_b.feeds, krx_after_market=()),
            ),
        ),
        clock,
        lambda event: None,
        store.engine,
        [],
    )
    assert f"{shipped_old.stream_end(date(2026, 11, 19), 'KRX'):%H:%M:%S}" == "16:31:30"


def test_krx_s_day_is_reconciled_after_its_close_and_nextrade_s_after_its_close(
    store: Store,
) -> None:
    clock = ManualClock(int(_at("14:00").timestamp()) * _NS)
    settled: list[datetime] = []
    verifier = _verifier(store, True, clock, settled=settled)
    runs: list[tuple[date, frozenset[Venue] | None, str]] = []

    async def verify_day(
        day: date,
        skip: set[str] | None = None,
        attempt: int = 1,
        venues: frozenset[Venue] | None = None,
    ) -> DayResult:
        now = datetime.fromtimestamp(clock.now_ns() / _NS, KST)
        runs.append((day, venues, f"{now:%H:%M:%S}"))
        return DayResult(day, attempt)

    verifier.verify_day = verify_day  # type: ignore[method-assign]

    async def day() -> None:
        stop = asyncio.Event()
        daily = asyncio.ensure_future(verifier.run_daily(stop))

        async def runs_reach(count: int) -> None:
            deadline = asyncio.get_running_loop().time() + 30
            while len(runs) < count and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)  # the poll of a deadline-bound wait
            assert len(runs) == count, runs

        await runs_reach(1)  # the day before, at the start
        # each stream's end and the 60 s delay; a second before it, nothing (a run then
        # would be recorded at that second)
        for to, count in (("15:32:29", 1), ("15:32:30", 2), ("20:01:29", 2), ("20:01:30", 3)):
            clock.advance(int(_at(to).timestamp()) - clock.now_ns() / _NS)
            await runs_reach(count)
        stop.set()
        await asyncio.wait_for(daily, 10)

    asyncio.run(day())
    assert runs == [
        (date(2026, 11, 19), None, "14:00:00"),
        (DAY, frozenset({"KRX"}), "15:32:30"),
        (DAY, None, "20:01:30"),
    ]
    # What the heartbeat reports (reconciled_until_s): each stream's end once it settled
    before = datetime.combine(date(2026, 11, 19), time(20, 0, 30), tzinfo=KST)
    assert settled == [before, _at("15:31:30"), _at("20:00:30")]
