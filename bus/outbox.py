"""The durable per-source outbox: an append-only log of frames, trimmed by the writer's acks.

``<dir>`` (owner-only) holds ``LOCK`` (the live producer's flock), ``ACKED`` (the highest seq the
writer acknowledged; it may lag) and segments ``<first seq>.seg`` (`bus.segments`). A record is
written whole, in one ``write``, before its frame is sent, so what the writer received survives
kill -9; with ``sync`` it is sent only once fsynced, and ``ACKED`` is fsynced before a spent
segment goes. Opening cuts a torn tail and refuses other damage (`Outbox._damaged`).
"""

from __future__ import annotations

import errno
import logging
import os
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from bus.errors import LockHeld, OutboxError, OutboxFull, OutboxLocked
from bus.lock import InstanceLock
from bus.segments import (
    ACKED,
    HEADER,
    SUFFIX,
    OutboxRecord,
    damage_advice,
    is_whole,
    next_whole_record,
    record_problem,
    whole_records,
)

__all__ = ["Outbox", "OutboxRecord", "SyncPoint"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncPoint:
    """One fsync's worth of an outbox: the records through ``through`` and what holds them.

    Taken under the producer's lock (`Outbox.sync_point`), run outside it (`run`): the file
    descriptors are duplicates, so a segment the producer rotates away meanwhile (flushed
    by the rotation itself) is still closed here, never a reused descriptor number.
    """

    through: int  # highest seq this sync makes durable
    segment: int  # a duplicate of the active segment's descriptor; -1: nothing written
    folder: int  # a duplicate of the outbox folder's descriptor when an entry changed; -1: not

    def run(self) -> None:
        """Flush the segment, then the folder; close the duplicates (even on a failure)."""
        try:
            for fd in (self.segment, self.folder):
                if fd >= 0:
                    os.fsync(fd)
        finally:
            for fd in (self.segment, self.folder):
                if fd >= 0:
                    os.close(fd)


class Outbox:
    """Durable, append-only store of one source's unacknowledged frames.

    Parameters
    ----------
    directory:
        Folder of this source's outbox; created with mode 0700.
    segment_bytes:
        A new segment starts once the current one is this large.
    sync:
        Records are sent only once fsynced (`sync_point`, `sendable`), and ``ACKED`` is
        fsynced before a segment is deleted. Not needed to survive kill -9 (the page cache
        survives the process); needed to survive power loss.
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
        new = [f for f in (directory, *directory.parents) if not f.exists()]
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if sync:  # a folder made here must not vanish in a power cut with what it holds
            for folder in new:
                _fsync(folder.parent)
        try:
            self._lock = InstanceLock(directory / "LOCK")
        except LockHeld as exc:
            raise OutboxLocked(
                f"outbox {directory} is held by another process (pid {exc.holder})"
            ) from exc
        self._acked_fd = os.open(directory / "ACKED", os.O_RDWR | os.O_CREAT, 0o600)
        raw = os.pread(self._acked_fd, ACKED.size, 0)
        self.acked = ACKED.unpack(raw)[0] if len(raw) == ACKED.size else 0
        self.records: deque[OutboxRecord] = deque()
        self._segment_last: dict[int, int] = {}  # segment -> highest seq it holds
        self._cached = 0
        self._active = 0  # first seq of the segment being appended to; set by _recover
        self.next_seq = self.acked + 1
        try:
            self._recover()
            self._active_fd = os.open(
                self._path(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
            )
        except BaseException:  # a refused outbox stays closed, so it can be opened again
            os.close(self._acked_fd)
            self._lock.close()
            raise
        self._active_size = os.fstat(self._active_fd).st_size
        # What was written since the last fsync: the active segment, the folder's entries.
        self._dirty = self._folder_dirty = False
        self.synced = self.next_seq - 1  # highest seq on the disk (page cache: without sync)
        if sync:  # what a killed run wrote may be in the page cache only: to the disk first
            for segment in self._segment_last:
                _fsync(self._path(segment))
            _fsync(directory)

    # ------------------------------------------------------------------ public

    @property
    def pending_events(self) -> int:
        """Events written but not yet acknowledged."""
        return self.next_seq - 1 - self.acked

    @property
    def sendable(self) -> int:
        """The highest seq that may be sent: durable with ``sync``, written without."""
        return self.synced if self._sync else self.next_seq - 1

    @property
    def held_from(self) -> int:
        """The oldest seq the outbox can still send (`next_seq` when it holds none)."""
        return self.records[0].first_seq if self.records else self.next_seq

    def append(self, first_seq: int, last_seq: int, frame: bytes) -> OutboxRecord:
        """Write one frame holding seqs ``first_seq..last_seq``; with ``sync``, see `sendable`.

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
        header = HEADER.pack(len(frame), zlib.crc32(frame), first_seq, last_seq)
        try:
            written = os.write(self._active_fd, header + frame)
            if written != len(header) + len(frame):  # the volume filled up during the write
                raise OSError(errno.ENOSPC, f"short write of {written} bytes")
        except OSError as exc:
            # Cut what was written: a torn record followed by whole ones would be damage.
            os.ftruncate(self._active_fd, self._active_size)
            raise _write_error(self._path(self._active), exc) from exc
        record = OutboxRecord(
            first_seq,
            last_seq,
            self._active,
            self._active_size + HEADER.size,
            len(frame),
            frame if self._cached + len(frame) <= self._cache_bytes else None,
        )
        if record.payload is not None:
            self._cached += len(frame)
        self._active_size += written
        self._segment_last[self._active] = last_seq
        self.records.append(record)
        self.next_seq = last_seq + 1
        if self._sync:
            self._dirty = True
        else:
            self.synced = last_seq
        return record

    def sync_point(self) -> SyncPoint | None:
        """What an fsync must cover to make every record written so far durable; None: nothing.

        Run it (`SyncPoint.run`) outside the producer's lock, then `synced_through`.
        """
        if not self._sync or not (self._dirty or self._folder_dirty):
            return None
        segment = os.dup(self._active_fd) if self._dirty else -1
        folder = os.open(self.directory, os.O_RDONLY) if self._folder_dirty else -1
        self._dirty = self._folder_dirty = False
        return SyncPoint(self.next_seq - 1, segment, folder)

    def synced_through(self, point: SyncPoint) -> None:
        """Record that ``point`` ran: its records may be sent."""
        self.synced = max(self.synced, point.through)

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
        """Forget every record whose seqs are all at or below ``seq``; drop spent segments.

        With ``sync``, ``ACKED`` is on the disk before a segment goes: after a power cut the
        outbox knows the writer acknowledged at least the seqs it no longer holds.
        """
        if seq <= self.acked:
            return
        self.acked = seq
        os.pwrite(self._acked_fd, ACKED.pack(seq), 0)
        while self.records and self.records[0].last_seq <= seq:
            done = self.records.popleft()
            if done.payload is not None:
                self._cached -= done.length
        spent = [s for s, last in self._segment_last.items() if s != self._active and last <= seq]
        if spent and self._sync:
            os.fdatasync(self._acked_fd)
        for segment in spent:
            self._path(segment).unlink(missing_ok=True)
            del self._segment_last[segment]

    def rewind(self, seq: int) -> None:
        """Take the writer's word that it holds only seqs up to ``seq`` (below `acked`).

        The records above ``seq`` still on the disk (acknowledged, in segments not yet
        deleted) become unacknowledged again, to be sent again; `held_from` then says from
        which seq the outbox can serve the writer.
        """
        if seq >= self.acked:
            return
        self.acked = seq
        os.pwrite(self._acked_fd, ACKED.pack(seq), 0)
        self.records.clear()
        self._cached = 0
        for segment in sorted(self._segment_last):
            for record in whole_records(self._path(segment).read_bytes(), segment):
                if record.last_seq > seq:
                    self._keep(record)

    def close(self) -> None:
        """Release the files and the lock."""
        for fd in (self._active_fd, self._acked_fd):
            os.close(fd)
        self._lock.close()

    # ------------------------------------------------------------------ internals

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:020d}{SUFFIX}"

    def _rotate(self, first_seq: int) -> None:
        if self._sync and self._dirty:
            # Before the next segment exists: a journal may keep its entry ahead of this
            # one's tail, and a short segment followed by another is damage, not a torn tail.
            try:  # once a segment (16 MiB): in the caller's thread
                os.fsync(self._active_fd)
            except OSError as exc:
                raise _write_error(self._path(self._active), exc) from exc
            self._dirty = False
        try:  # the new segment first: if it cannot be made, the outbox is as it was
            new_fd = os.open(self._path(first_seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise _write_error(self._path(first_seq), exc) from exc
        os.close(self._active_fd)
        self._dirty = False
        self._folder_dirty = self._sync
        self._active = first_seq
        self._segment_last[first_seq] = first_seq - 1
        self._active_fd = new_fd
        self._active_size = 0

    def _recover(self) -> None:
        segments = sorted(int(p.stem) for p in self.directory.glob(f"*{SUFFIX}"))
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
                    + damage_advice(path, path.stat().st_size, last + 1)
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
            problem = record_problem(data, offset, expected)
            if problem:
                self._damaged(path, data, offset, problem, expected, last_segment=last_segment)
                os.truncate(path, offset)
                return
            length, _, first, last = HEADER.unpack_from(data, offset)
            start = offset + HEADER.size
            self._segment_last[segment] = last
            self.next_seq = max(self.next_seq, last + 1)
            if last > self.acked:
                self._keep(
                    OutboxRecord(first, last, segment, start, length, data[start : start + length])
                )
            offset = start + length

    def _keep(self, record: OutboxRecord) -> None:
        """Append a record read from the disk, its payload cached while the budget allows."""
        if record.payload is not None and self._cached + record.length <= self._cache_bytes:
            self._cached += record.length
        else:
            record.payload = None
        self.records.append(record)

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
        """Log and allow the cut of a torn tail; raise `OutboxError` for any other damage.

        A torn tail ends the last segment with nothing whole after it: an interrupted write,
        never sent, so its seqs are assigned again. A damaged record with a whole one after it
        (a bad sector, a bit flip) or a whole record out of seq order may have been sent
        already: it is never skipped or cut.
        """
        where = f"outbox {path} is damaged at byte {offset} ({problem})"
        advice = damage_advice(path, offset, expected)
        if not last_segment:
            raise OutboxError(f"{where}. {advice}")
        if is_whole(data, offset):
            # Its checksum holds, so the write was complete (only the seqs are wrong): it
            # may have been sent, and cutting it would hand its seqs out again.
            raise OutboxError(f"{where}: a whole record, not a torn write. {advice}")
        after = next_whole_record(data, offset + 1, expected - 1)
        if after is not None:
            at, first, last = after
            raise OutboxError(
                f"{where}, and whole records follow it (at byte {at}: seqs {first}..{last}): "
                f"not a torn write, so nothing is cut; they may have been sent already. {advice}"
            )
        log.warning("outbox %s: cut torn tail at byte %d (%s)", path, offset, problem)


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> OutboxError:
    """`OutboxFull` for a full volume or quota, `OutboxError` for any other failure."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutboxFull(f"no room for the outbox at {path}: {exc.strerror}")
    return OutboxError(f"cannot write the outbox at {path}: {exc}")
