"""The durable per-source outbox: an append-only log of frames, trimmed by the writer's acks.

Layout of ``<dir>`` (owner-only)::

    LOCK                     flock held by the one live producer of this source
    ACKED                    8 bytes: highest seq the writer acknowledged (a hint; may lag)
    00000000000000000001.seg segments, named by the first seq they hold
    ...

A segment is a run of records ``<length u32><crc32 u32><first_seq u64><last_seq u64><frame>``.
A record is written with one ``write`` before its frame is sent, so whatever the writer ever
received is on disk. Opening the outbox recovers from kill -9: a torn record at the tail is cut
off (it was never sent, so its seqs are free to be assigned again) and the next seq continues
after the last whole record. A record counts as torn only when nothing whole follows it: a
damaged record with a whole one after it (a bad sector or a bit flip, not an interrupted
write) is refused like damage anywhere else, never skipped or cut, because the records after
it may have been sent already. So is a whole record out of seq order, and a segment that does
not end where the next one starts. A write that
fails (a full volume: `OutboxFull`) is cut off at once, so the segment never holds a torn
record between whole ones, and the same frame can be written again once there is room.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from bus.errors import LockHeld, OutboxError, OutboxFull, OutboxLocked
from bus.lock import InstanceLock

__all__ = ["Outbox", "OutboxRecord"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<IIQQ")
_ACKED = struct.Struct("<Q")
_SUFFIX = ".seg"
_MAX_RECORD = 256 * 1024 * 1024


@dataclass(slots=True)
class OutboxRecord:
    """One frame in the outbox; ``payload`` is dropped from memory past the cache budget."""

    first_seq: int
    last_seq: int
    segment: int  # first seq of the segment file that holds it
    offset: int  # of the payload within the segment
    length: int
    payload: bytes | None


class Outbox:
    """Durable, append-only store of one source's unacknowledged frames.

    Parameters
    ----------
    directory:
        Folder of this source's outbox; created with mode 0700.
    segment_bytes:
        A new segment starts once the current one is this large.
    sync:
        ``fsync`` every append. Not needed to survive kill -9 (the page cache survives the
        process); needed to survive power loss.
    cache_bytes:
        Payloads of unacknowledged frames kept in memory for resends; beyond it they are
        read back from disk.

    Raises
    ------
    OutboxLocked
        Another process holds this outbox.
    OutboxError
        A damaged record anywhere but the tail of the last segment, or records missing
        between two segments.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 16 * 1024 * 1024,
        sync: bool = False,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._sync = sync
        self._cache_bytes = cache_bytes
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._lock = InstanceLock(directory / "LOCK")
        except LockHeld as exc:
            raise OutboxLocked(
                f"outbox {directory} is held by another process (pid {exc.holder})"
            ) from exc
        self._acked_fd = os.open(directory / "ACKED", os.O_RDWR | os.O_CREAT, 0o600)
        raw = os.pread(self._acked_fd, _ACKED.size, 0)
        self.acked = _ACKED.unpack(raw)[0] if len(raw) == _ACKED.size else 0
        self.records: deque[OutboxRecord] = deque()
        self._segment_last: dict[int, int] = {}  # segment -> highest seq it holds
        self._cached = 0
        self._active = 0  # first seq of the segment being appended to; set by _recover
        self.next_seq = self.acked + 1
        try:
            self._recover()
        except BaseException:  # a refused outbox stays closed, so it can be opened again
            os.close(self._acked_fd)
            self._lock.close()
            raise
        self._active_fd = os.open(
            self._path(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self._active_size = os.fstat(self._active_fd).st_size

    # ------------------------------------------------------------------ public

    @property
    def pending_events(self) -> int:
        """Events written but not yet acknowledged."""
        return self.next_seq - 1 - self.acked

    def append(self, first_seq: int, last_seq: int, frame: bytes) -> OutboxRecord:
        """Write one frame holding seqs ``first_seq..last_seq``; returns once it is durable.

        Raises
        ------
        OutboxFull
            No room on the volume; nothing was written.
        OutboxError
            Any other failure to write; nothing was written.
        """
        if first_seq != self.next_seq or last_seq < first_seq:
            raise OutboxError(f"append {first_seq}..{last_seq} but next seq is {self.next_seq}")
        if len(frame) <= last_seq - first_seq:
            # Every event takes a byte at least; recovery relies on it to tell garbage (and an
            # all-zero header) from a record.
            raise OutboxError(f"append {first_seq}..{last_seq}: a frame of {len(frame)} bytes")
        if self._active_size >= self._segment_bytes:
            self._rotate(first_seq)
        header = _HEADER.pack(len(frame), zlib.crc32(frame), first_seq, last_seq)
        try:
            written = os.write(self._active_fd, header + frame)
            if written != len(header) + len(frame):  # the volume filled up during the write
                raise OSError(errno.ENOSPC, f"short write of {written} bytes")
            if self._sync:
                os.fsync(self._active_fd)
        except OSError as exc:
            # Cut what was written: a torn record followed by whole ones would be damage.
            os.ftruncate(self._active_fd, self._active_size)
            raise _write_error(self._path(self._active), exc) from exc
        record = OutboxRecord(
            first_seq,
            last_seq,
            self._active,
            self._active_size + _HEADER.size,
            len(frame),
            frame if self._cached + len(frame) <= self._cache_bytes else None,
        )
        if record.payload is not None:
            self._cached += len(frame)
        self._active_size += written
        self._segment_last[self._active] = last_seq
        self.records.append(record)
        self.next_seq = last_seq + 1
        return record

    def payload(self, record: OutboxRecord) -> bytes:
        """Return a record's frame, from memory or from its segment."""
        if record.payload is not None:
            return record.payload
        fd = os.open(self._path(record.segment), os.O_RDONLY)
        try:
            return os.pread(fd, record.length, record.offset)
        finally:
            os.close(fd)

    def ack(self, seq: int) -> None:
        """Forget every record whose seqs are all at or below ``seq``; drop spent segments."""
        if seq <= self.acked:
            return
        self.acked = seq
        os.pwrite(self._acked_fd, _ACKED.pack(seq), 0)
        while self.records and self.records[0].last_seq <= seq:
            done = self.records.popleft()
            if done.payload is not None:
                self._cached -= done.length
        for segment, last in list(self._segment_last.items()):
            if segment != self._active and last <= seq:
                self._path(segment).unlink(missing_ok=True)
                del self._segment_last[segment]

    def close(self) -> None:
        """Release the files and the lock."""
        for fd in (self._active_fd, self._acked_fd):
            os.close(fd)
        self._lock.close()

    # ------------------------------------------------------------------ internals

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:020d}{_SUFFIX}"

    def _rotate(self, first_seq: int) -> None:
        try:  # the new segment first: if it cannot be made, the outbox is as it was
            new_fd = os.open(self._path(first_seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise _write_error(self._path(first_seq), exc) from exc
        os.close(self._active_fd)
        if self._sync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)
        self._active = first_seq
        self._segment_last[first_seq] = first_seq - 1
        self._active_fd = new_fd
        self._active_size = 0

    def _recover(self) -> None:
        segments = sorted(int(p.stem) for p in self.directory.glob(f"*{_SUFFIX}"))
        if not segments:
            self._active = self.next_seq
            self._segment_last[self._active] = self.next_seq - 1
            return
        for index, segment in enumerate(segments):
            is_last = index == len(segments) - 1
            self._segment_last[segment] = segment - 1
            self.next_seq = max(self.next_seq, segment)
            self._scan(segment, last_segment=is_last)
            # Segments are only ever deleted from the front, so a gap means lost records.
            if not is_last and self._segment_last[segment] != segments[index + 1] - 1:
                path, last = self._path(segment), self._segment_last[segment]
                raise OutboxError(
                    f"outbox {path} ends at seq {last} but the next segment starts at seq "
                    f"{segments[index + 1]}: records are missing or damaged. "
                    + _advice(path, path.stat().st_size, last + 1)
                )
        if self._segment_last[segments[-1]] + 1 < self.next_seq:
            # ACKED is past the last whole record (a tail was cut), so everything here is
            # acknowledged and the next seq cannot follow on in the last segment: trim it
            # all, as `ack` would, and start a segment at the next seq.
            for segment in segments:
                self._path(segment).unlink()
                del self._segment_last[segment]
            segments = [self.next_seq]
            self._segment_last[self.next_seq] = self.next_seq - 1
        self._active = segments[-1]

    def _scan(self, segment: int, *, last_segment: bool) -> None:
        path = self._path(segment)
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            expected = self._segment_last[segment] + 1
            problem = _problem(data, offset, expected)
            if problem:
                self._damaged(path, data, offset, problem, expected, last_segment=last_segment)
                os.truncate(path, offset)
                return
            length, _, first, last = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            self._segment_last[segment] = last
            self.next_seq = max(self.next_seq, last + 1)
            if last > self.acked:
                frame = data[start : start + length]
                keep = self._cached + length <= self._cache_bytes
                self._cached += length if keep else 0
                self.records.append(
                    OutboxRecord(first, last, segment, start, length, frame if keep else None)
                )
            offset = start + length

    def _damaged(
        self,
        path: Path,
        data: bytes,
        offset: int,
        problem: str,
        expected: int,
        *,
        last_segment: bool,
    ) -> None:
        """Log and allow the cut of a torn tail; raise `OutboxError` for any other damage."""
        where = f"outbox {path} is damaged at byte {offset} ({problem})"
        advice = _advice(path, offset, expected)
        if not last_segment:
            raise OutboxError(f"{where}. {advice}")
        if _whole(data, offset):
            # Its checksum holds, so the write was complete (only the seqs are wrong): it
            # may have been sent, and cutting it would hand its seqs out again.
            raise OutboxError(f"{where}: a whole record, not a torn write. {advice}")
        after = _next_whole(data, offset + 1, expected - 1)
        if after is not None:
            at, first, last = after
            raise OutboxError(
                f"{where}, and whole records follow it (at byte {at}: seqs {first}..{last}): "
                f"not a torn write, so nothing is cut; they may have been sent already. {advice}"
            )
        log.warning("outbox %s: cut torn tail at byte %d (%s)", path, offset, problem)


def _advice(path: Path, offset: int, expected: int) -> str:
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


def _problem(data: bytes, offset: int, expected: int) -> str:
    """Why the record at ``offset`` is not the whole record of seq ``expected``; "" if it is."""
    if offset + _HEADER.size > len(data):
        return "truncated header"
    length, crc, first, last = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if length == 0:
        return "empty record"
    if length > _MAX_RECORD or start + length > len(data):
        return "truncated frame"
    if zlib.crc32(memoryview(data)[start : start + length]) != crc:
        return "checksum mismatch"
    if first > last or first != expected or last - first >= length:
        return f"seq {first}..{last} in {length} bytes after seq {expected - 1}"
    return ""


def _whole(data: bytes, offset: int) -> bool:
    """Whether the record at ``offset`` has all of its non-empty frame, checksum intact."""
    if offset + _HEADER.size >= len(data):
        return False
    length, crc, _, _ = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if not 0 < length <= min(_MAX_RECORD, len(data) - start):
        return False
    return zlib.crc32(memoryview(data)[start : start + length]) == int(crc)


def _next_whole(data: bytes, start: int, after_seq: int) -> tuple[int, int, int] | None:
    """The first whole record at or past byte ``start`` that could follow seq ``after_seq``.

    A damaged record's own length and seqs cannot be trusted, so every byte is tried as the
    start of a header. Plausible means seqs ``after_seq < first <= last``, at least a byte of
    frame per seq, and a frame that checks out: zeros (a power-loss tail) hold no such
    header, and garbage hardly ever gets past the seqs, let alone the checksum.
    """
    end = len(data) - _HEADER.size  # a record of at least one byte starts before it
    view = memoryview(data)
    for at in range(start, end):
        length, crc, first, last = _HEADER.unpack_from(data, at)
        if (
            after_seq < first <= last
            and last - first < length <= end - at
            and zlib.crc32(view[at + _HEADER.size : at + _HEADER.size + length]) == crc
        ):
            return at, first, last
    return None


def _write_error(path: Path, exc: OSError) -> OutboxError:
    """`OutboxFull` for a full volume or quota, `OutboxError` for any other failure."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutboxFull(f"no room for the outbox at {path}: {exc.strerror}")
    return OutboxError(f"cannot write the outbox at {path}: {exc}")
