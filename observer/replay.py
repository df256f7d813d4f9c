"""Replay a capture: into a database through the writer's own `Store`, or onto a live bus."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zmq

from bus.capture import CaptureHeader, CaptureReader, CaptureWriter
from bus.codec import DecodedFrame, decode_ack, decode_parts
from bus.curve import ClientCurve
from bus.endpoints import LINGER_MS
from bus.feed import FeedSubscriber
from observer.db.engine import make_engine
from observer.errors import BusError
from observer.writer.store import Store

__all__ = ["ReplayResult", "capture_feed", "replay_as_producer", "replay_into_db"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did."""

    frames: int
    events: int
    committed: int  # newly committed (into a database) or acknowledged (by a live writer)
    duplicates: int = 0  # envelopes the database already had
    resent: int = 0  # frames sent again to a live writer


def _frames(path: Path, allow_torn_tail: bool) -> Iterator[DecodedFrame]:
    with CaptureReader(path, allow_torn_tail=allow_torn_tail) as reader:
        for raw in reader:
            yield decode_parts(raw)


def replay_into_db(
    path: Path, url: str, *, allow_torn_tail: bool = False, batch_events: int = 20_000
) -> ReplayResult:
    """Commit a capture into the (migrated) database at ``url``, exactly as the writer would."""
    engine = make_engine(url)
    store = Store(engine)
    store.check_schema()
    store.load_marks()
    frames = events = committed = duplicates = 0
    pending: list[DecodedFrame] = []

    def commit() -> None:
        nonlocal committed, duplicates
        accepted = store.apply(pending)
        committed += accepted.count
        duplicates += accepted.duplicates
        pending.clear()

    try:
        for frame in _frames(path, allow_torn_tail):
            frames += 1
            events += len(frame.envelopes)
            pending.append(frame)
            if sum(len(f.envelopes) for f in pending) >= batch_events:
                commit()
        if pending:
            commit()
    finally:
        engine.dispose()
    return ReplayResult(frames, events, committed, duplicates)


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
    Unacknowledged frames are sent again after a second of silence.
    """
    frames = list(_frames(path, allow_torn_tail))
    want: dict[str, int] = {}
    for frame in frames:
        for env in frame.envelopes:
            want[env.source] = max(want.get(env.source, 0), env.seq)
    acked: dict[str, int] = {}
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, LINGER_MS)
    if curve is not None:
        curve.apply(dealer)
    dealer.connect(endpoint)
    deadline = time.monotonic() + timeout_s
    sent = 0
    try:
        while any(acked.get(s, 0) < seq for s, seq in want.items()):
            if time.monotonic() > deadline:
                missing = {
                    s: (acked.get(s, 0), seq) for s, seq in want.items() if acked.get(s, 0) < seq
                }
                raise BusError(f"replay not acknowledged within {timeout_s}s: {missing}")
            for frame in frames:
                if any(env.seq > acked.get(env.source, 0) for env in frame.envelopes):
                    dealer.send(frame.raw)
                    sent += 1
            quiet_until = time.monotonic() + 1.0
            while time.monotonic() < quiet_until and dealer.poll(100, zmq.POLLIN):
                ack = decode_ack(dealer.recv())
                acked[ack.source] = max(acked.get(ack.source, 0), ack.seq)
                if all(acked.get(s, 0) >= seq for s, seq in want.items()):
                    break
    finally:
        dealer.close()
        context.term()
    events = sum(len(frame.envelopes) for frame in frames)
    return ReplayResult(len(frames), events, events, resent=sent - len(frames))


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
        with CaptureWriter(out, header) as writer:
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
