"""A damaged outbox: a torn tail is cut, any damage with whole records after it is refused."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bus.codec import encode_frame
from bus.envelope import Envelope
from bus.errors import OutboxError
from bus.events import Alert
from bus.outbox import Outbox

HEADER = 24  # <length u32><crc32 u32><first_seq u64><last_seq u64>


def frame(first: int, last: int) -> bytes:
    return encode_frame(
        [
            Envelope("s", seq, 0, Alert(severity="info", code="T", message=str(seq) * 3))
            for seq in range(first, last + 1)
        ]
    )


@dataclass(frozen=True)
class Written:
    """One record as it lies on disk."""

    path: Path
    at: int  # byte offset of its header
    end: int  # byte offset just past its frame
    first: int
    last: int
    frame: bytes


def write(directory: Path, counts: list[int], segment_bytes: int, acked: int) -> list[Written]:
    """Append a record of each count of events, ack up to ``acked``; what is left on disk."""
    box = Outbox(directory, segment_bytes=segment_bytes)
    written = []
    for count in counts:
        first = box.next_seq
        payload = frame(first, first + count - 1)
        record = box.append(first, first + count - 1, payload)
        path = directory / f"{record.segment:020d}.seg"
        at = record.offset - HEADER
        end = record.offset + record.length
        written.append(Written(path, at, end, record.first_seq, record.last_seq, payload))
    box.ack(acked)
    box.close()
    return [w for w in written if w.path.exists()]  # acknowledged segments are deleted


def unacked(box: Outbox) -> list[tuple[int, int, bytes]]:
    return [(r.first_seq, r.last_seq, box.payload(r)) for r in box.records]


def expected(records: list[Written], acked: int) -> list[tuple[int, int, bytes]]:
    return [(w.first, w.last, w.frame) for w in records if w.last > acked]


DAMAGE = st.sampled_from(["flip", "truncate", "zeros"])


@settings(max_examples=300 if os.environ.get("CI") else 150, deadline=None)
@given(
    counts=st.lists(st.integers(1, 3), min_size=1, max_size=10),
    segment_bytes=st.sampled_from([1, 250, 1 << 20]),
    ack_share=st.floats(0, 1),
    kind=DAMAGE,
    data=st.data(),
)
def test_damage_is_cut_only_at_the_tail_and_refused_anywhere_else(
    counts: list[int], segment_bytes: int, ack_share: float, kind: str, data: st.DataObject
) -> None:
    """Reopened after one damage, the outbox holds exactly the records before it, and then
    only if nothing whole came after it; otherwise it refuses to open."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "ob"
        acked = int(ack_share * sum(counts))
        records = write(directory, counts, segment_bytes, acked)
        last_path = sorted(directory.glob("*.seg"))[-1]
        spot = -1  # the flipped byte
        if kind == "flip":
            # The checksum covers the frame, not the header's seqs; only the chain of seqs
            # checks them, and after the very last record's last seq nothing follows.
            index = data.draw(st.integers(0, len(records) - 1), label="record")
            victim = records[index]
            final = index == len(records) - 1
            spots = [
                b for b in range(victim.at, victim.end) if not (final and 16 <= b - victim.at < 24)
            ]
            spot = data.draw(st.sampled_from(spots), label="byte")
            damaged = bytearray(victim.path.read_bytes())
            damaged[spot] ^= 1 << data.draw(st.integers(0, 7), label="bit")
            victim.path.write_bytes(bytes(damaged))
        else:
            size = last_path.stat().st_size
            cut = data.draw(st.integers(0, size), label="cut")
            kept = last_path.read_bytes()[:cut]
            if kind == "zeros":  # power loss: the file grew but its last blocks were not written
                kept += bytes(size - cut + data.draw(st.integers(0, 40), label="extra"))
            last_path.write_bytes(kept)
            victim = next(
                (w for w in records if w.path == last_path and w.end > cut),
                Written(last_path, cut, cut, 0, 0, b""),  # cut between records: none damaged
            )
            final = True
        before = records[: records.index(victim)] if victim in records else records

        try:
            box = Outbox(directory)
        except OutboxError as exc:
            # A flipped bit may always be refused (below, it must be unless it is in the final
            # record); a torn or zeroed tail must be cut, never left to an operator.
            assert kind == "flip", exc
            event(f"{kind}: refused")
            return
        try:
            assert final, f"damage at byte {spot} of {victim.path.name} with records after it"
            event(f"{kind}: cut" if victim.frame else f"{kind}: between records")
            assert unacked(box) == expected(before, acked)
            if victim.path.exists():
                assert victim.path.stat().st_size == (victim.at if victim.frame else cut)
            else:  # everything left was acknowledged: trimmed, a new segment at the next seq
                assert box.next_seq == acked + 1 and not expected(before, acked)
            last_whole = before[-1].last if before else int(last_path.stem) - 1
            assert box.next_seq == max(acked, last_whole) + 1
            first = box.next_seq
            box.append(first, first, frame(first, first))  # the cut file goes on cleanly
        finally:
            box.close()
        again = Outbox(directory)
        assert unacked(again) == [*expected(before, acked), (first, first, frame(first, first))]
        again.close()


def test_a_bit_flip_in_the_middle_of_the_last_segment_is_refused(tmp_path: Path) -> None:
    """A bad sector, not a torn write: the whole records after it may have been sent."""
    directory = tmp_path / "ob"
    records = write(directory, [1, 1, 1, 1, 1], 1 << 20, 0)
    segment = records[0].path
    damaged = bytearray(segment.read_bytes())
    damaged[records[1].at + HEADER + 3] ^= 0x01
    segment.write_bytes(bytes(damaged))
    with pytest.raises(OutboxError, match=r"whole records follow it \(at byte \d+: seqs 3\.\.3\)"):
        Outbox(directory)
    assert segment.read_bytes() == bytes(damaged)  # nothing was cut
    # The operator's cut from the message (the writer committed nothing): it opens again.
    os.truncate(segment, records[1].at)
    box = Outbox(directory)
    assert box.next_seq == 2
    assert unacked(box) == [(1, 1, records[0].frame)]
    box.close()


def test_the_message_tells_the_operator_where_and_what_to_do(tmp_path: Path) -> None:
    directory = tmp_path / "ob"
    records = write(directory, [2, 2, 2], 1 << 20, 0)
    segment = records[0].path
    damaged = bytearray(segment.read_bytes())
    damaged[records[1].end - 1] ^= 0x80
    segment.write_bytes(bytes(damaged))
    with pytest.raises(OutboxError) as refused:
        Outbox(directory)
    message = str(refused.value)
    assert f"{segment} is damaged at byte {records[1].at} (checksum mismatch)" in message
    assert "`observer audit`" in message
    assert f"truncate -s {records[1].at} {segment}" in message
    assert "below seq 3" in message and "seq 3 or later, do not cut" in message


def test_a_whole_record_with_wrong_seqs_at_the_tail_is_refused(tmp_path: Path) -> None:
    """Its checksum holds, so its write was complete: it is no torn tail."""
    directory = tmp_path / "ob"
    records = write(directory, [1, 1], 1 << 20, 0)
    segment = records[-1].path
    damaged = bytearray(segment.read_bytes())
    damaged[records[-1].at + 8] ^= 0x04  # first seq 2 becomes 6
    segment.write_bytes(bytes(damaged))
    with pytest.raises(OutboxError, match="a whole record, not a torn write"):
        Outbox(directory)
    assert segment.read_bytes() == bytes(damaged)


def test_records_missing_between_segments_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "ob"
    records = write(directory, [1, 1, 1], 1, 0)  # one record per segment
    os.truncate(records[1].path, 0)
    with pytest.raises(OutboxError, match="ends at seq 1 but the next segment starts at seq 3"):
        Outbox(directory)


def test_a_refused_outbox_can_be_opened_again(tmp_path: Path) -> None:
    """Refusing releases the lock: a second try reports the damage again, not a lock."""
    directory = tmp_path / "ob"
    records = write(directory, [1, 1], 1, 0)
    damaged = bytearray(records[0].path.read_bytes())
    damaged[-1] ^= 0xFF
    records[0].path.write_bytes(bytes(damaged))
    for _ in range(2):
        with pytest.raises(OutboxError, match="checksum mismatch"):
            Outbox(directory)


def test_a_frame_shorter_than_its_events_is_refused(tmp_path: Path) -> None:
    """Recovery tells garbage from records by at least a byte per event."""
    box = Outbox(tmp_path / "ob")
    with pytest.raises(OutboxError, match="a frame of 2 bytes"):
        box.append(1, 3, b"ab")
    with pytest.raises(OutboxError, match="a frame of 0 bytes"):
        box.append(1, 1, b"")
    assert box.next_seq == 1 and not next((tmp_path / "ob").glob("*.seg")).stat().st_size
    box.close()


def test_a_cut_below_the_acknowledged_seq_starts_a_new_segment(tmp_path: Path) -> None:
    """Power loss zeroed records the writer had acknowledged: new records must not land in
    a segment whose chain they do not continue (the next open would cut them)."""
    directory = tmp_path / "ob"
    records = write(directory, [1, 1], 1 << 20, 2)
    segment = records[0].path
    segment.write_bytes(bytes(segment.stat().st_size))
    box = Outbox(directory)
    assert box.next_seq == 3
    box.append(3, 3, frame(3, 3))
    box.close()
    again = Outbox(directory)
    assert unacked(again) == [(3, 3, frame(3, 3))] and again.next_seq == 4
    again.close()
