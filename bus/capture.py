r"""Capture files: bus frames exactly as on the wire, with checksums, for replay and fixtures.

A capture is ``b"OBSCAP1\\n"``, ``<u32 length><msgpack CaptureHeader>``, then frames as
``<u32 length><u32 crc32><frame>`` (each a msgpack array of envelopes). It is append-only: a
writer killed mid-frame leaves a torn tail, which `CaptureReader` refuses unless told to stop
before it; a write the system refuses leaves none (`CaptureWriter`).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import msgspec

from bus.errors import CaptureError

__all__ = ["CaptureHeader", "CaptureReader", "CaptureWriter"]

log = logging.getLogger(__name__)

MAGIC = b"OBSCAP1\n"
_LEN = struct.Struct("<I")
_FRAME = struct.Struct("<II")
_MAX_FRAME = 256 * 1024 * 1024


class CaptureHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What a capture holds and where it came from."""

    version: int = 1
    created_ns: int
    origin: str  # "writer" (commit-order tee), "feed" (lossy tap), "test"
    note: str = ""


class CaptureWriter:
    """Append frames to a new capture file (mode 0600); refuses to overwrite one.

    Frames wait in memory until `flush` (or until `FLUSH_BYTES` wait) and go to the file
    whole: a write the system refuses (a full volume) is cut back to the last whole frame
    and raises ``OSError``, so the file is always a readable capture of ``frames`` frames.
    """

    FLUSH_BYTES = 1024 * 1024

    def __init__(self, path: Path, header: CaptureHeader) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        raw = msgspec.msgpack.encode(header)
        self._pending = bytearray(MAGIC + _LEN.pack(len(raw)) + raw)
        self._pending_frames = 0
        self._size = 0  # bytes in the file: the header and whole frames
        self.frames = 0  # frames in the file

    def append(self, frame: bytes) -> None:
        """Append one frame (written by the next `flush`, or now past `FLUSH_BYTES`)."""
        self._pending += _FRAME.pack(len(frame), zlib.crc32(frame))
        self._pending += frame
        self._pending_frames += 1
        if len(self._pending) >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the waiting frames; on failure cut the file back to its last whole frame."""
        written = 0
        with memoryview(self._pending) as view:
            try:
                while written < len(view):
                    written += os.write(self._fd, view[written:])
            except OSError:
                os.ftruncate(self._fd, self._size)  # a shorter file needs no room
                os.lseek(self._fd, self._size, os.SEEK_SET)  # a later flush goes on from there
                raise
        self._size += written
        self.frames += self._pending_frames
        self._pending.clear()
        self._pending_frames = 0

    def close(self) -> None:
        """Flush and close (closed even if the flush fails; that failure is raised)."""
        try:
            self.flush()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Close without the waiting frames; a file left without its header is removed."""
        os.close(self._fd)
        if self._size == 0:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CaptureReader:
    """Read a capture file's header and frames, verifying every checksum.

    Parameters
    ----------
    path:
        The capture file.
    allow_torn_tail:
        Stop quietly (with a warning) at a truncated last frame instead of raising.

    Raises
    ------
    CaptureError
        Bad magic or header, a checksum mismatch, or (unless allowed) a truncated frame.
    """

    def __init__(self, path: Path, *, allow_torn_tail: bool = False) -> None:
        self.path = path
        self._allow_torn_tail = allow_torn_tail
        self._file = path.open("rb")
        magic = self._file.read(len(MAGIC))
        if magic != MAGIC:
            self._file.close()
            raise CaptureError(f"{path} is not a capture file (magic {magic!r})")
        try:
            (length,) = _LEN.unpack(self._file.read(_LEN.size))
            self.header = msgspec.msgpack.decode(self._file.read(length), type=CaptureHeader)
        except (struct.error, msgspec.DecodeError) as exc:
            self._file.close()
            raise CaptureError(f"{path}: damaged header: {exc}") from exc

    def __iter__(self) -> Iterator[bytes]:
        index = 0
        while True:
            head = self._file.read(_FRAME.size)
            if not head:
                return
            frame = b""
            if len(head) == _FRAME.size:
                length, crc = _FRAME.unpack(head)
                if length > _MAX_FRAME:
                    raise CaptureError(f"{self.path}: frame {index} claims {length} bytes")
                frame = self._file.read(length)
                if len(frame) == length:
                    if zlib.crc32(frame) != crc:
                        raise CaptureError(f"{self.path}: checksum mismatch in frame {index}")
                    yield frame
                    index += 1
                    continue
            if not self._allow_torn_tail:
                raise CaptureError(f"{self.path}: truncated frame {index}")
            log.warning("%s: stopped at torn frame %d", self.path, index)
            return

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
