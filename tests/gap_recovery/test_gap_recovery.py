"""Gap recovery: the policy, the minutes of a gap, bars never doubled, the daemon under faults
and killed mid-recovery, and the day's report."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Bar, GapDetected, SlotDecision, Venue
from bus.producer import Producer
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.config.tree import Settings
from observer.config.workers import GapRecoverySettings
from observer.db.migrate import upgrade
from observer.db.slot_queries import watched_since
from observer.errors import KisProtocolError
from observer.kis.bars import BarLedger, bar_of, fetch_bars
from observer.kis.schemas import MinuteBarRow
from observer.process.heartbeat import Heartbeat
from observer.process.stats import p99
from observer.writer.store import Store
from tests.gap_recovery.conftest import MARKET, STOCKS, Rig
from tests.support import (
    db_rows,
    wait_until,
)
from workers.gap_recovery.cli import app as gaps_app
from workers.gap_recovery.plan import minutes_of, plan_for, ready_ns
from workers.gap_recovery.reconcile import check_minutes
from workers.gap_recovery.worker import GapRecovery, Pending

S = 1_000_000_000
MINUTE = 60 * S
DAY = date(2026, 11, 20)
TEN_NS = int(datetime(2026, 11, 20, 10, 0, tzinfo=KST).timestamp()) * S

# ------------------------------------------------------------------ the policy and minutes


def test_the_policy_goes_by_duration() -> None:
    default = GapRecoverySettings()
    assert [plan_for(d, default) for d in (0.0, 4.9, 5.0, 5.1, 60.0, 60.1, 3600.0)] == [
        "immediate",
        "immediate",
        "immediate",
        "queued",
        "queued",
        "backfill",  # every gap with bars gets them, a long one last
        "backfill",
    ]
    # The seed's marker for long gaps, on request: a Track B restart is backfilled however
    # long; a long disconnection is marked.
    seed = GapRecoverySettings(long_gaps="marker")
    assert plan_for(60.1, seed) == "marker"
    assert plan_for(3600.0, seed, "process_restart") == "backfill"
    assert plan_for(3600.0, seed, "disconnect") == "marker"
    with pytest.raises(ValueError, match="immediate_max_s"):
        GapRecoverySettings(immediate_max_s=90.0)


@given(st.integers(0, 10**6 * S), st.integers(0, 600 * S))
def test_the_minutes_of_a_gap_hold_every_instant_of_it(start: int, length: int) -> None:
    end = start + length
    minutes = minutes_of(start, end)
    assert all(m % MINUTE == 0 for m in minutes)
    assert minutes == list(range(minutes[0], minutes[-1] + 1, MINUTE))
    assert minutes[0] <= start < minutes[0] + MINUTE
    # The end's own stamp second may have lost trades: it reaches a second past its end.
    assert minutes[-1] <= end + S - 1 < minutes[-1] + MINUTE
    # Its bars are final only after its last minute has closed.
    assert ready_ns(start, end, 1.5) == minutes[-1] + MINUTE + int(1.5 * S)
    # The reconciliation explains a short minute by the same gap exactly where it is fetched.
    day = range(minutes[0] - 2 * MINUTE, minutes[-1] + 3 * MINUTE, MINUTE)
    checks = check_minutes(day, {}, dict.fromkeys(day, 1), set(), [("g", start, end)])
    assert [c.minute_ns for c in checks if c.gap_id == "g"] == minutes


# ------------------------------------------------------------------ bars


def _row(hhmm: str, o: str, h: str, low: str, c: str, v: str = "100") -> MinuteBarRow:
    return MinuteBarRow("20261120", hhmm + "00", c, o, h, low, v, "123456789")


def test_a_kis_row_is_a_bar_at_its_kst_minute() -> None:
    bar = bar_of(_row("1001", "100", "120", "90", "110", "7"))
    assert bar == Bar(minute_ns=TEN_NS + MINUTE, open=100, high=120, low=90, close=110, volume=7)
    with pytest.raises(KisProtocolError, match="inconsistent"):
        bar_of(_row("1001", "100", "95", "90", "110"))  # high below the close


@given(st.lists(st.text(max_size=8), min_size=7, max_size=7))
def test_any_row_is_a_bar_or_a_protocol_error(fields: list[str]) -> None:
    row = MinuteBarRow("20261120", *fields)
    try:
        bar = bar_of(row)
    except KisProtocolError:
        return
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    assert bar.minute_ns % MINUTE == 0 and bar.volume >= 0


def test_a_row_garbled_between_the_minutes_compared_fails_none_of_them() -> None:
    """The reconciliation asks for 10:00 and 10:02; KIS's 10:01 between them is garbled."""

    class Client:
        async def minute_bars_today(
            self, symbol: str, until: str, since: str, venue: str
        ) -> list[Any]:
            return [
                _row("1002", "100", "120", "90", "110", "5"),
                _row("1001", "100", "95", "90", "110"),  # high below the close
                _row("1000", "100", "120", "90", "110", "7"),
            ]

    minutes = [TEN_NS, TEN_NS + 2 * MINUTE]
    today = datetime.fromtimestamp(TEN_NS / S, KST).date()
    bars = asyncio.run(fetch_bars(Client(), "005930", minutes, today))  # type: ignore[arg-type]
    assert {m: b.volume for m, b in bars.items()} == {TEN_NS: 7, TEN_NS + 2 * MINUTE: 5}


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), min_size=1, max_size=20),
    st.lists(st.integers(0, 30), max_size=5),
)
def test_overlapping_and_retried_gaps_publish_each_minute_once(
    spans: list[tuple[int, int]], stored: list[int]
) -> None:
    def bars(first: int, count: int) -> list[Bar]:
        return [
            Bar(minute_ns=TEN_NS + m * MINUTE, open=1, high=1, low=1, close=1, volume=1)
            for m in range(first, first + count + 1)
        ]

    ledger = BarLedger(("005930", "KRX", TEN_NS + m * MINUTE) for m in stored)
    published: list[int] = []
    for first, count in [*spans, *spans]:  # every gap twice: a retry after a crash
        published += [b.minute_ns for b in ledger.claim("005930", bars(first, count))]
    wanted = {TEN_NS + m * MINUTE for f, c in spans for m in range(f, f + c + 1)}
    assert len(published) == len(set(published))
    assert set(published) == wanted - {TEN_NS + m * MINUTE for m in stored}
    assert ledger.claim("000660", bars(0, 0))  # another symbol's minutes are its own
    assert ledger.claim("005930", bars(0, 0), "NXT")  # and another venue's


def test_ready_gaps_go_by_priority_and_unready_ones_wait(tmp_path: Path) -> None:
    settings = Settings()
    clock = ManualClock(TEN_NS + 10 * MINUTE)
    stop = asyncio.Event()
    worker = GapRecovery(settings, clock, Producer.__new__(Producer), Heartbeat(None), stop)
    worker.admit(Pending("a:1", "000001", TEN_NS, TEN_NS + 30 * S, "silence", TEN_NS))  # queued
    worker.admit(Pending("a:2", "000002", TEN_NS, TEN_NS + 3 * S, "disconnect", TEN_NS))  # 3 s
    late = TEN_NS + 10 * MINUTE + 5 * S
    worker.admit(Pending("a:3", "000003", late, late + 2 * S, "disconnect", late))  # minute open
    assert worker.tally.queue_peak == 3
    first = worker._next()
    assert first is not None and first.gap.gap_id == "a:2"  # immediate before queued
    worker.running.add("a:2")
    second = worker._next()
    assert second is not None and second.gap.gap_id == "a:1"
    worker.running.add("a:1")
    assert worker._next() is None  # a:3's minute has not closed
    clock.advance(61)
    third = worker._next()
    assert third is not None and third.gap.gap_id == "a:3"
    worker.admit(Pending("a:2", "000002", TEN_NS, TEN_NS + 3 * S, "disconnect", TEN_NS))
    assert worker.tally.detected == 3  # the same gap again (feed and sweep) is one gap
    # Of those ready in one class, the shortest first: its call settles it soonest
    worker.admit(Pending("b:1", "000004", TEN_NS, TEN_NS + 50 * S, "silence", TEN_NS))
    worker.admit(Pending("b:2", "000005", TEN_NS + S, TEN_NS + 11 * S, "silence", TEN_NS + S))
    worker.running.add("a:3")
    shortest = worker._next()
    assert shortest is not None and shortest.gap.gap_id == "b:2"
    # One asking a minute of a symbol and venue a running recovery asks waits for it
    worker.admit(Pending("c:1", "000005", TEN_NS + 2 * S, TEN_NS + 3 * S, "silence", TEN_NS))
    worker.running.add("b:2")
    after = worker._next()
    assert after is not None and after.gap.gap_id == "b:1"  # not c:1, though shorter
    worker.running.discard("b:2")
    again = worker._next()
    assert again is not None and again.gap.gap_id == "c:1"
    # Of those costing alike (a call of bars each), the most watched symbol's first
    worker.running |= {"b:1", "c:1"}
    worker.admit(Pending("d:1", "000006", TEN_NS, TEN_NS + 10 * S, "silence", TEN_NS))
    worker.admit(Pending("d:2", "000007", TEN_NS, TEN_NS + 40 * S, "silence", TEN_NS))
    worker.watched = {"000006": 60, "000007": 600}  # seconds Track B's slots held each today
    watched = worker._next()
    assert watched is not None and watched.gap.gap_id == "d:2"
    worker.watched = {}
    assert (shorter := worker._next()) is not None and shorter.gap.gap_id == "d:1"


def test_a_symbol_is_as_watched_as_its_time_held_today_on_its_busiest_venue(
    store: Store,
) -> None:
    """`watched_since`: seconds held since midnight, a holding still open counted to now; a
    name churned in and out three times is less watched than one held throughout."""

    def decided(action: str, symbol: str, venue: Venue, replaced: str = "") -> SlotDecision:
        return SlotDecision(
            account="acct1",
            action=action,  # type: ignore[arg-type]
            symbol=symbol,
            slot=0,
            trigger="volume_surge",
            score=Decimal(1),
            reason="test",
            replaced_symbol=replaced,
            venue=venue,
        )

    both: list[Venue] = ["KRX", "NXT"]  # a decision's row per venue it registers it on
    timed = [(TEN_NS - 86_400 * S, decided("allocate", "005930", "KRX"))]  # yesterday's
    for minute, action, symbol, venues, replaced in [
        (0, "allocate", "005930", both, ""),  # held 10:00 to now (10:30)
        (0, "allocate", "000660", ["NXT"], ""),  # churned: 3 x 2 minutes on Nextrade
        (2, "expire", "000660", ["NXT"], ""),
        (5, "allocate", "000660", ["NXT"], ""),
        (7, "release", "000660", ["NXT"], ""),
        (10, "allocate", "000660", ["NXT"], ""),
        (12, "replace", "035720", ["NXT"], "000660"),  # 035720 takes its slot: 18 minutes
        (20, "allocate", "005930", ["KRX"], ""),  # already held: its holding goes on
    ]:
        at = TEN_NS + minute * 60 * S
        timed += [(at, decided(action, symbol, venue, replaced)) for venue in venues]
    first = store.marks.get("track_b", 0) + 1
    envelopes = [Envelope("track_b", first + i, ns, e) for i, (ns, e) in enumerate(timed)]
    store.apply([decode_parts(encode_frame(envelopes))])
    midnight = int(datetime(2026, 11, 20, tzinfo=KST).timestamp()) * S
    now = TEN_NS + 30 * 60 * S
    with store.engine.connect() as conn:
        held = watched_since(conn, midnight, now)
        assert held == {"005930": 1_800, "000660": 360, "035720": 1_080}
        assert watched_since(conn, now + S, now + 2 * S) == {}


# ------------------------------------------------------------------ the daemon


def _gaps(count: int) -> list[GapDetected]:
    """Short, queued, overlapping and long gaps between 10:00 and 10:29 (all minutes closed)."""
    gaps = []
    for n in range(count):
        symbol = STOCKS[n % len(STOCKS)]
        start = TEN_NS + (n * 37 % 1700) * S
        length = (2, 4, 20, 45, 59)[n % 5] * S
        gaps.append(
            GapDetected(
                gap_id=f"acct1:{symbol}:{start}",
                symbol=symbol,
                start_ns=start,
                end_ns=start + length,
                reason="silence",
            )
        )
        if n % 7 == 0:  # another account's disconnect overlapping it
            gaps.append(
                GapDetected(
                    gap_id=f"acct2:{symbol}:{start + S}",
                    symbol=symbol,
                    start_ns=start + S,
                    end_ns=start + length + 30 * S,
                    reason="disconnect",
                    account="acct2",
                )
            )
    return gaps


def _expected_bars(
    gaps: list[GapDetected], longest_s: float = 60.0
) -> dict[tuple[str, int], tuple[int, ...]]:
    """What the simulator's market traded in every minute the recoverable gaps touch (those
    up to ``longest_s``)."""
    wanted: dict[tuple[str, int], tuple[int, ...]] = {}
    for gap in gaps:
        if gap.end_ns - gap.start_ns > longest_s * S:
            continue
        day = datetime.fromtimestamp(gap.start_ns / S, KST).date()
        path = MARKET.day_path(gap.symbol, day)
        opens = int(path.bar_start(0).timestamp()) * S  # 10:00 on the CSAT day (yesterday)
        for minute in minutes_of(gap.start_ns, gap.end_ns):
            i = (minute - opens) // MINUTE
            wanted[(gap.symbol, minute)] = (
                int(path.open[i]),
                int(path.high[i]),
                int(path.low[i]),
                int(path.close[i]),
                int(path.volume[i]),
            )
    return wanted


def _stored_bars(url: str) -> list[Any]:
    return db_rows(
        url,
        "select symbol, minute_ns, open, high, low, close, volume from minute_bars "
        "where quality = 'recovered'",
    )


def _peak_pending(url: str) -> int:
    """The most gaps detected and not yet final at any instant, from the history."""
    rows = db_rows(url, "select gap_id, state, produced_ns from gap_events order by produced_ns")
    pending: set[str] = set()
    peak = 0
    for gap_id, state, _ in rows:
        if state == "detected":
            pending.add(gap_id)
        elif state in ("recovered", "unrecoverable", "marker_only"):
            pending.discard(gap_id)
        peak = max(peak, len(pending))
    return peak


def _final_states(url: str, count: int) -> dict[str, int]:
    """The gaps' final states, once ``count`` gaps have one."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: (
            (
                r := db_rows(
                    url,
                    "select state, count(*) from gaps where state in "
                    "('recovered', 'unrecoverable', 'marker_only') "
                    "group by state",
                )
            )
            and sum(n for _, n in r) == count
            and dict(r)
        ),
        90,
        f"{count} gaps in a final state",
    )


def _latencies(url: str, since_ns: int) -> list[float]:
    """Detection to recovered, seconds, of the gaps detected since ``since_ns``; sorted."""
    return sorted(
        (updated - detected) / S
        for detected, updated in db_rows(
            url,
            "select detected_ns, updated_ns from gaps where state = 'recovered' "
            f"and detected_ns >= {since_ns}",
        )
    )


def test_a_long_gap_gets_its_bars_after_the_short_ones_by_default(rig: Rig) -> None:
    """A 25-minute disconnection is no marker: its 26 minutes' bars, from one page of KIS's
    minute bars, asked after the short gap sent beside it."""
    url, writer, sim = rig.url, rig.writer, rig.sim

    def disconnect(name: str, symbol: str, start_ns: int, length_ns: int) -> GapDetected:
        return GapDetected(
            gap_id=f"acct1:{name}",
            symbol=symbol,
            start_ns=start_ns,
            end_ns=start_ns + length_ns,
            reason="disconnect",
            account="acct1",
        )

    long_gap = disconnect("long", STOCKS[1], TEN_NS + 10 * S, 25 * MINUTE)
    short = disconnect("short", STOCKS[2], TEN_NS + 5 * MINUTE, 3 * S)
    with Producer("track_b", writer.ingest, rig.outbox, clock_ns=sim.sim.clock.now_ns) as p:
        p.send(long_gap)
        p.send(short)
        assert p.wait_acked(30)
    # Started once both are stored, it finds both waiting and takes the shortest first. Its
    # four lanes recover the two at once, so the order they start in is the one judged, not
    # the order they end in.
    rig.start()
    assert _final_states(url, 2) == {"recovered": 2}
    stored = {(s, m): tuple(rest) for s, m, *rest in _stored_bars(url)}
    assert stored == _expected_bars([long_gap, short], longest_s=3600.0)
    assert len([k for k in stored if k[0] == STOCKS[1]]) == 26
    started = "select gap_id from gap_events where state = 'recovering' order by seq"
    assert db_rows(url, started) == [("acct1:short",), ("acct1:long",)]  # shortest first


@pytest.mark.slow
def test_gaps_are_recovered_through_drops_5xx_bursts_and_rate_limit_storms(
    rigs: Callable[..., Rig], tmp_path: Path
) -> None:
    """The gaps up to 60 s through the storms; a longer one left a marker, as configured."""
    rig = rigs('[gap_recovery]\nlong_gaps = "marker"\n')
    url, writer, sim, config, outbox = rig.url, rig.writer, rig.sim, rig.config, rig.outbox
    rig.start()
    with Producer("slots", writer.ingest, outbox / "slots", clock_ns=lambda: TEN_NS) as slots:
        for symbol in STOCKS[:41]:  # the symbols hold slots from 10:00
            slots.send(
                SlotDecision(
                    account="acct1",
                    action="allocate",
                    symbol=symbol,
                    slot=0,
                    trigger="volume_surge",
                    score=Decimal(10),
                    reason="test",
                )
            )
        assert slots.wait_acked(30)
    # Track B's gaps, stamped by the simulated clock as Track B's would be.
    track_b = Producer("track_b", writer.ingest, outbox / "b", clock_ns=sim.sim.clock.now_ns)
    # 1. A dropped session: a 1-4 s gap for each of its 41 symbols, whose minute has closed.
    dropped_at = TEN_NS + 25 * MINUTE + 10 * S
    drop = [
        GapDetected(
            gap_id=f"acct1:{symbol}:{dropped_at}",
            symbol=symbol,
            start_ns=dropped_at,
            end_ns=dropped_at + (1 + n % 4) * S,
            reason="disconnect",
            account="acct1",
        )
        for n, symbol in enumerate(STOCKS[:41])
    ]
    since = sim.sim.clock.now_ns()
    for gap in drop:
        track_b.send(gap)
    assert _final_states(url, len(drop)) == {"recovered": len(drop)}
    latencies = _latencies(url, since)
    # One minute-bars call each, paced at gap recovery's 15 a second (`Rig`): the last is
    # asked at most 41 / 15 s after the first, plus a second for the rest of its way (2.18 s
    # on a loaded machine failed a flat 2 s: a bound of the pacing, not of the machine).
    assert p99(latencies) < len(drop) / 15 + 1.0, latencies[-5:]
    # 2. Silences and overlapping disconnects through a 5xx burst and an EGW00201 storm.
    sim.sim.faults.http_5xx = 10
    sim.sim.faults.rate_limited = 10
    gaps = _gaps(60)
    long_gap = GapDetected(
        gap_id="acct1:long",
        symbol=STOCKS[0],
        start_ns=TEN_NS,
        end_ns=TEN_NS + 90 * S,
        reason="disconnect",
    )
    for gap in [*gaps, long_gap]:
        track_b.send(gap)
    assert track_b.wait_acked(30)
    track_b.close()
    final = _final_states(url, len(drop) + len(gaps) + 1)
    gaps += drop
    short = sum(1 for g in gaps if g.end_ns - g.start_ns <= 60 * S)
    assert 0 < short < len(gaps)
    # 100 % of the gaps up to 60 s, whatever the faults; the others are marked.
    assert final == {"recovered": short, "marker_only": len(gaps) + 1 - short}
    stormy = _latencies(url, since)
    print(f"detection to recovered p99: drop {p99(latencies)} s, all {p99(stormy)} s")
    assert sim.sim.faults.http_5xx == 0 and sim.sim.faults.rate_limited == 0  # all hit
    stored = _stored_bars(url)
    keys = [(s, m) for s, m, *_ in stored]
    assert len(keys) == len(set(keys))  # no bar twice, overlapping gaps included
    assert {(s, m): tuple(rest) for s, m, *rest in stored} == _expected_bars(gaps)
    assert db_rows(url, "select detail from gaps where gap_id = 'acct1:long'") == [
        ("90.0 s > 60 s: marker only",)
    ]
    assert _peak_pending(url) <= 100
    # The day's report and chart.
    chart = tmp_path / "gaps.html"
    result = CliRunner().invoke(
        gaps_app,
        [
            "report",
            "--date",
            "2026-11-20",
            "--json",
            "--chart",
            str(chart),
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["gaps"] == len(gaps) + 1 and report["short_success_pct"] == 100.0
    by_symbol = {r["symbol"]: r for r in report["symbols"]}
    first = by_symbol[STOCKS[0]]
    assert first["gaps_by_state"]["marker_only"] >= 1 and first["uncovered_s"] >= 90.0
    assert 0 < first["completeness_pct"] < 100 and first["covered_s"] > 0
    page = chart.read_text()
    assert page.count("</title></rect>") == len(gaps) + 1 and "marker_only" in page


@pytest.mark.slow
def test_killing_the_worker_mid_recovery_loses_no_gap_and_doubles_no_bar(rig: Rig) -> None:
    url, writer, sim = rig.url, rig.writer, rig.sim
    sim.sim.faults.latency_s = 0.05  # slow answers: the kill lands mid-recovery
    rig.start()
    # Yesterday's gap too (a worker down overnight): the past-days endpoint has its bars.
    yesterday = TEN_NS - 86_400 * S + 5 * MINUTE
    gaps = [
        *_gaps(80),
        GapDetected(
            gap_id=f"acct1:{STOCKS[3]}:{yesterday}",
            symbol=STOCKS[3],
            start_ns=yesterday,
            end_ns=yesterday + 50 * S,
            reason="silence",
        ),
    ]
    with Producer("track_b", writer.ingest, rig.outbox, clock_ns=sim.sim.clock.now_ns) as producer:
        for gap in gaps:
            producer.send(gap)
        assert producer.wait_acked(30)
    wait_until(
        lambda: db_rows(url, "select count(*) from gaps where state = 'recovered'")[0][0] >= 15,
        60,
        "some gaps recovered",
    )
    assert rig.proc is not None
    rig.proc.kill()
    rig.proc.wait()
    states = Counter(s for (s,) in db_rows(url, "select state from gaps"))
    assert states["recovered"] < len(gaps)  # killed with work left
    rig.start()
    wait_until(
        lambda: (
            db_rows(url, "select count(*) from gaps where state = 'recovered'")[0][0] == len(gaps)
        ),
        90,
        "every gap recovered after the restart",
    )
    stored = _stored_bars(url)
    keys = [(s, m) for s, m, *_ in stored]
    assert len(keys) == len(set(keys))
    # Every gap's bars, the long disconnections' too (`long_gaps`, backfill by default).
    expected = _expected_bars(gaps, longest_s=float("inf"))
    assert {(s, m): tuple(rest) for s, m, *rest in stored} == expected


def test_the_report_of_a_day_without_data_is_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    upgrade(url)
    result = CliRunner().invoke(
        gaps_app, ["report", "--date", "2026-11-20", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "0 ticks, 0 gaps" in result.output
    bad = CliRunner().invoke(gaps_app, ["report", "--date", "20th", "--config", str(config)])
    assert bad.exit_code == 2 and "--date" in bad.output
