"""Several collectors hosts: each reconciles the symbols it watched, whatever the others did."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from decimal import Decimal

import msgspec
import pytest

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Event, MinuteCheck, Reconciliation, SlotDecision, Venue
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.db import outages
from observer.db.outages import ReadRetries
from observer.db.readers import reader_engine
from observer.db.reconciliation_queries import reconciled_symbols
from observer.errors import StoreError
from observer.supervisor.settings import SupervisorSettings
from observer.writer.store import Store
from tests.gap_recovery.test_reconciliation import TO_15
from workers.gap_recovery.verify import DayResult, Verifier

_NS = 10**9
# Tuesday, Wednesday: both ordinary sessions (2026-11-19, the CSAT day, closed at 16:30)
PREVIOUS, TODAY = date(2026, 11, 17), date(2026, 11, 18)


def _ns(day: date, hour: int, minute: int) -> int:
    return int(datetime.combine(day, time(hour, minute), tzinfo=KST).timestamp()) * _NS


def _reconciled(symbol: str) -> Reconciliation:
    minute = MinuteCheck(
        minute_ns=_ns(PREVIOUS, 9, 31), status="complete", stored_volume=1, bar_volume=1
    )
    return Reconciliation(trade_date=PREVIOUS, symbol=symbol, minutes=(minute,))


def _allocated(symbol: str) -> SlotDecision:
    return SlotDecision(
        account="a",
        action="allocate",
        symbol=symbol,
        slot=0,
        trigger="manual",
        score=Decimal(1),
        reason="r",
    )


# Who reconciled which symbol of PREVIOUS: the daemons of hosts c1 and c22 (which ends like
# c2), an on-demand run on c2, and an unnamed host.
RECONCILED = [
    ("gap_recovery@c1", "000001"),
    ("gap_recovery@c22", "000022"),
    ("gap_verify@c2", "000002"),
    ("gap_recovery", "000003"),
]


def _stored(store: Store, rows: list[tuple[str, Event]]) -> None:
    at = _ns(PREVIOUS, 15, 1)
    store.apply(
        decode_parts(encode_frame([Envelope(source, 1, at + n, event)]))
        for n, (source, event) in enumerate(rows)
    )


def test_a_named_host_counts_only_its_own_reconciliations(store: Store) -> None:
    _stored(store, [(source, _reconciled(symbol)) for source, symbol in RECONCILED])
    with store.engine.connect() as conn:
        assert reconciled_symbols(conn, PREVIOUS) == {"000001", "000022", "000002", "000003"}
        assert reconciled_symbols(conn, PREVIOUS, "") == reconciled_symbols(conn, PREVIOUS)
        assert reconciled_symbols(conn, PREVIOUS, "c2") == {"000002"}
        assert reconciled_symbols(conn, PREVIOUS, "c1") == {"000001"}
        assert reconciled_symbols(conn, PREVIOUS, "c3") == set()
        assert reconciled_symbols(conn, TODAY, "c2") == set()


def _verifier(store: Store, host: str) -> tuple[Verifier, list[tuple[date, set[str]]]]:
    """A daemon's verifier on ``host`` the morning after, and the days it reconciles.

    Each day is listed with the symbols skipped as reconciled already; nothing is fetched.
    """
    settings = msgspec.structs.replace(TO_15, supervisor=SupervisorSettings(host=host))
    verifier = Verifier(
        settings, ManualClock(_ns(TODAY, 8, 0)), lambda event: None, store.engine, []
    )
    verified: list[tuple[date, set[str]]] = []

    async def verify_day(
        day: date,
        skip: set[str] | None = None,
        attempt: int = 1,
        venues: frozenset[Venue] | None = None,
    ) -> DayResult:
        verified.append((day, set(skip or ())))
        return DayResult(day, attempt)

    verifier.verify_day = verify_day  # type: ignore[method-assign]
    return verifier, verified


@pytest.mark.parametrize(
    ("host", "settled"),
    [
        # c2's daemon was down at the close: c1's reconciliation is no reason to skip its own.
        ("c2", [(PREVIOUS, set())]),
        ("c1", [(PREVIOUS, {"000001"})]),  # c1 reconciled its symbol already: skipped
        ("", [(PREVIOUS, {"000001"})]),  # one unnamed host: every reconciliation is its own
    ],
)
def test_a_daemon_starting_reconciles_its_hosts_last_session_whatever_another_host_did(
    store: Store, host: str, settled: list[tuple[date, set[str]]]
) -> None:
    _stored(
        store,
        [
            ("track_b@c1", _allocated("000001")),
            ("track_b@c2", _allocated("000002")),
            ("gap_recovery@c1", _reconciled("000001")),
        ],
    )
    verifier, verified = _verifier(store, host)
    stop = asyncio.Event()
    stop.set()  # the start-up's catch-up only: then the daily loop ends at once
    asyncio.run(verifier.run_daily(stop))
    assert verified == settled


def test_a_daemon_restarted_after_the_close_skips_only_what_its_own_host_reconciled(
    store: Store,
) -> None:
    """c2's daemon restarted on the evening: only c2's reconciled symbols count as done."""
    _stored(
        store,
        [
            ("gap_recovery@c1", _reconciled("000001")),
            ("gap_verify@c2", _reconciled("000002")),
        ],
    )
    verifier, verified = _verifier(store, "c2")
    asyncio.run(verifier._settle(PREVIOUS, asyncio.Event()))
    assert verified == [(PREVIOUS, {"000002"})]


def test_the_reconciliations_reads_wait_for_a_database_that_fails_them(store: Store) -> None:
    """The day's reconciliation runs beside the recoveries: a read the database fails is
    counted and tried again on the backoff, as the sweeps are; it ended the daemon, its
    recoveries with it, and each restart failed the same read until it was parked."""
    _stored(store, [("track_b@c1", _allocated("000001"))])
    verifier, verified = _verifier(store, "c1")
    failed: list[str] = []
    verifier.reads = ReadRetries(0.05, 0.05, lambda: failed.append("read"))
    verifier.engine = reader_engine(verifier.settings.database, "gap_recovery", url=GONE)

    async def settle() -> None:
        settling = asyncio.ensure_future(verifier._settle(PREVIOUS, asyncio.Event()))
        deadline = asyncio.get_running_loop().time() + 30
        while not failed and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # the poll of a deadline-bound wait
        verifier.engine = store.engine  # the database answers again
        await asyncio.wait_for(settling, 30)

    asyncio.run(settle())
    assert failed and verified == [(PREVIOUS, set())]


def test_the_reconciliations_reads_failing_that_long_end_the_daemon(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that never answers (a wrong URL) is the supervisor's to alert, as when the
    sweeps fail that long."""
    monkeypatch.setattr(outages, "READS_GIVE_UP_S", 0.0)
    verifier, verified = _verifier(store, "c1")
    verifier.engine = reader_engine(verifier.settings.database, "gap_recovery", url=GONE)
    with pytest.raises(StoreError, match=rf"the reconciliation of {PREVIOUS}'s reads failed"):
        asyncio.run(verifier._settle(PREVIOUS, asyncio.Event()))
    assert verified == []


GONE = "sqlite:////nonexistent-folder/observer.db"  # no such database: its reads fail
