"""The pruner's failure alerts end with their failure, in the same run or after a restart.

Before, ``partition_maintenance_failed`` and ``prune_failed`` (errors) stayed open for good:
a maintenance or a pruning that worked again only reset its counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bus.events import Alert, AlertResolved, PruneRequested
from observer.alerts.states import open_notices
from observer.db.queries import open_alert_records
from observer.db.retention_queries import newest_archive
from observer.writer import partitions as partitions_module
from observer.writer.partitions import Partitions
from observer.writer.retention import MAX_FAILURES, Pruner
from observer.writer.store import Store
from tests.archive.test_archive import DAY, apply, archive, market_events, prune_all

ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
RESTARTED = pytest.mark.parametrize("restarted", [False, True], ids=["same_run", "restarted"])
CODES = ("partition_maintenance_failed", "prune_failed")


def open_failures(store: Store) -> list[tuple[str, str]]:
    """(code, subject) of the writer's failure alerts open, as `observer alerts --open` says."""
    with store.engine.connect() as conn:
        records = open_alert_records(conn, deliveries=False)
    return [n.condition for n in open_notices(records, "writer", CODES)]


def events(frames: list[Any]) -> list[Any]:
    return [envelope.event for frame in frames for envelope in frame.envelopes]


@contextmanager
def pruning_blocked(store: Store) -> Iterator[None]:
    """Every pruning of DAY's trade ticks fails while inside: a real database error."""
    if store.engine.dialect.name == "sqlite":
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TRIGGER held BEFORE DELETE ON trade_ticks "
                    "BEGIN SELECT RAISE(ABORT, 'held by the test'); END"
                )
            )
        try:
            yield
        finally:
            with store.engine.begin() as conn:
                conn.execute(text("DROP TRIGGER held"))
        return
    reader = store.engine.connect()  # a reader of the day's partition: no DROP meanwhile
    try:
        reader.execute(text("LOCK TABLE trade_ticks_20261118 IN ACCESS SHARE MODE"))
        yield
    finally:
        reader.close()


@ON_POSTGRES
@RESTARTED
def test_partition_maintenance_failed_is_resolved_when_maintenance_works_again(
    store: Store, monkeypatch: pytest.MonkeyPatch, restarted: bool
) -> None:
    monkeypatch.setattr(partitions_module, "LOCK_TIMEOUT_MS", 50)
    pruner = Pruner(store, 100, days_ahead=1)
    reader = store.engine.connect()
    try:  # a reader in the default partition: attaching a day must wait for it
        reader.execute(text("LOCK TABLE trade_ticks_default IN ACCESS SHARE MODE"))
        frames = []
        for _ in range(MAX_FAILURES):
            assert pruner.pending()
            frames.append(pruner.step())
            pruner.partitions.next_at = 0.0  # type: ignore[union-attr]  # retried at once
    finally:
        reader.close()
    (alert,) = events([f for f in frames if f is not None])
    assert isinstance(alert, Alert) and alert.code == "partition_maintenance_failed"
    assert open_failures(store) == [("partition_maintenance_failed", "partitions")]
    if restarted:  # a new writer takes over what the last one left open
        pruner = Pruner(store, 100, days_ahead=1)

    (resolution,) = events(prune_all(pruner))  # the maintenance works, then its resolution
    assert isinstance(resolution, AlertResolved)
    assert (resolution.code, resolution.subject) == ("partition_maintenance_failed", "partitions")
    assert pruner.maintenance_failures == 0 and open_failures(store) == []
    pruner.partitions.next_at = 0.0  # type: ignore[union-attr]
    assert prune_all(pruner) == []  # resolved once, not at every maintenance


@RESTARTED
def test_prune_failed_is_resolved_by_a_later_pruning_of_that_day(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarted: bool
) -> None:
    monkeypatch.setattr(partitions_module, "LOCK_TIMEOUT_MS", 50)
    if store.engine.dialect.name == "postgresql":
        Partitions(store.engine, days_ahead=1).maintain(DAY)  # the day has its partition
    apply(store, market_events(DAY, 300))
    archive(store, tmp_path, DAY)
    with store.engine.connect() as conn:
        record = newest_archive(conn, "trade_ticks", DAY)
    assert record is not None
    request = PruneRequested(table="trade_ticks", trade_date=DAY, rows=300, sha256=record.sha256)
    pruner = Pruner(store, 100)
    if pruner.partitions is not None:
        pruner.partitions.next_at = float("inf")  # no maintenance in this test
    apply(store, [request], "archive")
    frames = []
    with pruning_blocked(store):
        for _ in range(MAX_FAILURES * 3):
            if not pruner.pending():
                break
            frames.append(pruner.step())
            if pruner.jobs:
                pruner.jobs[0].retry_at = 0.0  # retried at once instead of after the backoff
    (alert,) = events([f for f in frames if f is not None])
    subject = "trade_ticks:2026-11-18"
    assert isinstance(alert, Alert) and (alert.code, alert.subject) == ("prune_failed", subject)
    assert open_failures(store) == [("prune_failed", subject)]
    if restarted:
        pruner = Pruner(store, 100)
        if pruner.partitions is not None:
            pruner.partitions.next_at = float("inf")

    apply(store, [request], "archive")  # the archive job asks again
    pruned, resolution = events(prune_all(pruner))
    assert isinstance(pruned, Alert) and pruned.code == "retention_pruned"
    assert isinstance(resolution, AlertResolved)
    assert (resolution.code, resolution.subject) == ("prune_failed", subject)
    assert open_failures(store) == []
