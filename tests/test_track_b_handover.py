"""What an earlier Track B left, taken over after the successor began to stream.

A Track B started while the writer was out or behind (it had not stored the earlier run's
last events) exited after a minute, was started again, and streamed nothing until the
writer caught up. It now streams, and takes the earlier run's slots and alerts over once
they are stored (`workers.track_b.handover`): the pieces here, the whole under the
supervisor in `tests/test_track_b_restart.py`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from bus.events import Alert, AlertResolved, Event
from observer.clock import ManualClock
from observer.db import models as m
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.db.queries import AsOf, HeldSlot, held_slots
from observer.phases import KST
from tests.test_track_b_restart import DAY, TEN, _slot, _tick
from tests.test_track_b_resume import NINE, REFS, SYMBOLS, Feed, Streams, at, store, track_b
from workers.track_b.handover import LateHandover, release_late
from workers.track_b.outages import ACCOUNT_DOWN, Outages
from workers.track_b.slots import Candidate, Decision, Holding, SlotBook
from workers.track_b.triggers import TriggerEngine

S = 1_000_000_000
MINUTE = 60 * S


def test_held_slots_as_of_a_start_are_the_earlier_runs_alone(db_url: str) -> None:
    """The successor's own decisions, ticks and gaps, stored before the read, change
    nothing: its allocation of a symbol the earlier run held had hidden that holding, and
    its ticks had moved every gap's start to a time nobody watched before."""
    upgrade(db_url)
    start = TEN + 10 * MINUTE  # the successor's start; the earlier run's events are seq <= 4
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            insert(m.SlotDecisionRow),
            [
                _slot(1, TEN, "allocate", "A", 0),
                _slot(2, TEN, "allocate", "B", 1),
                _slot(10, start + MINUTE, "allocate", "A", 2),  # the successor's own
                _slot(11, start + MINUTE, "allocate", "C", 0),
                _slot(12, start + 2 * MINUTE, "release", "B", 1),
            ],
        )
        conn.execute(
            insert(m.TradeTickRow),
            [_tick(3, "A", TEN + 5 * MINUTE), _tick(13, "A", start + 3 * MINUTE)],
        )
        gap = {"account": "acct1", "reason": "silence", "state": "detected", "bars": 0}
        gap |= {"detail": "", "detected_ns": start, "updated_ns": start}
        conn.execute(
            insert(m.Gap),
            [
                {**gap, "gap_id": "b1", "symbol": "B", "start_ns": TEN + MINUTE, "end_ns": start},
                {  # the successor's: after its start
                    **gap,
                    "gap_id": "a2",
                    "symbol": "A",
                    "start_ns": start + 4 * MINUTE,
                    "end_ns": start + 5 * MINUTE,
                },
            ],
        )
    with engine.connect() as conn:
        earlier = held_slots(conn, "track_b", DAY, AsOf(4, start))
        now = held_slots(conn, "track_b", DAY)
    engine.dispose()
    score = Decimal("1.5")
    assert earlier == [
        HeldSlot("acct1", 0, "A", "market_cap", score, 0, TEN, TEN + 5 * MINUTE, None),
        HeldSlot("acct1", 1, "B", "market_cap", score, 0, TEN, None, start),
    ]
    assert [(h.symbol, h.slot) for h in now] == [("C", 0), ("A", 2)]  # as the successor left


class Recorded:
    """The collector's part in a late take-over: the gaps and the releases."""

    def __init__(self) -> None:
        self.gaps: list[tuple[str, str, int, int]] = []
        self.abandoned: list[tuple[Decision, int]] = []

    async def resume(self, holding: Holding, start_ns: int) -> None:
        raise AssertionError("a late take-over puts nothing back")

    def abandon(self, release: Decision, start_ns: int) -> None:
        self.abandoned.append((release, start_ns))

    def missed(self, account: str, symbol: str, start_ns: int, end_ns: int) -> None:
        self.gaps.append((account, symbol, start_ns, end_ns))


def test_a_late_take_over_releases_what_the_successor_does_not_hold_itself() -> None:
    """Each earlier holding gets one gap from where that run's data ends: to now with a
    release, or, for a symbol the successor placed itself, to that placement and no
    release (its latest decision is the successor's, which a release would undo)."""
    book = SlotBook(["acct1"], 2)
    mine = Candidate("A", "market_cap", 2.0)
    assert book.restore(Holding("acct1", 0, mine, TEN + 12 * MINUTE))
    held = [
        HeldSlot("acct1", 0, "A", "market_cap", Decimal(1), 0, TEN, TEN + 5 * MINUTE, None),
        HeldSlot("acct1", 1, "B", "manual", Decimal(9), 0, TEN, TEN + 4 * MINUTE, None),
        HeldSlot("acct2", 0, "C", "volume_surge", Decimal(3), TEN, TEN, None, TEN + MINUTE),
    ]
    collector = Recorded()
    assert release_late(held, book, collector) == 2
    assert collector.gaps == [("acct1", "A", TEN + 5 * MINUTE, TEN + 12 * MINUTE)]
    gone = [(d.action, d.account, d.slot, d.candidate.symbol, s) for d, s in collector.abandoned]
    assert gone == [
        ("release", "acct1", 1, "B", TEN + 5 * MINUTE),  # the account's data ran to 10:05
        ("release", "acct2", 0, "C", TEN + MINUTE),  # its own gap's end
    ]
    assert [d.candidate.pinned for d, _ in collector.abandoned] == [True, False]
    assert set(book.held()) == {"A"}  # the book is the successor's, as it was


def test_an_account_down_alert_taken_over_late_is_resolved_if_the_account_streams() -> None:
    """Taken over at a start, an account's down alert ends at its first confirmation. Late,
    that confirmation came before: an account up now is resolved at once, one down still
    ends at its confirmation."""
    sent: list[Event] = []
    outages = Outages(ManualClock(TEN), sent.append, ["acct1", "acct2"], 30.0)
    for alias in ("acct1", "acct2"):
        outages.starting(alias)
    outages.confirmed("acct1")
    outages.take_over(["acct1", "acct2", "gone"], late=True)
    assert [(e.code, e.subject) for e in sent if isinstance(e, AlertResolved)] == [
        (ACCOUNT_DOWN, "acct1")
    ]
    outages.confirmed("acct2")
    assert [e.subject for e in sent if isinstance(e, AlertResolved)] == ["acct1", "acct2"]
    assert not any(isinstance(e, Alert) for e in sent)


class Behind(list[Any]):
    """A producer whose earlier events the writer stores only when the test says."""

    acked = 0

    def send(self, event: Any) -> int:
        self.append(event)
        return len(self)


class TakingOver(Streams):
    """The collector's part, with what the take-over calls."""

    def __init__(self) -> None:
        super().__init__(["acct1"], lambda s, n: 0.0)
        self.taken_over: list[tuple[Any, ...]] = []
        self.gaps: list[tuple[str, str, int, int]] = []

    def take_over(self, *alerts: Any, late: bool = False) -> None:
        self.taken_over.append((*alerts, late))

    def missed(self, account: str, symbol: str, start_ns: int, end_ns: int) -> None:
        self.gaps.append((account, symbol, start_ns, end_ns))


def test_a_successor_streams_first_and_takes_over_once_the_writer_stored_the_earlier_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier run held two large caps and two symbols its triggers had placed, and left
    an account's down alert open; its last tick came at 10:21:30. Its successor starts at
    10:22:05 while the writer is behind: it places the largest caps meanwhile. Once the
    writer has stored the earlier run's events (10:23), the successor reads them beside its
    evaluations and takes them over: the two symbols it does not hold are released, each
    symbol gets its gap, the alert is taken over, and its book is left as it was."""
    tb, _, url = track_b(tmp_path, at("10:22:05"), slots=5)
    producer = Behind()
    tb.producer = producer  # type: ignore[assignment]
    caps, surged = SYMBOLS[:2], SYMBOLS[150:152]
    placed = [*caps, *surged]
    store(
        url,
        m.SlotDecisionRow,
        [_slot(n, at("09:30"), "allocate", s, n - 1) for n, s in enumerate(placed, 1)],
    )
    store(url, m.TradeTickRow, [_tick(5, caps[0], at("10:21:30"))])
    alert = {"source": "track_b", "seq": 6, "produced_ns": at("10:15"), "severity": "critical"}
    alert |= {"code": ACCOUNT_DOWN, "message": "down", "context": {}, "subject": "acct1"}
    store(url, m.AlertRow, [alert])
    # The successor's first tick, stored by the time of the read: not the earlier run's data.
    store(url, m.TradeTickRow, [_tick(40, caps[0], at("10:22:30"))])
    handover = LateHandover(producer, DAY, AsOf(6, at("10:22:05")), alerts=True)  # type: ignore[arg-type]
    tb.handover = handover
    streams = TakingOver()
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    book = SlotBook(["acct1"], 5)
    clock = tb.clock
    assert isinstance(clock, ManualClock)
    streams.clock = clock
    reads: list[int] = []

    async def nap(seconds: float) -> None:
        if clock.now_ns() >= at("10:23"):
            producer.acked = 6  # the writer caught up
        if handover.reading is not None:  # a read begun answers before the next round
            reads.append(clock.now_ns())
            await asyncio.wait({handover.reading}, timeout=30)
        clock.advance(seconds)

    monkeypatch.setattr(tb, "_nap", nap)
    until = datetime.fromtimestamp(at("10:24") / S, KST)
    asyncio.run(tb._follow(Feed(clock, ()), engine, book, streams, [], until))  # type: ignore[arg-type]
    assert reads == [at("10:23:05")]  # the first round after the writer caught up
    assert tb.handover is None
    assert streams.taken_over == [({"acct1"}, set(), set(), set(), True)]
    start = at("10:21:30")  # the account's newest tick of the earlier run
    assert streams.gaps == [("acct1", c, start, at("10:22:05")) for c in caps]
    assert [(d.candidate.symbol, d.slot) for d in streams.abandoned] == [
        (surged[0], 2),
        (surged[1], 3),
    ]
    assert set(book.held()) == set(SYMBOLS[:5])  # placed at 10:22:05, kept
    said = [e.message for e in producer if isinstance(e, Alert)]
    assert len(said) == 1 and "holding 4 slots" in said[0] and "2 released" in said[0], said
