"""A Track B that dies holding slots: its successor takes them back with a gap each.

The slots held come from the database (`held_slots`), each goes back into the slot book and
gets a ``process_restart`` gap from the last data known stored until it is registered again;
gap recovery fills it, and the day's report counts it until then.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert

from harness.sim.server import SimConfig
from observer.db import models as m
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.db.slot_queries import HeldSlot, held_slots
from tests.support import SimThread, SupervisorProcess, db_rows, wait_until
from tests.track_b.test_track_b import DAY, MARKET, NINE, publish_morning
from workers.gap_recovery.report import day_report
from workers.track_b.gaps import GapDetector, SilenceRule
from workers.track_b.slots import Holding, SlotBook, SlotCandidate

S = 1_000_000_000
TEN = int(datetime(2026, 11, 20, 10, 0, tzinfo=NINE.tzinfo).timestamp()) * S

# ------------------------------------------------------------------ the pieces


def test_a_restart_gap_closes_at_registration_or_when_the_symbol_leaves() -> None:
    d = GapDetector("acct1", SilenceRule(), lambda ns: True)
    d.resume("005930", TEN)
    d.resume("000660", TEN + S)
    d.on_disconnect(TEN + 5 * S, "disconnect", ["005930", "000660"])  # not while one is open
    gap = d.on_registered("005930", TEN + 9 * S)
    assert gap is not None and (gap.start_ns, gap.end_ns, gap.reason) == (
        TEN,
        TEN + 9 * S,
        "process_restart",
    )
    assert gap.gap_id == f"acct1:005930:{TEN}"  # from stored data: the same after any restart
    left = d.forget("000660", TEN + 20 * S)  # replaced before it was registered again
    assert left is not None and (left.start_ns, left.end_ns, left.reason) == (
        TEN + S,
        TEN + 20 * S,
        "process_restart",
    )
    assert d.on_registered("005930", TEN + 30 * S) is None  # closed once


def test_a_holding_goes_back_only_where_it_fits() -> None:
    book = SlotBook(["acct1", "acct2"], 2)

    def holding(account: str, slot: int, symbol: str) -> Holding:
        return Holding(account, slot, SlotCandidate(symbol, "market_cap", 1.0), TEN)

    assert book.restore(holding("acct1", 1, "005930"))
    assert not book.restore(holding("acct1", 1, "000660"))  # the slot is taken
    assert not book.restore(holding("acct2", 0, "005930"))  # the symbol is held
    assert not book.restore(holding("acct2", 2, "000660"))  # beyond the capacity
    assert not book.restore(holding("acct3", 0, "000660"))  # no such account any more
    assert book.held()["005930"].since_ns == TEN  # held since its allocation, not now


def _slot(seq: int, at: int, action: str, symbol: str, slot: int = 0, **extra: Any) -> Any:
    return {
        "source": extra.pop("source", "track_b"),
        "seq": seq,
        "produced_ns": at,
        "account": extra.pop("account", "acct1"),
        "action": action,
        "symbol": symbol,
        "slot": slot,
        "trigger": extra.pop("trigger", "market_cap"),
        "score": Decimal("1.5"),
        "reason": "test",
        "replaced_symbol": extra.pop("replaced", ""),
        "expires_ns": 0,
        "venue": extra.pop("venue", "KRX"),
    }


def _tick(seq: int, symbol: str, at: int, cum: int = 1, venue: str = "KRX") -> dict[str, Any]:
    return {
        "venue": venue,
        "source": "track_b",
        "seq": seq,
        "produced_ns": at,
        "symbol": symbol,
        "exchange_ns": at,
        "received_ns": at + S // 10,
        "price": 1,
        "qty": 1,
        "cum_volume": cum,
        "cum_value": 1,
        "change_rate": Decimal(0),
        "ask1": 0,
        "bid1": 0,
        "strength": Decimal(0),
        "side": "",
        "session": "",
        "halted": False,
        "account": "acct1",
    }


def test_held_slots_are_what_the_latest_decisions_left(db_url: str) -> None:
    upgrade(db_url)
    minute = 60 * S
    slots = [
        _slot(1, TEN, "allocate", "A", 0),
        _slot(2, TEN, "allocate", "B", 1),
        _slot(3, TEN + minute, "replace", "C", 0, replaced="A", trigger="volume_surge"),
        _slot(4, TEN + minute, "release", "B", 1),
        _slot(5, TEN + 2 * minute, "allocate", "D", 0, account="acct2", trigger="manual"),
        _slot(6, TEN + 3 * minute, "expire", "D", 0, account="acct2"),
        _slot(7, TEN + 4 * minute, "allocate", "D", 1, account="acct2"),
        _slot(8, TEN - 86_400 * S, "allocate", "E", 1),  # yesterday's: not today's slots
        _slot(1, TEN, "allocate", "F", 1, source="track_b_other"),  # another source's
    ]
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(m.SlotDecisionRow), slots)
        conn.execute(
            insert(m.TradeTickRow),
            [
                _tick(10, "C", TEN + 30 * S),  # before C held its slot: not its data
                _tick(11, "C", TEN + 2 * minute, cum=50),
                # Its last minute of trades: where each venue's volume chain goes on from
                _tick(12, "C", TEN + 2 * minute + 30 * S, cum=80, venue="NXT"),
                _tick(13, "C", TEN + 3 * minute, cum=90),
                _tick(14, "C", TEN + 3 * minute, cum=95),  # the same second, later
            ],
        )
        conn.execute(
            insert(m.Gap),
            [
                {
                    "gap_id": "acct1:C:x",
                    "symbol": "C",
                    "account": "acct1",
                    "start_ns": TEN + 3 * minute,
                    "end_ns": TEN + 4 * minute,
                    "reason": "disconnect",
                    "state": "recovered",
                    "bars": 1,
                    "detail": "",
                    "detected_ns": TEN + 4 * minute,
                    "updated_ns": TEN + 5 * minute,
                }
            ],
        )
    with engine.connect() as conn:
        held = held_slots(conn, "track_b", DAY)
    engine.dispose()
    assert held == [
        HeldSlot(
            "acct1",
            0,
            "C",
            "volume_surge",
            Decimal("1.5"),
            0,
            TEN + minute,
            TEN + 3 * minute,
            TEN + 4 * minute,
            chains=(("KRX", 95, TEN + 3 * minute), ("NXT", 80, TEN + 2 * minute + 30 * S)),
        ),
        HeldSlot("acct2", 1, "D", "market_cap", Decimal("1.5"), 0, TEN + 4 * minute, None, None),
    ]


# ------------------------------------------------------------------ kill -9 under the supervisor

PROGRAMS = """
[programs.writer]
kind = "daemon"
command = ["observer", "writer"]

[programs.track_b]
kind = "session"
command = ["observer", "track-b", "run"]
phases = ["warmup", "track_a_only", "full_operation"]
depends_on = ["writer"]

[programs.gap_recovery]
kind = "daemon"
command = ["observer", "gap-recovery", "run"]
depends_on = ["writer"]
"""


@contextmanager
def streaming(
    tmp_path: Path, programs: str, track_b: str = "", registrations: int = 3
) -> Iterator[tuple[SimThread, SupervisorProcess]]:
    """``programs`` under a supervisor on the simulator from 09:29 at 5x, two accounts of
    ``registrations`` each, once the morning's universe is in, both accounts' slots placed
    and their ticks stored. ``track_b``: more of its settings (lines of ``[track_b]``).

    The context sync (09:29:50) comes 10 s after the clock starts; a restart of a few wall
    seconds is a gap well under a minute, which gap recovery takes.
    """
    sim = SimThread(MARKET, NINE + timedelta(minutes=29), SimConfig(), speed=5)
    try:
        settings = (
            f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path}"\n'
            '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 60\n'
            '[[kis.accounts]]\nalias = "acct2"\nrest_per_second = 60\n'
            f"[kis.stream]\nmax_registrations = {registrations}\n[track_b]\n"
            "silence_tolerance_s = 600\n"
            f"{track_b}"
        )
        sup = SupervisorProcess(tmp_path, programs, clock=sim.sim.clock.spec, settings=settings)
        sup.start(healthy=False)
        wait_until(lambda: sup.program("writer")["state"] == "running", 60, "the writer")
        ingest = f"ipc://{sup.data_dir / 'run' / 'ingest.sock'}"
        publish_morning(SimpleNamespace(ingest=ingest), tmp_path / "outbox")  # type: ignore[arg-type]
        # Both accounts' slots placed (the first half hour's trades come before them) and
        # streaming ...
        placed = "select count(distinct account) from slot_events where action = 'allocate'"
        wait_until(lambda: db_rows(sup.url, placed) == [(2,)], 90, "slots on both accounts")
        # ... their own: stamped seconds after the slots' placement (the opening auction's
        # names stream from 09:00 on registrations of their own)
        slotted = (
            "select count(distinct account) from trade_ticks where exchange_ns > 5000000000 + "
            "(select min(produced_ns) from slot_events where action = 'allocate')"
        )
        wait_until(lambda: db_rows(sup.url, slotted) == [(2,)], 90, "ticks from both accounts")
        yield sim, sup
    finally:
        sim.close()


def kill_track_b(sup: SupervisorProcess) -> dict[str, Any]:
    """SIGKILL Track B; once the supervisor runs its successor, what it said of the killed."""
    before: dict[str, Any] = sup.program("track_b")
    os.kill(before["pid"], signal.SIGKILL)
    wait_until(
        lambda: (p := sup.program("track_b"))["state"] == "running" and p["pid"] != before["pid"],
        60,
        "track_b restarted",
    )
    return before


def _held_before(url: str, seq: int) -> set[str]:
    """The symbols Track B's slot decisions before ``seq`` left in a slot."""
    held: set[str] = set()
    for action, symbol, replaced in db_rows(
        url,
        f"select action, symbol, replaced_symbol from slot_events where seq < {seq} "
        "and source = 'track_b' order by seq",
    ):
        held.discard(symbol if action in ("release", "expire") else replaced)
        if action in ("allocate", "replace"):
            held.add(symbol)
    return held


@pytest.mark.slow
@pytest.mark.timeout(360)  # its waits alone allow 180 s, and a loaded machine's start takes more
def test_a_track_b_killed_mid_session_leaves_a_recovered_gap_per_held_slot(
    tmp_path: Path,
) -> None:
    with streaming(tmp_path, PROGRAMS) as (_, sup):
        url = sup.url
        kill_track_b(sup)
        alerted = wait_until(
            lambda: db_rows(
                url, "select seq, produced_ns, message from alerts where code = 'track_b_restarted'"
            ),
            60,
            "the restart alert",
        )
        restart_seq, restarted_ns, message = alerted[0]
        held = _held_before(url, restart_seq)
        assert len(held) == 6 and f"holding {len(held)} slots" in message
        # A gap per held slot, closed at its registration on the new session, then recovered.
        gaps = wait_until(
            lambda: (
                (
                    r := db_rows(
                        url,
                        "select gap_id, symbol, account, start_ns, end_ns, state, bars, "
                        "missing_volume, trades, trade_volume, cum_before, venue, detail "
                        "from gaps where reason = 'process_restart'",
                    )
                )
                and len(r) == len(held)
                and all(g[5] == "recovered" for g in r)
                and r
            ),
            120,
            "a recovered restart gap per held slot",
        )
        assert {g[1] for g in gaps} == held
        lengths = sorted((g[4] - g[3]) / S for g in gaps)
        print(f"restart gaps: {lengths[0]:.1f}-{lengths[-1]:.1f} simulated s at 5x")
        # Each symbol's volume chain goes on from its last stored trade: its gap is measured
        # at its first trade on the new session and filled with the exchange's own trades
        # (none missing: none asked); one the chain could not measure gets its bars, as does
        # one whose trades take more calls than trade_calls_max (a slow restart of a busy name).
        measured = [g for g in gaps if g[7] is not None and "trade_calls_max" not in g[12]]
        assert measured, gaps
        for gap_id, symbol, account, start, end, *_ in gaps:
            assert gap_id == f"{account}:{symbol}:{start}"
            assert start < restarted_ns < end
        for _, _, _, _, _, _, bars, missing, trades, volume, *_ in measured:
            assert bars == 0 and volume == missing and (trades > 0) == (missing > 0)
        for *_, bars, _, _, _, _, _, detail in [g for g in gaps if g not in measured]:
            assert bars >= 1, detail
        recovered = db_rows(
            url, "select symbol, cum_volume, qty from trade_ticks where source = 'gap_recovery'"
        )
        assert sum(q for _, _, q in recovered) == sum(g[9] for g in measured)
        # No slot was allocated anew: the restored ones carry on from their first allocation.
        again = db_rows(
            url, f"select symbol from slot_events where seq > {restart_seq} and action = 'allocate'"
        )
        assert not {s for (s,) in again} & held
        # The recovered bars are the market's own.
        unmeasured = [g for g in gaps if g not in measured]
        stored = db_rows(
            url,
            "select symbol, minute_ns, open, high, low, close, volume "
            "from minute_bars where gap_id in "
            f"({', '.join(repr(g[0]) for g in unmeasured)})",
        )
        assert bool(stored) == bool(unmeasured)
        for symbol, minute, *bar in stored:
            path = MARKET.day_path(symbol, DAY)
            i = (minute - int(NINE.timestamp()) * S) // (60 * S)
            assert bar == [
                int(a[i]) for a in (path.open, path.high, path.low, path.close, path.volume)
            ]
        # The report counts each gap inside the symbol's watched time: covered once
        # recovered, uncovered (completeness below 100 %) until then.
        engine = make_engine(url)
        with engine.connect() as conn:
            report = day_report(conn, DAY)
        engine.dispose()
        by_symbol = {r.symbol: r for r in report.symbols}
        for _, symbol, _, start, end, *_ in gaps:
            row = by_symbol[symbol]
            assert any(s <= start and end <= e for s, e in row.watched)
            assert row.summary().covered_s >= (end - start) / S - 0.1
            pending = replace(row, gaps=[(s, e, r, "detected") for s, e, r, _ in row.gaps])
            pct = pending.summary().completeness_pct
            assert pct is not None and pct < 100.0
        assert sup.terminate() == 0


# Track B apart from the writer, as on a collectors host (its dependency there is met once
# and stays so): killed while the writer is out, it is started again at once.
APART = PROGRAMS.replace(
    'phases = ["warmup", "track_a_only", "full_operation"]\ndepends_on = ["writer"]',
    'phases = ["warmup", "track_a_only", "full_operation"]',
)


@pytest.mark.slow
def test_a_track_b_killed_while_the_writer_is_out_streams_and_takes_over_when_it_is_back(
    tmp_path: Path,
) -> None:
    """Before, a Track B started while the writer had not stored its predecessor's last
    events exited 1 after a minute, was started again, and streamed nothing until the
    writer was back. Now it streams at once (its events wait in the outbox), and once the
    writer has stored the predecessor's events it releases that run's slots with a
    recovered gap each: in the end the database holds exactly the slots it shows."""
    assert APART != PROGRAMS
    with streaming(tmp_path, APART) as (sim, sup):
        url = sup.url
        assert sup.ctl("stop", "writer").ok
        wait_until(lambda: sup.program("writer")["state"] == "stopped", 30, "the writer stopped")
        before = wait_until(  # some of its events wait for the writer: none acked for 1 s
            lambda: (p := sup.program("track_b"))["counters"].get("bus_unacked_s", 0) > 1 and p,
            30,
            "Track B's events held in its outbox",
        )
        killed_ns = sim.sim.clock.now_ns()
        os.kill(before["pid"], signal.SIGKILL)
        after = wait_until(
            lambda: (
                (p := sup.program("track_b"))["state"] == "running"
                and p["pid"] != before["pid"]
                and p
            ),
            60,
            "track_b restarted",
        )
        # It streams with the writer out: it places its own slots (shown once evaluated),
        # and its outbox grows by the new session's ticks.
        shown = sup.data_dir / "track_b" / "slots.json"
        wait_until(
            lambda: (
                shown.exists()
                and (s := json.loads(shown.read_text()))["at_ns"] > killed_ns + 10 * S
                and s["slots"]
            ),
            60,
            "the restarted Track B's own slots",
        )
        first = sup.program("track_b")["counters"].get("bus_pending", 0)
        wait_until(
            lambda: sup.program("track_b")["counters"].get("bus_pending", 0) > first + 200,
            90,
            "the restarted Track B's ticks in its outbox",
        )
        back_ns = sim.sim.clock.now_ns()
        assert sup.ctl("start", "writer").ok
        alerted = wait_until(
            lambda: db_rows(url, "select message from alerts where code = 'track_b_restarted'"),
            90,
            "the take-over's alert",
        )
        assert sup.program("track_b")["pid"] == after["pid"]  # it never exited
        held = _held_before(
            url,
            1
            + max(
                s
                for (s,) in db_rows(
                    url, f"select seq from slot_events where produced_ns <= {killed_ns}"
                )
            ),
        )
        (message,) = [m for (m,) in alerted]
        assert len(held) == 6 and "holding 6 slots, read only after" in message, message
        streamed = db_rows(
            url,
            "select count(*) from trade_ticks where received_ns > "
            f"{killed_ns} and received_ns < {back_ns}",
        )[0][0]
        assert streamed > 0  # the new session's, stored once the writer was back
        # One restart gap per slot the killed run held, recovered from minute bars.
        gaps = wait_until(
            lambda: (
                (
                    r := db_rows(
                        url,
                        "select symbol, start_ns, end_ns, state from gaps "
                        "where reason = 'process_restart'",
                    )
                )
                and len(r) >= len(held)
                and all(g[3] == "recovered" for g in r)
                and r
            ),
            120,
            "a recovered restart gap per held slot",
        )
        assert sorted(g[0] for g in gaps) == sorted(held)
        assert all(start < killed_ns + 60 * S and end > killed_ns for _, start, end, _ in gaps)

        # In the end the database holds what Track B shows: nothing left held by the dead run.
        def agree() -> bool:
            engine = make_engine(url)
            with engine.connect() as conn:
                stored = {h.symbol for h in held_slots(conn, "track_b", DAY)}
            engine.dispose()
            shown = json.loads((sup.data_dir / "track_b" / "slots.json").read_text())
            return stored == {r["symbol"] for r in shown["slots"]} and len(stored) == 6

        wait_until(agree, 60, "the stored slots as Track B shows them")
        assert sup.terminate() == 0
