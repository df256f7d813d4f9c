"""The real-time frame decoder and the parsers, from the reference facts (kis-api.md §5.3-5.7)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import TradeTick
from observer.errors import KisLayoutUnknown, KisProtocolError
from observer.kis.parse import is_data_frame, kst_to_utc_ns, parse_control, price_snapshot
from observer.kis.realtime import (
    BOOK_READERS,
    H0STASP0,
    H0STCNT0,
    TRADE_READERS,
    RealtimeDecoder,
    decode_order_book,
    decode_trade,
    parse_frame,
)
from observer.kis.schemas import (
    H0STASP0_FIELDS,
    H0STCNT0_FIELDS,
    REALTIME_LAYOUTS,
    CurrentPriceOutput,
)

# A H0STCNT0 record as KIS sends it (values from the portal example, completed to 46 fields).
TRADE = (
    "005930^123929^73100^5^-400^-0.54^73321.45^73500^73800^72900^73200^73100^5^8123468^"
    "594001000000^41203^39874^-1329^98.73^4031222^3980111^5^49.69^87.12^090000^5^-400^"
    "093512^5^-700^101412^2^200^20261120^20^N^1500^2100^250000^310000^0.14^9300000^87.35^"
    "0^0^0"
)
BOOK = "^".join(
    ["005930", "123929", "0"]
    + [str(73200 + 100 * i) for i in range(10)]
    + [str(73100 - 100 * i) for i in range(10)]
    + [str(1000 + i) for i in range(10)]
    + [str(2000 + i) for i in range(10)]
    + [
        "250000",
        "310000",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "3",
        "0.00",
        "8123468",
        "10",
        "-5",
        "0",
        "0",
        "0",
    ]
)


def decode_all(text: str, received_ns: int = 0) -> list[TradeTick]:
    """The ticks of a frame; the first record refused is raised."""
    frame = RealtimeDecoder().decode(text, received_ns)
    if frame.errors:
        raise frame.errors[0].error
    return list(frame.ticks)


def test_field_orders_are_the_documented_ones() -> None:
    assert len(H0STCNT0_FIELDS) == 46 and len(H0STASP0_FIELDS) == 59
    assert H0STCNT0_FIELDS[33] == "BSOP_DATE" and H0STCNT0_FIELDS[12] == "CNTG_VOL"
    assert H0STASP0_FIELDS[47] == "ANTC_CNPR" and H0STASP0_FIELDS[58] == "STCK_DEAL_CLS_CODE"
    # The decoder's indices are read from the tables by name.
    assert (H0STCNT0.BSOP_DATE, H0STCNT0.CNTG_VOL, H0STCNT0.TRHT_YN) == (33, 12, 35)
    assert (H0STASP0.ASKP1, H0STASP0.BIDP_RSQN1, H0STASP0.ANTC_CNPR) == (3, 33, 47)
    # Both generations, by width; the newer one's fields appended, absent from the older.
    widths = {
        tr: {w: lay.generation for w, lay in by.items()} for tr, by in REALTIME_LAYOUTS.items()
    }
    assert widths == {
        "H0STCNT0": {46: "2026-05", 47: "2026-09"},
        "H0STASP0": {59: "2026-05", 63: "2026-09"},
        "H0NXCNT0": {46: "2026-05", 47: "2026-09"},
        "H0UNCNT0": {46: "2026-05", 47: "2026-09"},
        "H0NXASP0": {65: "2026-05", 62: "2026-09"},
        "H0UNASP0": {65: "2026-05", 66: "2026-09"},
        # One list in both exports; KIS's H0STMKO0 example lacks EXCH_CLS_CODE.
        "H0STMKO0": {11: "2026-05", 10: "example"},
        "H0NXMKO0": {11: "2026-05", 10: "example"},
        "H0STPGM0": {11: "2026-05"},
        "H0NXPGM0": {11: "2026-05"},
        "H0UNPGM0": {11: "2026-05"},
        # H0STCNT0's first 45 names; Nextrade's and the combined add VI_STND_PRC; 2026-09 a
        # dummy.
        "H0STANC0": {45: "2026-05", 46: "2026-09"},
        "H0NXANC0": {46: "2026-05", 47: "2026-09"},
        "H0UNANC0": {46: "2026-05", 47: "2026-09"},
        # The 2026-09 export alone; the combined feed's adds EXCH_CLS_CODE.
        "H0STVIC0": {15: "2026-09"},
        "H0NXVIC0": {15: "2026-09"},
        "H0UNVIC0": {16: "2026-09"},
        # KIS's samples of 2025-07 (member_krx, member_nxt, member_total): one list of 78.
        "H0STMBC0": {78: "2025-07"},
        "H0NXMBC0": {78: "2025-07"},
        "H0UNMBC0": {78: "2025-07"},
    }
    krx, newer = TRADE_READERS["H0STCNT0"], BOOK_READERS["H0STASP0"][63].at
    assert (krx[46].MARKET_CLS_CODE, krx[47].MARKET_CLS_CODE) == (-1, 46)
    assert (newer.MID_PRC, newer.MIDP_CLS_CODE, newer.MARKET_CLS_CODE) == (59, 61, 62)
    assert BOOK_READERS["H0STASP0"][59].at.MID_PRC == -1
    assert newer.ANTC_CNPR == H0STASP0.ANTC_CNPR
    # Nextrade's and the combined trades: 체결구분 is CNTG_CLS_CODE, at the same 22nd place.
    for tr_id in ("H0NXCNT0", "H0UNCNT0"):
        assert REALTIME_LAYOUTS[tr_id][46].fields[21] == "CNTG_CLS_CODE"
        assert TRADE_READERS[tr_id][46] == krx[46] and TRADE_READERS[tr_id][47] == krx[47]
    # Nextrade's book: its own mid-point (NMID_*), after KRX's in 2026-05, alone in 2026-09
    # (three fields gone from the middle); the combined book has none of its own.
    nxt = BOOK_READERS["H0NXASP0"]
    assert (nxt[65].at.MID_PRC, nxt[65].at.MIDP_CLS_CODE, nxt[62].at.MID_PRC) == (62, 64, 59)
    assert nxt[65].at.MARKET_CLS_CODE == nxt[62].at.MARKET_CLS_CODE == -1
    assert {r.at.MID_PRC for r in BOOK_READERS["H0UNASP0"].values()} == {-1}
    assert REALTIME_LAYOUTS["H0UNASP0"][66].fields[-1] == "ANTC_EXCH_CLS_CODE"


def test_a_frame_of_several_records_becomes_several_ticks() -> None:
    second = TRADE.replace("123929", "123930", 1).replace("^73100^5^-400", "^73200^2^-300", 1)
    text = f"0|H0STCNT0|002|{TRADE}^{second}"
    frame = parse_frame(text)
    assert frame.tr_id == "H0STCNT0" and len(frame.records) == 2
    decoded = RealtimeDecoder("acct1").decode(text, received_ns=1)
    assert decoded.tr_id == "H0STCNT0" and not decoded.books and not decoded.errors
    ticks = list(decoded.ticks)
    assert ticks == [decode_trade(r, received_ns=1, account="acct1") for r in frame.records]
    assert ticks[0] == TradeTick(
        symbol="005930",
        exchange_ns=kst_to_utc_ns("20261120", "123929"),
        received_ns=1,
        price=73100,
        qty=5,
        cum_volume=8123468,
        cum_value=594001000000,
        change_rate=Decimal("-0.54"),
        ask1=73200,
        bid1=73100,
        strength=Decimal("98.73"),
        side="5",
        session="20",
        halted=False,
        account="acct1",
    )
    assert ticks[1].price == 73200


def test_kst_is_utc_plus_nine() -> None:
    utc = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 09:00:00 KST
    assert kst_to_utc_ns("20261120", "090000") == int(utc.timestamp()) * 10**9


def test_extra_trailing_fields_no_layout_has_are_refused_whole() -> None:
    widened = "^".join(f"{TRADE}^X^Y" for _ in range(3))  # 48 fields a record
    with pytest.raises(KisLayoutUnknown, match="48 fields wide"):
        parse_frame(f"0|H0STCNT0|003|{widened}")


def test_order_book_levels() -> None:
    (record,) = parse_frame(f"0|H0STASP0|001|{BOOK}").records
    book = decode_order_book(record, "20261120", received_ns=5)
    assert book.ask_prices[0] == 73200 and book.bid_prices[0] == 73100
    assert book.ask_qtys[9] == 1009 and book.bid_qtys[0] == 2000
    assert (book.total_ask_qty, book.total_bid_qty) == (250000, 310000)
    assert book.bid_prices == tuple(73100 - 100 * i for i in range(10))
    assert book.exchange_ns == kst_to_utc_ns("20261120", "123929") and book.received_ns == 5


def test_a_decoded_book_is_dated_on_the_kst_day_it_was_received() -> None:
    decoder = RealtimeDecoder("acct2")
    for day, received in [
        ("20261120", datetime(2026, 11, 19, 15, 0, tzinfo=UTC)),  # 00:00 KST on the 20th
        ("20261120", datetime(2026, 11, 20, 14, 59, 59, tzinfo=UTC)),  # 23:59:59 KST
        ("20261121", datetime(2026, 11, 20, 15, 0, tzinfo=UTC)),
    ]:
        received_ns = int(received.timestamp()) * 10**9 + 123
        (book,) = decoder.decode(f"0|H0STASP0|001|{BOOK}", received_ns).books
        assert book.exchange_ns == kst_to_utc_ns(day, "123929")
        assert (book.received_ns, book.account) == (received_ns, "acct2")


def test_a_bad_record_is_refused_alone_naming_its_field() -> None:
    bad = TRADE.replace("^594001000000^", f"^{2**63}^", 1)
    decoded = RealtimeDecoder("acct1").decode(f"0|H0STCNT0|003|{TRADE}^{bad}^{TRADE}", 7)
    assert [t.account for t in decoded.ticks] == ["acct1", "acct1"]
    (refused,) = decoded.errors
    assert isinstance(refused.error, KisProtocolError) and "ACML_TR_PBMN" in str(refused.error)
    # What still reads of it: the symbol, and the stamp its trade's lost minute is found by
    assert refused.symbol == "005930"
    assert refused.exchange_ns == decoded.ticks[0].exchange_ns > 0
    levels = BOOK.split("^")
    levels[H0STASP0.BIDP_RSQN1 + 2] = "x"
    decoded = RealtimeDecoder().decode("0|H0STASP0|002|" + "^".join(levels) + "^" + BOOK, 0)
    assert len(decoded.books) == 1 and "BIDP_RSQN3" in str(decoded.errors[0].error)
    assert decoded.errors[0].symbol == decoded.books[0].symbol and not decoded.errors[0].exchange_ns


def test_a_refused_record_tells_only_what_reads() -> None:
    fields = TRADE.split("^")
    fields[H0STCNT0.STCK_CNTG_HOUR] = "25x000"  # the time does not read: no stamp
    fields[H0STCNT0.MKSC_SHRN_ISCD] = "00 5930"  # nor does the code: no symbol
    (refused,) = RealtimeDecoder().decode("0|H0STCNT0|001|" + "^".join(fields), 0).errors
    assert "25x000" in str(refused.error) and (refused.symbol, refused.exchange_ns) == ("", 0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0|H0STCNT0|002|" + TRADE, "make records 23 fields wide"),
        # A count short of its records: 2 records read as 1 would lose the second unseen.
        ("0|H0STCNT0|001|" + TRADE + "^" + TRADE, "92 fields in 1 record make records 92"),
        ("0|H0STCNT0|002|" + "^".join([TRADE] * 4), "92 fields wide"),
        ("0|H0STCNT0|000|" + TRADE, "bad record count"),
        ("0|H0XXXXX0|001|" + TRADE, "unknown real-time tr_id"),
        ("1|H0STCNI0|001|base64==", "encrypted"),
        ("0|H0STCNT0", "not a data frame"),
        ("0|H0STCNT0|001|" + TRADE.replace("73100", "7x100", 1), "STCK_PRPR"),
        ("0|H0STCNT0|001|" + TRADE.replace("20261120", "20261340"), "bad KST date"),
    ],
)
def test_malformed_frames_raise_protocol_errors(text: str, match: str) -> None:
    with pytest.raises(KisProtocolError, match=match):
        decode_all(text)


def test_control_answers_and_pingpong() -> None:
    ok = parse_control(
        '{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"0",'
        '"msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{"iv":"x","key":"y"}}}'
    )
    assert (ok.tr_key, ok.msg_cd, ok.msg1, ok.is_pingpong) == (
        "005930",
        "OPSP0000",
        "SUBSCRIBE SUCCESS",
        False,
    )
    ping = parse_control('{"header":{"tr_id":"PINGPONG","datetime":"20261120093000"}}')
    assert ping.is_pingpong and ping.msg_cd == ""
    assert not is_data_frame('{"header":{}}') and is_data_frame("0|H0STCNT0|001|x")


@given(st.text(max_size=400))
def test_any_text_raises_only_protocol_errors(text: str) -> None:
    try:
        if is_data_frame(text):
            decode_all(text)
        else:
            parse_control(text)
    except KisProtocolError:
        pass


@given(st.lists(st.text(alphabet="0123456789-.^|NY ", max_size=12), min_size=46, max_size=46))
def test_any_46_fields_parse_or_raise_protocol_errors(fields: list[str]) -> None:
    text = "0|H0STCNT0|001|" + "^".join(f.replace("^", "") for f in fields)
    decoded = RealtimeDecoder().decode(text, 0)  # 46 fields always make one record
    assert len(decoded.ticks) + len(decoded.errors) == 1
    for refused in decoded.errors:
        assert isinstance(refused.error, KisProtocolError)
        sent = fields[H0STCNT0.MKSC_SHRN_ISCD].replace("^", "")
        assert refused.symbol in ("", sent)  # as sent, or nothing


SIGNS = {"1": 1, "2": 1, "3": 0, "4": -1, "5": -1}  # upper limit, up, unchanged, lower, down


@given(
    price=st.integers(1, 10**7),
    change=st.integers(0, 10**6),
    rate=st.decimals(0, 30, places=2),
    sign=st.sampled_from(sorted(SIGNS)),
    signed_by_kis=st.booleans(),
    cap=st.integers(0, 10**7),
)
def test_a_current_price_answer_becomes_a_snapshot_signed_by_its_sign_code(
    price: int, change: int, rate: Decimal, sign: str, signed_by_kis: bool, cap: int
) -> None:
    # Whether KIS sends prdy_vrss and prdy_ctrt signed is unconfirmed: both forms agree.
    direction = SIGNS[sign]
    shown = -1 if signed_by_kis and direction < 0 else 1
    out = CurrentPriceOutput(
        stck_prpr=str(price),
        prdy_vrss=str(shown * change),
        prdy_vrss_sign=sign,
        prdy_ctrt=str(shown * rate),
        hts_avls=str(cap),
        stck_sdpr="",
        temp_stop_yn="Y",
    )
    snapshot = price_snapshot(out, "005930", "KOSPI", "20261120-0910", 7)
    assert snapshot.price == price and snapshot.observed_ns == 7
    assert snapshot.change == direction * change
    assert snapshot.change_rate == direction * rate
    assert snapshot.market_cap == cap * 100_000_000  # hts_avls is in 억 KRW
    assert snapshot.base_price == 0 and snapshot.halted  # empty optional fields read as 0


@given(
    st.dictionaries(
        st.sampled_from(
            ["stck_prpr", "prdy_vrss", "prdy_ctrt", "acml_vol", "stck_oprc", "hts_avls"]
        ),
        st.text(max_size=12),
    )
)
def test_any_current_price_answer_parses_or_raises_a_protocol_error(
    fields: dict[str, str],
) -> None:
    out = CurrentPriceOutput(**{"stck_prpr": "1000", **fields})
    try:
        snapshot = price_snapshot(out, "005930", "KOSPI", "20261120-0910", 0)
    except KisProtocolError:
        return
    assert snapshot.price > 0


def test_a_price_of_zero_is_an_unknown_code() -> None:
    with pytest.raises(KisProtocolError, match="not a listed code"):
        price_snapshot(CurrentPriceOutput(stck_prpr="0"), "999999", "KOSPI", "x", 0)


def test_each_record_says_its_venue_and_its_session_there() -> None:
    """H0STCNT0 and H0STASP0 are KRX's; the session is the venue's at the record's stamp
    (a trade at 12:39:29 in the regular session; the closing match at 15:30:00); a decoder
    without a venues table says none."""
    from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
    from observer.calendar.timeline import timeline_from
    from observer.calendar.venues import venues_from

    venues = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))
    decoder = RealtimeDecoder("acct1", venues.session_of_ns)
    closing = TRADE.replace("^123929^", "^153000^", 1)
    ticks = decoder.decode(f"0|H0STCNT0|002|{TRADE}^{closing}", 0).ticks
    assert [(t.venue, t.trading_session) for t in ticks] == [
        ("KRX", "regular"),
        ("KRX", "closing_auction"),
    ]
    received = int(datetime(2026, 11, 20, 3, 39, tzinfo=UTC).timestamp()) * 10**9  # 12:39 KST
    (book,) = decoder.decode(f"0|H0STASP0|001|{BOOK}", received).books
    assert (book.venue, book.trading_session) == ("KRX", "regular")
    (plain,) = RealtimeDecoder().decode(f"0|H0STCNT0|001|{TRADE}", 0).ticks
    assert (plain.venue, plain.trading_session) == ("KRX", "")


def test_nextrade_and_combined_records_say_their_venue_and_read_as_krx_ones_do() -> None:
    """H0NXCNT0 / H0UNCNT0 share H0STCNT0's fields (체결구분 under another name): the same
    record reads the same values, of Nextrade or of no venue ("combined"), in the session of
    that venue (a 19:00 trade is Nextrade's after-market, and in no KRX session). A Nextrade
    book's mid-point is its own (NMID_*, in either generation: three fields gone from the
    middle in 2026-09); the combined book's two are no mid-point of its own."""
    from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
    from observer.calendar.timeline import timeline_from
    from observer.calendar.venues import venues_from

    venues = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))
    decoder = RealtimeDecoder("acct1", venues.session_of_ns)
    (krx,) = decoder.decode(f"0|H0STCNT0|001|{TRADE}", 0).ticks
    evening = TRADE.replace("^123929^", "^190000^", 1)
    for tr_id, venue in (("H0NXCNT0", "NXT"), ("H0UNCNT0", "combined")):
        (tick,) = decoder.decode(f"0|{tr_id}|001|{TRADE}", 0).ticks
        assert tick == msgspec.structs.replace(krx, venue=venue)  # the side read too ("5")
        (late,) = decoder.decode(f"0|{tr_id}|001|{evening}^3", 0).ticks  # 2026-09: 47
        assert (late.trading_session, late.market_session) == ("after_market", "3")
    (krx_late,) = decoder.decode(f"0|H0STCNT0|001|{evening}", 0).ticks
    # KRX's after-market since 2026-09-14 (its 시간외 단일가 ended at 18:00 before it)
    assert krx_late.trading_session == "after_market"
    older = evening.replace("^20261120^", "^20260911^", 1)
    (krx_older,) = decoder.decode(f"0|H0STCNT0|001|{older}", 0).ticks
    assert krx_older.trading_session == ""  # 19:00 on 2026-09-11: after its last session

    received = int(datetime(2026, 11, 20, 3, 39, tzinfo=UTC).timestamp()) * 10**9  # 12:39 KST
    (krx_book,) = decoder.decode(f"0|H0STASP0|001|{BOOK}", received).books
    kmid, nmid = ["73150", "1200", "1"], ["73155", "800", "2"]
    older, newer = "^".join([BOOK, *kmid, *nmid]), "^".join([BOOK, *nmid])
    for text in (older, newer):
        (book,) = decoder.decode(f"0|H0NXASP0|001|{text}", received).books
        assert book == msgspec.structs.replace(
            krx_book, venue="NXT", mid_price=Decimal(73155), mid_qty=800, mid_side="2"
        )
    for text in (older, f"{older}^1"):  # 2026-09 appends the expected price's venue
        (book,) = decoder.decode(f"0|H0UNASP0|001|{text}", received).books
        assert book == msgspec.structs.replace(krx_book, venue="combined")


def test_a_record_s_market_cls_code_names_its_session_over_the_clock() -> None:
    """The 2026-09 layouts' MARKET_CLS_CODE is the record's word: it decides where it names a
    session (a 19:00 KRX trade coded "2" is the regular session's, whatever the hours say),
    the clock refines a code spanning several (the 15:30 match coded "2" is the closing
    auction's) and decides where the code is absent, empty or unknown."""
    from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
    from observer.calendar.timeline import timeline_from
    from observer.calendar.venues import venues_from

    venues = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))
    decoder = RealtimeDecoder("acct1", venues.session_of_ns)

    def session(hhmmss: str, code: str, tr_id: str = "H0STCNT0") -> tuple[str, str | None]:
        record = TRADE.replace("^123929^", f"^{hhmmss}^", 1)
        (tick,) = decoder.decode(f"0|{tr_id}|001|{record}^{code}", 0).ticks
        return tick.trading_session, tick.market_session

    assert session("190000", "3") == ("after_market", "3")
    assert session("190000", "2") == ("regular", "2")  # the record's word over the table's
    assert session("123929", "1") == ("pre_market", "1")
    assert session("153000", "2") == ("closing_auction", "2")
    assert session("123929", "") == ("regular", None)  # sent empty: the clock's
    assert session("123929", "9") == ("regular", "9")  # a code nobody knows: the clock's
    # the combined feed at 16:30: Nextrade's after-market by its code, never KRX's closing
    assert session("163000", "3", "H0UNCNT0") == ("after_market", "3")
    # books too
    received = int(datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()) * 10**9  # 19:00 KST
    book = BOOK.replace("^123929^", "^190000^", 1)
    (late,) = decoder.decode(f"0|H0STASP0|001|{book}^71950^100^1^3", received).books
    assert (late.trading_session, late.market_session) == ("after_market", "3")
