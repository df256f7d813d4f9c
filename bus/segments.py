"""The outbox's record format on the disk, and reading it back.

A segment (``<first seq>.seg``) is a run of records ``<length u32><crc32 u32><first_seq u64>
<last_seq u64><frame>``; ``ACKED`` holds one ``<seq u64>``. `bus.outbox` writes them; the
functions here read them: whole records, the damage checks recovery applies, and
`outbox_state` for a reader beside the producer (the audit).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ACKED",
    "HEADER",
    "MAX_RECORD",
    "SUFFIX",
    "OutboxRecord",
    "OutboxState",
    "damage_advice",
    "is_whole",
    "next_whole_record",
    "outbox_state",
    "record_problem",
    "whole_records",
]

HEADER = struct.Struct("<IIQQ")
ACKED = struct.Struct("<Q")
SUFFIX = ".seg"
MAX_RECORD = 256 * 1024 * 1024


@dataclass(slots=True)
class OutboxRecord:
    """One frame in the outbox; ``payload`` is dropped from memory past the cache budget."""

    first_seq: int
    last_seq: int
    segment: int  # first seq of the segment file that holds it
    offset: int  # of the payload within the segment
    length: int
    payload: bytes | None


@dataclass(frozen=True, slots=True)
class OutboxState:
    """What an outbox folder says, read without its lock (`outbox_state`).

    ``acked``: the writer's acknowledgement the outbox last recorded; ``held_from`` ..
    ``high``: the seqs its segments still hold, acknowledged or not (``held_from`` =
    ``high`` + 1: none; ``high`` is then the last seq the source assigned, as far as the
    outbox knows).
    """

    acked: int
    held_from: int
    high: int


def outbox_state(directory: Path) -> OutboxState | None:
    """What the outbox in ``directory`` says, without its lock; None if there is none.

    For the audit, beside a running producer: a record being written is simply not counted.
    """
    try:
        raw = (directory / "ACKED").read_bytes()
    except FileNotFoundError:
        return None
    acked = ACKED.unpack(raw)[0] if len(raw) == ACKED.size else 0
    held_from = high = 0
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        segment = int(path.stem)
        try:
            records = list(whole_records(path.read_bytes(), segment))
        except FileNotFoundError:  # trimmed meanwhile
            continue
        high = max(high, segment - 1, *(r.last_seq for r in records))
        if records and not held_from:
            held_from = records[0].first_seq
    high = max(high, acked)
    return OutboxState(acked, held_from or high + 1, high)


def whole_records(data: bytes, segment: int) -> Iterator[OutboxRecord]:
    """The whole records of a segment's bytes, in order, up to the first that is not."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc, first, last = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if not 0 < length <= len(data) - start:
            return
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            return
        yield OutboxRecord(first, last, segment, start, length, payload)
        offset = start + length


def damage_advice(path: Path, offset: int, expected: int) -> str:
    """An operator's choice for an outbox that refuses to open at byte ``offset`` of ``path``.

    There is no repair command: the right cut depends on what the writer committed.
    """
    return (
        f"Stop this source's producer and keep a copy of {path.parent}. If `observer audit` "
        f"shows the writer committed this source only below seq {expected}, cut {path.name} "
        f"to {offset} bytes (`truncate -s {offset} {path}`) and remove any segment after it: "
        f"the producer starts again, what the outbox held from seq {expected} on is lost and "
        f"those seqs are assigned again. If the writer committed seq {expected} or later, do "
        "not cut: new events would reuse committed seqs."
    )


def record_problem(data: bytes, offset: int, expected: int) -> str:
    """Why the record at ``offset`` is not the whole record of seq ``expected``; "" if it is."""
    if offset + HEADER.size > len(data):
        return "truncated header"
    length, crc, first, last = HEADER.unpack_from(data, offset)
    start = offset + HEADER.size
    if length == 0:
        return "empty record"
    if length > MAX_RECORD or start + length > len(data):
        return "truncated frame"
    if zlib.crc32(memoryview(data)[start : start + length]) != crc:
        return "checksum mismatch"
    if first > last or first != expected or last - first >= length:
        return f"seq {first}..{last} in {length} bytes after seq {expected - 1}"
    return ""


def is_whole(data: bytes, offset: int) -> bool:
    """Whether the record at ``offset`` has all of its non-empty frame, checksum intact."""
    if offset + HEADER.size >= len(data):
        return False
    length, crc, _, _ = HEADER.unpack_from(data, offset)
    start = offset + HEADER.size
    if not 0 < length <= min(MAX_RECORD, len(data) - start):
        return False
    return zlib.crc32(memoryview(data)[start : start + length]) == int(crc)


def next_whole_record(data: bytes, start: int, after_seq: int) -> tuple[int, int, int] | None:
    """The first whole record at or past byte ``start`` that could follow seq ``after_seq``.

    A damaged record's own length and seqs cannot be trusted, so every byte is tried as the
    start of a header. Plausible means seqs ``after_seq < first <= last``, at least a byte of
    frame per seq, and a frame that checks out: zeros (a power-loss tail) hold no such
    header, and garbage hardly ever gets past the seqs, let alone the checksum.
    """
    end = len(data) - HEADER.size  # a record of at least one byte starts before it
    view = memoryview(data)
    for at in range(start, end):
        length, crc, first, last = HEADER.unpack_from(data, at)
        if (
            after_seq < first <= last
            and last - first < length <= end - at
            and zlib.crc32(view[at + HEADER.size : at + HEADER.size + length]) == crc
        ):
            return at, first, last
    return None
