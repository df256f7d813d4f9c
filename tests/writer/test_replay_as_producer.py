"""`observer replay --as-producer`: exact counts from a live writer, its own source left out.

Before, the replay stopped waiting at the first 100 ms without an ack (not after the second
of silence it documents), sent every unacknowledged frame again, and counted the writer's
duplicates of those copies against "committed" (194,483 of 200,000 committed events).
It also sent the capturing writer's own alerts (source ``writer``), whose seqs belong to
that writer's database: another writer that had raised an alert of its own recorded a
false ``bus_conflict``, and `observer audit` failed from then on.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from bus.capture import CaptureHeader, CaptureWriter
from bus.codec import BusFrame, decode_frame, decode_parts, encode_ack, encode_frame
from bus.endpoints import local_endpoints
from bus.envelope import Ack, Envelope
from bus.events import Alert
from harness.loadgen import synthetic_tick
from observer.writer.accepting import accept
from observer.writer.identity import WRITER_SOURCE
from observer.writer.replay import replay_as_producer
from observer.writer.replay_acks import AckTally
from tests.samples import T0
from tests.support import ROOT, WriterProcess, audit, wait_until

MakeWriter = Callable[..., WriterProcess]


def capture(path: Path, frames: list[list[Envelope]]) -> Path:
    with CaptureWriter(path, CaptureHeader(created_ns=T0, origin="writer")) as writer:
        for envelopes in frames:
            writer.append(encode_frame(envelopes))
    return path


def ticks(source: str, first: int, last: int, per_frame: int = 1000) -> list[list[Envelope]]:
    seqs = range(first, last + 1)
    envelopes = [Envelope(source, n, T0 + n, synthetic_tick(n, T0 + n)) for n in seqs]
    return [envelopes[i : i + per_frame] for i in range(0, len(envelopes), per_frame)]


def observer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_a_large_capture_counts_exactly_what_the_live_writer_committed(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    """Batches of 20,000 events take the writer well over 100 ms each; copies sent again
    (after a second without an ack, on a loaded machine) change no count."""
    half = capture(tmp_path / "half.cap", ticks("p0", 1, 25_000) + ticks("p1", 1, 25_000))
    whole = capture(tmp_path / "whole.cap", ticks("p0", 1, 50_000) + ticks("p1", 1, 50_000))
    writer = writer_factory(sqlite_url).start()
    first = replay_as_producer(half, writer.ingest, timeout_s=120)
    assert (first.committed, first.duplicates, first.conflicts) == (50_000, 0, 0)
    # The writer has the first half of each source: those come back as duplicates.
    second = replay_as_producer(whole, writer.ingest, timeout_s=120)
    assert (second.events, second.committed, second.duplicates) == (100_000, 50_000, 50_000)
    assert second.conflicts == 0
    again = replay_as_producer(whole, writer.ingest, timeout_s=120)
    assert (again.committed, again.duplicates) == (0, 100_000)
    assert writer.terminate() == 0
    rows = audit(sqlite_url)
    assert {s: (a.max_seq, a.distinct) for s, a in rows.items()} == {
        "p0": (50_000, 50_000),
        "p1": (50_000, 50_000),
    }


class ModelWriter:
    """The writer's acceptance (`accept`, pure) and its acks, batch by batch."""

    def __init__(self, marks: dict[str, int]) -> None:
        self.marks = dict(marks)

    def batch(self, frames: list[BusFrame], tally: AckTally, *, dropped: bool) -> None:
        if dropped:  # read and dropped while its database fails; asked again once it is back
            for source in {s for frame in frames for s in frame.sources}:
                tally.ack(Ack(source, self.marks.get(source, 0), True))
            return
        accepted = accept(frames, self.marks)
        self.marks.update(accepted.marks)
        repeats = Counter(env.source for env, _ in accepted.repeats)
        for source in sorted({s for frame in frames for s in frame.sources}):
            mark, hole = self.marks.get(source, 0), source in accepted.holes
            tally.ack(Ack(source, mark, hole, repeats[source]))


@given(st.data())
def test_the_counts_follow_from_the_acks_whatever_was_sent_twice_or_dropped(
    data: st.DataObject,
) -> None:
    """Any mark the writer starts at, any batching, copies and drops: the counts are exact."""
    per_source: list[list[BusFrame]] = []
    expected_new = 0
    marks: dict[str, int] = {}
    for source in ("s", "t"):
        sizes = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=6))
        first = data.draw(st.integers(1, 3))  # a capture may start past seq 1 (FILE-1)
        last = first + sum(sizes) - 1
        marks[source] = data.draw(st.integers(first - 1, last + 2))  # the writer's before
        expected_new += max(0, last - marks[source])
        seqs = iter(range(first, last + 1))
        per_source.append(
            [frame(source, [next(seqs) for _ in range(size)]) for size in sizes][::-1]
        )
    # A capture: each source's frames in seq order, the sources interleaved anyhow.
    frames: list[BusFrame] = []
    while any(per_source):
        unsent = [of_source for of_source in per_source if of_source]
        frames.append(data.draw(st.sampled_from(unsent)).pop())
    writer, tally = ModelWriter(marks), AckTally(frames)
    probes = tally.probes()
    writer.batch(probes, tally, dropped=data.draw(st.booleans()))
    if tally.unbased():
        writer.batch(probes, tally, dropped=False)  # the probes sent again
    assert not tally.unbased() and tally.probes() == []
    # The rest, with copies of any frame (resends), in batches cut anywhere, some dropped.
    rest = [f for f in frames if all(f is not p for p in probes)]
    rest += data.draw(st.lists(st.sampled_from(frames), max_size=4))
    while rest:
        cut = data.draw(st.integers(1, len(rest)))
        writer.batch(rest[:cut], tally, dropped=data.draw(st.booleans()))
        rest = rest[cut:]
    writer.batch([f for f in frames if tally.unacknowledged(f)], tally, dropped=False)
    assert tally.done()
    committed, duplicates, conflicts = tally.counts()
    events = sum(len(f.envelopes) for f in frames)
    assert (committed, duplicates, conflicts) == (expected_new, events - expected_new, 0)


def frame(source: str, seqs: list[int]) -> BusFrame:
    return decode_parts(
        encode_frame([Envelope(source, n, T0 + n, synthetic_tick(n, T0)) for n in seqs])
    )


class SlowWriter:
    """A stand-in writer that acks each frame 0.3 s after it came, as a busy one does."""

    DELAY_S = 0.3

    def __init__(self, run_dir: Path) -> None:
        self.endpoint = local_endpoints(run_dir).ingest
        self.frames = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-writer")

    def __enter__(self) -> SlowWriter:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(self.endpoint)
        self._ready.set()
        marks: dict[str, int] = {}
        try:
            while not self._stop.is_set():
                if not router.poll(50):
                    continue
                peer, raw = router.recv_multipart()
                self.frames += 1
                if self._stop.wait(self.DELAY_S):  # its commit
                    return
                envelopes = decode_frame(raw)
                source, repeats = envelopes[0].source, 0  # frames of one source
                for env in envelopes:
                    if env.seq <= marks.get(source, 0):
                        repeats += 1
                    elif env.seq == marks.get(source, 0) + 1:
                        marks[source] = env.seq
                router.send_multipart(
                    [peer, encode_ack(Ack(source, marks[source], False, repeats))]
                )
        finally:
            router.close()
            context.term()


def test_a_slow_writer_is_waited_for_a_second_not_100_ms(tmp_path: Path) -> None:
    frames = ticks("s", 1, 50, per_frame=10)
    path = capture(tmp_path / "slow.cap", frames)
    with SlowWriter(tmp_path / "run") as writer:
        result = replay_as_producer(path, writer.endpoint, timeout_s=60)
        sent = writer.frames
    assert (result.committed, result.duplicates, result.resent) == (50, 0, 0)
    assert sent == len(frames)


@pytest.fixture
def garbage() -> Iterator[Callable[[WriterProcess], None]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealers: list[zmq.Socket[bytes]] = []

    def send(writer: WriterProcess) -> None:
        """A frame that does not decode: the writer raises its own alert (source writer)."""
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(writer.ingest)
        dealer.send(b"\xc1")
        dealers.append(dealer)
        wait_until(lambda: WRITER_SOURCE in audit(writer.url), 60, "the writer's own alert")

    yield send
    for dealer in dealers:
        dealer.close()
    context.term()


def test_the_capturing_writers_own_alerts_are_not_sent_to_another_writer(
    tmp_path: Path, writer_factory: MakeWriter, garbage: Callable[[WriterProcess], None]
) -> None:
    alert = Alert(severity="warning", code="bus_frame_rejected", message="m", subject="x")
    path = capture(
        tmp_path / "a.cap",
        [[Envelope(WRITER_SOURCE, 1, T0, alert)], *ticks("p0", 1, 30, per_frame=10)],
    )
    writer = writer_factory(f"sqlite:///{tmp_path / 'b.db'}").start()
    garbage(writer)  # writer/1 in its database is its own alert, not the capture's
    done = observer("replay", str(path), "--as-producer", "--config", str(writer.config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "4 frames, 31 events, 30 committed, 0 duplicates, 0 conflicting, "
        "0 skipped past a hole, 0 frames resent, 1 events of source 'writer' not sent "
        "(the capturing writer's own alerts, numbered in its database)"
    ]
    assert writer.terminate() == 0
    audited = observer("audit", "--config", str(writer.config))
    assert audited.returncode == 0, audited.stdout
    rows = audit(writer.url)
    assert (rows["p0"].max_seq, rows[WRITER_SOURCE].max_seq) == (30, 1)
