"""Gap recovery's failures: KIS unavailable is no attempt, garbled rows, retakes, the alert,
the day's success and database blips (the daemon's own classes, KIS answering from a script)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter, deque
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from bus.events import Alert, AlertResolved, Event, GapStateChanged, MinuteBars
from observer.alerts.book import AlertBook
from observer.alerts.settings import ThresholdRule
from observer.alerts.states import Notice
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.config.workers import GapRecoverySettings
from observer.db.migrate import upgrade
from observer.db.outages import ReadRetries
from observer.errors import (
    KisApiError,
    KisAuthError,
    KisError,
    KisProtocolError,
    KisRateLimited,
    KisServerError,
    KisTokenThrottled,
    KisTransportError,
    StoreError,
)
from observer.kis.bars import fetch_gap
from observer.kis.client import MinuteRows
from observer.kis.schemas import MinuteBarRow
from observer.process.heartbeat import Heartbeat
from observer.supervisor.program import State
from observer.supervisor.rules import Rules, metrics_of
from workers.gap_recovery.outcomes import (
    SUCCESS_MIN_SETTLED,
    UNRECOVERABLE_ALERT,
    RecoveryCounters,
    UnrecoverableAlerts,
)
from workers.gap_recovery.reads import Sweep
from workers.gap_recovery.worker import GapRecovery, Pending

S = 1_000_000_000
MINUTE = 60 * S
DAY = date(2026, 11, 20)
TEN = int(datetime(2026, 11, 20, 10, 0, tzinfo=KST).timestamp()) * S

# What KIS may do instead of answering with the bars: refuse or fail the call, or the token
# is not there (the token job late: NO_TOKEN; EGW00133) -- none of it is an attempt.
LATER: dict[str, KisError] = {
    "rate_limited": KisRateLimited("EGW00201", "초당 거래건수를 초과하였습니다."),
    "server": KisServerError("EGW00002", "server error", status=500),
    "transport": KisTransportError("FHKST03010200: timed out"),
    "no_token": KisAuthError("NO_TOKEN", "no valid token in the cache", "oauth2"),
    "throttled": KisTokenThrottled("EGW00133", "1분당 1회"),
}
# ... and answers that are not the gap's bars: attempts.
ANSWERED = ["empty", "garbled", "api_error", "protocol"]


def _row(hhmm: str, high: str = "120", volume: str = "7") -> MinuteBarRow:
    return MinuteBarRow("20261120", hhmm + "00", "110", "100", high, "90", volume, "1")


GOOD = [_row("0959"), _row("1000"), _row("1001")]


class Kis:
    """``minute_bars_span`` from a script of steps: a kind of failure, or None (the bars)."""

    def __init__(self, steps: list[str | None]) -> None:
        self.steps = deque(steps)
        self.calls = 0

    async def minute_bars_span(
        self, symbol: str, since: str, until: str, day: str = "", venue: str = "KRX"
    ) -> MinuteRows:
        assert venue == "KRX"  # KRX's gaps: KRX's bars
        self.calls += 1
        step = self.steps.popleft() if self.steps else None
        if step in LATER:
            raise LATER[step]
        if step == "api_error":
            raise KisApiError("OPSQ0001", "unknown", "FHKST03010200", 200)
        if step == "protocol":
            raise KisProtocolError("FHKST03010200: HTTP 200 answer is not a KIS envelope")
        if step == "empty":
            return MinuteRows([], reached=False)
        if step == "garbled":  # 10:01 has its high below its close
            return MinuteRows([_row("0959"), _row("1000"), _row("1001", high="95")], True)
        return MinuteRows(list(GOOD), reached=True)


@dataclass
class InProcess:
    worker: GapRecovery
    clock: ManualClock
    sent: list[Event]

    def states(self) -> list[str]:
        return [e.state for e in self.sent if isinstance(e, GapStateChanged)]

    def detail(self) -> str:
        return [e.detail for e in self.sent if isinstance(e, GapStateChanged)][-1]

    def alerts(self) -> list[tuple[str, str, str]]:
        return [
            (
                type(e).__name__,
                e.subject,
                e.context.get("unrecoverable", "") if isinstance(e, Alert) else "",
            )
            for e in self.sent
            if isinstance(e, Alert | AlertResolved)
        ]

    def run(self, kis: Kis, gap_id: str = "g") -> None:
        """Try the gap whenever it is due, until it is settled."""
        account = SimpleNamespace(client=kis)
        while (job := self.worker.jobs.get(gap_id)) is not None:
            self.clock.advance(max(0, job.ready_ns - self.clock.now_ns()) / S)
            asyncio.run(self.worker._recover(job, account))  # type: ignore[arg-type]


def _rig(settings: Settings | None = None, now_ns: int = TEN + 10 * MINUTE) -> InProcess:
    clock = ManualClock(now_ns)
    sent: list[Event] = []
    producer = SimpleNamespace(send=sent.append, source="gap_recovery")
    worker = GapRecovery(
        settings or Settings(),
        clock,
        producer,  # type: ignore[arg-type]
        Heartbeat(None),
        asyncio.Event(),
    )
    return InProcess(worker, clock, sent)


def _left_open(day: date) -> Notice:
    """An earlier instance's open alert of ``day``, as the start-up reads it."""
    return Notice("gap_recovery:7", "alert", 0, "error", UNRECOVERABLE_ALERT, day.isoformat(), "")


def _gap(gap_id: str = "g", start: int = TEN + 50 * S, reason: str = "silence") -> Pending:
    # 10:00:50-10:01:40: minutes 10:00 and 10:01
    return Pending(gap_id, "005930", start, start + 50 * S, reason, start + 51 * S)


# ------------------------------------------------------------------ attempts and time


@given(st.lists(st.sampled_from([*LATER, *ANSWERED]), max_size=19))
def test_only_answers_without_the_bars_are_attempts(steps: list[str]) -> None:
    """Up to 19 failures stay within the retry window (1+2+4+8+16+14*30 s < 600 s), so
    only max_attempts (5) answers without the bars make a gap unrecoverable; KIS refusing
    or failing the call, or the token not there, only waits, however often."""
    rig = _rig()
    rig.worker.admit(_gap())
    kis = Kis([*steps])
    rig.run(kis)
    answered = [n for n, step in enumerate(steps) if step in ANSWERED]
    if len(answered) >= 5:
        assert rig.states()[-1] == "unrecoverable"
        assert kis.calls == answered[4] + 1  # settled at the fifth
        assert "5 attempts" in rig.detail()
    else:
        assert rig.states() == ["recovering", "recovered"]
        assert kis.calls == len(steps) + 1
        bars = [e for e in rig.sent if isinstance(e, MinuteBars)]
        assert [b.minute_ns for e in bars for b in e.bars] == [TEN, TEN + MINUTE]


def test_kis_unavailable_for_long_makes_a_gap_unrecoverable_only_after_the_window() -> None:
    rig = _rig()
    rig.worker.admit(_gap())
    first = None
    account = SimpleNamespace(client=Kis(["rate_limited"] * 1000))
    pauses = []
    while (job := rig.worker.jobs.get("g")) is not None:
        rig.clock.advance(max(0, job.ready_ns - rig.clock.now_ns()) / S)
        first = first or rig.clock.now_ns()
        asyncio.run(rig.worker._recover(job, account))  # type: ignore[arg-type]
        if "g" in rig.worker.jobs:
            pauses.append((rig.worker.jobs["g"].ready_ns - rig.clock.now_ns()) / S)
    assert first is not None
    failing = (rig.clock.now_ns() - first) / S
    window = rig.worker.config.retry_window_s
    assert window <= failing < window + rig.worker.config.backoff_max_s
    assert max(pauses) == rig.worker.config.backoff_max_s  # doubling, capped
    assert rig.states() == ["recovering", "unrecoverable"]
    assert "EGW00201" in rig.detail() and "failing for" in rig.detail()


def test_a_garbled_row_keeps_the_good_minutes_and_retries_only_its_own() -> None:
    rig = _rig()
    rig.worker.admit(_gap())
    kis = Kis(["garbled", None])
    rig.run(kis)
    published = [b.minute_ns for e in rig.sent if isinstance(e, MinuteBars) for b in e.bars]
    assert published == [TEN, TEN + MINUTE]  # 10:00 at once, 10:01 once KIS sent it whole
    assert rig.states() == ["recovering", "recovered"] and kis.calls == 2
    # A garbled row before the gap fails nothing: the gap is recovered at the first call.
    rows = [_row("0958", high="95"), _row("0959"), _row("1000"), _row("1001")]

    class Before(Kis):
        async def minute_bars_span(self, *args: Any, **kwargs: Any) -> MinuteRows:
            self.calls += 1
            return MinuteRows(rows, reached=True)

    answer = asyncio.run(fetch_gap(Before([]), "005930", [TEN, TEN + MINUTE], DAY))  # type: ignore[arg-type]
    assert sorted(answer.bars) == [TEN, TEN + MINUTE] and not answer.garbled


# ------------------------------------------------------------------ taken back, and the alert


def _row_of(gap: Pending, state: str) -> Any:
    return (
        gap.gap_id,
        gap.symbol,
        gap.start_ns,
        gap.end_ns,
        gap.reason,
        gap.detected_ns,
        state,
        gap.venue,
        gap.cum_before,
        gap.cum_after,
    )


def test_an_unrecoverable_gap_is_tried_again_and_its_alert_resolved_when_recovered() -> None:
    rig = _rig()
    worker = rig.worker
    gap = _gap()
    worker.admit(gap)
    rig.run(Kis(["empty"] * 5))
    assert rig.states() == ["recovering", "unrecoverable"]
    assert rig.alerts() == [("Alert", "2026-11-20", "1")]
    alert = next(e for e in rig.sent if isinstance(e, Alert))
    assert alert.severity == "error" and alert.code == UNRECOVERABLE_ALERT
    # The sweep reads it back as unrecoverable: tried again only retake_s after it failed.
    worker._take(Sweep([_row_of(gap, "unrecoverable")], {}))
    assert "g" not in worker.jobs
    rig.clock.advance(worker.config.retake_s)
    fresh = _gap("fresh", TEN + 5 * MINUTE)
    worker.admit(fresh)
    worker._take(Sweep([_row_of(gap, "unrecoverable")], {}))
    job = worker._next()
    assert job is not None and job.gap.gap_id == "fresh"  # a new gap goes first
    worker.jobs.pop("fresh")
    # One try: a failure leaves it as it was, with nothing published.
    before = len(rig.sent)
    rig.run(Kis(["server"]))
    assert len(rig.sent) == before and "g" not in worker.jobs
    assert worker.unrecoverable_days() == {DAY: 1}
    # The next retake recovers it: recovered, never "recovering" again, the alert resolved.
    rig.clock.advance(worker.config.retake_s)
    worker._take(Sweep([_row_of(gap, "unrecoverable")], {}))
    rig.run(Kis([None]))
    assert rig.states() == ["recovering", "unrecoverable", "recovered"]
    assert rig.alerts() == [("Alert", "2026-11-20", "1"), ("AlertResolved", "2026-11-20", "")]
    assert worker.tally.detected == 2  # the retake is not a new detection


def test_the_alert_is_raised_again_only_when_the_count_doubles() -> None:
    rig = _rig()
    for n in range(9):
        rig.worker._final(_gap(f"g{n}", TEN + n * S), "unrecoverable", 0, "x")
    assert [count for _, _, count in rig.alerts()] == ["1", "2", "4", "8"]
    # A restart takes the open alert over: not raised again for the same count.
    again = _rig()
    again.worker.alerts.take_over([_left_open(DAY)])
    again.worker._take(
        Sweep([_row_of(_gap(f"g{n}", TEN + n * S), "unrecoverable") for n in range(9)], {})
    )
    assert again.alerts() == []
    # ... and resolves it once the day has none left.
    gone = _rig()
    gone.worker.alerts.take_over([_left_open(DAY)])
    gone.worker._take(Sweep([], {}))
    assert gone.alerts() == [("AlertResolved", "2026-11-20", "")]


def test_a_days_alert_is_given_up_when_its_gaps_are_no_longer_tried() -> None:
    """retake_days = 0: the day's unrecoverable gap is alerted; after midnight it is never
    tried again, so its alert is resolved as given up (it stayed open for good)."""
    settings = Settings(gap_recovery=GapRecoverySettings(retake_days=0))
    rig = _rig(settings)
    rig.worker._final(_gap(), "unrecoverable", 0, "x")
    assert rig.alerts() == [("Alert", "2026-11-20", "1")]
    rig.worker._alert_unrecoverable()  # the same day: still followed
    assert len(rig.alerts()) == 1
    rig.clock.advance(86_400)
    rig.worker._take(Sweep([], {}))  # the next day's sweep: the day is out of the window
    assert rig.alerts()[1:] == [("AlertResolved", "2026-11-20", "")]
    (given_up,) = [e for e in rig.sent if isinstance(e, AlertResolved)]
    assert given_up.message == (
        "given up: 1 gaps of 2026-11-20 stay unrecoverable and are no longer tried"
    )
    rig.worker._take(Sweep([], {}))
    assert len(rig.alerts()) == 2  # resolved once


@given(st.integers(0, 10), st.integers(0, 10))
def test_a_taken_over_alert_is_resolved_once_its_day_leaves_the_window(
    retake_days: int, age: int
) -> None:
    """A restarted daemon takes a predecessor's alert over: resolved as given up when its
    day is out of the ``retake_days`` window, kept (and judged by the sweep) within it."""
    sent: list[Event] = []
    book = AlertBook(sent.append, "gap_recovery")
    alerts = UnrecoverableAlerts(book)
    today = date(2026, 11, 20)
    day = date.fromordinal(today.toordinal() - age)
    first = date.fromordinal(today.toordinal() - retake_days)
    book.take_over([_left_open(day)])
    alerts.update(Counter({day: 3}) if day >= first else Counter(), first)
    if day < first:
        assert [e.message for e in sent if isinstance(e, AlertResolved)] == [
            f"given up: the unrecoverable gaps of {day} stay unrecoverable and are no longer tried"
        ]
        assert len(sent) == 1
    else:
        assert sent == []  # still tried: not raised again for the same count
    alerts.update(Counter(), date.fromordinal(today.toordinal() + 1))
    assert len([e for e in sent if isinstance(e, AlertResolved)]) == 1  # never left open


# ------------------------------------------------------------------ the day's success


def _settings(tmp_path: Path, url: str) -> Settings:
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    return load_settings(config)


def test_success_is_the_days_and_a_restart_does_not_reset_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    upgrade(url)
    engine = create_engine(url)
    yesterday = TEN - 86_400 * S
    with engine.begin() as conn:
        for n, (start, state) in enumerate(
            [(yesterday, "recovered")] * 50 + [(TEN, "recovered")] * 19 + [(TEN, "unrecoverable")]
        ):
            conn.execute(
                text(
                    "insert into gaps (gap_id, symbol, account, start_ns, end_ns, reason, "
                    "state, bars, detail, detected_ns, updated_ns) values (:g, '005930', "
                    "'acct1', :s, :s, 'silence', :st, 0, '', :s, :s)"
                ),
                {"g": f"g{n}", "s": start + n, "st": state},
            )
    engine.dispose()
    rig = _rig(_settings(tmp_path, url))
    assert asyncio.run(rig.worker._start_up())
    # Today's gaps only: 19 recovered of 20, where the process's life read 100 % (a restart).
    assert rig.worker.tally.counters(0, DAY)["success_pct"] == 95.0
    rig.worker._final(_gap("new", TEN + MINUTE), "recovered", 1, "")
    assert rig.worker.tally.counters(0, DAY)["success_pct"] == 95.24
    assert rig.worker.tally.counters(0, date(2026, 11, 23))["success_pct"] == 100.0  # a new day
    # The unrecoverable gap of the day is followed: alerted, and tried again.
    assert rig.alerts() == [("Alert", "2026-11-20", "1")]
    assert rig.worker.jobs["g69"].retake


def test_a_reconciliation_gap_is_left_out_of_the_detection_latency() -> None:
    rig = _rig()
    rig.worker.admit(_gap("a"))
    late = Pending(
        "reconciliation:005930:1", "005930", TEN, TEN + 59 * S, "reconciliation", TEN + 6 * 3600 * S
    )
    rig.worker.admit(late)
    assert list(rig.worker.tally.detection_s) == [1.0] and rig.worker.tally.detected == 2


def test_counters_settle_by_the_day_the_gap_began() -> None:
    tally = RecoveryCounters()
    tally.settle("a", DAY, "unrecoverable")
    tally.settle("a", DAY, "recovered")  # tried again, recovered
    tally.settle("b", DAY, "unrecoverable")
    tally.settle("c", date(2026, 11, 19), "recovered")  # an earlier day's: not today's figure
    for n in range(SUCCESS_MIN_SETTLED - 2):
        tally.settle(f"r{n}", DAY, "recovered")
    assert tally.success_pct(DAY) == 95.0


def test_the_reconciled_stream_end_only_moves_forward() -> None:
    tally = RecoveryCounters()
    assert tally.counters(0)["reconciled_until_s"] == 0.0  # none settled since the start
    krx, nxt = (datetime(2026, 11, 20, h, m, 30, tzinfo=KST) for h, m in ((15, 31), (20, 0)))
    tally.reconciled(nxt)
    tally.reconciled(krx)  # an earlier end settled later (a restart's catch-up): no step back
    assert tally.counters(0)["reconciled_until_s"] == nxt.timestamp()


@given(st.integers(0, 60), st.integers(0, 60))
def test_success_is_100_until_the_day_has_enough_gaps_settled(
    recovered: int, unrecoverable: int
) -> None:
    tally = RecoveryCounters()
    for n in range(recovered):
        tally.settle(f"r{n}", DAY, "recovered")
    for n in range(unrecoverable):
        tally.settle(f"u{n}", DAY, "unrecoverable")
    settled = recovered + unrecoverable
    expected = 100.0 if settled < SUCCESS_MIN_SETTLED else round(100 * recovered / settled, 2)
    assert tally.success_pct(DAY) == expected


def test_one_unrecoverable_gap_raises_one_alert_not_two() -> None:
    """The day's first gap settled unrecoverable: ``gaps_unrecoverable``, and no
    ``gap_success_low`` from a rate of one gap (the supervisor's rule, as configured)."""
    rig = _rig()
    rig.worker._final(_gap("g"), "unrecoverable", 0, "x")
    assert rig.alerts() == [("Alert", "2026-11-20", "1")]
    rules = Rules(
        (ThresholdRule(code="gap_success_low", metric="gap_recovery.success_pct", below=95.0),),
        AlertBook(rig.sent.append),
    )
    gaps: Any = SimpleNamespace(
        name="gap_recovery",
        state=State.RUNNING,
        counters=rig.worker.tally.counters(0, DAY),
        started_at=0.0,
    )
    assert rules.judge(metrics_of([gaps], {})) == []


# ------------------------------------------------------------------ database blips


def test_a_sweep_the_database_fails_is_counted_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.db"
    sqlite3.connect(path).close()  # a database without its tables: every read fails
    url = f"sqlite:///{path}"
    rig = _rig(_settings(tmp_path, url))
    worker = rig.worker
    caplog.set_level(logging.WARNING)
    assert not asyncio.run(worker._try_sweep())
    assert worker.tally.sweep_failures == 1 and "the sweep failed" in caplog.text
    upgrade(url)
    assert asyncio.run(worker._try_sweep())
    # A database away for long ends the process (the supervisor restarts it).
    now = [0.0]
    worker._reads = ReadRetries(1.0, 30.0, worker.tally.read_failed, monotonic=lambda: now[0])
    with sqlite3.connect(path) as conn:
        conn.execute("drop table gaps")
    assert not asyncio.run(worker._try_sweep())
    now[0] = 601.0
    with pytest.raises(StoreError, match="the sweep failed for 601 s"):
        asyncio.run(worker._try_sweep())


def test_the_start_up_waits_for_the_database(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    sqlite3.connect(path).close()
    url = f"sqlite:///{path}"
    rig = _rig(_settings(tmp_path, url))

    async def main() -> bool:
        task = asyncio.create_task(rig.worker._start_up())
        while not rig.worker.tally.sweep_failures:
            await asyncio.sleep(0.01)
        assert not task.done()
        await asyncio.to_thread(upgrade, url)
        return await asyncio.wait_for(task, 30)

    assert asyncio.run(main())


def test_an_outage_the_chain_proves_empty_is_recovered_without_a_call() -> None:
    """A connection gap measured at 0 shares (the symbol's next trade ran on from its last
    before the outage): recovered at once, neither trades nor bars asked, with trades asked
    for or not."""
    rig = _rig()
    empty = Pending("g", "005930", TEN + 50 * S, TEN + 90 * S, "disconnect", TEN + 91 * S)
    rig.worker.admit(replace(empty, cum_before=1_000, cum_after=1_000))
    kis = Kis([])
    rig.run(kis)
    assert kis.calls == 0 and rig.states() == ["recovering", "recovered"]
    assert rig.detail().startswith("recovered_trades: 0 trades, 0 shares")
    # Trades not asked for (bars for every gap): the stream's own chain still proves it
    base = Settings()
    off = msgspec.structs.replace(base.gap_recovery, trades=False)
    bars_only = _rig(msgspec.structs.replace(base, gap_recovery=off))
    bars_only.worker.admit(replace(empty, cum_before=1_000, cum_after=1_000))
    bars_only.run(kis)
    assert kis.calls == 0 and bars_only.states() == ["recovering", "recovered"]
