"""The durable outbox: recovery after kill -9, trimming, locking, and a stateful model."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.errors import OutboxError, OutboxLocked
from bus.events import Alert
from bus.outbox import Outbox
from observer.writer.store import accept


def frame(first: int, last: int, source: str = "s") -> bytes:
    return encode_frame(
        [
            Envelope(source, seq, 0, Alert(severity="info", code="T", message=str(seq)))
            for seq in range(first, last + 1)
        ]
    )


def append(outbox: Outbox, count: int) -> tuple[int, int]:
    first = outbox.next_seq
    last = first + count - 1
    outbox.append(first, last, frame(first, last))
    return first, last


def test_seq_continues_after_reopen_and_unacked_frames_come_back(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob")
    append(box, 3)
    append(box, 2)
    box.ack(3)
    box.close()
    again = Outbox(tmp_path / "ob")
    assert again.next_seq == 6
    assert again.acked == 3
    assert [(r.first_seq, r.last_seq) for r in again.records] == [(4, 5)]
    assert decode_parts(again.payload(again.records[0])).envelopes[0].seq == 4
    again.close()


def test_torn_tail_is_cut_and_its_seqs_are_reassigned(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob")
    append(box, 2)
    append(box, 2)
    box.close()
    segment = next((tmp_path / "ob").glob("*.seg"))
    size = segment.stat().st_size
    os.truncate(segment, size - 5)  # kill -9 in the middle of the second write
    again = Outbox(tmp_path / "ob")
    assert again.next_seq == 3
    assert segment.stat().st_size < size - 5
    assert append(again, 1) == (3, 3)
    again.close()


def test_damage_before_the_tail_is_refused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob", segment_bytes=1)  # one record per segment
    append(box, 1)
    append(box, 1)
    append(box, 1)
    box.close()
    first = sorted((tmp_path / "ob").glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(OutboxError, match="checksum mismatch"):
        Outbox(tmp_path / "ob")


def test_spent_segments_are_deleted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob", segment_bytes=1)
    for _ in range(4):
        append(box, 5)
    assert len(list((tmp_path / "ob").glob("*.seg"))) == 4
    box.ack(15)
    assert [p.name for p in sorted((tmp_path / "ob").glob("*.seg"))] == [f"{16:020d}.seg"]
    box.close()
    again = Outbox(tmp_path / "ob")
    assert again.next_seq == 21
    assert [(r.first_seq, r.last_seq) for r in again.records] == [(16, 20)]
    again.close()


def test_everything_acked_and_rotated_still_continues_the_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob", segment_bytes=1)
    append(box, 5)
    append(box, 5)
    box.ack(10)
    box.close()
    again = Outbox(tmp_path / "ob")
    assert again.next_seq == 11 and not again.records
    again.close()


def test_one_process_per_outbox(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob")
    with pytest.raises(OutboxLocked):
        Outbox(tmp_path / "ob")
    box.close()
    Outbox(tmp_path / "ob").close()


def test_files_are_owner_only(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob")
    append(box, 1)
    box.close()
    assert stat.S_IMODE((tmp_path / "ob").stat().st_mode) == 0o700
    for path in (tmp_path / "ob").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_append_out_of_order_is_refused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob")
    with pytest.raises(OutboxError):
        box.append(2, 2, frame(2, 2))
    box.close()


def test_payloads_beyond_the_cache_are_read_from_disk(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob", cache_bytes=0)
    append(box, 3)
    record = box.records[0]
    assert record.payload is None
    assert box.payload(record) == frame(1, 3)
    box.close()


class OutboxAgainstWriter(RuleBasedStateMachine):
    """Any interleaving of sends, deliveries (lost, repeated, reordered), acks, producer
    restarts with torn tails, and writer restarts commits each seq exactly once."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name) / "ob"
        self.box = Outbox(self.dir, segment_bytes=300)
        self.committed: list[int] = []  # the database: seqs in commit order
        self.mark = 0  # the writer's committed high-water mark
        self.in_transit: list[bytes] = []  # frames sent, not yet received (may be lost)

    def teardown(self) -> None:
        self.box.close()
        self._tmp.cleanup()

    @rule(count=st.integers(min_value=1, max_value=4))
    def produce(self, count: int) -> None:
        append(self.box, count)

    @rule(data=st.data())
    def send_unacked(self, data: st.DataObject) -> None:
        """The producer (re)sends some of its unacknowledged frames, in order."""
        records = list(self.box.records)
        if records:
            start = data.draw(st.integers(0, len(records) - 1))
            self.in_transit += [self.box.payload(r) for r in records[start:]]

    @precondition(lambda self: self.in_transit)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        """The writer receives some frame in transit (any order), commits, and acks."""
        index = data.draw(st.integers(0, len(self.in_transit) - 1))
        raw = self.in_transit.pop(index)
        accepted = accept([decode_parts(raw)], {"s": self.mark})
        self.committed += [env.seq for env in accepted.envelopes]
        self.mark = accepted.marks.get("s", self.mark)
        if data.draw(st.booleans()):  # the ack may be lost
            self.box.ack(self.mark)

    @rule()
    def lose_everything_in_transit(self) -> None:
        """The writer is killed: whatever it had not committed is gone."""
        self.in_transit.clear()

    @rule(torn=st.binary(min_size=1, max_size=30))
    def restart_producer(self, torn: bytes) -> None:
        """kill -9 of the producer mid-write, then a new producer opens the outbox."""
        self.box.close()
        active = sorted(self.dir.glob("*.seg"))[-1]
        with active.open("ab") as f:
            f.write(torn)
        self.box = Outbox(self.dir, segment_bytes=300)

    @invariant()
    def committed_exactly_once_in_order(self) -> None:
        assert self.committed == list(range(1, self.mark + 1))
        assert self.box.acked <= self.mark <= self.box.next_seq - 1


def test_outbox_state_machine_drains_to_exactly_once() -> None:
    class Drained(OutboxAgainstWriter):
        def teardown(self) -> None:
            # Finally everything is resent and delivered in order: all seqs arrive once.
            for record in list(self.box.records):
                accepted = accept([decode_parts(self.box.payload(record))], {"s": self.mark})
                self.committed += [env.seq for env in accepted.envelopes]
                self.mark = accepted.marks.get("s", self.mark)
            assert self.committed == list(range(1, self.box.next_seq))
            super().teardown()

    Drained.TestCase.settings = settings(
        max_examples=200 if os.environ.get("CI") else 50, stateful_step_count=40, deadline=None
    )
    Drained.TestCase().runTest()
