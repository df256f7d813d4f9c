"""A day of the raw journal parsed again with today's parser, as a capture of bus frames.

``observer journal replay`` writes the capture and commits it into a scratch database
through the writer's own code (`observer.writer.replay.replay_into_db`); the capture can
also go onto a live bus (``observer replay F --as-producer``). The events of a process's
journal come under the source ``journal.<process>.<YYYYMMDD>`` (``.<TR>`` with a TR
filter), numbered in the order they were received: replaying the same day again gives the
same envelopes, which a database already holding them counts as duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bus.capture import CaptureHeader, CaptureWriter
from bus.codec import encode_frame
from bus.envelope import Envelope
from bus.events import Event
from observer.calendar.venues import SessionOf, no_session
from observer.errors import KisLayoutUnknown, KisProtocolError
from observer.kis.journal import JOURNAL_SUFFIX, JournalRecord, day_files, read_file
from observer.kis.realtime import RealtimeDecoder

__all__ = ["JournalReplay", "capture_journal", "journal_source"]

_FRAME_EVENTS = 1_000  # envelopes per bus frame of the capture


@dataclass
class JournalReplay:
    """What a day's journal gave when parsed again."""

    capture: Path
    files: int = 0
    frames: int = 0  # WebSocket data frames read (of the TR asked for)
    events: int = 0  # events in the capture
    refused_frames: int = 0  # frames today's parser refuses whole
    refused_records: int = 0  # records refused within frames it reads
    by_tr: Counter[str] = field(default_factory=Counter)  # events per TR
    first_refusal: str = ""  # the first frame refused whole, and why

    def summary(self) -> str:
        """One line for a person."""
        trs = ", ".join(f"{tr} {n:,}" for tr, n in sorted(self.by_tr.items())) or "none"
        line = (
            f"{self.files} journal files, {self.frames:,} data frames, {self.events:,} events"
            f" ({trs}); refused: {self.refused_frames:,} frames whole,"
            f" {self.refused_records:,} records"
        )
        return line + (f"; the first refused: {self.first_refusal}" if self.first_refusal else "")


def journal_source(process: str, day: date, tr: str | None = None) -> str:
    """The bus source a process's replayed events come under."""
    return f"journal.{process}.{day:%Y%m%d}" + (f".{tr}" if tr else "")


def capture_journal(
    root: Path,
    day: date,
    out: Path,
    *,
    session_of: SessionOf = no_session,
    tr: str | None = None,
    process: str | None = None,
) -> JournalReplay:
    """Parse ``day``'s WebSocket data frames again into a new capture at ``out``.

    ``tr`` keeps one TR's frames, ``process`` one process's files; ``session_of`` gives each
    record its session, as the live process's did.

    Raises
    ------
    JournalError
        A journal file is damaged (a torn last record is left out, as the live run lost it).
    FileExistsError
        ``out`` exists.
    """
    result = JournalReplay(out)
    header = CaptureHeader(created_ns=0, origin="journal", note=f"{day.isoformat()} {tr or ''}")
    with CaptureWriter(out, header) as capture:
        for name, files in _by_process(day_files(root, day), process):
            result.files += len(files)
            source = journal_source(name, day, tr)
            pending: list[Envelope] = []
            events = _events(files, result, session_of, tr)
            for seq, (received_ns, event) in enumerate(events, 1):
                pending.append(Envelope(source, seq, received_ns, event))
                if len(pending) >= _FRAME_EVENTS:
                    capture.append(encode_frame(pending))
                    pending.clear()
            if pending:
                capture.append(encode_frame(pending))
    return result


def _by_process(files: list[Path], process: str | None) -> Iterator[tuple[str, list[Path]]]:
    """Each process's files of the day, in the order it wrote them."""
    by_name: dict[str, list[Path]] = {}
    for path in files:
        name = path.name.removesuffix(JOURNAL_SUFFIX).split(".", 1)[0]
        if process is None or name == process:
            by_name.setdefault(name, []).append(path)
    for name in sorted(by_name):
        yield name, sorted(by_name[name], key=_started)


def _started(path: Path) -> tuple[str, int]:
    """A file's start (``HHMMSS``) and pid, from its name."""
    _, stamp, pid = path.name.removesuffix(JOURNAL_SUFFIX).split(".")
    return stamp, int(pid)


def _events(
    files: list[Path], result: JournalReplay, session_of: SessionOf, tr: str | None
) -> Iterator[tuple[int, Event]]:
    decoders: dict[str, RealtimeDecoder] = {}
    for path in files:
        for record in read_file(path):
            if not _wanted(record, tr):
                continue
            result.frames += 1
            decoder = decoders.get(record.account)
            if decoder is None:
                decoder = decoders[record.account] = RealtimeDecoder(record.account, session_of)
            try:
                frame = decoder.decode(record.body.decode("utf-8"), record.received_ns)
            except (KisLayoutUnknown, KisProtocolError, UnicodeDecodeError) as exc:
                result.refused_frames += 1
                result.first_refusal = result.first_refusal or f"{record.tr}: {exc}"
                continue
            result.refused_records += len(frame.errors)
            events: list[Event] = [
                *frame.ticks,
                *frame.books,
                *frame.statuses,
                *frame.programs,
                *frame.expected,
                *frame.vis,
            ]
            result.events += len(events)
            result.by_tr[frame.tr_id] += len(events)
            for event in events:
                yield record.received_ns, event


def _wanted(record: JournalRecord, tr: str | None) -> bool:
    """A WebSocket data frame (of ``tr``, if given): PINGPONG and answers are not replayed."""
    return (
        record.channel == "ws"
        and record.body[:2] in (b"0|", b"1|")
        and (tr is None or record.tr == tr)
    )
