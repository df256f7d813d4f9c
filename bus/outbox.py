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
after the last whole record. Damage anywhere else is refused, never skipped. A write that
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
        A damaged record anywhere but the tail of the last segment.
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
        self._recover()
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
            self._scan(segment, truncate_tail=is_last)
        self._active = segments[-1]

    def _scan(self, segment: int, *, truncate_tail: bool) -> None:
        path = self._path(segment)
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            problem = ""
            if offset + _HEADER.size > len(data):
                problem = "truncated header"
            else:
                length, crc, first, last = _HEADER.unpack_from(data, offset)
                start = offset + _HEADER.size
                if length > _MAX_RECORD or start + length > len(data):
                    problem = "truncated frame"
                elif zlib.crc32(data[start : start + length]) != crc:
                    problem = "checksum mismatch"
                elif first > last or first != self._segment_last[segment] + 1:
                    problem = f"seq {first}..{last} after {self._segment_last[segment]}"
            if problem:
                if not truncate_tail:
                    raise OutboxError(f"{path} damaged at byte {offset}: {problem}")
                log.warning("outbox %s: cut torn tail at byte %d (%s)", path, offset, problem)
                os.truncate(path, offset)
                return
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


def _write_error(path: Path, exc: OSError) -> OutboxError:
    """`OutboxFull` for a full volume or quota, `OutboxError` for any other failure."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutboxFull(f"no room for the outbox at {path}: {exc.strerror}")
    return OutboxError(f"cannot write the outbox at {path}: {exc}")
