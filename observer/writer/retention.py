"""The writer's pruning: an archived day's rows deleted in bounded chunks between batches.

Only the writer writes, so the archive job asks it (`bus.events.PruneRequested`) once a day's
Parquet file is verified. A day is pruned only if it is exactly what was archived (`_refusal`),
and only the rows fixed when its pruning starts (`Pruner._start`). What each chunk deletes is
recorded per source in ``pruned_chunks`` in the same transaction, and the audit counts those
seqs as present. A failure's alert, open in the writer's `AlertBook` (an earlier run's too,
taken over at the first success), is resolved by the next success.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, and_, bindparam, delete, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError

from bus.codec import BusFrame
from bus.events import AlertResolved, PruneRequested, Severity
from observer.alerts.book import AlertBook
from observer.alerts.stored import load
from observer.db.models import PrunedChunk
from observer.db.retention_queries import (
    ARCHIVED_TABLES,
    ArchivedTable,
    ArchiveRecord,
    day_files,
    day_filter,
    day_sources,
    pruned_rows,
)
from observer.errors import StoreError
from observer.process.retry import backoff_s
from observer.writer.identity import WRITER_SOURCE
from observer.writer.partitions import DayStats, Partitions, day_stats
from observer.writer.store import Store

__all__ = ["Pruner"]

log = logging.getLogger(__name__)

MAX_FAILURES = 5  # database failures of one pruning before it is given up (and alerted)
MAINTENANCE_FAILED, PRUNE_FAILED = "partition_maintenance_failed", "prune_failed"
PRUNE_REFUSED = "prune_refused"  # a day's rows not its archive's: kept, until a prune passes
_FAILURE_CODES = (MAINTENANCE_FAILED, PRUNE_FAILED, PRUNE_REFUSED)  # resolved by a success


@dataclass(slots=True)
class _Job:
    request: PruneRequested
    spec: ArchivedTable | None  # None: not a table retention knows
    bound: ColumnElement[bool] | None = None  # the rows to delete, fixed at the start
    expected: int = 0
    deleted: int = 0
    chunk: int = 0  # chunks recorded so far for the table and day
    failures: int = 0
    retry_at: float = 0.0
    started: float = 0.0


class Pruner:
    """Runs the committed prune requests, one chunk per call of `step`.

    The writer calls `step` between two batches: each chunk is its own short transaction, so
    producers keep being acknowledged while a month of ticks goes. On PostgreSQL a day is a
    partition, dropped whole (`_drop`), and the partitions' maintenance runs here when due.
    A failure alert (``partition_maintenance_failed``, a day's ``prune_failed``) is resolved
    by the first success after it, an earlier run's included (`_failures_open`).

    Parameters
    ----------
    store:
        The writer's store: its engine, its committed marks and requests, and the commit of
        the writer's own alerts.
    chunk_rows:
        The most rows one chunk deletes (one transaction; SQLite).
    days_ahead:
        Days after today whose partitions are kept created (PostgreSQL).
    alerts:
        The writer's alert book (none: one of its own); the pruner commits what it hands over.
    """

    def __init__(
        self,
        store: Store,
        chunk_rows: int,
        days_ahead: int = 7,
        *,
        alerts: AlertBook | None = None,
    ) -> None:
        self.store = store
        self.chunk_rows = chunk_rows
        postgres = store.engine.dialect.name == "postgresql"
        self.partitions = Partitions(store.engine, days_ahead) if postgres else None
        self.jobs: deque[_Job] = deque()
        self.pruned = 0  # rows deleted
        self.chunks = 0
        self.refused = 0
        self.maintenance_failures = 0  # in a row
        # The writer's open alerts; an earlier run's failure alerts once read (`_resolve`).
        self.alerts = alerts or AlertBook(None, WRITER_SOURCE)
        self._taken_over = False
        # Resolutions to commit, one per step: the writer publishes a frame's first event.
        self._owed: deque[AlertResolved] = deque()
        self._owed_failures = 0
        self._owed_at = 0.0  # monotonic time of the next try after a failed commit

    def pending(self) -> bool:
        """True when work is due now (takes the requests committed since the last call)."""
        while self.store.requests:
            request = self.store.requests.pop(0)
            self.jobs.append(_Job(request, ARCHIVED_TABLES.get(request.table)))
        if self._owed and self._owed_at <= time.monotonic():
            return True
        if self.partitions is not None and self.partitions.due():
            return True
        return bool(self.jobs) and self.jobs[0].retry_at <= time.monotonic()

    def step(self) -> BusFrame | None:
        """Do the next piece of work; return the frame of an alert it committed, if any.

        Raises
        ------
        StoreError
            The alert could not be committed (the database is unavailable).
        """
        if self._owed and self._owed_at <= time.monotonic():
            return self._commit_owed()
        if self.partitions is not None and self.partitions.due():
            return self._maintain(self.partitions)
        job = self.jobs[0]
        request = job.request
        what = f"{request.table} of {request.trade_date}"
        if job.spec is None:
            self.refused += 1
            return self._finish(job, "warning", PRUNE_REFUSED, f"{what}: not an archived table")
        try:
            if self.partitions is not None:
                refusal = self._drop(job, job.spec, self.partitions)
                if refusal is not None:
                    self.refused += 1
                    return self._finish(job, "warning", PRUNE_REFUSED, f"{what}: {refusal}")
                return self._done(job, what)
            if job.bound is None:
                refusal = self._start(job, job.spec)
                if refusal is not None:
                    self.refused += 1
                    return self._finish(job, "warning", PRUNE_REFUSED, f"{what}: {refusal}")
                if job.bound is None:  # nothing left to delete
                    return self._done(job, what)
                return None  # the first chunk on the next turn
            if self._chunk(job, job.spec, job.bound):
                return self._done(job, what)
            return None
        except (SQLAlchemyError, self.store.engine.dialect.loaded_dbapi.Error) as exc:
            job.failures += 1
            log.error("pruning %s failed (%d of %d): %s", what, job.failures, MAX_FAILURES, exc)
            if job.failures >= MAX_FAILURES:
                return self._finish(
                    job,
                    "error",
                    PRUNE_FAILED,
                    f"pruning {what} failed {job.failures} times, left for the next run: "
                    f"{type(exc).__name__}",
                )
            job.retry_at = time.monotonic() + backoff_s(job.failures, 1.0, 30.0)
            return None

    def _start(self, job: _Job, spec: ArchivedTable) -> str | None:
        """Check the day against its archive and fix the rows to delete; or say why not.

        The rows to delete are each source's up to its committed mark now, so a row of the
        day committed later (a late recovery) is never deleted unarchived: the archive job
        writes it to a late file of the day and asks again. A pruning cut short (a restart)
        is finished when the job asks again: the check counts the rows already pruned.
        """
        request = job.request
        with self.store.engine.connect() as conn:
            files = day_files(conn, request.table, request.trade_date)
            sources = day_sources(conn, spec, request.trade_date)
            already, chunks = pruned_rows(conn, request.table, request.trade_date)
        present = sum(sources.values())
        if present == 0:
            return None  # nothing (left) to delete: done
        refusal = _refusal(request, files, present, already)
        if refusal is not None:
            return refusal
        job.started = time.monotonic()
        job.expected, job.chunk = present, chunks
        if present:
            marks = self.store.marks
            table = spec.table
            job.bound = or_(
                *(and_(table.c.source == s, table.c.seq <= marks.get(s, 0)) for s in sources)
            )
        log.info("pruning %s of %s: %d rows", request.table, request.trade_date, present)
        return None

    def _drop(self, job: _Job, spec: ArchivedTable, partitions: Partitions) -> str | None:
        """Check the day's partition against its archive, record it, drop it; or say why not.

        The check, the record of every source's rows and seqs and the ``DROP`` are one
        transaction, so no row of the day is committed in between (the writer is the only
        writer and does nothing else meanwhile).
        """
        request, day = job.request, job.request.trade_date
        job.started = time.monotonic()
        name = partitions.ensure(spec, day)  # every row of the day in it (none in the default)
        with self.store.engine.begin() as conn:
            files = day_files(conn, request.table, day)
            already, chunks = pruned_rows(conn, request.table, day)
            stats = day_stats(conn, name, spec.owns_seqs)
            present = sum(s.rows for s in stats)
            refusal = _refusal(request, files, present, already) if present else None
            if refusal is not None:
                return refusal
            if stats:
                conn.execute(insert(PrunedChunk), _stats_records(spec, day, chunks + 1, stats))
            partitions.drop(conn, spec, day)
        log.info("pruning %s of %s: partition %s dropped, %d rows", spec.name, day, name, present)
        job.expected = job.deleted = present
        job.chunk = chunks + 1 if present else chunks
        self.pruned += present
        return None

    def _maintain(self, partitions: Partitions) -> BusFrame | None:
        """The partitions' maintenance; after repeated failures, one alert.

        Rows still land in the default partition meanwhile, so nothing is lost.
        """
        try:
            partitions.maintain()
        except (SQLAlchemyError, self.store.engine.dialect.loaded_dbapi.Error) as exc:
            self.maintenance_failures += 1
            failures = self.maintenance_failures
            partitions.next_at = time.monotonic() + backoff_s(failures, 5.0, 600.0)
            log.error("partition maintenance failed (%d in a row): %s", failures, exc)
            if failures != MAX_FAILURES:
                return None
            return self._alert(
                "error",
                MAINTENANCE_FAILED,
                f"creating the partitions ahead failed {failures} times "
                f"({type(exc).__name__}); new days land in the default partitions",
                "partitions",
                {"failures": str(failures)},
            )
        self.maintenance_failures = 0
        self._resolve(MAINTENANCE_FAILED, "partitions", "creating the partitions ahead works again")
        return None

    def _chunk(self, job: _Job, spec: ArchivedTable, bound: ColumnElement[bool]) -> bool:
        """Delete one chunk and record it; True when the day is done."""
        day = job.request.trade_date
        table = spec.table
        keys = list(table.primary_key.columns)
        with self.store.engine.begin() as conn:
            found: Sequence[Any] = conn.execute(
                select(*keys).where(day_filter(spec, day), bound).limit(self.chunk_rows)
            ).all()
            if found:
                conn.execute(
                    delete(table).where(*(k == bindparam(f"k_{k.name}") for k in keys)),
                    [
                        {f"k_{k.name}": value for k, value in zip(keys, row, strict=True)}
                        for row in found
                    ],
                )
                records = _chunk_records(spec, day, job.chunk + 1, found)
                conn.execute(insert(PrunedChunk), records)
        if found:
            job.chunk += 1
            job.deleted += len(found)
            self.pruned += len(found)
            self.chunks += 1
        return len(found) < self.chunk_rows

    def _done(self, job: _Job, what: str) -> BusFrame | None:
        if job.deleted != job.expected:  # cannot happen while the writer is the only writer
            return self._finish(
                job,
                "error",
                PRUNE_FAILED,
                f"pruning {what} deleted {job.deleted} rows, {job.expected} expected",
            )
        request = job.request
        for code in (PRUNE_FAILED, PRUNE_REFUSED):
            self._resolve(code, f"{request.table}:{request.trade_date}", f"pruned {what}")
        if job.expected == 0:
            self.jobs.popleft()
            return None
        seconds = time.monotonic() - job.started
        how = "(its partition dropped)" if self.partitions else f"in {job.chunk} chunks"
        return self._finish(
            job,
            "info",
            "retention_pruned",
            f"pruned {what}: {job.deleted} rows {how}, {seconds:.1f} s",
        )

    def _finish(self, job: _Job, severity: Severity, code: str, message: str) -> BusFrame | None:
        self.jobs.popleft()
        request = job.request
        return self._alert(
            severity,
            code,
            message,
            f"{request.table}:{request.trade_date}",
            {
                "table": request.table,
                "trade_date": str(request.trade_date),
                "rows": str(job.deleted),
            },
        )

    def _alert(
        self, severity: Severity, code: str, message: str, subject: str, context: dict[str, str]
    ) -> BusFrame | None:
        log.log(logging.INFO if severity == "info" else logging.WARNING, "%s: %s", code, message)
        was = self.alerts.severity(code, subject)
        alert = self.alerts.alert(code, subject, severity, message, context, again=True)
        assert alert is not None  # again: each failure is alerted
        try:
            frame = self.store.commit_own([alert])
        except StoreError as exc:
            log.error("cannot record %s (the next run asks again): %s", code, exc)
            if was is None:  # not stored: nothing for a success to resolve
                self.alerts.resolution(code, subject)
            return None
        return frame

    def _resolve(self, code: str, subject: str, message: str) -> None:
        """Owe a resolution of ``code`` on ``subject`` if one of its alerts is open.

        What an earlier run left open is read at the first success: a read that fails
        resolves nothing this time and is tried again at the next success.
        """
        if not self._taken_over:
            try:
                with self.store.engine.connect() as conn:
                    load(self.alerts, conn, _FAILURE_CODES)
            except (SQLAlchemyError, self.store.engine.dialect.loaded_dbapi.Error) as exc:
                log.warning("cannot read the open alerts of the writer (next success): %s", exc)
                return
            self._taken_over = True
        if (resolution := self.alerts.resolution(code, subject, message)) is not None:
            self._owed.append(resolution)

    def _commit_owed(self) -> BusFrame | None:
        """Commit the next resolution owed; kept for a try after a backoff if that fails."""
        resolution = self._owed[0]
        try:
            frame = self.store.commit_own([resolution])
        except StoreError as exc:
            self._owed_failures += 1
            pause = backoff_s(self._owed_failures, 1.0, 30.0)
            self._owed_at = time.monotonic() + pause
            log.error(
                "cannot record the end of %s (next try in %.0f s): %s", resolution.code, pause, exc
            )
            return None
        self._owed.popleft()
        self._owed_failures = 0
        log.info("%s resolved: %s", resolution.code, resolution.message)
        return frame


def _refusal(
    request: PruneRequested, files: list[ArchiveRecord], present: int, already: int
) -> str | None:
    """Why the day may not be pruned; None when it may.

    Refused: the day's newest file is not the one asked for, or its files together do not
    hold every row of the day (those pruned before counted).
    """
    newest = files[-1] if files else None
    if newest is None or (newest.rows, newest.sha256) != (request.rows, request.sha256):
        return "no archive record with the requested rows and checksum"
    archived = sum(f.rows for f in files)
    if present + already != archived:
        return (
            f"the day holds {present} rows ({already} pruned before), its archive "
            f"{archived}: archive it again"
        )
    return None


class PrunedRecord(TypedDict):
    """A ``pruned_chunks`` row: per source, the rows and seqs one chunk of a day removed."""

    table_name: str
    trade_date: date
    source: str
    chunk: int
    rows: int
    seqs: int
    min_seq: int
    max_seq: int
    pruned_ns: int


def _stats_records(
    spec: ArchivedTable, day: date, chunk: int, stats: list[DayStats]
) -> list[PrunedRecord]:
    """A dropped partition as one chunk: per source its rows, seqs and their range."""
    now = time.time_ns()
    return [
        {
            "table_name": spec.name,
            "trade_date": day,
            "source": s.source,
            "chunk": chunk,
            "rows": s.rows,
            "seqs": s.seqs,
            "min_seq": s.min_seq,
            "max_seq": s.max_seq,
            "pruned_ns": now,
        }
        for s in stats
    ]


def _chunk_records(
    spec: ArchivedTable, day: date, chunk: int, found: Sequence[Any]
) -> list[PrunedRecord]:
    """Per source: rows deleted, the seqs that went with them, their range."""
    per: dict[str, list[int]] = {}
    for row in found:
        per.setdefault(row.source, []).append(row.seq)
    now = time.time_ns()
    return [
        {
            "table_name": spec.name,
            "trade_date": day,
            "source": source,
            "chunk": chunk,
            "rows": len(seqs),
            "seqs": len(set(seqs)) if spec.owns_seqs else 0,
            "min_seq": min(seqs),
            "max_seq": max(seqs),
            "pruned_ns": now,
        }
        for source, seqs in per.items()
    ]
