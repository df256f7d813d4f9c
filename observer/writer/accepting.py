"""Which envelopes of a batch the writer takes: exactly each source's next seqs, no hole.

`accept` is a pure function of the frames and the committed marks: an envelope is taken only if
its seq is its source's mark + 1; one at or below the mark is a repeat (a resend, or a conflict
the store checks); one beyond it waits for a resend. A producer's `SeqsLost` declaration, at seq
``last_seq``, is taken when ``first_seq`` is the mark + 1, and stands for the whole range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TypeVar

import msgspec

from bus.codec import BusFrame, envelope_digests
from bus.envelope import Envelope
from bus.events import SeqsLost
from observer.writer.identity import Repeat

__all__ = ["Accepted", "accept"]

_SEQ = attrgetter("seq")
_ENVELOPES: Callable[[BusFrame], list[Envelope]] = attrgetter("envelopes")
_PARTS: Callable[[BusFrame], list[msgspec.Raw]] = attrgetter("parts")
T = TypeVar("T")


@dataclass(slots=True)
class Accepted:
    """What a batch of frames adds: per frame the indices of its new envelopes."""

    frames: list[tuple[BusFrame, list[int]]] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)  # new high-water marks
    holes: set[str] = field(default_factory=set)  # sources whose frames started past the mark
    skipped: int = 0  # envelopes past a hole (seq > mark + 1), left for a resend
    first_skipped: tuple[str, int, int] | None = None  # the first's source, seq, mark then
    repeats: list[Repeat] = field(default_factory=list)  # seq <= mark
    conflicts: int = 0  # repeats that differ from what was committed at their seq
    conflicted: Counter[str] = field(default_factory=Counter)  # conflicts per source
    first_conflict: tuple[str, int] | None = None  # the first's source and seq
    own: int = 0  # the writer's own envelopes added to `frames` (its conflict alert)
    recovered: int = 0  # of `count`, committed by an earlier try that failed (`Store.apply`)

    @property
    def envelopes(self) -> list[Envelope]:
        """Accepted envelopes in arrival order."""
        return _taken(self.frames, _ENVELOPES)

    @property
    def digests(self) -> list[bytes]:
        """The digest of each accepted envelope, in the order of `envelopes`."""
        parts: list[msgspec.Raw] = _taken(self.frames, _PARTS)
        return envelope_digests(parts)

    @property
    def count(self) -> int:
        """Number of accepted envelopes."""
        return sum(len(taken) for _, taken in self.frames)

    @property
    def duplicates(self) -> int:
        """Envelopes at or below their source's mark (resends, or conflicts)."""
        return len(self.repeats)

    def published(self) -> list[tuple[BusFrame, list[int]]]:
        """`frames` without the envelopes whose event did not decode (the feed's part).

        A subscriber decodes each message whole: one such envelope would cost it the others.
        """
        return [
            (frame, [i for i in taken if i not in frame.undecodable])
            if frame.undecodable
            else (frame, taken)
            for frame, taken in self.frames
        ]

    def repeated(self) -> dict[str, tuple[int, int]]:
        """Per source with repeats: how many are the same bytes as committed, how many not."""
        repeats = Counter(env.source for env, _ in self.repeats)
        return {s: (n - self.conflicted[s], self.conflicted[s]) for s, n in repeats.items()}


def _taken(
    frames: list[tuple[BusFrame, list[int]]], field: Callable[[BusFrame], list[T]]
) -> list[T]:
    """The taken items of one field of each frame, a whole frame's at once."""
    items: list[T] = []
    for frame, taken in frames:
        values = field(frame)
        items += values if len(taken) == len(values) else [values[i] for i in taken]
    return items


def accept(frames: Iterable[BusFrame], marks: dict[str, int]) -> Accepted:
    """Pick the envelopes that extend each source's mark without a hole (pure function)."""
    result = Accepted()
    for frame in frames:
        if _extends(frame, result.marks, marks):
            last = frame.envelopes[-1]
            result.frames.append((frame, list(range(len(frame.envelopes)))))
            result.marks[last.source] = last.seq
            continue
        taken: list[int] = []
        for index, env in enumerate(frame.envelopes):
            mark = result.marks.get(env.source, marks.get(env.source, 0))
            if env.seq <= mark:
                result.repeats.append((env, frame.parts[index]))
            elif env.seq == mark + 1 or _declares(env, mark):
                taken.append(index)
                result.marks[env.source] = env.seq
            else:
                result.holes.add(env.source)
                result.skipped += 1
                if result.first_skipped is None:
                    result.first_skipped = (env.source, env.seq, mark)
        if taken:
            result.frames.append((frame, taken))
    return result


def _declares(env: Envelope, mark: int) -> bool:
    """Whether ``env`` declares the seqs from ``mark + 1`` through its own seq lost."""
    event = env.event
    return type(event) is SeqsLost and event.first_seq == mark + 1 and event.last_seq == env.seq


def _extends(frame: BusFrame, new: dict[str, int], marks: dict[str, int]) -> bool:
    """Whether the frame is one source's next seqs, all taken (the usual frame, at C speed)."""
    if len(frame.sources) != 1:
        return False
    (source,) = frame.sources
    first = frame.envelopes[0].seq
    return first == new.get(source, marks.get(source, 0)) + 1 and list(
        map(_SEQ, frame.envelopes)
    ) == list(range(first, first + len(frame.envelopes)))
