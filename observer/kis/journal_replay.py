"""A day of the raw journal parsed again with today's parser, as a capture of bus frames.

Its WebSocket data frames give Track B's records; Track A's and the flows and investor jobs'
REST answers give their events as those processes published them (`observer.kis.answer_replay`).

``observer journal replay`` writes the capture and commits it into a scratch database
through the writer's own code (`observer.writer.replay.replay_into_db`); the capture can
also go onto a live bus (``observer replay F --as-producer``). The events of a process's
journal come under the source ``journal.<process>.<YYYYMMDD>`` (``.<TR>`` with a TR
filter), numbered in the order they were received: replaying the same day again gives the
same envelopes, which a database already holding them counts as duplicates.

With ``checks`` (Track B's, `observer.kis.record_checks`), a replayed day runs the checks the
live run ran, so its refusals come out the same, counted by kind and not stored: a record is
asked for once KIS's answer registered it, until `RELEASE_GRACE_S` after its release was
confirmed (the journal keeps both answers, `KisStream.holds`), and a trade's limits are those
Track A's snapshots gave by the time it arrived (``limits``, read from the live database).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bus.capture import CaptureHeader, CaptureWriter
from bus.codec import encode_frame
from bus.envelope import Envelope
from bus.events import (
    Event,
    OrderBook,
    TradeTick,
)
from observer.calendar.venues import SessionOf, no_session
from observer.errors import KisLayoutUnknown, KisProtocolError
from observer.kis.answer_replay import AnswerReplay, TrackARun, Unplaced
from observer.kis.journal import JOURNAL_SUFFIX, JournalRecord, day_files, read_file
from observer.kis.parse import parse_control
from observer.kis.realtime import KeyedRecord, RealtimeDecoder
from observer.kis.record_checks import UNREGISTERED, Checks, registered_as
from observer.kis.registrations import RELEASE_GRACE_S

__all__ = ["JournalReplay", "Limits", "TrackARun", "capture_journal", "journal_source"]

_FRAME_EVENTS = 1_000  # envelopes per bus frame of the capture
_NS = 1_000_000_000
_REGISTERED = ("OPSP0000", "OPSP0002")  # registered (0002: already was)
_RELEASED = ("OPSP0001", "OPSP0003")  # released, or was not there
# symbol -> [(when Track A's snapshot gave them, (lower, upper))], oldest first
Limits = Mapping[str, Sequence[tuple[int, tuple[int, int]]]]


@dataclass
class JournalReplay:
    """What a day's journal gave when parsed again."""

    capture: Path
    files: int = 0
    processes: list[str] = field(default_factory=list)  # the processes whose files were read
    frames: int = 0  # WebSocket data frames read (of the TR asked for)
    answers: int = 0  # REST answers read (those `AnswerReplay` reads, of the TR asked for)
    events: int = 0  # events in the capture
    refused_frames: int = 0  # frames today's parser refuses whole
    refused_answers: int = 0  # answers KIS gave that today's parser refuses
    unplaced: int = 0  # answers read in a context the replay does not know (`Unplaced`)
    first_unplaced: str = ""  # the first of them, and why
    refused_records: int = 0  # records refused within frames it reads
    rejected: Counter[str] = field(default_factory=Counter)  # by Track B's checks, by kind
    by_tr: Counter[str] = field(default_factory=Counter)  # events per TR
    first_refusal: str = ""  # the first frame or answer refused whole, and why

    def summary(self) -> str:
        """One line for a person."""
        trs = ", ".join(f"{tr} {n:,}" for tr, n in sorted(self.by_tr.items())) or "none"
        line = (
            f"{self.files} journal files, {self.frames:,} data frames, {self.answers:,} REST"
            f" answers, {self.events:,} events ({trs}); refused: {self.refused_frames:,} frames"
            f" whole, {self.refused_records:,} records, {self.refused_answers:,} answers"
        )
        if self.unplaced:
            line += f"; {self.unplaced:,} answers not placed ({self.first_unplaced})"
        if self.rejected:
            kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.rejected.items()))
            line += f"; rejected by Track B's checks: {kinds}"
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
    checks: Checks | None = None,
    limits: Limits | None = None,
    track_a: TrackARun | None = None,
) -> JournalReplay:
    """Parse ``day``'s WebSocket data frames and REST answers again into a capture at ``out``.

    ``tr`` keeps one TR's frames or answers, ``process`` one process's files; ``session_of``
    gives each record its session, as the live process's did. ``checks``: what Track B refused is
    refused again (see the module), counted in `JournalReplay.rejected`; None: every record.
    ``track_a``: the live run's cycles and universe, where Track A's answers go; None: they
    are counted as unplaced.

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
            result.processes.append(name)
            source = journal_source(name, day, tr)
            pending: list[Envelope] = []
            screen = None if checks is None else _Screen(checks, limits or {}, result.rejected)
            answers = AnswerReplay(name, track_a, session_of)
            events = _events(files, result, session_of, tr, screen, answers)
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


class _Screen:
    """Track B's checks over one process's replayed records (see the module)."""

    def __init__(self, checks: Checks, limits: Limits, rejected: Counter[str]) -> None:
        self.checks = checks
        self.limits = limits
        self.rejected = rejected
        # account -> registration (TR, key) -> held until (UTC ns; 0: until released)
        self.held: dict[str, dict[tuple[str, str], int]] = {}

    def answer(self, record: JournalRecord) -> None:
        """A control answer: a registration KIS made or released."""
        try:
            control = parse_control(record.body.decode("utf-8"))
        except (KisProtocolError, UnicodeDecodeError):
            return  # refused live too, as a frame: nothing registered by it
        held = self.held.setdefault(record.account, {})
        key = (control.tr_id, control.tr_key)
        if control.msg_cd in _REGISTERED:
            held[key] = 0
        elif control.msg_cd in _RELEASED and key in held:
            held[key] = record.received_ns + int(RELEASE_GRACE_S * _NS)

    def passes(self, account: str, tr_id: str, event: Event, received_ns: int) -> bool:
        """Whether Track B would have stored ``event``; a refusal is counted by its kind."""
        if isinstance(event, TradeTick | OrderBook):
            asked = self._holds(account, tr_id, event.symbol, received_ns)
            if isinstance(event, TradeTick):
                fault = self.checks.trade(event, asked, self._limits(event.symbol, received_ns))
            else:
                fault = self.checks.book(event, asked)
        elif isinstance(event, KeyedRecord):
            asked = self._holds(account, tr_id, registered_as(event), received_ns)
            fault = None if asked else (UNREGISTERED, "")
        else:
            fault = None
        if fault is not None:
            self.rejected[fault[0]] += 1
        return fault is None

    def _holds(self, account: str, tr_id: str, key: str, received_ns: int) -> bool:
        until = self.held.get(account, {}).get((tr_id, key))
        return until is not None and (until == 0 or received_ns < until)

    def _limits(self, symbol: str, received_ns: int) -> tuple[int, int] | None:
        """The day's limits Track A's snapshots had given by ``received_ns``."""
        given = self.limits.get(symbol, ())
        at = bisect.bisect_right(given, received_ns, key=lambda g: g[0])
        return given[at - 1][1] if at else None


def _events(
    files: list[Path],
    result: JournalReplay,
    session_of: SessionOf,
    tr: str | None,
    screen: _Screen | None,
    answers: AnswerReplay,
) -> Iterator[tuple[int, Event]]:
    decoders: dict[str, RealtimeDecoder] = {}
    for path in files:
        for record in read_file(path):
            if screen is not None and _is_answer(record):
                screen.answer(record)
            if _rest_wanted(record, answers, tr):
                yield from _answer_events(record, answers, result)
                continue
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
                *frame.records,
            ]
            if screen is not None:
                received, account = record.received_ns, record.account
                events = [e for e in events if screen.passes(account, frame.tr_id, e, received)]
            result.events += len(events)
            result.by_tr[frame.tr_id] += len(events)
            for event in events:
                yield record.received_ns, event


def _answer_events(
    record: JournalRecord, answers: AnswerReplay, result: JournalReplay
) -> Iterator[tuple[int, Event]]:
    """What a REST answer's job published of it, counted."""
    result.answers += 1
    try:
        events = answers.events(record)
    except KisProtocolError as exc:
        result.refused_answers += 1
        result.first_refusal = result.first_refusal or f"{record.tr}: {exc}"
        return
    except Unplaced as exc:
        result.unplaced += 1
        result.first_unplaced = result.first_unplaced or f"{record.tr}: {exc}"
        return
    result.events += len(events)
    result.by_tr[record.tr] += len(events)
    for event in events:
        yield record.received_ns, event


def _rest_wanted(record: JournalRecord, answers: AnswerReplay, tr: str | None) -> bool:
    """A REST answer whose process's events are replayed (of ``tr``, if given)."""
    return (
        record.channel == "rest"
        and record.tr in answers.readers
        and (tr is None or record.tr == tr)
    )


def _is_answer(record: JournalRecord) -> bool:
    """A WebSocket control answer (JSON), not a data frame."""
    return record.channel == "ws" and record.body[:1] == b"{"


def _wanted(record: JournalRecord, tr: str | None) -> bool:
    """A WebSocket data frame (of ``tr``, if given): PINGPONG and answers are not replayed."""
    return (
        record.channel == "ws"
        and record.body[:2] in (b"0|", b"1|")
        and (tr is None or record.tr == tr)
    )
