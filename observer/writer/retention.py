"""The writer's pruning: an archived day's rows deleted in bounded chunks between batches.

Only the writer writes, so retention asks it (`bus.events.PruneRequested`, sent by the
archive job once the day's Parquet file is verified). The writer takes one chunk of at most
``chunk_rows`` rows per turn of its loop, between two batches, each chunk its own short
transaction, so producers keep being acknowledged while a month of ticks goes.

A day is pruned only if it is exactly what was archived: the newest archive record of the
table and day has the request's row count and checksum, and the rows still there plus those
already pruned are that count. The rows to delete are fixed when the pruning starts (each
source's rows up to its committed mark then), so a row of that day committed later (a late
recovery) is never deleted unarchived. Each chunk records what it deleted per source in
``pruned_chunks`` in the same transaction, and the audit counts those seqs as present.
A pruning cut short (a restart) is finished when the job asks again: the check counts the
rows already pruned.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError

from bus.codec import DecodedFrame
from bus.events import Alert, PruneRequested, Severity
from observer.db.models import PrunedChunk
from observer.db.retention_queries import (
    ARCHIVED_TABLES,
    ArchivedTable,
    day_filter,
    day_sources,
    newest_archive,
    pruned_rows,
)
from observer.errors import StoreError
from observer.retry import backoff_s
from observer.writer.store import Store

__all__ = ["Pruner"]

log = logging.getLogger(__name__)

MAX_FAILURES = 5  # database failures of one pruning before it is given up (and alerted)


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

    Parameters
    ----------
    store:
        The writer's store: its engine, its committed marks and requests, and the commit of
        the writer's own alerts.
    chunk_rows:
        The most rows one chunk deletes (one transaction).
    """

    def __init__(self, store: Store, chunk_rows: int) -> None:
        self.store = store
        self.chunk_rows = chunk_rows
        self.jobs: deque[_Job] = deque()
        self.pruned = 0  # rows deleted
        self.chunks = 0
        self.refused = 0

    def pending(self) -> bool:
        """True when a chunk is due now (takes the requests committed since the last call)."""
        while self.store.requests:
            request = self.store.requests.pop(0)
            self.jobs.append(_Job(request, ARCHIVED_TABLES.get(request.table)))
        return bool(self.jobs) and self.jobs[0].retry_at <= time.monotonic()

    def step(self) -> DecodedFrame | None:
        """Do the next piece of work; return the frame of an alert it committed, if any.

        Raises
        ------
        StoreError
            The alert could not be committed (the database is unavailable).
        """
        job = self.jobs[0]
        request = job.request
        what = f"{request.table} of {request.trade_date}"
        if job.spec is None:
            self.refused += 1
            return self._finish(job, "warning", "prune_refused", f"{what}: not an archived table")
        try:
            if job.bound is None:
                refusal = self._start(job, job.spec)
                if refusal is not None:
                    self.refused += 1
                    return self._finish(job, "warning", "prune_refused", f"{what}: {refusal}")
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
                    job, "error", "prune_failed",
                    f"pruning {what} failed {job.failures} times, left for the next run: "
                    f"{type(exc).__name__}",
                )  # fmt: skip
            job.retry_at = time.monotonic() + backoff_s(job.failures, 1.0, 30.0)
            return None

    def _start(self, job: _Job, spec: ArchivedTable) -> str | None:
        """Check the day against its archive and fix the rows to delete; or say why not."""
        request = job.request
        with self.store.engine.connect() as conn:
            record = newest_archive(conn, request.table, request.trade_date)
            sources = day_sources(conn, spec, request.trade_date)
            already, chunks = pruned_rows(conn, request.table, request.trade_date)
        present = sum(sources.values())
        if present == 0:
            return None  # nothing (left) to delete: done
        if record is None or (record.rows, record.sha256) != (request.rows, request.sha256):
            return "no archive record with the requested rows and checksum"
        if present + already != request.rows:
            return (
                f"the day holds {present} rows ({already} pruned before), its archive "
                f"{request.rows}: archive it again"
            )
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

    def _done(self, job: _Job, what: str) -> DecodedFrame | None:
        if job.deleted != job.expected:  # cannot happen while the writer is the only writer
            return self._finish(
                job, "error", "prune_failed",
                f"pruning {what} deleted {job.deleted} rows, {job.expected} expected",
            )  # fmt: skip
        if job.expected == 0:
            self.jobs.popleft()
            return None
        seconds = time.monotonic() - job.started
        return self._finish(
            job, "info", "retention_pruned",
            f"pruned {what}: {job.deleted} rows in {job.chunk} chunks, {seconds:.1f} s",
        )  # fmt: skip

    def _finish(
        self, job: _Job, severity: Severity, code: str, message: str
    ) -> DecodedFrame | None:
        self.jobs.popleft()
        request = job.request
        log.log(logging.INFO if severity == "info" else logging.WARNING, "%s: %s", code, message)
        alert = Alert(
            severity=severity,
            code=code,
            message=message,
            subject=f"{request.table}:{request.trade_date}",
            context={"table": request.table, "trade_date": str(request.trade_date),
                     "rows": str(job.deleted)},
        )  # fmt: skip
        try:
            return self.store.commit_own([alert])
        except StoreError as exc:
            log.error("cannot record %s (the next run asks again): %s", code, exc)
            return None


def _chunk_records(
    spec: ArchivedTable, day: date, chunk: int, found: Sequence[Any]
) -> list[dict[str, Any]]:
    """Per source: rows deleted, the seqs that went with them, their range."""
    per: dict[str, list[int]] = {}
    for row in found:
        per.setdefault(row.source, []).append(row.seq)
    now = time.time_ns()
    return [
        {
            "table_name": spec.name, "trade_date": day, "source": source, "chunk": chunk,
            "rows": len(seqs), "seqs": len(set(seqs)) if spec.owns_seqs else 0,
            "min_seq": min(seqs), "max_seq": max(seqs), "pruned_ns": now,
        }
        for source, seqs in per.items()
    ]  # fmt: skip
