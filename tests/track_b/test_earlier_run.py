"""What an earlier Track B left, taken over after the successor began to stream.

A Track B started while the writer was out or behind (it had not stored the earlier run's
last events) exited after a minute, was started again, and streamed nothing until the
writer caught up. It now streams, and takes the earlier run's slots and alerts over once
they are stored (`workers.track_b.earlier_run`): the pieces here, the whole under the
supervisor in `tests/track_b/test_track_b_restart.py`.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from bus.events import Alert, AlertResolved, Event
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.alerts.stored import open_alerts
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.config.tree import Settings
from observer.db import models as m
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.db.readers import reader_engine
from observer.db.slot_queries import AsOf, HeldSlot, held_slots
from observer.kis.session import open_account, rate_limits
from observer.process.state_files import STATE_FILE_UNREADABLE
from tests.support import set_aside
from tests.track_b.test_collect import settings_for
from tests.track_b.test_track_b_read_back import unreachable
from tests.track_b.test_track_b_restart import DAY, TEN, _slot, _tick
from tests.track_b.test_track_b_resume import (
    CLOSING,
    NINE,
    REFS,
    SYMBOLS,
    Feed,
    Streams,
    at,
    end_at,
    store,
    track_b,
)
from workers.track_b.collect import Collector
from workers.track_b.earlier_run import (
    LateTakeOver,
    PendingRuns,
    gap_starts,
    release_late,
    take_back,
)
from workers.track_b.kept_references import KeptReferences
from workers.track_b.outages import ACCOUNT_DOWN, Outages
from workers.track_b.read_beside import ReadBeside
from workers.track_b.sessions import Stretch
from workers.track_b.slots import Holding, SlotAction, SlotBook, SlotCandidate
from workers.track_b.stale import STREAM_STALE as STALE
from workers.track_b.triggers import TriggerEngine

S = 1_000_000_000
MINUTE = 60 * S
DAY_BEFORE = 86_400 * S


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
    a_chain = (("KRX", 1, TEN + 5 * MINUTE),)  # where A's volume chain goes on from
    assert earlier == [
        HeldSlot(
            "acct1", 0, "A", "market_cap", score, 0, TEN, TEN + 5 * MINUTE, None, 0, None, a_chain
        ),
        HeldSlot("acct1", 1, "B", "market_cap", score, 0, TEN, None, start),
    ]
    assert [(h.symbol, h.slot) for h in now] == [("C", 0), ("A", 2)]  # as the successor left


def test_a_symbol_is_held_while_any_venue_of_it_is(db_url: str) -> None:
    """Each decision is one venue's: KRX's feeds released at 15:00 leave a Nextrade name held
    on Nextrade's (its after-market), until that is released too."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            insert(m.SlotDecisionRow),
            [
                _slot(1, TEN, "allocate", "A", 0),
                _slot(2, TEN, "allocate", "A", 0, venue="NXT"),
                _slot(3, TEN, "allocate", "B", 1),
                _slot(4, TEN, "allocate", "B", 1, venue="NXT"),
                _slot(5, TEN + 5 * MINUTE, "release", "A"),  # KRX's: 15:00
                _slot(6, TEN + 5 * MINUTE, "release", "B"),
                _slot(7, TEN + 6 * MINUTE, "release", "B", venue="NXT"),  # at Nextrade's close
                _slot(8, TEN + 7 * MINUTE, "allocate", "C", 2, venue="NXT"),
                _slot(9, TEN + 8 * MINUTE, "replace", "D", 2, venue="NXT", replaced="C"),
            ],
        )
    with engine.connect() as conn:
        held = held_slots(conn, "track_b", DAY)
    engine.dispose()
    assert [(h.symbol, h.slot) for h in held] == [("A", 0), ("D", 2)]


class Recorded:
    """The collector's part in a late take-over: the gaps and the releases."""

    def __init__(self) -> None:
        self.gaps: list[tuple[str, str, int, int]] = []
        self.abandoned: list[tuple[SlotAction, int]] = []

    async def resume(self, holding: Holding, start_ns: int, chains: object = ()) -> None:
        raise AssertionError("a late take-over puts nothing back")

    def abandon(self, release: SlotAction, start_ns: int) -> None:
        self.abandoned.append((release, start_ns))

    def missed(self, account: str, symbol: str, start_ns: int, end_ns: int) -> None:
        self.gaps.append((account, symbol, start_ns, end_ns))


def test_a_late_take_over_releases_what_the_successor_does_not_hold_itself() -> None:
    """Each earlier holding gets one gap from where that run's data ends: to now with a
    release, or, for a symbol the successor placed itself, to that placement and no
    release (its latest decision is the successor's, which a release would undo)."""
    book = SlotBook(["acct1"], 2)
    mine = SlotCandidate("A", "market_cap", 2.0)
    assert book.restore(Holding("acct1", 0, mine, TEN + 12 * MINUTE))
    held = [
        HeldSlot("acct1", 0, "A", "market_cap", Decimal(1), 0, TEN, TEN + 5 * MINUTE, None),
        HeldSlot("acct1", 1, "B", "manual", Decimal(9), 0, TEN, TEN + 4 * MINUTE, None),
        HeldSlot("acct2", 0, "C", "volume_surge", Decimal(3), TEN, TEN, None, TEN + MINUTE),
        # A run between placed D again (its holding was that run's, now released): a gap.
        HeldSlot(
            "acct1", 3, "D", "market_cap", Decimal(1), 0, TEN, None, None, 0, TEN + 8 * MINUTE
        ),
    ]
    collector = Recorded()
    assert release_late(held, book, collector) == 2
    assert collector.gaps == [
        ("acct1", "A", TEN + 5 * MINUTE, TEN + 12 * MINUTE),
        ("acct1", "D", TEN + 5 * MINUTE, TEN + 8 * MINUTE),  # until the run between placed it
    ]
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
    book = AlertBook(sent.append, "track_b")
    outages = Outages(ManualClock(TEN), book, ["acct1", "acct2"], 30.0)
    for alias in ("acct1", "acct2"):
        outages.starting(alias)
    outages.confirmed("acct1")
    left = ["acct1", "acct2", "gone"]
    book.take_over(
        Notice(f"track_b:{n}", "alert", n, "critical", ACCOUNT_DOWN, alias, "")
        for n, alias in enumerate(left)
    )
    outages.taken_over(left)
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
        self.gaps: list[tuple[str, str, int, int]] = []

    def missed(self, account: str, symbol: str, start_ns: int, end_ns: int) -> None:
        self.gaps.append((account, symbol, start_ns, end_ns))

    def restarting(self) -> bool:
        return False  # each slot taken back is registered at once: its gap is out


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
    tb.alerts.publish = producer.send  # the process's alert book publishes there too
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
    handover = LateTakeOver(producer, DAY, AsOf(6, at("10:22:05")), [], alerts=True)  # type: ignore[arg-type]
    tb.late_takeover = handover
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
    stretch = Stretch("KRX", engine, until, tb.config.evaluate_s)
    asyncio.run(tb._follow(Feed(clock, ()), stretch, book, streams, []))  # type: ignore[arg-type]
    assert reads == [at("10:23:05")]  # the first round after the writer caught up
    assert tb.late_takeover is None
    assert streams.took == [([(ACCOUNT_DOWN, "acct1")], True)]
    start = at("10:21:30")  # the account's newest tick of the earlier run
    assert streams.gaps == [("acct1", c, start, at("10:22:05")) for c in caps]
    assert [(d.candidate.symbol, d.slot) for d in streams.abandoned] == [
        (surged[0], 2),
        (surged[1], 3),
    ]
    assert set(book.held()) == set(SYMBOLS[:5])  # placed at 10:22:05, kept
    said = [e.message for e in producer if isinstance(e, Alert)]
    assert len(said) == 1 and "holding 4 slots" in said[0] and "2 released" in said[0], said


# ------------------------------------------------------- a run that ended before its take-over


def test_two_runs_holdings_are_told_apart_by_the_start_kept_between_them(db_url: str) -> None:
    """Run 1 held A and B and died (its last tick 10:05). Run 2 started at 10:10 while the
    writer was behind, placed C in A's slot and B in another, streamed C until 10:30 and
    ended before its take-over. Taken together, the account's newest tick (run 2's, 10:30)
    started A's gap 25 minutes after its data had ended; with run 2's start between them,
    A's gap starts at run 1's last tick, and run 1's B ends where run 2 placed B again.
    Run 1's last event (seq 4, its allocation of D) is run 1's: a start's seq is the last
    of the runs before it."""
    upgrade(db_url)
    second, third = TEN + 10 * MINUTE, TEN + 40 * MINUTE
    store(
        db_url,
        m.SlotDecisionRow,
        [
            _slot(1, TEN, "allocate", "A", 0),
            _slot(2, TEN, "allocate", "B", 1),
            _slot(4, TEN + 6 * MINUTE, "allocate", "D", 3),
            _slot(5, second + MINUTE, "allocate", "C", 0),  # run 2's: A's slot
            _slot(6, second + MINUTE, "allocate", "B", 2),
        ],
    )
    ticks = [_tick(3, "A", TEN + 5 * MINUTE), _tick(7, "C", second + 20 * MINUTE)]
    store(db_url, m.TradeTickRow, ticks)
    runs = [AsOf(4, second)]
    engine = make_engine(db_url)
    with engine.connect() as conn:
        apart = held_slots(conn, "track_b", DAY, AsOf(9, third), runs)
        together = held_slots(conn, "track_b", DAY, AsOf(9, third))
        # A start right after the tick: the tick is the run's before it.
        (a_alone, *_) = held_slots(conn, "track_b", DAY, AsOf(9, third), [AsOf(3, second)])
    engine.dispose()
    score = Decimal("1.5")
    b_again = second + MINUTE
    a_chain = (("KRX", 1, TEN + 5 * MINUTE),)
    assert apart == [
        HeldSlot(
            "acct1", 0, "A", "market_cap", score, 0, TEN, TEN + 5 * MINUTE, None, 0, None, a_chain
        ),
        HeldSlot(
            *("acct1", 0, "C", "market_cap", score, 0, b_again, second + 20 * MINUTE, None, 1),
            chains=(("KRX", 1, second + 20 * MINUTE),),
        ),
        HeldSlot("acct1", 1, "B", "market_cap", score, 0, TEN, None, None, 0, until_ns=b_again),
        HeldSlot("acct1", 2, "B", "market_cap", score, 0, b_again, None, None, 1),
        HeldSlot("acct1", 3, "D", "market_cap", score, 0, TEN + 6 * MINUTE, None, None, 0),
    ]
    a_start, c_start, b_start, b2_start, d_start = gap_starts(apart)
    assert (a_start, b_start) == (TEN + 5 * MINUTE, TEN + 5 * MINUTE)  # run 1's last tick
    assert d_start == TEN + 6 * MINUTE  # its allocation, after run 1's last tick
    assert c_start == b2_start == second + 20 * MINUTE  # run 2's
    assert gap_starts(together)[0] == second + 20 * MINUTE  # A's data "ran" to 10:30
    assert (a_alone.symbol, a_alone.last_tick_ns) == ("A", TEN + 5 * MINUTE)


class Resumed(Recorded):
    """`Recorded`, taking holdings back too."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed: list[tuple[Holding, int]] = []

    async def resume(self, holding: Holding, start_ns: int, chains: object = ()) -> None:
        self.resumed.append((holding, start_ns))


def test_the_later_runs_holding_of_a_slot_goes_back_and_the_earlier_ones_gap_closes() -> None:
    """Two runs' holdings of one slot: the later run's goes back (its data is the newer),
    the earlier one's is released with its gap; a holding placed again by the later run
    is only its gap, to that placement."""
    second = TEN + 10 * MINUTE
    score = Decimal(1)
    held = [
        HeldSlot("acct1", 0, "A", "market_cap", score, 0, TEN, TEN + 5 * MINUTE, None, 0),
        HeldSlot("acct1", 0, "C", "market_cap", score, 0, second, second + MINUTE, None, 1),
        HeldSlot("acct1", 1, "B", "market_cap", score, 0, TEN, None, None, 0, until_ns=second),
    ]
    book = SlotBook(["acct1"], 2)
    collector = Resumed()
    engine = TriggerEngine(Settings().track_b, REFS, NINE, 600.0)
    asyncio.run(take_back(held, engine, book, collector, lambda t: 0.0, TEN + 40 * MINUTE))
    assert [(h.candidate.symbol, s) for h, s in collector.resumed] == [("C", second + MINUTE)]
    gone = [(d.candidate.symbol, d.slot, s) for d, s in collector.abandoned]
    assert gone == [("A", 0, TEN + 5 * MINUTE)]
    assert collector.gaps == [("acct1", "B", TEN + 5 * MINUTE, second)]
    assert set(book.held()) == {"C"}


def test_a_take_over_left_for_later_is_the_starts_own_if_the_writer_caught_up_in_time(
    tmp_path: Path,
) -> None:
    """The writer was behind at the start (10:22:05) and caught up before this run placed
    its first slot: the earlier run's slots go back into the book, streamed again with a
    gap each, instead of being released once this run had placed its own; its alerts are
    taken over, and no run is left pending. Still behind, the take-over waits."""
    tb, _, url = track_b(tmp_path, at("10:22:10"), slots=5)
    producer = Behind()
    tb.producer = producer  # type: ignore[assignment]
    tb.alerts.publish = producer.send  # the process's alert book publishes there too
    yesterday = [_slot(n, at("09:30") - DAY_BEFORE, "allocate", s, n) for n, s in enumerate("XY")]
    store(url, m.SlotDecisionRow, [*yesterday, _slot(3, at("09:30"), "allocate", SYMBOLS[7], 0)])
    store(url, m.TradeTickRow, [_tick(4, SYMBOLS[7], at("10:21:30"))])
    alert = {"source": "track_b", "produced_ns": at("10:15"), "severity": "critical"}
    alert |= {"message": "m", "context": {}, "subject": "acct1"}
    earlier, own = {**alert, "seq": 2, "code": ACCOUNT_DOWN}, {**alert, "seq": 7, "code": STALE}
    store(url, m.AlertRow, [earlier, own])  # the earlier run's, and this run's own
    as_of = AsOf(5, at("10:22:05"))
    handover = LateTakeOver(producer, DAY, as_of, [], alerts=True)  # type: ignore[arg-type]
    tb._streams_before_taking_over(handover)
    assert tb.pending.read() == [as_of]
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    book = SlotBook(["acct1"], 5)
    streams = TakingOver()

    def resume() -> list[SlotCandidate]:
        return asyncio.run(tb._resume(DAY, engine, book, streams, as_of, []))  # type: ignore[arg-type]

    assert resume() == [] and tb.late_takeover is handover and not streams.resumed  # behind
    producer.acked = 5
    resume()
    assert tb.late_takeover is None and tb.pending.settling  # forgotten once stored
    assert [h.candidate.symbol for h in streams.resumed] == [SYMBOLS[7]]  # today's only
    assert not streams.abandoned and set(book.held()) == {SYMBOLS[7]}
    assert streams.took == [([(ACCOUNT_DOWN, "acct1")], True)]  # not its own


def test_a_stopped_run_leaves_its_take_over_to_the_next_without_an_error(tmp_path: Path) -> None:
    """At 15:00 a take-over that never happened is an error; a run stopped before it (an
    operator's stop, a deployment) leaves it to the next run, which finds its start."""
    for stopped in (False, True):
        tb, sent, _ = track_b(tmp_path / str(stopped), at("14:59"), slots=5)
        as_of = AsOf(3, at("10:00"))
        tb._streams_before_taking_over(LateTakeOver(Behind(), DAY, as_of, [], True))  # type: ignore[arg-type]
        if stopped:
            tb.stop.set()
        streams = Streams(["acct1"], lambda s, n: 0.0)
        streams.clock = tb.clock  # type: ignore[assignment]
        ending = end_at(tb, SlotBook(["acct1"], 5), streams, CLOSING)
        asyncio.run(ending)
        codes = [e.code for e in sent if isinstance(e, Alert)]
        assert codes == ([] if stopped else ["track_b_resume_failed"])
        assert tb.late_takeover is None and tb.pending.read() == [as_of]


@pytest.mark.parametrize("torn", [b"", b'{"day":"2026-11-20","runs":[[4,17', b"\x00" * 64])
def test_the_pending_runs_are_the_days_own_and_a_file_that_does_not_read_is_set_aside(
    tmp_path: Path, torn: bytes
) -> None:
    """Empty, cut short or zeros (a power cut): the file is kept aside, alerted, and is none."""
    sent: list[Event] = []
    pending = PendingRuns(tmp_path, DAY, sent.append)
    assert pending.read() == []
    runs = [AsOf(4, TEN), AsOf(9, TEN + MINUTE)]
    assert pending.write(runs)
    assert pending.read() == runs
    assert pending.path.stat().st_mode & 0o777 == 0o600
    assert PendingRuns(tmp_path, date(2026, 11, 23), sent.append).read() == []  # another day's
    assert sent == []
    pending.path.write_bytes(torn)
    assert pending.read() == [] and not pending.path.exists()
    aside = set_aside(pending.path, torn)
    (alert,) = sent
    assert isinstance(alert, Alert) and alert.code == STATE_FILE_UNREADABLE
    assert alert.subject == str(pending.path) and alert.context["set_aside"] == str(aside)
    assert "told apart no more" in alert.message
    assert pending.read() == [] and len(sent) == 1  # gone: nothing more to say
    assert pending.write(runs) and pending.read() == runs  # the next run keeps its own
    assert pending.write([]) and not pending.path.exists()
    blocked = PendingRuns(tmp_path / "file", DAY, sent.append)
    (tmp_path / "file").write_text("")  # its folder cannot be made
    assert not blocked.write(runs)


def test_kept_references_that_do_not_read_are_set_aside_and_the_start_waits_for_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy torn by a power cut was read as none, left in place, and said only in the log:
    it is set aside with an alert, and the start waits for the database as with none."""
    tb, sent, _ = track_b(tmp_path, at("10:00"))
    kept = KeptReferences(tmp_path, DAY, sent.send)
    assert kept.write({s: REFS[s] for s in SYMBOLS[:3]})
    torn = kept.path.read_bytes()[:40]
    kept.path.write_bytes(torn)
    reads: list[bool] = []

    def refused(day: date) -> list[Any]:
        reads.append(True)
        if len(reads) == 2:  # the policy's first try: the operator stops the wait
            tb.stop.set()
        raise OperationalError("select", {}, Exception("connection refused"))

    monkeypatch.setattr(tb, "_universe_references", refused)
    assert asyncio.run(tb._references(DAY)) is None  # waited for the database instead
    assert len(reads) == 2 and not kept.path.exists()
    aside = set_aside(kept.path, torn)
    alerts = [e for e in sent if isinstance(e, Alert)]
    assert [(a.code, a.severity, a.subject) for a in alerts] == [
        (STATE_FILE_UNREADABLE, "warning", str(kept.path))
    ]
    assert aside.name in alerts[0].message and "a start the database fails" in alerts[0].message


def test_a_start_the_database_fails_takes_the_references_read_earlier_today(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Track B started while the database does not answer waited for it (600 s, then its
    restarts waited again), streaming nothing; it now starts on the references an earlier
    run read today. Another day's are not taken: it waits for the database."""
    tb, _, _ = track_b(tmp_path, at("10:00"))
    reads: list[bool] = []
    references = {s: REFS[s] for s in SYMBOLS[:3]}

    def read(day: date) -> list[Any]:
        reads.append(True)
        if len(reads) == 1:
            return [SimpleNamespace(**msgspec.structs.asdict(r)) for r in references.values()]
        raise OperationalError("select", {}, Exception("connection refused"))

    monkeypatch.setattr(tb, "_universe_references", read)
    assert asyncio.run(tb._references(DAY)) == references  # read, and kept
    assert KeptReferences(tmp_path, DAY, list().append).path.stat().st_mode & 0o777 == 0o600
    restarted, _, _ = track_b(tmp_path, at("10:20"))
    monkeypatch.setattr(restarted, "_universe_references", read)
    assert asyncio.run(restarted._references(DAY)) == references  # the database failed it
    assert restarted.counters["database_reads_failed"] == 1 and len(reads) == 2

    def refused(day: date) -> list[Any]:
        reads.append(True)
        if len(reads) == 4:  # the policy's first try: the operator stops the wait
            restarted.stop.set()
        raise OperationalError("select", {}, Exception("connection refused"))

    monkeypatch.setattr(restarted, "_universe_references", refused)
    assert asyncio.run(restarted._references(date(2026, 11, 21))) is None  # not today's
    assert len(reads) == 4  # waited for the database instead


def test_the_alerts_taken_over_are_those_raised_before_a_start(db_url: str) -> None:
    """A late take-over reads after this run sent its own: only the earlier run's are its."""
    upgrade(db_url)
    row = {"source": "track_b", "severity": "critical", "code": ACCOUNT_DOWN, "message": "down"}
    row |= {"context": {}, "produced_ns": TEN}
    store(
        db_url,
        m.AlertRow,
        [{**row, "seq": 3, "subject": "acct1"}, {**row, "seq": 9, "subject": "acct2"}],
    )
    engine = make_engine(db_url)
    with engine.connect() as conn:
        every = open_alerts(conn, "track_b", [ACCOUNT_DOWN])
        before = open_alerts(conn, "track_b", [ACCOUNT_DOWN], through_seq=5)
    engine.dispose()
    assert [n.subject for n in every] == ["acct1", "acct2"]
    assert [n.subject for n in before] == ["acct1"]


def test_a_failed_read_dropped_at_the_streams_end_is_taken_not_left_to_asyncio() -> None:
    """A read that failed while the streaming ended is nobody's: asyncio logged it as a
    future exception never retrieved."""
    reported: list[dict[str, Any]] = []

    async def end_during_a_failed_read() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: reported.append(context)
        )
        for drop in (True, False):
            read: ReadBeside[None] = ReadBeside()
            read.start(lambda: raise_(OperationalError("select", {}, Exception("refused"))))
            assert read.reading is not None
            await asyncio.wait({read.reading})
            if drop:
                read.abandon()
            del read
            gc.collect()

    asyncio.run(end_during_a_failed_read())
    assert ["never retrieved" in c["message"] for c in reported] == [True]  # the kept one


def test_a_read_dropped_after_a_fault_of_its_own_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """A database failure is the backoff's to tell; any other, dropped at the streams' end,
    would have ended the process: it is logged, not taken in silence."""

    async def end_after(fault: Exception) -> None:
        read: ReadBeside[None] = ReadBeside()
        read.start(lambda: raise_(fault))
        assert read.reading is not None
        await asyncio.wait({read.reading})
        read.abandon()

    asyncio.run(end_after(OperationalError("select", {}, Exception("refused"))))
    assert not caplog.records
    asyncio.run(end_after(KeyError("a bug")))
    logged = [repr(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert logged == [repr(KeyError("a bug"))]


class Acking:
    """A producer's seqs: what was sent, and what the writer acknowledged."""

    def __init__(self) -> None:
        self.last_seq = self.acked = 0


def test_the_runs_are_forgotten_once_the_take_over_is_stored_not_before(tmp_path: Path) -> None:
    """Emptied at the take-over, the file was gone while its releases and gaps were still in
    the outbox, or a slot taken back was still waiting for its registration (its gap goes
    out then): a run dying meanwhile left its successor to start the earlier run's gaps at
    a later run's ticks. The file goes once all of it is stored."""
    pending = PendingRuns(tmp_path, DAY, list().append)
    producer = Acking()
    assert pending.write([AsOf(4, TEN)])
    pending.taken_over()
    producer.last_seq = 20  # a gap and a release published, and the slots taken back
    assert pending.settle(True, producer)  # a slot waits for its registration
    assert pending.read() == [AsOf(4, TEN)]
    producer.last_seq = 23  # its gap is out
    assert pending.settle(False, producer) and pending.read() == [AsOf(4, TEN)]
    producer.last_seq, producer.acked = 30, 22
    assert pending.settle(False, producer) and pending.read() == [AsOf(4, TEN)]
    producer.acked = 23
    assert pending.settle(False, producer) and not pending.path.exists()
    assert not pending.settling
    # No runs named: a take-over writes nothing.
    quiet = PendingRuns(tmp_path / "quiet", DAY, list().append)
    quiet.taken_over()
    assert quiet.settle(False, producer) and not quiet.path.parent.exists()


def test_a_start_whose_alert_reads_the_database_fails_streams_and_takes_over_late(
    tmp_path: Path,
) -> None:
    """The open alerts are read at the start: a database that fails the read ended the
    start after 600 s of retries, and its restarts waited again. Now the alerts and the
    slots are left to the late take-over, and Track B streams meanwhile."""
    tb, _, _ = track_b(tmp_path, at("10:22"))
    tb._engine.dispose()
    tb._engine = reader_engine(tb.settings.database, "track_b", url=unreachable(tmp_path))
    try:
        assert asyncio.run(tb._open_alerts(AsOf(3, at("10:22")))) is None
    finally:
        tb._engine.dispose()
    assert tb.counters["database_reads_failed"] == 1


def test_a_slot_taken_back_is_restarting_until_its_registration(tmp_path: Path) -> None:
    """Its ``process_restart`` gap goes out at its registration: until then the take-over
    is not stored whole. A dropped session's gap is no restart."""
    settings = settings_for(tmp_path, "http://127.0.0.1:9", "acct1")
    clock = ManualClock(TEN)
    account = open_account(settings.kis, "acct1", clock, rate_limits(settings.kis, "track_a"))
    collector = Collector([account], clock, lambda event: None)
    try:
        detector = collector.detectors["acct1"]["KRX"]
        detector.on_disconnect(TEN, "disconnect", ["000660"])
        assert not collector.restarting()
        detector.resume("005930", TEN - MINUTE)
        assert collector.restarting()
        gap = detector.on_registered("005930", TEN + S)
        assert gap is not None and gap.reason == "process_restart"
        assert not collector.restarting()
    finally:
        asyncio.run(account.aclose())


def raise_(exc: Exception) -> None:
    raise exc
