"""Replay a capture: into a database through the writer's own `Store`, or onto a live bus."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zmq

from bus.capture import CaptureHeader, CaptureReader, CaptureWriter
from bus.codec import BusFrame, decode_parts, join_parts
from bus.curve import ClientCurve
from bus.endpoints import LINGER_MS
from bus.errors import CaptureError, LockHeld
from bus.feed import FeedSubscriber
from observer.db.engine import display_url, make_engine, normalize_url
from observer.errors import WriterLocked
from observer.writer.identity import WRITER_SOURCE
from observer.writer.lock import WriterLock
from observer.writer.replay_acks import AckTally, ReplayLink
from observer.writer.store import Store

__all__ = [
    "ReplayResult",
    "capture_feed",
    "check_new_capture",
    "lock_database",
    "open_capture",
    "replay_as_producer",
    "replay_into_db",
    "unusable_path",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did.

    Into a database every event of the capture is one of: committed, a duplicate, a
    conflict or skipped; the last two are not stored (`not_stored` says which came first).
    """

    frames: int
    events: int
    committed: int  # newly committed (into a database) or acknowledged (by a live writer)
    duplicates: int = 0  # envelopes the database already had, the same bytes
    resent: int = 0  # frames sent again to a live writer
    conflicts: int = 0  # envelopes whose seq the database holds with other content
    skipped: int = 0  # envelopes past a hole: their source's previous seq came nowhere before
    first_skipped: tuple[str, int, int] | None = None  # source, seq, the database's mark then
    first_conflict: tuple[str, int] | None = None  # source, seq
    own: int = 0  # envelopes of the writer's own source, not sent to a live writer

    def _first_conflict(self) -> str:
        """The first conflict named (", the first SOURCE/SEQ"), or "" from a live writer."""
        if self.first_conflict is None:
            return ""
        source, seq = self.first_conflict
        return f", the first {source}/{seq}"

    def not_sent(self) -> str:
        """What was not sent to a live writer: the writer's own source, named; or ""."""
        if not self.own:
            return ""
        return (
            f", {self.own} events of source {WRITER_SOURCE!r} not sent (the capturing writer's"
            " own alerts, numbered in its database)"
        )

    def not_stored(self) -> str:
        """One line on the events of the capture not stored; "" when every one is there."""
        said = []
        if self.first_skipped is not None:
            source, seq, mark = self.first_skipped
            missing = f"{mark + 1}" if seq == mark + 2 else f"{mark + 1}..{seq - 1}"
            said.append(
                f"{self.skipped} events skipped past a hole, the first {source}/{seq} "
                f"({source}/{missing} missing before it)"
            )
        if self.conflicts:
            said.append(
                f"{self.conflicts} events conflict with what the database holds at their seq"
                f"{self._first_conflict()} (kept in bus_conflicts: see `observer audit`)"
            )
        return "; ".join(said)


def unusable_path(path: Path, exc: OSError) -> CaptureError:
    """``<path>: <reason>`` for a capture path the system refused (missing, a folder, ...)."""
    if path.is_dir():
        reason = "Is a directory"
    elif isinstance(exc, FileExistsError):
        reason = "File exists (a capture is never overwritten)"
    else:
        reason = exc.strerror or type(exc).__name__
    return CaptureError(f"{path}: {reason}")


def check_new_capture(out: Path) -> None:
    """Refuse early, before any folder or socket is made, a path a new capture cannot take.

    Creating the file (``O_EXCL``) stays the authority; this only fails sooner.
    """
    if out.exists() or out.is_symlink():
        raise unusable_path(out, FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST)))
    if not out.parent.is_dir():
        raise unusable_path(out, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))


def open_capture(path: Path, allow_torn_tail: bool = False) -> CaptureReader:
    """Open a capture and check its header; an unusable path is a `CaptureError` too."""
    try:
        return CaptureReader(path, allow_torn_tail=allow_torn_tail)
    except OSError as exc:
        raise unusable_path(path, exc) from exc


def _frames(reader: CaptureReader) -> Iterator[BusFrame]:
    with reader:
        for raw in reader:
            yield decode_parts(raw)


def lock_database(path: Path, url: str, run_dir: Path | None) -> WriterLock:
    """Take the lock a writer of ``url`` takes (`WriterLock`), so neither runs beside the other.

    A SQLite file's lock is next to it; a server database's is the server's own (seen from
    every host), and its file in the run directory is taken when ``run_dir`` is given.

    Raises
    ------
    WriterLocked
        A writer serves the database: the capture goes to it with ``--as-producer``.
    """
    parsed = normalize_url(url)
    backend, database = parsed.get_backend_name(), parsed.database
    sqlite_file = backend == "sqlite" and database not in (None, "", ":memory:")
    if run_dir is not None or sqlite_file:
        paths = WriterLock.paths_for(parsed, run_dir or Path(), None)  # a file's: next to it
    else:
        paths = []
    try:
        return WriterLock(paths, None if backend == "sqlite" else parsed)
    except WriterLocked as exc:
        holder = f"pid {exc.__cause__.holder}" if isinstance(exc.__cause__, LockHeld) else exc
        raise WriterLocked(
            f"{display_url(parsed)} is served by a writer ({holder}): refusing to write beside"
            f" it; stop it first, or send the capture to it with"
            f" `observer replay {path} --as-producer`"
        ) from exc


def replay_into_db(
    path: Path,
    url: str,
    *,
    allow_torn_tail: bool = False,
    batch_events: int = 20_000,
    run_dir: Path | None = None,
    upgrade: bool = False,
) -> ReplayResult:
    """Commit a capture into the database at ``url``, exactly as the writer would.

    The capture is opened and its header checked first, then the writer's lock on the
    database is taken (`lock_database`) and held to the end, then with ``upgrade`` the
    database is migrated: a bad capture or a served database leaves the database untouched.

    What the writer would leave for a resend is counted instead: the events past a hole (a
    feed capture loses messages by design) and those conflicting with committed ones.
    """
    reader = open_capture(path, allow_torn_tail)
    try:
        lock = lock_database(path, url, run_dir)
    except BaseException:
        reader.close()
        raise
    try:
        if upgrade:
            from observer.db import migrate  # alembic: only for the command that migrates

            migrate.upgrade(url)
        return _commit_frames(reader, url, batch_events)
    finally:
        reader.close()
        lock.close()


def _commit_frames(reader: CaptureReader, url: str, batch_events: int) -> ReplayResult:
    engine = make_engine(url)
    frames = events = committed = duplicates = conflicts = skipped = 0
    first_skipped: tuple[str, int, int] | None = None
    first_conflict: tuple[str, int] | None = None
    pending: list[BusFrame] = []
    try:
        store = Store(engine)
        store.check_schema()
        store.load_marks()

        def commit() -> None:
            nonlocal committed, duplicates, conflicts, skipped, first_skipped, first_conflict
            accepted = store.apply(pending)
            committed += accepted.count - accepted.own  # the capture's, not the writer's alert
            duplicates += accepted.duplicates - accepted.conflicts
            conflicts += accepted.conflicts
            skipped += accepted.skipped
            first_skipped = first_skipped or accepted.first_skipped
            first_conflict = first_conflict or accepted.first_conflict
            pending.clear()

        for frame in _frames(reader):
            frames += 1
            events += len(frame.envelopes)
            pending.append(frame)
            if sum(len(f.envelopes) for f in pending) >= batch_events:
                commit()
        if pending:
            commit()
    finally:
        engine.dispose()
    return ReplayResult(
        frames,
        events,
        committed,
        duplicates,
        conflicts=conflicts,
        skipped=skipped,
        first_skipped=first_skipped,
        first_conflict=first_conflict,
    )


def replay_as_producer(
    path: Path,
    endpoint: str,
    *,
    timeout_s: float = 30.0,
    allow_torn_tail: bool = False,
    curve: ClientCurve | None = None,
) -> ReplayResult:
    """Send a capture's frames to a live writer and wait until every seq is acknowledged.

    Frames keep their original sources and seqs, so the writer skips what it already has.
    The envelopes of the writer's own source (its alerts) are not sent: their seqs belong to
    the database that writer committed them to, and another writer's own alerts would
    conflict with them (`ReplayResult.own`; a replay into a database keeps them).

    First each source's first frame goes alone: the writer's ack to it tells how many of its
    envelopes were new, hence the source's mark before the replay. Then everything else,
    and what is still unacknowledged is sent again once a second has passed without an ack
    or a send. The capture's events above that first mark and up to the last ack are the
    committed ones, the others were there already (duplicates, or conflicts as the writer's
    acks count them): a frame sent twice changes neither. A writer of an earlier release
    does not count its duplicates, and every event it acknowledges counts as committed.
    """
    captured = list(_frames(open_capture(path, allow_torn_tail)))
    frames, own = _without_own(captured)
    tally = AckTally(frames)
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, LINGER_MS)
    if curve is not None:
        curve.apply(dealer)
    dealer.connect(endpoint)
    link = ReplayLink(dealer, tally, time.monotonic() + timeout_s, timeout_s)
    try:
        probed: set[int] = set()
        while probes := tally.probes():  # several rounds only for frames of several sources
            probed |= {id(frame) for frame in probes}
            while waiting := tally.unbased():
                for frame in probes:
                    if frame.sources & waiting:
                        link.send(frame)
                link.wait(lambda: not tally.unbased())
        pending = [frame for frame in frames if id(frame) not in probed]  # each frame once
        while True:
            for frame in pending:
                link.send(frame)
            link.wait(tally.finished)
            if tally.done():  # acked; a writer of an earlier release counts no repeats
                break
            pending = [frame for frame in frames if tally.unacknowledged(frame)]
    finally:
        dealer.close()
        context.term()
    committed, duplicates, conflicts = tally.counts()
    return ReplayResult(
        len(captured),
        sum(len(frame.envelopes) for frame in captured),
        committed,
        duplicates,
        resent=link.sent - len(frames),
        conflicts=conflicts,
        own=own,
    )


def _without_own(frames: list[BusFrame]) -> tuple[list[BusFrame], int]:
    """The frames without the envelopes of the writer's own source, and how many those were."""
    kept: list[BusFrame] = []
    own = 0
    for frame in frames:
        if WRITER_SOURCE not in frame.sources:
            kept.append(frame)
            continue
        others = [i for i, env in enumerate(frame.envelopes) if env.source != WRITER_SOURCE]
        own += len(frame.envelopes) - len(others)
        if others:
            kept.append(decode_parts(join_parts([frame.parts[i] for i in others])))
    return kept, own


def capture_feed(
    endpoint: str,
    out: Path,
    *,
    prefixes: tuple[str, ...] = ("",),
    max_events: int | None = None,
    seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    curve: ClientCurve | None = None,
) -> int:
    """Record the feed into a new capture file; return the number of frames written.

    The feed is lossy by contract (PUB drops a slow subscriber's messages); the writer's
    ``--capture`` tee is the lossless capture.
    """
    context = zmq.Context()
    subscriber = FeedSubscriber(context, endpoint, prefixes, curve)
    header = CaptureHeader(created_ns=time.time_ns(), origin="feed")
    deadline = None if seconds is None else time.monotonic() + seconds
    count = 0
    try:
        try:
            writer = CaptureWriter(out, header)
        except OSError as exc:
            raise unusable_path(out, exc) from exc
        with writer:
            while max_events is None or count < max_events:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if should_stop is not None and should_stop():
                    break
                message = subscriber.recv_raw(100)
                if message is None:
                    continue
                writer.append(message[1])
                count += 1
    finally:
        subscriber.close()
        context.term()
    return count
