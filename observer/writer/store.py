"""The writer's persistence: accept in-order envelopes, commit rows and high-water marks together.

Exactly once: an envelope is taken only at its source's committed mark + 1
(`observer.writer.accepting`), its rows and the new marks in one transaction, and a repeated seq
must be byte-identical to what was committed (`observer.writer.identity`). An event that fails
on its own is kept in ``rejected_events`` under its seq (`Store.apply`), so neither the writer
nor its source's seqs ever stop on it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from operator import attrgetter

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bus.codec import (
    BusFrame,
    UndecodableEvent,
    decode_parts,
    encode_frame,
    envelope_digest,
    envelope_digests,
)
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved, Event, PruneRequested, event_tag
from observer.db.engine import error_reason
from observer.db.models import BusConflict, BusDigest, BusOffset
from observer.db.queries import committed_offsets
from observer.errors import StoreError
from observer.writer.accepting import Accepted, accept
from observer.writer.batch import Batch, Upsert
from observer.writer.identity import (
    WRITER_SOURCE,
    Conflict,
    Repeat,
    conflict_alert,
    digest_rows,
    find_conflicts,
    new_conflicts,
)
from observer.writer.rows import reduced_rejected_rows, rejected_rows, rows_for
from observer.writer.statements import upsert_one, write_batch

__all__ = ["EVENT_REJECTED", "Accepted", "Store", "accept"]

log = logging.getLogger(__name__)

# The databases with an INSERT ... ON CONFLICT, for the tables kept in place. Each dialect's
# module is loaded with its engine: the PostgreSQL one would add 50 ms to a SQLite writer's
# start.
_DIALECTS = ("postgresql", "sqlite")
EVENT_REJECTED = "bus_event_rejected"  # the alert of an event the database refused

# What a value raises while its rows are built or the driver binds it: sqlite3 raises
# OverflowError for an integer beyond 64 bits, a lookup or type error means an event no
# handler can store. They are the event's failures, not the database's.
_VALUE_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError)
_SOURCE, _SEQ = attrgetter("source"), attrgetter("seq")


class Store:
    """Commits accepted envelopes; keeps each source's committed mark in memory."""

    def __init__(self, engine: Engine, now_ns: Callable[[], int] = time.time_ns) -> None:
        """``now_ns``: the time of the writer's own events (the supervisor's clock)."""
        if engine.dialect.name not in _DIALECTS:
            raise StoreError(f"unsupported database {engine.dialect.name!r}")
        self.engine = engine
        self.now_ns = now_ns
        # COPY runs on the driver connection, whose errors SQLAlchemy does not wrap.
        self._failures: tuple[type[BaseException], ...] = (
            SQLAlchemyError,
            engine.dialect.loaded_dbapi.Error,
        )
        self.marks: dict[str, int] = {}
        self._marks_valid = False
        self.commits = 0
        self.events = 0
        self.rejected = 0  # events kept in rejected_events instead of their tables
        self.undecodable = 0  # of those, events whose event did not decode (`UndecodableEvent`)
        self.conflicts = 0  # repeated seqs whose bytes differ from the committed ones
        self.unverified = 0  # repeated seqs committed before their digests were kept
        # Committed prune requests, for the writer's pruner (`observer.writer.retention`).
        self.requests: list[PruneRequested] = []
        self._alerts: list[Event] = []  # `take_alerts`
        self._rejected_alerted: set[str] = set()  # sources alerted for a refused event

    def load_marks(self) -> dict[str, int]:
        """Read the committed marks; raise `StoreError` if the database cannot be read."""
        try:
            with self.engine.connect() as conn:
                self.marks = committed_offsets(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read bus offsets: {error_reason(exc)}") from exc
        self._marks_valid = True
        return self.marks

    def check_schema(self) -> None:
        """Raise `StoreError` unless the tables exist (run ``observer db upgrade``)."""
        try:
            present = set(inspect(self.engine).get_table_names())
        except SQLAlchemyError as exc:
            raise StoreError(f"database unreachable: {error_reason(exc)}") from exc
        if BusOffset.__tablename__ not in present:
            raise StoreError("database has no observer schema: run `observer db upgrade`")

    def apply(self, frames: Iterable[BusFrame], since: dict[str, int] | None = None) -> Accepted:
        """Accept and commit; raise `StoreError` if the database is unavailable.

        A batch the database refuses for its content (a constraint, a value too long, one the driver
        cannot bind or `observer.writer.checks` refuses) is split until the refused events are
        alone; each of those, like an event that did not decode (`bus.codec.UndecodableEvent`), is
        kept whole in ``rejected_events`` under its seq, so one bad event neither blocks the writer
        nor leaves a hole. Repeated seqs are checked against the committed digests afterwards (so a
        repeat within the batch is checked too); a conflict adds the writer's alert to the accepted
        frames, for the feed (counted in ``own``, not in the frames given).

        ``since``: when these frames are tried again after a `StoreError`, the marks from
        before the first try (`committed_marks`). That try may have committed part of them
        (a split batch commits in several transactions; a commit's answer may be lost):
        those envelopes are taken again as they were then, so that they reach the feed and
        the capture and are not counted as duplicates, and only the rest is committed.
        """
        if not self._marks_valid:
            self.load_marks()
        accepted = accept(frames, self.marks if since is None else since)
        if accepted.marks:
            envelopes, digests = accepted.envelopes, accepted.digests
            if since is not None and since != self.marks:
                envelopes, digests = self._not_committed(envelopes, digests)
                accepted.recovered = accepted.count - len(envelopes)
            if any(frame.undecodable for frame, _ in accepted.frames):
                self._commit_decodable(envelopes, digests)
            elif envelopes:
                self._commit_isolating(envelopes, digests)
        if accepted.repeats:
            found, alert = self._check_repeats(accepted.repeats)
            accepted.conflicts = len(found)
            if found:
                accepted.first_conflict = (found[0].envelope.source, found[0].envelope.seq)
                accepted.conflicted = Counter(c.envelope.source for c in found)
            if alert is not None:
                accepted.frames.append((alert, [0]))
                accepted.own = 1
        return accepted

    def committed_marks(self) -> dict[str, int]:
        """A copy of the committed marks (read again first if a failure made them unsure).

        Raises `StoreError` if the database cannot be read.
        """
        if not self._marks_valid:
            self.load_marks()
        return dict(self.marks)

    def _not_committed(
        self, envelopes: list[Envelope], digests: list[bytes]
    ) -> tuple[list[Envelope], list[bytes]]:
        """The envelopes above their source's committed mark, with their digests.

        Each commit takes a source's envelopes in seq order, so what an earlier try
        committed is exactly the envelopes at or below the mark read since.
        """
        keep = [i for i, env in enumerate(envelopes) if env.seq > self.marks.get(env.source, 0)]
        return [envelopes[i] for i in keep], [digests[i] for i in keep]

    def commit_own(self, events: list[Event]) -> BusFrame:
        """Commit the writer's own events (its alerts) at its next seqs; return their frame.

        Raises
        ------
        StoreError
            The database is unavailable, or refused the events.
        """
        if not self._marks_valid:
            self.load_marks()
        first, now = self.marks.get(WRITER_SOURCE, 0) + 1, self.now_ns()
        envelopes = [Envelope(WRITER_SOURCE, first + i, now, e) for i, e in enumerate(events)]
        frame = decode_parts(encode_frame(envelopes))
        try:
            self._commit(frame.envelopes, envelope_digests(frame.parts), rows_for)
        except _Refused as refused:
            raise StoreError(f"the writer's own events were refused: {refused}") from refused
        return frame

    def _commit_decodable(self, envelopes: list[Envelope], digests: list[bytes]) -> None:
        """Commit around the envelopes whose event did not decode, each a rejected event.

        In arrival order, so that each source's mark only grows.
        """
        start = 0
        for index, env in enumerate(envelopes):
            event: object = env.event
            if not isinstance(event, UndecodableEvent):
                continue
            if start < index:
                self._commit_isolating(envelopes[start:index], digests[start:index])
            log.error(
                "rejected %s/%d (%s): its event does not decode: %s",
                env.source,
                env.seq,
                event.wire_tag,
                event.reason,
            )
            self._record_rejected(env, digests[index], f"the event does not decode: {event.reason}")
            self.undecodable += 1
            start = index + 1
        if start < len(envelopes):
            self._commit_isolating(envelopes[start:], digests[start:])

    def _commit_isolating(self, envelopes: list[Envelope], digests: list[bytes]) -> None:
        try:
            self._commit(envelopes, digests, rows_for)
        except _Refused as refused:
            if len(envelopes) > 1:
                middle = len(envelopes) // 2
                self._commit_isolating(envelopes[:middle], digests[:middle])
                self._commit_isolating(envelopes[middle:], digests[middle:])
                return
            (env,) = envelopes
            log.error("rejected %s/%d (%s): %s", env.source, env.seq, event_tag(env.event), refused)
            self._record_rejected(env, digests[0], str(refused))
            self._alert_rejected(env, str(refused))

    def raise_alert(self, alert: Alert | AlertResolved) -> None:
        """Queue one of the writer's own alerts, or an end of one, for the next `take_alerts`."""
        self._alerts.append(alert)

    def take_alerts(self) -> list[Event]:
        """The alerts raised since the last call, for the writer to commit."""
        alerts, self._alerts = self._alerts, []
        return alerts

    def _alert_rejected(self, env: Envelope, reason: str) -> None:
        """Alert the first event of ``env.source`` the database refused in this run."""
        if env.source in self._rejected_alerted:
            return
        self._rejected_alerted.add(env.source)
        message = (
            f"{env.source}/{env.seq} ({event_tag(env.event)}) was refused by the database and "
            f"is kept in rejected_events, not in its table: {reason} (alerted once for "
            f"{env.source} in this run)"
        )
        self._alerts.append(
            Alert(
                severity="error",
                code=EVENT_REJECTED,
                message=message,  # cut to its column, a NUL written out (`Alert`)
                context={"source": env.source, "seq": str(env.seq)},
                subject=env.source,
            )
        )

    def _check_repeats(self, repeats: list[Repeat]) -> tuple[list[Conflict], BusFrame | None]:
        """Check repeats against the committed digests; keep and alert new conflicts.

        Return the conflicts and the frame of the alert raised for new ones.
        """
        try:
            with self.engine.connect() as conn:
                conflicts, unverified = find_conflicts(conn, repeats)
                new = new_conflicts(conn, conflicts) if conflicts else []
        except self._failures as exc:
            raise StoreError(f"cannot read envelope digests: {error_reason(exc)}") from exc
        self.unverified += unverified
        if not new:
            return conflicts, None
        for conflict in new:
            log.error(
                "conflict: %s/%d was committed with other content (digest %s, this one %s)",
                conflict.envelope.source,
                conflict.envelope.seq,
                conflict.committed.hex(),
                conflict.digest.hex(),
            )
        received = self.now_ns()
        alert = conflict_alert(new, self.marks.get(WRITER_SOURCE, 0) + 1, received)
        frame = decode_parts(encode_frame([alert]))

        def rows(envelopes: list[Envelope]) -> Batch:
            batch = rows_for(envelopes)
            for conflict in new:
                batch.insert(BusConflict, conflict.row(received))
            return batch

        self._commit([alert], [envelope_digest(frame.parts[0])], rows)
        self.conflicts += len(new)
        return conflicts, frame

    def _record_rejected(self, env: Envelope, digest: bytes, reason: str) -> None:
        """Commit the rejected event's record; reduce it if even that is refused.

        The reduced record keeps what every database can hold (the source and seq, which the
        codec has already bounded, the envelope as bytes, a plain-text reason) and drops the
        rest, e.g. a ``ts`` beyond BIGINT. Only if that fails too is it retried as a database
        failure.
        """
        try:
            self._commit([env], [digest], lambda envs: rejected_rows(env, reason))
        except _Refused as again:
            failure = str(again)
            log.error("rejected %s/%d kept reduced: %s", env.source, env.seq, failure)
            try:
                self._commit(
                    [env], [digest], lambda envs: reduced_rejected_rows(env, reason, failure)
                )
            except _Refused as still:
                raise StoreError(
                    f"cannot record rejected {env.source}/{env.seq}: {still}"
                ) from still
        self.rejected += 1

    def _commit(
        self,
        envelopes: list[Envelope],
        digests: list[bytes],
        build: Callable[[list[Envelope]], Batch],
    ) -> None:
        """One transaction: the rows ``build`` makes of ``envelopes``, digests and marks."""
        # Each source's last seq, built in C: the usual batch is 20,000 envelopes.
        marks = dict(zip(map(_SOURCE, envelopes), map(_SEQ, envelopes), strict=True))
        now = time.time_ns()
        try:
            with self.engine.begin() as conn:
                batch = build(envelopes)
                for row in digest_rows(envelopes, digests):
                    batch.insert(BusDigest, row)
                write_batch(conn, batch)
                for source, seq in marks.items():
                    upsert_one(
                        conn,
                        Upsert(
                            BusOffset.__table__,  # type: ignore[arg-type]
                            ("source",),
                            {"source": source, "seq": seq, "updated_ns": now},
                            ("seq", "updated_ns"),
                        ),
                    )
        except _VALUE_ERRORS as exc:
            raise _Refused(f"{type(exc).__name__}: {exc}"[:300]) from exc
        except self._failures as exc:
            if not self._is_unavailable(exc):
                raise _Refused(error_reason(exc)) from exc
            # The commit may have happened with its answer lost: trust only the database.
            self._marks_valid = False
            self.engine.dispose()
            raise StoreError(
                f"commit of {len(envelopes)} events failed: {error_reason(exc)}"
            ) from exc
        self.marks.update(marks)
        self.requests.extend(batch.requests)
        self.commits += 1
        self.events += len(envelopes)

    def _is_unavailable(self, exc: BaseException) -> bool:
        """A failure of the database or the connection (retry), not of the data (isolate)."""
        dbapi = self.engine.dialect.loaded_dbapi
        if isinstance(exc, DBAPIError):
            if exc.connection_invalidated:
                return True
            exc = exc.orig or exc
        return not isinstance(exc, (dbapi.IntegrityError, dbapi.DataError))


class _Refused(Exception):
    """The database refused a batch for its content; retrying it unchanged cannot help."""
