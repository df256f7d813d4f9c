"""A frame's layout comes from its record width: known widths read, any other refused whole.

Each real-time TR has the layouts `REALTIME_LAYOUTS` lists (2026-05 and 2026-09); a frame's
record width is its fields / its record count, and a width no layout has (a miscount, fields
KIS appended that the client does not know) is `KisLayoutUnknown`, never sliced.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from observer.calendar.clock import ManualClock
from observer.errors import KisLayoutUnknown
from observer.kis.feeds import Feed
from observer.kis.realtime import RealtimeDecoder, parse_frame
from observer.kis.schemas import REALTIME_LAYOUTS
from observer.kis.stream import KisStream
from tests.kis.test_kis_parse import BOOK, TRADE
from tests.kis.test_kis_stream import FakeSession, Heard, serve, tokens
from tests.support import until

_LAYOUTS = [(tr, width) for tr, by_width in sorted(REALTIME_LAYOUTS.items()) for width in by_width]
_SAMPLES = {"H0STCNT0": TRADE, "H0STASP0": BOOK}  # the oldest layout's records
# Values of the newer layouts' extra fields: mid-point (price, quantity, side) and session.
_EXTRA = {"H0STCNT0": ["2"], "H0STASP0": ["73150.5", "1200", "1", "2"]}


def _frame(tr_id: str, records: int, width: int, count: int) -> tuple[str, list[list[str]]]:
    """``records`` records ``width`` fields wide, each value naming its place, in a frame
    that says ``count``; and the records as a right split keeps them."""
    rows = [[f"{i}.{j}" for j in range(width)] for i in range(records)]
    payload = "^".join(value for row in rows for value in row)
    return f"0|{tr_id}|{count:03d}|{payload}", rows


def _known(tr_id: str, total: int, count: int) -> bool:
    width, rest = divmod(total, count)
    return not rest and width in REALTIME_LAYOUTS[tr_id]


@given(
    layout=st.sampled_from(_LAYOUTS),
    records=st.integers(1, 60),
    count=st.integers(1, 9999),
)
@example(layout=("H0STCNT0", 46), records=3, count=2)  # the count one short: a record lost
@example(layout=("H0STCNT0", 46), records=2, count=1)
@example(layout=("H0STCNT0", 46), records=24, count=23)  # 24 x 46 = 23 x 48: no layout's
@example(layout=("H0STCNT0", 46), records=47, count=46)  # 47 x 46 = 46 x 47: the newer one
def test_kis_records_under_a_count_that_does_not_match_them_are_refused_never_sliced(
    layout: tuple[str, int], records: int, count: int
) -> None:
    """Records of a known layout: read under their own count; under any other, refused whole
    (but where the fields make records of another known layout, which no reading tells)."""
    tr_id, width = layout
    text, kept = _frame(tr_id, records, width, count)
    if count == records:
        frame = parse_frame(text)
        assert frame.records == kept and frame.layout.width == width
        decoded = RealtimeDecoder("acct1").decode(text, 1)  # each record accounted for
        events = [*decoded.ticks, *decoded.books, *decoded.statuses, *decoded.programs]
        assert len(events) + len(decoded.errors) == count
        return
    if _known(tr_id, records * width, count):
        assert len(parse_frame(text).records) == count
        return
    with pytest.raises(KisLayoutUnknown, match="refused whole") as refused:
        parse_frame(text)
    assert refused.value.tr_id == tr_id and refused.value.count == count
    with pytest.raises(KisLayoutUnknown):
        RealtimeDecoder("acct1").decode(text, 1)


@given(
    layout=st.sampled_from(_LAYOUTS),
    records=st.integers(1, 8),
    extra=st.integers(1, 100),
)
@example(layout=("H0STCNT0", 47), records=3, extra=1)  # 48: no layout's
@example(layout=("H0STASP0", 59), records=2, extra=2)
def test_a_width_no_layout_has_is_refused_whole_naming_it(
    layout: tuple[str, int], records: int, extra: int
) -> None:
    """Fields appended beyond every known layout: the frame refused whole, its width named
    (never the known fields kept and the rest cut)."""
    tr_id, width = layout
    wider = width + extra
    text, _ = _frame(tr_id, records, wider, records)
    if wider in REALTIME_LAYOUTS[tr_id]:
        assert parse_frame(text).layout.width == wider
        return
    with pytest.raises(KisLayoutUnknown) as refused:
        parse_frame(text)
    assert (refused.value.width, refused.value.width_text) == (wider, str(wider))


def test_fields_that_make_no_whole_records_are_refused_with_no_width() -> None:
    with pytest.raises(KisLayoutUnknown) as refused:
        parse_frame(f"0|H0STCNT0|002|{TRADE}^{TRADE}^X")
    assert refused.value.width is None and refused.value.width_text == "uneven"


@given(
    tr_id=st.sampled_from(sorted(_SAMPLES)),
    generation=st.sampled_from(["2026-05", "2026-09"]),
    count=st.integers(1, 30),
)
def test_any_record_of_a_known_layout_at_any_count_reads_the_same_values(
    tr_id: str, generation: str, count: int
) -> None:
    """A record reads the same in either generation and at any record count; the newer
    layout's fields are read where present, None in the older one."""
    record = _SAMPLES[tr_id] + ("^" + "^".join(_EXTRA[tr_id]) if generation == "2026-09" else "")
    text = f"0|{tr_id}|{count:03d}|{'^'.join([record] * count)}"
    frame = parse_frame(text)
    assert frame.layout.generation == generation and len(frame.records) == count
    decoded = RealtimeDecoder("acct1").decode(text, 1_700_000_000 * 10**9)
    assert not decoded.errors
    events = [*decoded.ticks, *decoded.books]
    assert len(events) == count and len(set(events)) == 1  # every record reads alike
    oldest = RealtimeDecoder("acct1").decode(
        f"0|{tr_id}|001|{_SAMPLES[tr_id]}", 1_700_000_000 * 10**9
    )
    base = [*oldest.ticks, *oldest.books][0]
    newer = {"market_session", "mid_price", "mid_qty", "mid_side"}
    same = {
        f: getattr(base, f)
        for f in base.__struct_fields__
        if f not in newer and f != "trading_session"
    }
    assert {f: getattr(events[0], f) for f in same} == same
    # The newer layout's MARKET_CLS_CODE names the session (2: regular); the older has none,
    # and a decoder without the venues' hours gives none
    assert events[0].trading_session == ("regular" if generation == "2026-09" else "")
    extra = {f: getattr(events[0], f) for f in newer if f in base.__struct_fields__}
    if generation == "2026-05":
        assert set(extra.values()) == {None}
    elif tr_id == "H0STCNT0":
        assert extra == {"market_session": "2"}
    else:
        assert extra == {
            "mid_price": Decimal("73150.5"),
            "mid_qty": 1200,
            "mid_side": "1",
            "market_session": "2",
        }


def test_a_newer_layouts_fields_sent_empty_read_as_none() -> None:
    decoded = RealtimeDecoder("acct1").decode(f"0|H0STASP0|001|{BOOK}^^^^", 1)
    (book,) = decoded.books
    assert (book.mid_price, book.mid_qty, book.mid_side, book.market_session) == (None,) * 4


def test_a_newer_layouts_field_that_does_not_read_costs_its_record() -> None:
    decoded = RealtimeDecoder("acct1").decode(f"0|H0STASP0|001|{BOOK}^x^1^1^2", 1)
    assert not decoded.books and "MID_PRC" in str(decoded.errors[0].error)


def test_the_stream_drops_and_counts_a_short_counted_frame_and_stays_up(tmp_path: Path) -> None:
    """The frame error path: logged, counted in ``dropped`` (Track B's ``dropped_frames``),
    nothing of it delivered; the frames around it are."""
    session = FakeSession()
    heard = Heard()

    async def scenario() -> KisStream:
        clock = ManualClock(0)
        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)  # type: ignore[arg-type]
            await stream.subscribe(Feed("trades", "KRX", "005930"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: stream.registered)
            three = "^".join([TRADE] * 3)  # under count 2: 69 fields wide, no layout's
            await session.connections[0].send_str(f"0|H0STCNT0|002|{three}")
            await session.connections[0].send_str(f"0|H0STCNT0|003|{three}")
            await until(lambda: stream.frames == 2)
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert stream.dropped == 1 and len(session.connections) == 1
    assert [len(frame.ticks) for frame, _ in heard.frames] == [3]  # only the matching one
