"""The writer process: ROUTER ingest -> batch transaction -> ACK -> feed and capture tee.

Each turn gathers frames for up to ``batch_delay_s`` or ``batch_events``, lets them in through
`observer.writer.door.Door`, commits them through `observer.writer.store.Store`, acks each source
with its committed mark, then publishes them on the feed and the capture. While the database
fails (`Writer._commit`) or a volume is critical (`Writer._watch_disk`) it drops what arrives,
unacknowledged, and asks the producers to resend once it can commit again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import zmq

from bus.codec import MAX_FRAME_BYTES, BusFrame, decode_parts, join_parts
from bus.curve import Gatekeeper, ServerCurve
from bus.endpoints import Endpoints
from bus.envelope import Ack
from bus.errors import FrameError
from bus.events import Alert, Event, Severity
from bus.feed import FeedPublisher
from bus.ingest import Ingest
from observer.alerts.book import AlertBook
from observer.alerts.stored import open_alerts
from observer.db.outages import DATABASE_ERRORS
from observer.errors import ConfigError, StoreError
from observer.process.disk import DiskWatch
from observer.process.heartbeat import FAILING_S, Heartbeat
from observer.process.retry import Backoff
from observer.writer.door import Door
from observer.writer.handshakes import HandshakeWatch
from observer.writer.identity import WRITER_SOURCE
from observer.writer.retention import Pruner
from observer.writer.store import Accepted, Store
from observer.writer.tee import STOPPED, CaptureTee

__all__ = ["Writer", "WriterOptions"]

log = logging.getLogger(__name__)

# At most one resend request per source in this interval, so a burst of frames past a hole
# does not make the producer rewind once per frame.
RESEND_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """Tuning of the writer loop."""

    batch_events: int = 20_000
    batch_delay_s: float = 0.005
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    drain_s: float = 5.0
    capture: Path | None = None
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_sources: int = 1000
    prune_chunk_rows: int = 1_000  # rows one pruning chunk deletes, between two batches
    partition_days_ahead: int = 7  # PostgreSQL: day partitions kept created ahead


class Writer:
    """Serve one database: bind ingest and feed, commit, ack, publish.

    Parameters
    ----------
    store:
        The persistence (`Store.load_marks` must have succeeded).
    endpoints:
        Where to bind ingest (ROUTER) and feed (PUB).
    options:
        Batch sizes, retry backoff, drain budget and an optional capture tee.
    notifier:
        READY once bound, then heartbeats with `counters`, for the supervisor.
    disk:
        The free space of the volumes the writer writes to; none: not watched.
    curve:
        CURVE keys and allow-list of a tcp ingest and feed (`bus.curve`); none: ipc only.
    alerts:
        The writer's alert book (its disk watch's too); none: one of its own.
    """

    def __init__(
        self,
        store: Store,
        endpoints: Endpoints,
        options: WriterOptions,
        notifier: Heartbeat | None = None,
        disk: DiskWatch | None = None,
        curve: ServerCurve | None = None,
        alerts: AlertBook | None = None,
    ) -> None:
        self.store = store
        self.curve = curve
        self.door = Door(curve, options.max_sources, store.marks)
        self._gatekeeper: Gatekeeper | None = None
        self._handshakes: HandshakeWatch | None = None  # while serving tcp endpoints
        self.disk = disk
        self.paused = False  # a volume is critical: no new frames are taken
        self.dropped_while_paused = 0  # frames read and left to their producers' resend
        self.dropped_while_failing = 0  # the same while the database fails
        self._dropped_sources: set[str] = set()  # whose frames were dropped while failing
        self._own: list[Event] = []  # the writer's alerts not committed yet
        self._tee: CaptureTee | None = None  # the capture, with ``options.capture``
        # One schedule for every commit: a batch and the writer's own alerts wait alike.
        self._store_backoff = Backoff(options.retry_initial_s, options.retry_max_s)
        self.pruner = Pruner(
            store, options.prune_chunk_rows, options.partition_days_ahead, alerts=alerts
        )
        self.notifier = notifier or Heartbeat(None)
        # False once another writer took the database (`WriterLock.held`): serve no more.
        self.lock_held: Callable[[], bool] = lambda: True
        self.endpoints = endpoints
        self.options = options
        self.frames = 0
        self.duplicates = 0
        self.commit_failures = 0
        self._routes: dict[str, bytes] = {}
        self._resend_asked: dict[str, float] = {}

    @property
    def rejected(self) -> int:
        """Frames rejected whole (`Door`)."""
        return self.door.rejected

    @property
    def refused_sources(self) -> int:
        """Frames whose CURVE key may not send as one of their sources (`Door`)."""
        return self.door.refused_sources

    def __repr__(self) -> str:
        return (
            f"<Writer frames={self.frames} events={self.store.events} commits={self.store.commits} "
            f"duplicates={self.duplicates} rejected={self.rejected} "
            f"rejected_events={self.store.rejected} "
            f"undecodable_events={self.store.undecodable} conflicts={self.store.conflicts} "
            f"unverified={self.store.unverified} commit_failures={self.commit_failures} "
            f"refused_sources={self.refused_sources}>"
        )

    def counters(self) -> dict[str, float]:
        """What the writer has done so far (heartbeats and metrics carry these)."""
        return {
            "frames": self.frames,
            "events": self.store.events,
            "commits": self.store.commits,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_events": self.store.rejected,
            "undecodable_events": self.store.undecodable,  # of rejected_events
            "conflicts": self.store.conflicts,
            "unverified": self.store.unverified,
            "commit_failures": self.commit_failures,
            FAILING_S: round(self._store_backoff.failing_s(), 1),  # the database refuses
            "disk_paused": float(self.paused),
            "dropped_while_paused": self.dropped_while_paused,
            "dropped_while_failing": self.dropped_while_failing,
            "pruned": self.pruner.pruned,
            "refused_sources": self.refused_sources,
            "refused_keys": self._gatekeeper.refusals if self._gatekeeper else 0,
            "handshake_failures": self._handshakes.failures if self._handshakes else 0,
            "capture_stopped": float(self._tee is not None and self._tee.stopped),
        }

    def run(self, stop: threading.Event) -> int:
        """Serve until ``stop`` is set, then drain what is queued; return the exit code.

        Raises `ConfigError` if an endpoint cannot be bound (in use, not this host's).
        """
        context = zmq.Context()
        if self.curve is not None:  # before any bind: without ZAP, CURVE admits every key
            self._gatekeeper = Gatekeeper(context, self.curve).start()
        ingest: Ingest | None = None
        try:
            limit = self.options.max_frame_bytes
            ingest = Ingest(context, self.endpoints.ingest, limit, self.curve)
            feed = FeedPublisher(context, self.endpoints.feed, self.curve)
        except zmq.ZMQError as exc:  # in use, not this host's address, a path too long
            if self._gatekeeper is not None:
                self._gatekeeper.stop()
            context.destroy(linger=0)  # also the socket the failed bind left open
            where = self.endpoints.feed if ingest is not None else self.endpoints.ingest
            raise ConfigError(f"cannot bind {where}: {exc.strerror}") from None
        self._handshakes = HandshakeWatch(
            {
                "ingest": (ingest.socket, self.endpoints.ingest),
                "feed": (feed.socket, self.endpoints.feed),
            }
        )
        if self.options.capture:
            self._tee = CaptureTee(self.options.capture, self._stopped_captures())
        log.info("writer ready on %s (feed %s)", self.endpoints.ingest, self.endpoints.feed)
        self.notifier.ready(self.counters())
        code = 0
        try:
            while not stop.is_set():
                self.notifier.beat(self.counters)
                if not self.lock_held():
                    code = 3  # as a writer refused at its start; nothing drained
                    break
                self._watch_disk(ingest, feed)
                self._watch_keys()
                self._own += self._handshakes.check()
                if self._take_alerts() and not self.paused:
                    self._commit_own(feed)
                # Pruning takes one bounded chunk per turn, between two batches (none while a
                # volume is critical: it would only add to what the database must write).
                pruning = not self.paused and self.pruner.pending()
                if pruning:
                    self._prune(feed)
                if self.paused:
                    self._drop_while_paused(ingest)
                elif ingest.poll(0 if pruning else 100) and not self._serve_batch(
                    ingest, feed, stop, wait=True
                ):
                    code = 1
                    break
            if code == 0 and not self.paused:  # paused: the producers keep what is queued
                code = self._drain(ingest, feed)
        finally:
            if self._tee is not None:
                self._tee.close()
            self._handshakes.close()  # before the sockets it monitors
            feed.close()
            ingest.close()
            if self._gatekeeper is not None:
                self._gatekeeper.stop()
            context.term()
            log.info("writer stopped: %r", self)
        return code

    def _prune(self, feed: FeedPublisher) -> None:
        """One step of pruning; publish the alert it committed, if any."""
        try:
            frame = self.pruner.step()
        except StoreError as exc:
            log.error("pruning stopped by the database: %s", exc)
            return
        if frame is not None:
            feed.publish_accepted([(frame, [0])])
            self._capture([frame.raw])

    def _drain(self, ingest: Ingest, feed: FeedPublisher) -> int:
        deadline = time.monotonic() + self.options.drain_s
        never = threading.Event()
        while time.monotonic() < deadline and ingest.poll(0):
            if not self._serve_batch(ingest, feed, never, wait=False, deadline=deadline):
                return 1
        if self._take_alerts():  # the last batches' alerts, before the writer goes
            self._commit_own(feed)
        return 0

    def _take_alerts(self) -> list[Event]:
        """The writer's alerts not committed yet, with the door's and the store's new ones."""
        self._own += self.door.take_alerts() + self.store.take_alerts()
        return self._own

    def _capture(self, raws: Iterable[bytes]) -> None:
        """Tee committed frames; a refused write stops the capture (alerted), not the writer."""
        if self._tee is None:
            return
        for alert in self._tee.write(raws):
            self._own.append(alert)
            if isinstance(alert, Alert) and self.disk is not None:
                self.disk.alert_only.add("capture")  # its volume: alerted, no reason to pause

    def _stopped_captures(self) -> list[Severity]:
        """The severities of an earlier run's ``capture_stopped`` alerts still open.

        A database that cannot be read now leaves them open (logged): the tee never holds
        the writer back.
        """
        try:
            with self.store.engine.connect() as conn:
                return [n.severity for n in open_alerts(conn, WRITER_SOURCE, [STOPPED])]
        except DATABASE_ERRORS as exc:
            log.warning("cannot read an earlier capture's alert (left open): %s", exc)
            return []

    def _gather(self, ingest: Ingest, wait: bool) -> list[BusFrame]:
        frames: list[BusFrame] = []
        count = 0
        until = time.monotonic() + self.options.batch_delay_s
        while count < self.options.batch_events:
            message = ingest.recv_identified()
            if message is None:
                left = until - time.monotonic()
                if not wait or left <= 0 or not ingest.poll(int(left * 1000) + 1):
                    break
                continue
            routing_id, raw, key = message
            self.frames += 1
            frame = self.door.let_in(routing_id, raw, key)
            if frame is None:
                continue
            for source in frame.sources:
                self._routes[source] = routing_id
            frames.append(frame)
            count += len(frame.envelopes)
        return frames

    def _watch_keys(self) -> None:
        """One alert per client key that ZAP refused for the first time."""
        if self._gatekeeper is None:
            return
        for key in self._gatekeeper.take_refused():
            self._own.append(
                Alert(
                    severity="critical",
                    code="bus_key_refused",
                    message="a client with a CURVE key not in the allow-list was refused",
                    context={"key": key},
                    subject=key,
                )
            )

    def _serve_batch(
        self,
        ingest: Ingest,
        feed: FeedPublisher,
        stop: threading.Event,
        *,
        wait: bool,
        deadline: float | None = None,
    ) -> bool:
        frames = self._gather(ingest, wait)
        if not frames:
            return True
        accepted = self._commit(ingest, frames, stop, deadline)
        if accepted is None:
            return False
        self.duplicates += accepted.duplicates
        self._acknowledge(ingest, set().union(*(f.sources for f in frames)), accepted)
        feed.publish_accepted(accepted.published())
        self._capture(  # lazily: nothing is joined without a capture
            frame.raw
            if len(taken) == len(frame.envelopes)
            else join_parts([frame.parts[i] for i in taken])
            for frame, taken in accepted.frames
        )
        return True

    def _commit(
        self,
        ingest: Ingest,
        frames: list[BusFrame],
        stop: threading.Event,
        deadline: float | None,
    ) -> Accepted | None:
        """Commit ``frames``, trying again while the database fails; None if stopped first.

        Tries wait on a capped, jittered backoff (`observer.process.retry.Backoff`) while the
        producers keep everything unacknowledged in their outboxes. What a failed try
        committed before failing is acknowledged, published and captured with the retry's
        (`Store.apply`'s ``since``), never taken for duplicates.
        """
        since: dict[str, int] | None = None  # the marks before the first try of these frames
        while True:
            pause = self._store_backoff.wait_s()  # the database failed lately: wait its turn
            if pause > 0:
                if deadline is not None and time.monotonic() + pause > deadline:
                    return None
                self.notifier.beat(self.counters)  # alive, only waiting for the database
                if self._drop_until(ingest, time.monotonic() + pause, stop):
                    return None  # stopping while the database is down: producers keep the events
            try:
                if since is None:
                    since = self.store.committed_marks()
                accepted = self.store.apply(frames, since)
            except StoreError as exc:
                self.commit_failures += 1
                log.error(
                    "database failed, retrying in %.1fs: %s", self._store_backoff.failed(), exc
                )
                continue
            self._store_backoff.succeeded()
            if accepted.recovered:
                log.info(
                    "%d events committed before the database failed are acknowledged now",
                    accepted.recovered,
                )
            if self._dropped_sources:
                self._ask_resend(ingest, self._dropped_sources)
                self._dropped_sources = set()
            return accepted

    def _drop_until(self, ingest: Ingest, until: float, stop: threading.Event) -> bool:
        """Until ``until``, read what arrives and drop it unacknowledged; True if stopped.

        The producers keep it in their outboxes and send it again when asked (`_commit`).
        Reading on keeps their resends (after each ack timeout) from piling up in ZeroMQ's
        queue for the whole outage.
        """
        while not stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return False
            if ingest.poll(min(100, int(left * 1000) + 1)):
                dropped = self._drop_waiting(ingest)
                self.dropped_while_failing += len(dropped)
                self._dropped_sources |= set().union(*dropped)
        return True

    def _watch_disk(self, ingest: Ingest, feed: FeedPublisher) -> None:
        """Measure the volumes when due; commit the writer's alerts; pause or resume.

        The volumes are those the writer writes (the SQLite database's, the capture's), the
        alerts ``disk_low`` and ``disk_critical`` (`observer.process.disk`). While one is
        critical the writer takes no new frames, rather than failing mid-transaction when the
        disk fills: it reads and drops what arrives, unacknowledged (the producers' credit
        bounds it), and asks every producer it knows to resend once there is room.
        """
        if self.disk is None:
            return
        self._own += self.disk.check()
        if self._own:
            self._commit_own(feed)
        if self.disk.critical and not self.paused:
            log.error(
                "a volume is critical: taking no new frames until there is room "
                "(producers keep their events)"
            )
        elif self.paused and not self.disk.critical:
            log.info(
                "room again: taking frames (%d were left to resend)", self.dropped_while_paused
            )
            self._ask_resend(ingest)
        self.paused = self.disk.critical

    def _commit_own(self, feed: FeedPublisher) -> None:
        """Commit and publish the writer's own events; kept for the next try if that fails.

        Tries only when the store's backoff allows: the loop comes here every turn (100 ms),
        and a database that is down must not be asked ten times a second.
        """
        if self._store_backoff.wait_s() > 0:
            return
        try:
            frame = self.store.commit_own(self._own)
        except StoreError as exc:
            self.commit_failures += 1
            log.error(
                "cannot commit %d alerts of the writer (kept, next try in %.1fs): %s",
                len(self._own),
                self._store_backoff.failed(),
                exc,
            )
            return
        self._store_backoff.succeeded()
        feed.publish_accepted([(frame, list(range(len(frame.envelopes))))])
        self._own = []
        self._capture([frame.raw])

    def _drop_while_paused(self, ingest: Ingest) -> None:
        """Read what arrives and leave it unacknowledged; keep the routes to ask a resend."""
        if ingest.poll(100):
            self.dropped_while_paused += len(self._drop_waiting(ingest))

    def _drop_waiting(self, ingest: Ingest) -> list[frozenset[str]]:
        """Read every waiting frame without taking it; return each one's sources.

        The routes are kept, so that its producer can be asked to resend; garbage has
        nothing to resend and counts with no sources.
        """
        dropped: list[frozenset[str]] = []
        while (message := ingest.recv_nowait()) is not None:
            routing_id, raw = message
            try:
                sources = self.door.admit(decode_parts(raw))
            except FrameError:
                dropped.append(frozenset())
                continue
            for source in sources:
                self._routes[source] = routing_id
            dropped.append(sources)
        return dropped

    def _ask_resend(self, ingest: Ingest, sources: Iterable[str] | None = None) -> None:
        """Ask every producer heard from (or those of ``sources``) to send again from its mark."""
        for source in self._routes if sources is None else sources:
            routing_id = self._routes.get(source)
            if routing_id is not None:
                ingest.ack(routing_id, Ack(source, self.store.marks.get(source, 0), True))

    def _acknowledge(self, ingest: Ingest, sources: set[str], accepted: Accepted) -> None:
        now = time.monotonic()
        repeated = accepted.repeated() if accepted.repeats else {}
        for source in sources:
            mark = self.store.marks.get(source, 0)
            resend = source in accepted.holes and (
                now - self._resend_asked.get(source, 0.0) >= RESEND_INTERVAL_S
            )
            if resend:
                self._resend_asked[source] = now
            duplicates, conflicts = repeated.get(source, (0, 0))
            ingest.ack(self._routes[source], Ack(source, mark, resend, duplicates, conflicts))
