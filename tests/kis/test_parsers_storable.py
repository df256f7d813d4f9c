"""What KIS's parsers make fits the database's columns, or is a `KisProtocolError`.

Every integer may have any size and every field may be any string: the real-time decoder
(by fields), the REST parsers, gap recovery's bars and the universe's metrics either give
values their columns hold or refuse, never anything else.
"""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import String

from bus.events import (
    Event,
    MarketStatus,
    OrderBook,
    PriceSnapshot,
    ProgramTrade,
    TradeTick,
    ViNotice,
)
from observer.db import models as m
from observer.errors import KisProtocolError
from observer.kis.parse import kst_to_utc_ns, price_snapshot
from observer.kis.realtime import (
    BOOK_READERS,
    TRADE_READERS,
    RealtimeDecoder,
    decode_order_book,
    decode_trade,
    parse_frame,
)
from observer.kis.schemas import H0STASP0_FIELDS, H0STCNT0_FIELDS, CurrentPriceOutput
from tests.kis.test_kis_parse import BOOK, TRADE
from tests.samples import T0

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


ANY_INT = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([INT64_MAX, 2**63, INT64_MIN, INT64_MIN - 1, 2**64, 10**16, -(10**16)]),
)
DECIMAL_TEXT = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1e16", "-9999999999999999.99999999", "0.000000001", "1E+999999", "NaN"]),
)
FIELD = st.one_of(ANY_INT.map(str), DECIMAL_TEXT, st.text(max_size=24))


def mutated(base: list[str]) -> st.SearchStrategy[list[str]]:
    """``base`` with some fields replaced by hostile values (the others stay valid)."""
    replacements = st.dictionaries(st.integers(0, len(base) - 1), FIELD, min_size=1, max_size=6)
    return replacements.map(lambda r: [r.get(i, value) for i, value in enumerate(base)])


MODEL_OF: dict[type[Event], type[m.Base]] = {
    TradeTick: m.TradeTickRow,
    OrderBook: m.OrderBookRow,
    PriceSnapshot: m.PriceSnapshotRow,
    MarketStatus: m.MarketStatusRow,
    ProgramTrade: m.ProgramTradeRow,
    ViNotice: m.ViNoticeRow,
}


def assert_storable(event: Event) -> None:
    """Every value fits its column: BIGINT, NUMERIC(24,8), VARCHAR(n) without NUL."""
    assert_fits(MODEL_OF[type(event)], msgspec.structs.asdict(event))


def assert_fits(model: type[m.Base], row: dict[str, object]) -> None:
    """Every value of ``row`` (a tuple's items each) fits its column of ``model``'s table."""
    table = model.__table__
    for name, value in row.items():
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            if isinstance(item, bool):
                continue
            if isinstance(item, int):
                assert INT64_MIN <= item <= INT64_MAX, (name, item)
            elif isinstance(item, Decimal):
                assert item.is_finite() and abs(item) < 10**16, (name, item)
                assert item == item.quantize(Decimal("1E-8")), (name, item)
            elif isinstance(item, str):
                column = table.c[name].type
                assert isinstance(column, String) and column.length is not None
                assert len(item) <= column.length and "\x00" not in item, (name, item)


@given(mutated(TRADE.split("^")))
def test_decode_trade_stays_in_range_or_refuses(record: list[str]) -> None:
    try:
        tick = decode_trade(record, received_ns=T0, account="acct1")
    except KisProtocolError:
        return
    assert_storable(tick)


@given(mutated(BOOK.split("^")))
def test_decode_order_book_stays_in_range_or_refuses(record: list[str]) -> None:
    try:
        book = decode_order_book(record, "20261120", received_ns=T0, account="acct1")
    except KisProtocolError:
        return
    assert_storable(book)


# The 2026-09 layout's records: the session code, and the book's mid-point before it.
TRADE_2026_09, BOOK_2026_09 = f"{TRADE}^2", f"{BOOK}^73150.5^1200^1^2"


@given(mutated(TRADE_2026_09.split("^")), mutated(BOOK_2026_09.split("^")))
def test_the_newer_layouts_fields_stay_in_range_or_refuse(
    trade: list[str], book: list[str]
) -> None:
    with contextlib.suppress(KisProtocolError):  # a refusal is an answer too
        assert_storable(decode_trade(trade, T0, "acct1", TRADE_READERS["H0STCNT0"][len(trade)]))
    with contextlib.suppress(KisProtocolError):
        reader = BOOK_READERS["H0STASP0"][len(book)]
        assert_storable(decode_order_book(book, "20261120", T0, "acct1", reader))


@given(mutated(TRADE.split("^")), mutated(BOOK.split("^")))
def test_a_decoded_frame_holds_storable_events_or_one_refusal_per_record(
    trade: list[str], book: list[str]
) -> None:
    """Hostile records among good ones: each is an event or an error, the others go on."""
    decoder = RealtimeDecoder("acct1")
    for tr_id, good, record in (("H0STCNT0", TRADE, trade), ("H0STASP0", BOOK, book)):
        hostile = "^".join(value.replace("^", "") for value in record)  # the same fields
        frame = decoder.decode(f"0|{tr_id}|003|{good}^{hostile}^{good}", T0)
        events = [*frame.ticks, *frame.books]
        assert len(events) + len(frame.errors) == 3 and len(events) >= 2
        for decoded in events:
            assert decoded.account == "acct1"
            assert_storable(decoded)


PRICE_FIELDS = [f.name for f in msgspec.structs.fields(CurrentPriceOutput)]
PRICE = [
    "73100",
    "-400",
    "5",
    "-0.54",
    "8123456",
    "594000000000",
    "73500",
    "73800",
    "72900",
    "95500",
    "51500",
    "73500",
    "4360000",
    "5969782",
    "N",
    "55",
    "KOSPI",
    "00",
]


@given(mutated(PRICE))
def test_price_snapshot_stays_in_range_or_refuses(values: list[str]) -> None:
    out = CurrentPriceOutput(**dict(zip(PRICE_FIELDS, values, strict=True)))
    try:
        snapshot = price_snapshot(out, "005930", "KOSPI", "20261120-0910", T0)
    except KisProtocolError:
        return
    assert_storable(snapshot)


@given(st.text(max_size=12), st.text(max_size=8), ANY_INT)
def test_frames_and_times_parse_or_refuse(count: str, hhmmss: str, day: int) -> None:
    for call in (
        lambda: parse_frame(f"0|H0STCNT0|{count}|{TRADE}"),
        lambda: parse_frame(f"0|H0STCNT0|{day}|{TRADE}"),
        lambda: kst_to_utc_ns(str(day), hhmmss),
        lambda: kst_to_utc_ns("99991231", hhmmss or "235959"),
    ):
        try:
            result = call()
        except KisProtocolError:
            continue
        if isinstance(result, int):
            assert INT64_MIN <= result <= INT64_MAX


def test_parsers_name_the_field_out_of_range() -> None:
    fields = TRADE.split("^")
    fields[14] = str(2**63)  # ACML_TR_PBMN: accumulated traded value
    with pytest.raises(KisProtocolError, match="ACML_TR_PBMN"):
        decode_trade(fields, received_ns=T0)
    fields = TRADE.split("^")
    fields[33] = "99991231"  # a date whose nanoseconds do not fit a BIGINT
    with pytest.raises(KisProtocolError):
        decode_trade(fields, received_ns=T0)
    assert len(H0STCNT0_FIELDS) == 46 and len(H0STASP0_FIELDS) == 59


digits = st.one_of(
    st.integers(0, 10**6).map(str),
    st.integers(2**62, 10**30).map(str),
    st.text("0123456789-x", min_size=0, max_size=25),
)


@given(st.lists(digits, min_size=5, max_size=5))
def test_a_recovered_bar_is_storable_or_refused(values: list[str]) -> None:
    """One absurd number from KIS fails its bar, never the event of all the gap's bars."""
    from observer.kis.bars import bar_of
    from observer.kis.schemas import MinuteBarRow

    o, h, low, c, v = values
    try:
        bar = bar_of(MinuteBarRow("20261120", "100100", c, o, h, low, v, "1"))
    except KisProtocolError:
        return
    numbers = [v for v in msgspec.structs.asdict(bar).values() if not isinstance(v, str)]
    assert len(numbers) == 7  # the minute, OHLC, volume and value; its session is text
    for value in numbers:
        assert INT64_MIN <= value <= INT64_MAX


@given(st.lists(digits, min_size=4, max_size=4))
def test_universe_metrics_are_storable_or_refused(values: list[str]) -> None:
    """A symbol with absurd bars fails alone (a KisError the build counts), never the build."""
    from observer.kis.daily_bars import daily_bars
    from observer.kis.schemas import DailyBarRow
    from workers.universe.build import metrics

    close, high, low, volume = values
    rows = [DailyBarRow(f"202611{d:02d}", close, close, high, low, volume) for d in range(1, 22)]
    try:
        found = metrics(daily_bars(rows), date(2026, 11, 21))
    except KisProtocolError:
        return
    assert found is not None
    assert INT64_MIN <= found.prev_close <= INT64_MAX
    assert INT64_MIN <= found.avg_volume_20d <= INT64_MAX
