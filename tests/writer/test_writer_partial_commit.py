"""A batch the database took part of before it failed: still captured, published and acked.

`Store.apply` may commit a batch in several transactions (a refused event splits it), reads
the committed digests of repeated seqs after its commit, and a commit's answer may be lost
with the commit done. When a later step fails, the writer tries the same frames again; what
the failed try committed is then at or below the marks. It must still reach the capture (and
the feed, from the same list) and must not be reported as duplicates in the ack.

A real writer (in a thread, on real ipc sockets and a real database) and a raw DEALER; the
database's failure is injected at one point: a lost connection as the driver raises it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

import observer.writer.store as store_module
from bus.capture import CaptureReader
from bus.codec import decode_ack, decode_frame, encode_frame
from bus.endpoints import local_endpoints
from bus.envelope import Ack, Envelope
from bus.events import TradeTick
from observer.db import migrate
from observer.db.engine import make_engine
from observer.writer import identity
from observer.writer.replay import replay_into_db
from observer.writer.service import Writer, WriterOptions
from observer.writer.store import Store
from tests.samples import SAMPLES, T0
from tests.support import audit

TICK: TradeTick = SAMPLES[2]  # type: ignore[assignment]
TOO_LONG = msgspec.structs.replace(TICK, symbol="X" * 17)  # VARCHAR(16): a refused event


def lost_connection() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


def frame(first: int, last: int, refused: int = 0) -> bytes:
    envelopes = [
        Envelope("s", n, T0 + n, TOO_LONG if n == refused else msgspec.structs.replace(TICK))
        for n in range(first, last + 1)
    ]
    return encode_frame(envelopes)


@dataclass
class Live:
    writer: Writer
    dealer: zmq.Socket[bytes]
    capture: Path

    def ack(self) -> Ack:
        assert self.dealer.poll(30_000), "no ack within 30 s"
        return decode_ack(self.dealer.recv())


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    store = Store(engine)
    store.load_marks()
    capture = tmp_path / "live.cap"
    options = WriterOptions(retry_initial_s=0.05, retry_max_s=0.2, capture=capture)
    endpoints = local_endpoints(tmp_path / "run")
    writer = Writer(store, endpoints, options)
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,), name="writer")
    thread.start()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoints.ingest)
    try:
        yield Live(writer, dealer, capture)
    finally:
        stop.set()
        thread.join(30)
        dealer.close()
        context.term()
        engine.dispose()
    assert not thread.is_alive()


def captured(path: Path) -> list[tuple[str, int]]:
    with CaptureReader(path) as reader:
        return [(env.source, env.seq) for raw in reader for env in decode_frame(raw)]


class Fault:
    """Fail one transaction of the store with a lost connection, before or after its commit.

    The first transaction begun once ``after_commits`` transactions have committed (since
    `arm`) and whose statements all succeed (a refused batch fails by itself first).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: Store, commit: bool) -> None:
        self.commit = commit  # True: the commit happens and its answer is lost
        self.after_commits = -1  # disarmed
        self.committed = 0
        self.failed = 0
        real = store.engine.begin

        @contextmanager
        def begin() -> Iterator[Connection]:
            with real() as conn:
                yield conn
                due = self.after_commits >= 0 and self.committed >= self.after_commits
                if due and not self.commit:
                    self.after_commits = -1
                    self.failed += 1
                    raise lost_connection()  # rolled back
            self.committed += 1
            if due and self.commit:
                self.after_commits = -1
                self.failed += 1
                raise lost_connection()  # committed, the answer lost

        monkeypatch.setattr(store.engine, "begin", begin)

    def arm(self, after_commits: int) -> None:
        self.committed = 0
        self.after_commits = after_commits


def test_a_batch_committed_before_its_digest_read_failed_is_captured_once(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's case: 1..10 committed, then a frame of 1..20; the digest read fails."""
    real: Callable[..., Any] = identity.find_conflicts  # what the store calls
    failures: list[int] = []

    def find_conflicts(conn: Connection, repeats: Any) -> Any:
        if armed.is_set():
            armed.clear()
            failures.append(1)
            raise lost_connection()
        return real(conn, repeats)

    armed = threading.Event()
    monkeypatch.setattr(store_module, "find_conflicts", find_conflicts)
    live.dealer.send(frame(1, 10))
    assert live.ack().seq == 10
    armed.set()
    live.dealer.send(frame(1, 20))  # a resend of 1..10 (its ack was lost), then 11..20
    ack = live.ack()
    assert failures == [1] and live.writer.commit_failures == 1
    # Only 1..10 were repeats; 11..20 were committed by this frame (the failed try).
    assert (ack.seq, ack.duplicates, ack.conflicts) == (20, 10, 0)
    live.dealer.send(frame(21, 30))
    assert live.ack().seq == 30
    assert live.writer.duplicates == 10
    expect_captured(live, 30)


@pytest.mark.parametrize(
    ("commit", "after_commits", "refused", "recovered"),
    [
        # One transaction: committed, then the connection drops before its answer.
        pytest.param(True, 0, 0, 10, id="one-commit-whose-answer-was-lost"),
        # 11..20 with 15 refused: split; 11, 12 commit, then the connection drops.
        pytest.param(False, 1, 15, 2, id="split-batch-failing-after-its-first-part"),
    ],
)
def test_what_a_failed_try_committed_is_captured_and_not_a_duplicate(
    live: Live,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    commit: bool,
    after_commits: int,
    refused: int,
    recovered: int,
) -> None:
    """1..10, then a frame of 1..20 fails partway: its new events are taken exactly once."""
    caplog.set_level(logging.INFO, logger="observer.writer.service")
    fault = Fault(monkeypatch, live.writer.store, commit)
    live.dealer.send(frame(1, 10))
    assert live.ack().seq == 10
    fault.arm(after_commits)
    live.dealer.send(frame(1, 20, refused))
    ack = live.ack()
    assert fault.failed == 1 and live.writer.commit_failures == 1
    assert (ack.seq, ack.duplicates, ack.conflicts) == (20, 10, 0)
    assert f"{recovered} events committed before the database failed" in caplog.text
    live.dealer.send(frame(21, 30))
    assert live.ack().seq == 30
    assert live.writer.duplicates == 10
    assert live.writer.store.rejected == (1 if refused else 0)
    # The refused event's alert (`bus_event_rejected`), committed before 21..30 were taken.
    expect_captured(live, 30, own=1 if refused else 0)


def expect_captured(live: Live, last: int, own: int = 0) -> None:
    """The database and the capture hold 1..last once each (and ``own`` alerts of the
    writer's); the capture rebuilds it."""
    url = live.writer.store.engine.url.render_as_string(hide_password=False)
    rows = audit(url)["s"]
    assert (rows.min_seq, rows.max_seq, rows.distinct, rows.rows) == (1, last, last, last)
    # Flushed after each batch: complete once the last ack came.
    seqs = [seq for source, seq in captured(live.capture) if source == "s"]
    assert seqs == list(range(1, last + 1))
    rebuilt = f"sqlite:///{live.capture.parent / 'rebuilt.db'}"
    result = replay_into_db(live.capture, rebuilt, upgrade=True)
    assert (result.committed, result.skipped, result.conflicts) == (last + own, 0, 0)
