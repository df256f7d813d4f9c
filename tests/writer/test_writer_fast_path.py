"""The writer's fast paths (per frame, per run) equal the envelope-by-envelope rules."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from bus.codec import BusFrame, decode_parts, encode_frame, envelope_digest
from bus.envelope import MAX_SEQ, MAX_SOURCE_LENGTH, Envelope
from bus.errors import FrameError
from bus.events import Alert
from observer.writer.batch import Batch
from observer.writer.identity import DIGEST_SPAN, digest_rows
from observer.writer.rows import HANDLERS, _Direct, rows_for
from observer.writer.store import accept
from tests.strategies import ENVELOPES, EVENTS

EVENT = Alert(severity="info", code="X", message="m")
SOURCES = st.sampled_from(["a", "b", "c"])


def frame_of(ids: list[tuple[str, int]]) -> BusFrame:
    return decode_parts(encode_frame([Envelope(s, seq, 0, EVENT) for s, seq in ids]))


IDS = st.lists(st.tuples(SOURCES, st.integers(1, 12)), max_size=5)
RUNS = st.builds(
    lambda source, first, n: [(source, first + i) for i in range(n)],
    SOURCES,
    st.integers(1, 12),
    st.integers(1, 5),
)
FRAMES = st.lists(st.one_of(IDS, RUNS).map(frame_of), max_size=6)
MARKS = st.dictionaries(SOURCES, st.integers(0, 10))


def accept_one_by_one(
    frames: list[BusFrame], marks: dict[str, int]
) -> tuple[list[list[int]], dict[str, int], set[str], list[tuple[str, int]]]:
    """The rule, envelope by envelope: take exactly the mark + 1, skip repeats, stop at holes."""
    taken_by_frame, new, holes, repeats = [], {}, set(), []
    for frame in frames:
        taken = []
        for index, env in enumerate(frame.envelopes):
            mark = new.get(env.source, marks.get(env.source, 0))
            if env.seq <= mark:
                repeats.append((env.source, env.seq))
            elif env.seq == mark + 1:
                taken.append(index)
                new[env.source] = env.seq
            else:
                holes.add(env.source)
        if taken:
            taken_by_frame.append(taken)
    return taken_by_frame, new, holes, repeats


@given(FRAMES, MARKS)
def test_accept_takes_what_the_envelope_by_envelope_rule_takes(
    frames: list[BusFrame], marks: dict[str, int]
) -> None:
    result = accept(frames, marks)
    taken, new, holes, repeats = accept_one_by_one(frames, marks)
    assert [t for _, t in result.frames] == taken
    assert (result.marks, result.holes) == (new, holes)
    assert [(env.source, env.seq) for env, _ in result.repeats] == repeats
    expected = [f.envelopes[i] for f, t in result.frames for i in t]
    assert result.envelopes == expected
    assert result.digests == [envelope_digest(f.parts[i]) for f, t in result.frames for i in t]


def rows_one_by_one(envelopes: list[Envelope]) -> Batch:
    batch = Batch()
    for env in envelopes:
        HANDLERS[type(env.event)](env, batch)
    return batch


@given(st.lists(ENVELOPES, max_size=12))
def test_rows_built_per_run_equal_rows_built_per_envelope(envelopes: list[Envelope]) -> None:
    fast, slow = rows_for(envelopes), rows_one_by_one(envelopes)
    assert fast.inserts == slow.inserts
    assert fast.upserts == slow.upserts
    assert fast.requests == slow.requests


@given(EVENTS, st.text(min_size=1, max_size=5), st.integers(1, 99), st.integers(0, 99))
def test_a_direct_row_is_the_event_fields_then_the_envelope_identity(
    event: object, source: str, seq: int, ts: int
) -> None:
    handler = HANDLERS[type(event)]
    if not isinstance(handler, _Direct):
        return
    (row,) = handler.rows([Envelope(source, seq, ts, event)])  # type: ignore[arg-type]
    fields = msgspec.structs.asdict(event)  # type: ignore[call-overload]
    assert len(handler.columns) == len(row) == len(fields) + 3
    assert list(row) == [*fields.values(), source, seq, ts]
    assert handler.columns[-3:] == ("source", "seq", "produced_ns")


def digest_rows_one_by_one(envelopes: list[Envelope], digests: list[bytes]) -> list[dict]:
    runs: dict[str, list[bytes]] = {}
    firsts: dict[str, int] = {}
    for env, digest in zip(envelopes, digests, strict=True):
        runs.setdefault(env.source, []).append(digest)
        firsts.setdefault(env.source, env.seq)
    rows = []
    for source, run in runs.items():
        for start in range(0, len(run), DIGEST_SPAN):
            chunk = run[start : start + DIGEST_SPAN]
            first = firsts[source] + start
            rows.append(
                {
                    "source": source,
                    "first_seq": first,
                    "last_seq": first + len(chunk) - 1,
                    "digests": b"".join(chunk),
                }
            )
    return rows


@given(st.lists(st.tuples(SOURCES, st.integers(1, 4)), max_size=8), MARKS)
def test_digest_rows_per_source_run_equal_digest_rows_per_envelope(
    chunks: list[tuple[str, int]], marks: dict[str, int]
) -> None:
    # A commit's envelopes: each source's next seqs, in chunks interleaved with other sources.
    envelopes, next_seq = [], {s: marks.get(s, 0) + 1 for s in "abc"}
    for source, n in chunks:
        envelopes += [Envelope(source, next_seq[source] + i, 0, EVENT) for i in range(n)]
        next_seq[source] += n
    digests = [bytes([i % 256]) * 16 for i in range(len(envelopes))]
    assert digest_rows(envelopes, digests) == digest_rows_one_by_one(envelopes, digests)


IDENTITIES = st.tuples(
    st.one_of(SOURCES, st.sampled_from(["", "a\x00b", "x" * (MAX_SOURCE_LENGTH + 1)])),
    st.one_of(st.integers(1, 9), st.sampled_from([0, -1, MAX_SEQ, MAX_SEQ + 1])),
)


@given(st.lists(IDENTITIES, max_size=6))
def test_a_frame_is_refused_exactly_when_one_identity_is_invalid(
    ids: list[tuple[str, int]],
) -> None:
    invalid = any(
        not (0 < seq <= MAX_SEQ and 0 < len(s) <= MAX_SOURCE_LENGTH) or "\x00" in s
        for s, seq in ids
    )
    frame = encode_frame([Envelope(s, seq, 0, EVENT) for s, seq in ids])
    try:
        decoded = decode_parts(frame)
    except FrameError as exc:
        assert invalid and "invalid identity" in str(exc)
    else:
        assert not invalid
        assert decoded.sources == {s for s, _ in ids}
