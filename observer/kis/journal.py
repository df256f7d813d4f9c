"""The raw journal: every WebSocket frame and REST answer a process received from KIS.

KIS keeps no history of its real-time feed, and its layouts change between workbook exports:
a frame misread today is lost unless its text was kept. A process appends each frame and
answer here before it publishes anything read from it, so what the writer acknowledged is
in the journal (a process killed meanwhile loses nothing the kernel was given), and
``observer journal replay`` can parse a day again with today's parser.

Layout: ``<journal dir>/date=YYYY-MM-DD/<process>.<HHMMSS>.<pid>.kisj.zst`` (the KST day of
the receipt; a new file per process start and per day). A file is one zstd frame of
records, each a 4-byte big-endian length and a msgpack `JournalRecord`, flushed block by
block as records come. A file closed in order ends its frame and gets a ``.sha256`` beside
it (sealed); one whose process died keeps every record it flushed, readable, and is
reported as unsealed. Secrets never enter it: subscription answers lose the AES key and iv
(`redact_control`), request headers are never written, and token and approval-key answers
never pass through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import operator
import os
import re
import shutil
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from queue import Empty, Queue
from typing import BinaryIO, Literal, Protocol, cast
from urllib.parse import urlencode

import msgspec
import zstandard

from observer.errors import JournalError
from observer.kis.settings import JournalSettings
from observer.process.paths import PathSettings
from observer.process.private_files import fsync_path, write_private

__all__ = [
    "JOURNAL_SUFFIX",
    "Journal",
    "JournalFile",
    "JournalRecord",
    "answering_for",
    "day_files",
    "journal_days",
    "journal_name",
    "journal_root",
    "kst_day",
    "list_file",
    "prune_journal",
    "read_file",
    "redact_control",
    "verify_file",
    "verify_journal",
]

log = logging.getLogger(__name__)

KST = timezone(timedelta(hours=9))
JOURNAL_SUFFIX = ".kisj.zst"
_LENGTH = struct.Struct(">I")
_MAX_RECORD = 64 * 1024 * 1024  # a length beyond this is damage, never a record
_BEAT_EVERY = 10_000  # records between two calls of a reader's beat
_CHUNK = 1 << 20  # decompressed bytes the reader takes at a time
_AHEAD = 8  # chunks decompressed ahead of the records being decoded
_SEAL_COUNTS = re.compile(r"^# records=(\d+) raw_bytes=(\d+)$", re.MULTILINE)
_DAY_FOLDER = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_REDACTED = "<redacted>"
_SECRET_OUTPUT_FIELDS = ("iv", "key")  # a subscription answer's AES-256 key and iv
_NS = 1_000_000_000
_BODY = operator.attrgetter("body")

Channel = Literal["ws", "rest"]


class JournalRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One frame or answer as KIS sent it.

    Not tracked by the garbage collector (``gc=False``: its fields are scalars, so it can be
    in no cycle): a day's millions of records read a quarter faster.

    ``tr`` is the frame's TR (a data frame's second field, a control answer's
    ``header.tr_id``) or the REST request's; ``request`` a REST request's path and query
    (never its headers); ``status`` its HTTP status and ``cont`` its ``tr_cont`` header.
    ``body`` is the bytes received, but for a ``redacted`` control answer. ``context`` is
    what its process asked a REST answer for where the request alone does not say it
    (`answering_for`; "" else, and in files written before it existed).
    """

    received_ns: int  # UTC ns, the process's clock
    account: str  # the account alias
    channel: Channel
    tr: str
    body: bytes
    request: str = ""
    status: int = 0
    cont: str = ""
    redacted: bool = False
    context: str = ""


# What the REST answers received in this asyncio task (or thread) are asked for: see
# `answering_for`.
_ANSWER_CONTEXT: ContextVar[str] = ContextVar("journal_answer_context", default="")


@contextlib.contextmanager
def answering_for(context: str) -> Iterator[None]:
    """The REST answers received inside the block are journaled with ``context``.

    For a process whose events hold more than its answers do (gap recovery's bars carry their
    gap): the replay reads the context back (`observer.kis.answer_replay`). A context
    variable, so an asyncio task's calls carry its own context, never another task's.
    """
    token = _ANSWER_CONTEXT.set(context)
    try:
        yield
    finally:
        _ANSWER_CONTEXT.reset(token)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(JournalRecord)


def journal_root(settings: JournalSettings, paths: PathSettings) -> Path:
    """The journal's folder: ``[kis.journal] dir``, else ``<data_dir>/journal``."""
    return Path(settings.dir or Path(paths.data_dir) / "journal")


def journal_name(source: str) -> str:
    """The name a process's journal files take from its bus source (``track_b``)."""
    return re.sub(r"[^a-z0-9_-]", "-", source.lower())[:64]


def kst_day(ns: int) -> date:
    """The KST calendar day of a UTC nanosecond stamp."""
    return datetime.fromtimestamp(ns / _NS, KST).date()


def frame_tr(text: str) -> str:
    """The TR of a WebSocket frame: a data frame's second field, a JSON one's header tr_id."""
    if text[:2] in ("0|", "1|"):
        return text.split("|", 2)[1][:16]
    match = re.search(r'"tr_id"\s*:\s*"([^"]{0,16})"', text[:300])
    return match.group(1) if match else ""


def redact_control(text: str) -> str | None:
    """``text`` without the key and iv of a subscription answer; None if it carries none.

    KIS's answer to a registration of an encrypted TR carries ``body.output.iv`` and
    ``body.output.key``: the AES key its frames are encrypted with, a secret of the session.
    """
    if '"output"' not in text:
        return None
    try:
        message = json.loads(text)
        output = message["body"]["output"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(output, dict) or not any(f in output for f in _SECRET_OUTPUT_FIELDS):
        return None
    for name in _SECRET_OUTPUT_FIELDS:
        if name in output:
            output[name] = _REDACTED
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def rest_request(path: str, params: Mapping[str, str]) -> str:
    """A REST request as the journal names it: the path and its query, never its headers."""
    return f"{path}?{urlencode(sorted(params.items()))}" if params else path


@dataclass
class Journal:
    """The journal of one process: append, rotate at the KST day, close.

    ``folder`` is the journal's root, ``process`` this process's name in file names
    (``track_b``). ``on_failure`` hears, once, that a file cannot be written (a full disk):
    the journal then stops, and the process goes on without it (its events are not the
    journal's to hold back). The first record ``retry_s`` after the failure, or of the next
    day, opens a new file; ``on_open`` hears of each file opened, so an owner can end what
    it raised of the failure.
    """

    folder: Path
    process: str
    level: int = 3
    on_failure: Callable[[str], None] | None = None
    on_open: Callable[[Path], None] | None = None
    retry_s: float = 60.0
    records: int = 0  # appended since the start
    failed: str = ""  # why the current day's file stopped; "" while it writes
    _day: date | None = field(default=None, init=False, repr=False)
    _path: Path | None = field(default=None, init=False, repr=False)
    _file: BinaryIO | None = field(default=None, init=False, repr=False)
    _writer: zstandard.ZstdCompressionWriter | None = field(default=None, init=False, repr=False)
    _compressor: zstandard.ZstdCompressor = field(init=False, repr=False)
    _unsynced: bool = field(default=False, init=False, repr=False)
    _file_records: int = field(default=0, init=False, repr=False)  # the current file's
    _file_raw: int = field(default=0, init=False, repr=False)  # its records' body bytes
    _retry_ns: int = field(default=0, init=False, repr=False)  # failed: a new file from then

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_-]{1,64}", self.process):
            raise ValueError(f"journal process name {self.process!r}: [a-z0-9_-]{{1,64}}")
        self._compressor = zstandard.ZstdCompressor(level=self.level)

    @property
    def path(self) -> Path | None:
        """The file being written, if any."""
        return self._path

    def frame(self, account: str, message: str | bytes, received_ns: int) -> None:
        """A WebSocket frame as received (text or bytes), its secrets redacted."""
        if isinstance(message, bytes):
            raw, text = message, message.decode("utf-8", "replace")
        else:
            raw, text = message.encode("utf-8", "surrogateescape"), message
        redacted = None if text[:2] in ("0|", "1|") else redact_control(text)
        if redacted is not None:
            raw = redacted.encode()
        self.append(
            JournalRecord(
                received_ns, account, "ws", frame_tr(text), raw, redacted=redacted is not None
            )
        )

    def answer(
        self,
        account: str,
        tr: str,
        request: str,
        status: int,
        body: bytes,
        received_ns: int,
        cont: str = "",
    ) -> None:
        """A REST answer to ``request`` (`rest_request`), as received.

        It is kept with the context it was asked in (`answering_for`).
        """
        context = _ANSWER_CONTEXT.get()
        self.append(
            JournalRecord(
                received_ns, account, "rest", tr, body, request, status, cont, context=context
            )
        )

    def append(self, record: JournalRecord) -> None:
        """Append ``record`` and hand it to the kernel before returning."""
        day = kst_day(record.received_ns)
        if day != self._day or (self.failed and record.received_ns >= self._retry_ns):
            self._rotate(day, record.received_ns)
        if self._writer is None:
            return  # the file failed: nothing until the retry
        payload = _encoder.encode(record)
        try:
            self._writer.write(_LENGTH.pack(len(payload)) + payload)
            self._writer.flush(zstandard.FLUSH_BLOCK)
        except OSError as exc:
            self._retry_ns = record.received_ns + int(self.retry_s * _NS)
            self._fail(f"cannot append to {self._path}: {exc.strerror or exc}")
            return
        self.records += 1
        self._file_records += 1
        self._file_raw += len(record.body)
        self._unsynced = True

    def sync(self) -> None:
        """Flush what was appended since the last call to the disk (a power cut keeps it).

        Safe on another thread than the appends' (the producer's: `Producer.sync_also`).
        """
        file = self._file
        if file is None or not self._unsynced:
            return
        self._unsynced = False  # an append from now on is the next call's
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile: the close fsynced
            os.fsync(file.fileno())

    def close(self) -> None:
        """End the current file's zstd frame, fsync it, and write its ``.sha256`` (sealed)."""
        writer, path, self._writer, self._path = self._writer, self._path, None, None
        file, self._file = self._file, None
        self._day = None
        if writer is None or path is None or file is None:
            return
        try:
            writer.flush(zstandard.FLUSH_FRAME)  # the frame's end: nothing to close in the writer
            os.fsync(file.fileno())
            file.close()
            seal(path, self._file_records, self._file_raw)
        except OSError as exc:
            with contextlib.suppress(OSError):
                file.close()
            self._fail(f"cannot close {path}: {exc.strerror or exc}")

    def _rotate(self, day: date, received_ns: int) -> None:
        self.close()
        self._day, self.failed = day, ""
        self._retry_ns = received_ns + int(self.retry_s * _NS)
        folder = self.folder / f"date={day.isoformat()}"
        stamp = datetime.fromtimestamp(received_ns / _NS, KST).strftime("%H%M%S")
        path = folder / f"{self.process}.{stamp}.{os.getpid()}{JOURNAL_SUFFIX}"
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
            fsync_path(folder)  # the new file's entry
        except OSError as exc:
            self._fail(f"cannot create {path}: {exc.strerror or exc}")
            return
        self._file, self._path = file, path
        self._file_records = self._file_raw = 0
        self._writer = self._compressor.stream_writer(file, write_return_read=True)
        if self.on_open is not None:
            self.on_open(path)

    def _fail(self, why: str) -> None:
        self._writer = None
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self.failed:
            return
        self.failed = why
        log.error("journal: %s; no journal for %g s (then a new file)", why, self.retry_s)
        if self.on_failure is not None:
            self.on_failure(why)


def seal(path: Path, records: int, raw_bytes: int) -> None:
    """Write ``<path>.sha256`` (sha256sum's format), durably: the file is complete.

    A comment line (which ``sha256sum -c`` skips) holds its record count and their bodies'
    bytes, so that listing a sealed file never decompresses it (`list_file`).
    """
    sidecar = path.with_name(path.name + ".sha256")
    text = f"{_sha256(path)}  {path.name}\n# records={records} raw_bytes={raw_bytes}\n"
    write_private(sidecar, text.encode())


def list_file(path: Path) -> JournalFile:
    """``path``'s records and bytes from its seal; read whole (`verify_file`) if unsealed.

    Its sha256 is not checked (that is `verify_file`'s work): a file with a seal is listed
    as sealed.
    """
    sidecar = path.with_name(path.name + ".sha256")
    try:
        counts = _SEAL_COUNTS.search(sidecar.read_text())
    except OSError:
        counts = None
    if counts is None:  # unsealed, or sealed by a release before the counts
        return verify_file(path)
    records, raw = int(counts.group(1)), int(counts.group(2))
    return JournalFile(path, records, path.stat().st_size, raw, sealed=True, torn=False)


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


@dataclass(frozen=True)
class JournalFile:
    """What reading one journal file found."""

    path: Path
    records: int
    bytes: int  # on disk
    raw_bytes: int  # of the records' bodies
    sealed: bool  # its zstd frame ends and its ``.sha256`` matches
    torn: bool  # it ends inside a record (a power cut mid-append): that record is lost
    problem: str = ""  # a sealed file whose sha256 differs, or one that cannot be read

    @property
    def ok(self) -> bool:
        """Readable whole: sealed, or cut off by its process's death at a record's end."""
        return not self.problem and not self.torn


def read_file(path: Path) -> Iterator[JournalRecord]:
    """The records of one journal file, in order; a torn last record is left out.

    Raises
    ------
    JournalError
        The file cannot be decompressed or holds a record that does not decode.
    """
    with contextlib.suppress(_Torn):
        for batch in _batches(path):
            yield from batch


class _Torn(Exception):
    """The file ends inside a record: its process died, or the power went, mid-append."""


def _batches(path: Path, hasher: Hasher | None = None) -> Iterator[list[JournalRecord]]:
    """The whole records of each decompressed chunk; `_Torn` after the last if bytes follow.

    Linear in the file's bytes: records are decoded at an offset into the decompressed
    chunk, never copied out of it; the record a chunk's end cuts is completed from the next
    chunk's head, so only its bytes are copied. Building the records is the reader's cost
    (decompressing overlaps it, `_decompressed`, which also feeds ``hasher`` the file's
    bytes), so the loop reads its functions from locals, decodes from a view, and hands a
    chunk's records over at once.
    """
    unpack, decode, prefix, limit = _LENGTH.unpack_from, _decoder.decode, _LENGTH.size, _MAX_RECORD
    cut = bytearray()  # the head of the record the last chunk's end cut (usually none)
    for chunk in _decompressed(path, hasher):
        batch: list[JournalRecord] = []
        offset = 0
        if cut:
            offset = _complete(cut, chunk, path)
            if offset < 0:  # the cut record runs past this chunk too
                continue
            batch.append(_decoded(bytes(cut), prefix, path))
            cut.clear()
        append, size = batch.append, len(chunk)
        damage: JournalError | None = None
        with memoryview(chunk) as view:
            while size - offset >= prefix:
                (length,) = unpack(chunk, offset)
                if length > limit:
                    damage = JournalError(f"{path}: a record of {length} bytes: damaged")
                    break
                start = offset + prefix
                end = start + length
                if size < end:
                    break
                try:
                    append(decode(view[start:end]))
                except msgspec.DecodeError as exc:
                    damage = JournalError(f"{path}: a record does not decode: {exc}")
                    break
                offset = end
        if damage is not None:
            yield batch  # the whole records before the damage: read, and counted
            raise damage
        cut += chunk[offset:]
        yield batch
    if cut:
        raise _Torn


def _complete(cut: bytearray, chunk: bytes, path: Path) -> int:
    """Extend ``cut`` (a record's head) from ``chunk`` to its whole record.

    Returns where the record ends in ``chunk``, or -1 if it does not (``chunk`` then all
    appended to ``cut``).
    """
    prefix = _LENGTH.size
    head = max(0, prefix - len(cut))
    if len(cut) + len(chunk) < prefix:
        cut += chunk
        return -1
    cut += chunk[:head]
    length: int = _LENGTH.unpack_from(cut)[0]
    if length > _MAX_RECORD:
        raise JournalError(f"{path}: a record of {length} bytes: damaged")
    need = head + prefix + length - len(cut)
    if need > len(chunk):
        cut += chunk[head:]
        return -1
    cut += chunk[head:need]
    return need


def _decoded(record: bytes, prefix: int, path: Path) -> JournalRecord:
    """One whole record (its length prefix first) decoded."""
    try:
        return _decoder.decode(memoryview(record)[prefix:])
    except msgspec.DecodeError as exc:
        raise JournalError(f"{path}: a record does not decode: {exc}") from None


def _decompressed(path: Path, hasher: Hasher | None = None) -> Iterator[bytes]:
    """``path``'s frame decompressed, in chunks of up to `_CHUNK` bytes, in order.

    A thread reads and decompresses up to `_AHEAD` chunks ahead of the caller: zstd releases
    the GIL while it works, so the next chunks are decompressed on another core while the
    caller decodes this one's records (a day's file reads in the time its records take to
    decode, not that plus zstd's). The thread ends with the iterator, however it ends; what
    failed in it is raised here. A frame cut short (its process died) ends where its last
    whole block does. ``hasher``, if given, is fed every byte of the file there too (hashlib
    releases the GIL as zstd does), once the iterator has run to its end.

    Raises
    ------
    JournalError
        The file cannot be read or decompressed.
    """
    ahead: Queue[bytes | BaseException | None] = Queue(_AHEAD)
    stop = threading.Event()

    def decompress() -> None:
        try:
            with open(path, "rb") as f:
                # zstandard reads its source's `read` alone: a `_Hashing` is file enough
                source = f if hasher is None else cast(BinaryIO, _Hashing(f, hasher))
                # read_to_iter, not stream_reader: at the end of a frame cut short, the
                # stream reader ends without what zstd still holds decompressed (the last
                # records of a file whose process died: 85 kB of 20 MB in one test)
                chunks = zstandard.ZstdDecompressor().read_to_iter(
                    source, read_size=_CHUNK, write_size=_CHUNK
                )
                for chunk in chunks:
                    if stop.is_set():
                        break
                    ahead.put(chunk)
                if hasher is not None and not stop.is_set():
                    # zstd stops at its frame's end, unread bytes after it: the file's too
                    # (a sealed file's sha256 then differs: damage)
                    while rest := f.read(_CHUNK):
                        hasher.update(rest)
        except zstandard.ZstdError as exc:
            ahead.put(JournalError(f"{path}: does not decompress: {exc}"))
        except OSError as exc:
            ahead.put(JournalError(f"{path}: cannot read: {exc.strerror or exc}"))
        except BaseException as exc:  # never lost with the thread: the reader raises it
            ahead.put(exc)
        finally:
            ahead.put(None)

    worker = threading.Thread(target=decompress, name=f"journal {path.name}", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # After `stop` the thread puts at most a chunk and its end: emptied here, the queue
        # has room for both, so it never blocks and the join returns.
        stop.set()
        with contextlib.suppress(Empty):
            while True:
                ahead.get_nowait()
        worker.join()


class Hasher(Protocol):
    """What `_decompressed` feeds the file's bytes to (a `hashlib` object)."""

    def update(self, data: bytes, /) -> None: ...


class _Hashing:
    """A file whose bytes read are fed to a hasher as they are read."""

    def __init__(self, file: BinaryIO, hasher: Hasher) -> None:
        self._file = file
        self._hasher = hasher

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._hasher.update(data)
        return data


def _idle() -> None:
    pass


def verify_file(path: Path, beat: Callable[[], None] = _idle) -> JournalFile:
    """Read ``path`` whole: its records, whether it is sealed, torn, or damaged.

    A sealed file's sha256 must match its ``.sha256``. An unsealed one (its process died)
    is as good as its last whole record. Never raises for damage: it is in ``problem``.
    ``beat`` is called every `_BEAT_EVERY` records (a job's heartbeat: a real day's file
    holds millions).
    """
    records = raw = beaten = 0
    torn = False
    problem = ""
    hasher = hashlib.sha256()  # of the bytes read as they are read (`_decompressed`)
    try:
        for batch in _batches(path, hasher):
            records += len(batch)
            raw += sum(map(len, map(_BODY, batch)))
            if records - beaten >= _BEAT_EVERY:
                beaten = records
                beat()
    except _Torn:
        torn = True
    except JournalError as exc:
        problem = str(exc)
    sidecar = path.with_name(path.name + ".sha256")
    sealed = False
    if sidecar.exists() and not problem:
        text = sidecar.read_text()
        recorded = text.split()[0] if text.strip() else ""
        if recorded != hasher.hexdigest():
            problem = f"{path}: its sha256 differs from {sidecar.name}: the file changed"
        else:
            sealed = True
    return JournalFile(path, records, path.stat().st_size, raw, sealed, torn, problem)


def verify_journal(
    root: Path, day: date | None = None, beat: Callable[[], None] = _idle
) -> tuple[list[JournalFile], list[str]]:
    """Every file of ``day`` (or of every day) read whole, and the problems found.

    A problem is a damaged file, or a sealed one whose sha256 changed; a torn last record
    (a power cut mid-append) is what the live process lost too, not a problem. ``beat``:
    as `verify_file`'s.
    """
    found = [
        verify_file(path, beat)
        for each in (journal_days(root) if day is None else [day])
        for path in day_files(root, each)
    ]
    return found, [f.problem for f in found if f.problem]


def journal_days(root: Path) -> list[date]:
    """The days the journal holds, oldest first."""
    if not root.is_dir():
        return []
    days = [
        date.fromisoformat(match.group(1))
        for entry in root.iterdir()
        if entry.is_dir() and (match := _DAY_FOLDER.match(entry.name))
    ]
    return sorted(days)


def day_files(root: Path, day: date) -> list[Path]:
    """A day's journal files, by name (process, then start time)."""
    folder = root / f"date={day.isoformat()}"
    return sorted(folder.glob(f"*{JOURNAL_SUFFIX}")) if folder.is_dir() else []


def prune_journal(root: Path, keep_days: int, today: date) -> list[date]:
    """Remove the days older than ``keep_days`` before ``today`` (0 keeps all); the removed."""
    if keep_days <= 0:
        return []
    cutoff = today - timedelta(days=keep_days)
    removed = [day for day in journal_days(root) if day < cutoff]
    for day in removed:
        shutil.rmtree(root / f"date={day.isoformat()}")
    if removed:
        fsync_path(root)
    return removed
