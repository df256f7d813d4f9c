"""A data frame's record count must match its records: refused whole, never mis-sliced."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from observer.calendar.clock import ManualClock
from observer.errors import KisProtocolError
from observer.kis.realtime import MAX_TRAILING, RealtimeDecoder, parse_frame
from observer.kis.schemas import REALTIME_FIELDS
from observer.kis.stream import KisStream
from tests.kis.test_kis_parse import TRADE
from tests.kis.test_kis_stream import FakeSession, Heard, serve, tokens, until


def _frame(tr_id: str, records: int, extra: int, count: int) -> tuple[str, list[list[str]]]:
    """``records`` records of the TR's fields and ``extra`` more, each value naming its place,
    in a frame that says ``count``; and the records as a right split keeps them."""
    width = len(REALTIME_FIELDS[tr_id])
    rows = [[f"{i}.{j}" for j in range(width + extra)] for i in range(records)]
    payload = "^".join(value for row in rows for value in row)
    return f"0|{tr_id}|{count:03d}|{payload}", [row[:width] for row in rows]


@given(
    tr_id=st.sampled_from(sorted(REALTIME_FIELDS)),
    records=st.integers(1, 60),
    count=st.integers(1, 9999),
)
@example(tr_id="H0STCNT0", records=3, count=2)  # the count one short: a record was lost
@example(tr_id="H0STCNT0", records=2, count=1)
@example(tr_id="H0STCNT0", records=24, count=23)  # 24 x 46 = 23 x 48 fields
def test_kis_records_under_a_count_that_does_not_match_them_are_refused_never_sliced(
    tr_id: str, records: int, count: int
) -> None:
    """Records of exactly the known fields (KIS's today): refused whole under any other count,
    but one whose fields divide into records a few fields wider (24 x 46 = 23 x 48), which
    no reading tells from KIS appending fields."""
    text, kept = _frame(tr_id, records, 0, count)
    width = len(REALTIME_FIELDS[tr_id])
    stride, rest = divmod(records * width, count)
    if count != records and not rest and width < stride <= width + MAX_TRAILING:
        assert len(parse_frame(text).records) == count
        return
    if count == records:
        assert parse_frame(text).records == kept
        decoded = RealtimeDecoder("acct1").decode(text, 1)  # each record accounted for
        assert len(decoded.ticks) + len(decoded.books) + len(decoded.errors) == count
        return
    with pytest.raises(KisProtocolError, match="record count"):
        parse_frame(text)
    with pytest.raises(KisProtocolError, match="record count"):
        RealtimeDecoder("acct1").decode(text, 1)


@given(
    tr_id=st.sampled_from(sorted(REALTIME_FIELDS)),
    records=st.integers(1, 60),
    extra=st.integers(1, MAX_TRAILING),
    count=st.integers(1, 9999),
)
@example(tr_id="H0STCNT0", records=3, extra=2, count=2)
@example(tr_id="H0STASP0", records=7, extra=2, count=6)
@example(tr_id="H0STASP0", records=10, extra=7, count=10)  # also 11 records of 60
@example(tr_id="H0STCNT0", records=9, extra=2, count=9)  # also 8 of 54: was refused
def test_records_with_trailing_fields_are_kept_under_their_own_count(
    tr_id: str, records: int, extra: int, count: int
) -> None:
    """Records a few fields wider (KIS added some) are kept under their own count, whatever
    other count their fields would also make (refusing those dropped valid frames of counts
    9, 13, 17, 18 once KIS added two fields); any other count is refused, but one whose
    fields divide within the tolerance."""
    text, kept = _frame(tr_id, records, extra, count)
    width = len(REALTIME_FIELDS[tr_id])
    if count == records:
        frame = parse_frame(text)
        assert frame.tr_id == tr_id and frame.records == kept
        return
    stride, rest = divmod(records * (width + extra), count)
    if not rest and width <= stride <= width + MAX_TRAILING:
        assert len(parse_frame(text).records) == count
        return
    with pytest.raises(KisProtocolError, match="record count"):
        parse_frame(text)


@given(
    tr_id=st.sampled_from(sorted(REALTIME_FIELDS)),
    records=st.integers(1, 5),
    extra=st.integers(MAX_TRAILING + 1, 100),
)
def test_more_trailing_fields_than_kis_plausibly_added_are_refused(
    tr_id: str, records: int, extra: int
) -> None:
    text, _ = _frame(tr_id, records, extra, records)
    with pytest.raises(KisProtocolError, match="record count"):
        parse_frame(text)


def test_a_few_trailing_fields_on_a_matching_count_are_tolerated() -> None:
    widened = "^".join(f"{TRADE}^X^Y^Z" for _ in range(3))
    decoded = RealtimeDecoder("acct1").decode(f"0|H0STCNT0|003|{widened}", 1)
    assert [t.symbol for t in decoded.ticks] == ["005930"] * 3 and not decoded.errors


def test_the_stream_drops_and_counts_a_short_counted_frame_and_stays_up(tmp_path: Path) -> None:
    """The frame error path: logged, counted in ``dropped`` (Track B's ``dropped_frames``),
    nothing of it delivered; the frames around it are."""
    session = FakeSession()
    heard = Heard()

    async def scenario() -> KisStream:
        clock = ManualClock(0)
        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)  # type: ignore[arg-type]
            await stream.subscribe("H0STCNT0", "005930")
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: stream.registered)
            three = "^".join([TRADE] * 3)
            await session.connections[0].send_str(f"0|H0STCNT0|002|{three}")
            await session.connections[0].send_str(f"0|H0STCNT0|003|{three}")
            await until(lambda: stream.frames == 2)
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert stream.dropped == 1 and len(session.connections) == 1
    assert [len(frame.ticks) for frame, _ in heard.frames] == [3]  # only the matching one
