"""The DEALER side of the bus: durable outbox, credit window, resend until acknowledged.

``send`` gives an event the next seq; a batch becomes one frame written to the outbox *before*
it is sent. A background thread owns the socket: it sends within the credit (``max_in_flight``),
trims the outbox on each ACK, and resends all that is unacknowledged after a reconnect, a resend
request or an ACK timeout. Nothing is dropped: a stopped writer grows the outbox, a full volume is
waited out, and seqs the outbox has trimmed but the writer asks for are declared lost (`SeqsLost`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import zmq
from zmq.utils.monitor import recv_monitor_message

from bus.codec import (
    FRAME_HEADER_BYTES,
    MAX_FRAME_BYTES,
    append_envelope,
    decode_ack,
    encode_frame,
    frame_header,
)
from bus.curve import ClientCurve
from bus.endpoints import LINGER_MS, keep_alive
from bus.envelope import MAX_SOURCE_LENGTH, Envelope
from bus.errors import (
    BusError,
    EventError,
    FrameError,
    OutboxBehindWriter,
    OutboxFull,
)
from bus.events import Alert, Event, SeqsLost
from bus.outbox import Outbox

__all__ = ["Producer"]

log = logging.getLogger(__name__)

# What the socket thread watches: a success (a reconnect, or the end of a failing episode)
# and each way a handshake fails (wrong writer key; this key not allowed; a protocol error).
_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
# A failing handshake is tried again several times a second (ZeroMQ's reconnect interval):
# none for this long means no writer answers at all, an outage the outbox backlog tells,
# not keys that do not match.
_HANDSHAKE_QUIET_S = 10.0
# The writer asking this many times for the first seq of a range declared lost, each after
# the declaration was sent (a writer of a release before `SeqsLost`, which does not take
# it), ends the producer rather than asking for ever. A writer that is merely paused asks
# nothing meanwhile.
_DECLINED = 10


class Producer:
    """Publish events from one source to the writer, at least once, in seq order.

    Parameters
    ----------
    source:
        Unique name of this producer on the bus; names its outbox.
    endpoint:
        The writer's ingest endpoint (``ipc://.../ingest.sock``).
    outbox_dir:
        Folder of this source's durable outbox.
    batch_events:
        A frame is cut once this many events are buffered ...
    linger_s:
        ... or once the oldest buffered event is this old ...
    max_frame_bytes:
        ... or before it would grow beyond this size (the writer drops larger frames); an
        event larger on its own is refused by `send`.
    max_in_flight:
        Credit: events sent but not yet acknowledged, at most (a batched record goes only
        whole within it; one larger than the credit goes alone).
    ack_timeout_s, max_ack_timeout_s:
        Resend everything unacknowledged after this much silence; doubles per timeout.
    backlog_alert_events:
        Emit an `Alert` (and log) when the outbox holds more unacknowledged events.
    sync:
        Send a frame only once it is fsynced in the outbox (survive power loss, not only
        kill -9).
    segment_bytes:
        The outbox starts a new segment file once the current one is this large.
    clock_ns:
        Source of envelope timestamps (UTC ns); workers pass their `Clock`.
    scrub:
        Applied to every event before it is encoded: the one place every event passes
        before the outbox. Workers pass the masker of their log lines, so that error text
        built from an upstream's answer never carries a credential onto disk.
    watch:
        Called on every tick of the socket thread; the events it returns (alerts about the
        outbox's volume) are sent. It must be cheap when it has nothing to say.
    curve:
        This producer's CURVE keys and the writer's public key: required for ``tcp://``.
    """

    def __init__(
        self,
        source: str,
        endpoint: str,
        outbox_dir: Path,
        *,
        batch_events: int = 1000,
        linger_s: float = 0.002,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_in_flight: int = 20_000,
        ack_timeout_s: float = 5.0,
        max_ack_timeout_s: float = 30.0,
        backlog_alert_events: int = 1_000_000,
        sync: bool = False,
        segment_bytes: int = 16 * 1024 * 1024,
        clock_ns: Callable[[], int] = time.time_ns,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        scrub: Callable[[Event], Event] | None = None,
        watch: Callable[[], Sequence[Event]] | None = None,
        curve: ClientCurve | None = None,
    ) -> None:
        if endpoint.startswith("tcp://") and curve is None:
            raise BusError(f"{endpoint}: tcp endpoints need CURVE keys (no plaintext tcp)")
        if not 0 < len(source) <= MAX_SOURCE_LENGTH or "\x00" in source:
            raise BusError(f"invalid source name {source!r}")
        self.source = source
        self.endpoint = endpoint
        self._batch = batch_events
        self._linger = linger_s
        self._max_frame_bytes = max_frame_bytes
        self._max_in_flight = max_in_flight
        self._base_timeout = ack_timeout_s
        self._max_timeout = max_ack_timeout_s
        self._backlog_alert = backlog_alert_events
        self._clock_ns = clock_ns
        self._scrub = scrub
        self._watch = watch
        self._curve = curve
        self._full_since = 0.0  # monotonic time the outbox's volume was found full; 0: not
        self._outbox = Outbox(outbox_dir, sync=sync, segment_bytes=segment_bytes)
        self._lock = threading.Lock()
        self._acked_cond = threading.Condition(self._lock)
        # The frame being gathered: `_buffered` encoded envelopes from seq `_buffer_first`.
        self._buffer = bytearray()
        self._buffered = 0
        self._buffer_first = 0
        self._buffer_since = 0.0
        self._next_seq = self._outbox.next_seq
        self._sent_upto = self._outbox.acked  # highest seq handed to the socket since a rewind
        self._high_sent = self._outbox.acked  # highest seq ever handed to the socket
        self._progress_at = time.monotonic()
        # Since when the pending events have waited: the last ack that advanced, or the send
        # that made some pending after none were (monotonic; `unacked_s`).
        self._acked_at = self._waiting_since = time.monotonic()
        self._timeout = ack_timeout_s
        self._backlog_alerted = False
        self._failure: BaseException | None = None
        self._stopping = threading.Event()
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._connected_once = False
        self._handshake_failing_since = 0.0  # monotonic; 0: the last handshake succeeded
        self._handshake_failed_at = 0.0  # monotonic, the latest failure
        self.frames_sent = 0
        self.frames_resent = 0
        self.resends = 0
        self.reconnects = 0
        self.lost_events = 0  # declared lost (`SeqsLost`): the writer lost them, so did we
        # The declaration being sent: its range and its frame, the same bytes at each resend.
        self._declared: tuple[int, int, bytes] | None = None
        self._declaration_sent = False
        self._declined = 0  # the writer's requests for the range since it was sent
        self._also_synced: list[Callable[[], None]] = []  # `sync_also`
        self._thread = threading.Thread(target=self._run, name=f"producer-{source}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side

    def sync_also(self, flush: Callable[[], None]) -> None:
        """Run ``flush`` (on the producer's thread) before each fsync of the outbox.

        With ``sync``, what ``flush`` makes durable before an event was sent is durable when
        the event is: a process's raw journal, appended before the event, is fsynced with it.
        """
        self._also_synced.append(flush)

    @property
    def acked(self) -> int:
        """Highest seq the writer has committed."""
        return self._outbox.acked

    @property
    def last_seq(self) -> int:
        """Highest seq assigned so far (buffered or durable)."""
        return self._next_seq - 1

    @property
    def handshake_failing_s(self) -> float:
        """Seconds the CURVE handshake with the writer has failed without a success; 0: not.

        A key mismatch fails every handshake before the writer's ZAP is asked, so the
        writer sees no key to refuse; this is the producer's side of it.
        """
        since, now = self._handshake_failing_since, time.monotonic()
        if not since or now - self._handshake_failed_at > _HANDSHAKE_QUIET_S:
            return 0.0  # no handshake lately: the writer is down (the backlog tells), not keys
        return now - since

    @property
    def pending(self) -> int:
        """Events assigned but not yet acknowledged."""
        return self._next_seq - 1 - self._outbox.acked

    @property
    def unacked_s(self) -> float:
        """Seconds the writer has acknowledged none of the pending events; 0: none pending.

        Since its last acknowledgement, or since events became pending after none were: a
        writer out of reach (a firewall, a wrong endpoint, stopped) leaves it growing while
        the process beats on.
        """
        if not self.pending:
            return 0.0
        return time.monotonic() - max(self._acked_at, self._waiting_since)

    def send(self, event: Event) -> int:
        """Queue ``event`` and return its seq; it is durable after the next flush.

        Until that flush (at most ``linger_s`` later, or at once via `flush`) the seq is
        provisional: if the process dies first, the next producer of this source assigns it
        again, so the durable sequence never has a hole.

        Raises
        ------
        EventError
            The event cannot travel (a value msgpack cannot encode, a value of another type
            than its field's, which the writer would not decode, or more bytes than a frame
            may hold); no seq is used and nothing already sent is affected.
        OutboxFull
            The outbox's volume is full and this event would need a second frame in memory;
            no seq is used. Events already given seqs wait in memory for room.
        """
        if self._scrub is not None:
            event = self._scrub(event)
        alert = False
        with self._lock:
            self._raise_failure()
            seq = self._next_seq
            # Encoded here, one envelope at a time, so that an event that cannot be encoded
            # is refused to its caller instead of failing a whole frame in the socket thread.
            start = len(self._buffer)
            size = append_envelope(
                self._buffer, Envelope(self.source, seq, self._clock_ns(), event)
            )
            if start + size + FRAME_HEADER_BYTES > self._max_frame_bytes:
                part = bytes(self._buffer[start:])
                del self._buffer[start:]
                if size + FRAME_HEADER_BYTES > self._max_frame_bytes:
                    raise EventError(
                        f"{type(event).__name__} of {self.source} is {size} bytes encoded, "
                        f"more than a frame may hold ({self._max_frame_bytes} bytes)"
                    )
                # The frame so far, then this event starts the next. A full volume raises
                # OutboxFull here: this event is refused before it uses a seq.
                self._flush_locked()
                self._buffer += part
            if seq == self._outbox.acked + 1:  # the first pending after none were
                self._waiting_since = time.monotonic()
            self._next_seq += 1
            self._buffered += 1
            if self._buffered == 1:
                self._buffer_first = seq
                self._buffer_since = time.monotonic()
                self._wake()
            if self._buffered >= self._batch:
                self._flush_while_full_locked()
            if self.pending > self._backlog_alert and not self._backlog_alerted:
                self._backlog_alerted = alert = True
        if alert:
            self._alert_backlog()
        return seq

    def flush(self) -> None:
        """Make every event sent so far durable in the outbox; `OutboxFull` if no room."""
        with self._lock:
            self._raise_failure()
            self._flush_locked()

    def wait_acked(self, timeout: float, through: int | None = None) -> bool:
        """Flush, then wait up to ``timeout`` seconds until the writer acknowledged everything.

        With ``through``, every event up to that seq: what was sent later may still wait.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flush_locked()
            last = self._next_seq - 1 if through is None else min(through, self._next_seq - 1)
            while self._outbox.acked < last:
                self._raise_failure()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._acked_cond.wait(remaining)
        return True

    def close(self, drain_timeout: float = 5.0) -> bool:
        """Flush, wait up to ``drain_timeout`` for acks, stop. True if nothing is left unacked.

        Whatever is left stays in the outbox and is sent by the next producer of this source.
        """
        drained = False
        if self._thread.is_alive():
            with contextlib.suppress(BusError):
                drained = self.wait_acked(drain_timeout)
            self._stopping.set()
            self._wake()
            self._thread.join()
        with self._lock:
            if self._buffered:  # their write failed (a full volume): they were never durable
                log.error(
                    "producer %s: %d events (seq %d on) could not be written to the "
                    "outbox and are lost",
                    self.source,
                    self._buffered,
                    self._buffer_first,
                )
            self._outbox.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._own_context:
            self._context.term()
        return drained

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Producer {self.source} last_seq={self.last_seq} acked={self.acked} "
            f"sent={self.frames_sent} resent={self.frames_resent} "
            f"reconnects={self.reconnects}>"
        )

    # ------------------------------------------------------------------ internals

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")

    def _flush_locked(self) -> None:
        if not self._buffered:
            return
        first, count = self._buffer_first, self._buffered
        self._outbox.append(first, first + count - 1, frame_header(count) + self._buffer)
        self._buffer.clear()
        self._buffered = 0
        self._wake()

    def _flush_while_full_locked(self) -> None:
        """Flush; on a full volume keep the frame in memory and try again on the next tick."""
        try:
            self._flush_locked()
        except OutboxFull as exc:
            if not self._full_since:
                self._full_since = time.monotonic()
                log.error(
                    "producer %s: %s; %d events wait in memory", self.source, exc, self._buffered
                )
            return
        if self._full_since:
            log.info(
                "producer %s: outbox writable again after %.1fs",
                self.source,
                time.monotonic() - self._full_since,
            )
            self._full_since = 0.0

    def _send_watched(self) -> None:
        """Send what the watch has to say (outside the lock: `send` takes it)."""
        assert self._watch is not None
        for event in self._watch():
            try:
                self.send(event)
            except OutboxFull:
                log.error("producer %s: no room in the outbox for %r", self.source, event)

    def _alert_backlog(self) -> None:
        log.warning("outbox of %s holds %d unacknowledged events", self.source, self.pending)
        self.send(
            Alert(
                severity="warning",
                code="bus_outbox_backlog",
                message=f"outbox of {self.source} holds {self.pending} unacknowledged events",
                context={"source": self.source},
            )
        )

    def _run(self) -> None:
        # Everything, the socket's setup too, inside the try: a failure anywhere is kept in
        # `_failure` and raised by the next send/flush/wait, never a silently dead thread.
        dealer: zmq.Socket[bytes] | None = None
        monitor: zmq.Socket[bytes] | None = None
        try:
            dealer = self._context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, LINGER_MS)
            dealer.setsockopt(zmq.IMMEDIATE, 1)  # never queue frames into a pipe with no peer
            dealer.setsockopt(zmq.SNDHWM, 10_000)
            if self._curve is not None:
                self._curve.apply(dealer)
            keep_alive(dealer, self.endpoint)
            monitor = dealer.get_monitor_socket(_HANDSHAKE_EVENTS)
            dealer.connect(self.endpoint)
            poller = zmq.Poller()
            poller.register(dealer, zmq.POLLIN)
            poller.register(monitor, zmq.POLLIN)
            poller.register(self._wake_r, zmq.POLLIN)
            while not self._stopping.is_set():
                ready = dict(poller.poll(self._poll_timeout_ms()))
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                if monitor in ready:
                    self._handle_monitor(monitor)
                if dealer in ready:
                    self._handle_acks(dealer)
                self._tick(dealer)
                if self._watch is not None:
                    self._send_watched()
        except BaseException as exc:
            log.exception("producer %s failed", self.source)
            with self._lock:
                self._failure = exc
                self._acked_cond.notify_all()
        finally:
            if monitor is not None and dealer is not None:
                dealer.disable_monitor()
                monitor.close(linger=0)
            if dealer is not None:
                dealer.close()

    def _poll_timeout_ms(self) -> int:
        now = time.monotonic()
        waits = [0.1]
        if self._buffered:
            waits.append(self._buffer_since + self._linger - now)
        if self._sent_upto > self._outbox.acked:
            waits.append(self._progress_at + self._timeout - now)
        return max(0, int(min(waits) * 1000) + 1)

    def _handle_monitor(self, monitor: zmq.Socket[bytes]) -> None:
        while True:
            try:
                message = recv_monitor_message(monitor, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            if message["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_failed(message["event"])
                continue
            if self._handshake_failing_since:
                log.info(
                    "producer %s: the CURVE handshake with the writer at %s succeeds again "
                    "after %.0f s",
                    self.source,
                    self.endpoint,
                    time.monotonic() - self._handshake_failing_since,
                )
                self._handshake_failing_since = 0.0
            with self._lock:
                # IMMEDIATE=1: nothing is sent before the first connection, so only a
                # reconnect can have lost frames in the old writer's buffers.
                if self._connected_once:
                    self.reconnects += 1
                    self._rewind("reconnected")
                self._connected_once = True

    def _handshake_failed(self, event: int) -> None:
        """Note a refused handshake; log the first of an episode (ZeroMQ retries each second)."""
        self._handshake_failed_at = time.monotonic()
        if self._handshake_failing_since:
            return
        self._handshake_failing_since = time.monotonic()
        refused = "refused" if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "failed"
        log.error(
            "producer %s: the CURVE handshake with the writer at %s %s: the writer refused "
            "this host's key or this host holds another writer's public key; events wait in "
            "the outbox until the keys match",
            self.source,
            self.endpoint,
            refused,
        )

    def _handle_acks(self, dealer: zmq.Socket[bytes]) -> None:
        while True:
            try:
                raw = dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                ack = decode_ack(raw)
            except FrameError:
                log.error("producer %s: dropped an undecodable ack", self.source)
                continue
            if ack.source != self.source:
                log.error("producer %s: ack for another source %r", self.source, ack.source)
                continue
            with self._lock:
                self._apply_ack(ack.seq, ack.resend)

    def _apply_ack(self, seq: int, resend: bool) -> None:
        outbox = self._outbox
        durable = outbox.next_seq - 1
        if seq > durable:
            raise OutboxBehindWriter(
                f"writer committed {self.source} up to seq {seq} but this outbox wrote only "
                f"{durable}: the outbox was lost or the source name is used twice"
            )
        acknowledged = outbox.acked
        if seq < acknowledged:
            log.critical(
                "producer %s: the writer acknowledged seq %d and now holds only %d: its "
                "database lost events it had committed; sending again what this outbox "
                "still holds",
                self.source,
                acknowledged,
                seq,
            )
            outbox.rewind(seq)
            self._sent_upto = seq
        if seq + 1 < outbox.held_from:
            self._declare_lost(seq + 1, outbox.held_from - 1, acknowledged, resend)
        if seq > outbox.acked:
            outbox.ack(seq)
            self._progress_at = self._acked_at = time.monotonic()
            self._timeout = self._base_timeout
            if self.pending <= self._backlog_alert:
                self._backlog_alerted = False
            self._acked_cond.notify_all()
        if self._declared is not None and seq >= self._declared[1]:
            self._declared = None
        self._sent_upto = max(self._sent_upto, seq)
        if resend:
            self._rewind("writer asked")

    def _declare_lost(self, first: int, last: int, acknowledged: int, asked: bool) -> None:
        """Queue the declaration that ``first..last`` are gone, ahead of the records after it.

        Built once per range, so that a resend carries the same bytes (the writer checks a
        repeated seq against what it committed), and sent again only when the writer asks
        (``asked``) or its ack times out, like any record: never on a plain ack still below
        it, which the frames in flight behind the hole bring. Logged as critical here; the
        writer keeps the declaration and alerts.
        """
        if self._declared is not None and self._declared[:2] == (first, last):
            if asked and self._declaration_sent:
                self._declined += 1
                if self._declined >= _DECLINED:
                    raise BusError(
                        f"the writer asked {self._declined} times for {self.source}'s seq "
                        f"{first} after being sent the declaration that seqs {first}..{last} "
                        "are lost: it does not take it (a writer of an earlier release?)"
                    )
            return
        log.critical(
            "producer %s: seqs %d..%d are lost: the writer no longer holds them and this "
            "outbox let them go once the writer had acknowledged them (through %d); "
            "declaring them lost and going on from %d",
            self.source,
            first,
            last,
            acknowledged,
            last + 1,
        )
        event = SeqsLost(first_seq=first, last_seq=last, acknowledged=acknowledged)
        frame = encode_frame([Envelope(self.source, last, self._clock_ns(), event)])
        self._declared = (first, last, frame)
        self._declaration_sent, self._declined = False, 0
        self.lost_events += last - first + 1
        self._sent_upto = min(self._sent_upto, first - 1)

    def _rewind(self, why: str) -> None:
        if self._sent_upto > self._outbox.acked:
            log.info("producer %s: resend after seq %d (%s)", self.source, self._outbox.acked, why)
            self.resends += 1
        self._sent_upto = self._outbox.acked
        self._progress_at = time.monotonic()

    def _tick(self, dealer: zmq.Socket[bytes]) -> None:
        now = time.monotonic()
        with self._lock:
            if self._buffered and now - self._buffer_since >= self._linger:
                self._flush_while_full_locked()
            if self._sent_upto > self._outbox.acked and now - self._progress_at >= self._timeout:
                self._rewind(f"no ack for {self._timeout:.1f}s")
                self._timeout = min(self._timeout * 2, self._max_timeout)
            point = self._outbox.sync_point()
        if point is not None:
            for flush in self._also_synced:
                flush()
            point.run()  # outside the lock: `send` goes on meanwhile
        with self._lock:
            if point is not None:
                self._outbox.synced_through(point)
            self._transmit(dealer)

    def _transmit(self, dealer: zmq.Socket[bytes]) -> None:
        if self._declared is not None and self._sent_upto == self._declared[0] - 1:
            _, last, frame = self._declared
            try:
                dealer.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                return
            self._declaration_sent = True
            self.frames_sent += 1
            self._sent_upto = last
        sendable = self._outbox.sendable
        for record in self._outbox.records:
            if record.last_seq <= self._sent_upto:
                continue
            if record.last_seq > sendable:
                return  # not on the disk yet: the next tick's sync makes it so
            # A record (several events when sends were batched) goes only whole within the
            # credit; one larger than the credit goes alone, when nothing else is in flight.
            in_flight = self._sent_upto - self._outbox.acked
            if in_flight and in_flight + record.last_seq - self._sent_upto > self._max_in_flight:
                return
            try:
                dealer.send(self._outbox.payload(record), zmq.NOBLOCK)
            except zmq.Again:
                return  # no writer connected, or its queue is full: keep it on disk
            if self._sent_upto == self._outbox.acked:
                self._progress_at = time.monotonic()
            self.frames_sent += 1
            if record.last_seq <= self._high_sent:
                self.frames_resent += 1
            self._sent_upto = record.last_seq
            self._high_sent = max(self._high_sent, record.last_seq)
