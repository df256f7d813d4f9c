"""Master files, built from the reference's offsets (kis-api.md §6), not from the parser."""

from __future__ import annotations

import contextlib
import io
import zipfile
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.errors import MasterFileError
from observer.kis.master import DOMESTIC_TAILS, extract_single, parse_domestic, parse_overseas
from observer.market.after_markets import MEASURES

# market -> (tail width, {field: (tail offset, width)}) as tabulated in §6.2
LAYOUT = {
    "KOSPI": (227, {"grp": (0, 2), "sector": (3, 4), "sdpr": (41, 9), "trht": (60, 1),
                    "sltr": (61, 1), "mang": (62, 1), "alrm": (63, 2), "date": (105, 8),
                    "lstn": (113, 15), "hot": (159, 1), "avls": (212, 9)}),
    "KOSDAQ": (221, {"grp": (0, 2), "sector": (3, 4), "sdpr": (36, 9), "trht": (55, 1),
                     "sltr": (56, 1), "mang": (57, 1), "alrm": (58, 2), "date": (100, 8),
                     "lstn": (108, 15), "hot": (154, 1), "avls": (206, 9)}),
    "KONEX": (184, {"grp": (0, 2), "sdpr": (2, 9), "trht": (21, 1), "sltr": (22, 1),
                    "mang": (23, 1), "alrm": (24, 2), "date": (66, 8), "lstn": (74, 15),
                    "hot": (120, 1), "avls": (172, 9)}),
}  # fmt: skip


# scrt_grp_cls_code as §6.2 lists them (KONEX rows: KN); every record carries one.
GROUPS = ("ST", "MF", "RT", "SC", "IF", "DR", "EW", "EF", "SW", "SR", "BC", "FE", "FS", "KN")


def record(market: str, symbol: str, name: str, **values: str) -> bytes:
    width, fields = LAYOUT[market]
    values.setdefault("grp", "ST")
    tail = [" "] * width
    for key, value in values.items():
        if key not in fields:  # KONEX has no sector codes
            continue
        offset, size = fields[key]
        tail[offset : offset + size] = list(value.rjust(size)[:size])
    head = symbol.ljust(9) + f"KR7{symbol}003".ljust(12) + name
    return (head + "".join(tail)).encode("cp949") + b"\n"


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ", "KONEX"])
def test_domestic_records_parse_from_the_documented_offsets(market: str) -> None:
    data = record(
        market,
        "005930",
        "삼성전자",
        grp="ST",
        sector="0013",
        sdpr="73500",
        trht="N",
        mang="N",
        date="19750611",
        lstn="5969783",
        avls="4387690",
    )
    data += record(
        market,
        "900110",
        "이스트아시아홀딩스",
        grp="FS",
        sdpr="120",
        trht="Y",
        mang="Y",
        date="20091222",
        lstn="300000",
        avls="36",
    )
    first, second = parse_domestic(data, market)  # type: ignore[arg-type]
    assert (first.symbol, first.isin, first.name) == ("005930", "KR7005930003", "삼성전자")
    assert (first.security_group, first.base_price, first.halted, first.administrative) == (
        "ST",
        73500,
        False,
        False,
    )
    assert first.listed_shares == 5_969_783_000
    assert first.market_cap == 438_769_000_000_000
    assert first.listing_date == "19750611"
    assert first.sector_code == ("0013" if market != "KONEX" else "")
    assert (second.name, second.halted, second.administrative) == ("이스트아시아홀딩스", True, True)


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ", "KONEX"])
@pytest.mark.parametrize(
    ("flags", "measures"),
    [
        ({"alrm": "00", "mang": "N", "sltr": "N", "hot": "N"}, ()),
        ({"alrm": "01"}, ("caution",)),
        ({"alrm": "02", "mang": "N"}, ("warning",)),
        ({"alrm": "03", "hot": "Y"}, ("overheated", "risk")),
        ({"alrm": "00", "mang": "Y", "sltr": "Y"}, ("administrative", "liquidation")),
        ({"alrm": "  "}, ()),  # blank: none said
    ],
)
def test_a_listing_s_market_measures_are_read_from_its_alarm_and_designations(
    market: str, flags: dict[str, str], measures: tuple[str, ...]
) -> None:
    """mrkt_alrm_cls_code (01 투자주의, 02 투자경고, 03 투자위험) and the Y/N designations
    (관리종목, 정리매매, 단기과열) in the words Nextrade's after-market rule is written in."""
    data = record(market, "005930", "삼성전자", sdpr="73500", date="19750611", lstn="1", **flags)
    (listing,) = parse_domestic(data, market)  # type: ignore[arg-type]
    assert listing.measures == measures
    assert set(measures) <= set(MEASURES)


def test_a_market_alarm_the_layout_does_not_list_is_reported_as_a_new_code() -> None:
    """An alarm code past 03 reads as no measure of the words known, and is said, not lost."""
    data = listings("KOSPI", 40, grp="ST") + record("KOSPI", "400009", padded("경보"), alrm="04")
    parsed = parse_domestic(data, "KOSPI")
    assert {x.symbol: x.measures for x in parsed}["400009"] == ()
    assert [(c.field, c.code, c.rows) for c in parsed.new_codes] == [
        ("mrkt_alrm_cls_code", "04", 1)
    ]


def test_crlf_and_blank_lines_are_tolerated() -> None:
    data = record("KOSPI", "005930", "삼성전자", sdpr="1").replace(b"\n", b"\r\n") + b"\r\n"
    assert [x.symbol for x in parse_domestic(data, "KOSPI")] == ["005930"]


def test_a_truncated_record_names_its_line() -> None:
    data = record("KOSPI", "005930", "삼성전자") + record("KOSPI", "000660", "SK하이닉스")[:100]
    with pytest.raises(MasterFileError, match="line 2"):
        parse_domestic(data, "KOSPI")


def padded(name: str) -> str:
    """A name as the head holds it: 40 cp949 bytes (kis-api.md §6.2), blank-padded."""
    return name + " " * (40 - len(name.encode("cp949")))


def relayout(data: bytes, market: str, position: int, change: int, filler: str) -> bytes:
    """``data`` with ``change`` characters added (``filler``) or dropped at ``position`` of
    every record's tail: the layout after KIS adds or drops a field."""
    width, _ = LAYOUT[market]
    lines = []
    for line in data.decode("cp949").splitlines():
        head, tail = line[:-width], line[-width:]
        if change > 0:
            tail = tail[:position] + filler + tail[position:]
        else:
            tail = tail[:position] + tail[position - change :]
        lines.append(head + tail + "\n")
    return "".join(lines).encode("cp949")


def listings(market: str, count: int, **values: str) -> bytes:
    return b"".join(
        record(market, f"{n:06d}", padded(f"종목{n}"), date="20200102", **values)
        for n in range(1, count + 1)
    )


def test_a_tail_one_field_wider_is_refused_naming_the_field_and_a_line() -> None:
    """The reviewer's case: every KOSPI record gains a 1-character field at its end."""
    data = listings("KOSPI", 40, grp="ST", sector="0013", sdpr="1000", trht="N", mang="N")
    assert len(parse_domestic(data, "KOSPI")) == 40
    widened = relayout(data, "KOSPI", 227, 1, "N")
    with pytest.raises(MasterFileError) as refused:
        parse_domestic(widened, "KOSPI")
    message = str(refused.value)
    assert "40 of 40 records" in message and "227-character tail changed width" in message
    assert "scrt_grp_cls_code 'T' on line 1" in message  # "ST" shifted by one


def test_a_few_odd_rows_are_held_back_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    data = listings("KOSDAQ", 39, grp="ST") + record("KOSDAQ", "900001", padded("새종류"), grp="Z9")
    parsed = parse_domestic(data, "KOSDAQ")
    assert len(parsed) == 39  # one row in 40: under the 5 %, and no listing
    assert [(m.symbol, m.line) for m in parsed.malformed] == [("900001", 40)]
    assert "1 of 40 records hold fields outside their form" in caplog.text
    assert "scrt_grp_cls_code 'Z9' on line 40" in caplog.text


@pytest.mark.parametrize(
    ("market", "filler"), [("KOSPI", "krx_fnnc_svc_yn"), ("KONEX", "krx300_issu_yn")]
)
def test_flags_documented_as_filler_may_hold_anything(market: str, filler: str) -> None:
    """§6.2 calls these filler: a KONEX master with '0' there was refused every day."""
    spec = DOMESTIC_TAILS[market]  # type: ignore[index]
    width = sum(size for _, size in spec)
    at = width - sum(size for name, size in spec[: [n for n, _ in spec].index(filler)])
    lines = []
    for line in listings(market, 20).decode("cp949").splitlines():
        lines.append(line[:-at] + "0" + line[len(line) - at + 1 :])
    assert len(parse_domestic("\n".join(lines).encode("cp949"), market)) == 20  # type: ignore[arg-type]


@st.composite
def layout_changes(draw: st.DrawFn) -> tuple[str, bytes, int, int, str]:
    """Valid records of one market, and a field added or dropped at a field boundary."""
    market = draw(st.sampled_from(sorted(LAYOUT)))
    width, fields = LAYOUT[market]
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(GROUPS),
                st.sampled_from(["Y", "N", ""]),
                st.dates(date(1956, 3, 3), date(2099, 12, 31)).map("{:%Y%m%d}".format)
                | st.just(""),
                st.integers(0, 10**9 - 1),
                st.text(st.sampled_from("가나다라마바사ABC"), min_size=1, max_size=12),
            ),
            min_size=1,
            max_size=20,
        )
    )
    data = b"".join(
        record(
            market,
            f"{n:06d}",
            padded(name),
            grp=group,
            trht=flag,
            mang=flag,
            date=listed,
            sdpr=str(price),
            sector=f"{n % 30:04d}" if group == "ST" else "",
        )
        for n, (group, flag, listed, price, name) in enumerate(rows, start=1)
    )
    # Fields begin and end at these offsets. A field added before the group code leaves the
    # tail as it was (the name takes it: the review hold of mass changes catches that).
    bounds = sorted({b for offset, size in fields.values() for b in (offset, offset + size)})
    position = draw(st.sampled_from([b for b in [*bounds, width] if b >= 2]))
    change = draw(st.integers(-3, 4).filter(lambda c: c != 0 and position - c <= width))
    filler = draw(st.text(st.sampled_from("0123456789 "), min_size=max(change, 0)))
    return market, data, position, change, filler[: max(change, 0)]


@given(layout_changes())
def test_any_tail_of_another_width_is_refused(case: tuple[str, bytes, int, int, str]) -> None:
    market, data, position, change, filler = case
    parse_domestic(data, market)  # type: ignore[arg-type]  # the layout as documented parses
    with pytest.raises(MasterFileError, match="changed width"):
        parse_domestic(relayout(data, market, position, change, filler), market)  # type: ignore[arg-type]


def test_mis_encoded_bytes_are_refused() -> None:
    data = record("KOSPI", "005930", "삼성전자").replace("삼성".encode("cp949"), b"\xff\xff")
    with pytest.raises(MasterFileError, match="not cp949"):
        parse_domestic(data, "KOSPI")


def cod_row(symbol: str, columns: int = 24) -> bytes:
    row = [
        "US",
        "512",
        "NAS",
        "NASDAQ",
        symbol,
        f"DNAS{symbol}",
        "애플",
        "APPLE INC",
        "2",
        "USD",
        "4",
        "1",
        "227.5200",
        "1",
        "1",
        "0930",
        "1600",
        "N",
        "",
        "0101",
        "0",
        "1",
        "",
        "",
    ][:columns]
    return "\t".join(row).encode("cp949") + b"\n"


def test_overseas_rows_parse_and_column_count_is_checked() -> None:
    (apple,) = parse_overseas(cod_row("AAPL"), "nas")
    assert (apple.exchange, apple.region, apple.symbol, apple.name_en, apple.currency) == (
        "NAS",
        "US",
        "AAPL",
        "APPLE INC",
        "USD",
    )
    assert (apple.security_type, apple.industry_code, apple.name) == ("2", "0101", "애플")
    with pytest.raises(MasterFileError, match="23 columns, expected at least 24"):
        parse_overseas(cod_row("AAPL") + cod_row("MSFT", columns=23), "nas")


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_extract_single_member_case_insensitively() -> None:
    payload = cod_row("AAPL")
    assert extract_single(zipped({"NASMST.COD": payload}), "nasmst.cod") == payload


@pytest.mark.parametrize(
    ("archive", "match"),
    [
        (b"PK\x03\x04garbage", "zip"),
        (zipped({"other.cod": b"x"}), "not found exactly once"),
        (zipped({"../nasmst.cod": b"x"}), "not found exactly once"),
        (zipped({"nasmst.cod": b"\0" * 5_000_000}), "zip bomb"),
    ],
)
def test_unsafe_or_damaged_archives_are_refused(archive: bytes, match: str) -> None:
    with pytest.raises(MasterFileError, match=match):
        extract_single(archive, "nasmst.cod")


def test_a_corrupt_member_fails_its_crc() -> None:
    archive = bytearray(zipped({"nasmst.cod": cod_row("AAPL") * 50}, zipfile.ZIP_STORED))
    archive[40] ^= 0xFF  # inside the stored data
    with pytest.raises(MasterFileError):
        extract_single(bytes(archive), "nasmst.cod")


def test_an_archive_larger_than_allowed_is_refused() -> None:
    with pytest.raises(MasterFileError, match="declares"):
        extract_single(zipped({"nasmst.cod": b"x" * 1000}, zipfile.ZIP_STORED), "nasmst.cod", 999)


@given(st.binary(max_size=600))
def test_any_bytes_raise_only_master_file_errors(data: bytes) -> None:
    for parse in (
        lambda d: parse_domestic(d, "KOSDAQ"),
        lambda d: parse_overseas(d, "nys"),
        lambda d: extract_single(d, "x.mst"),
    ):
        with contextlib.suppress(MasterFileError):  # anything else fails the test
            parse(data)


def test_codes_the_layout_does_not_list_are_listings_reported_once_per_code() -> None:
    """The 2026-07 KOSPI file: etp_prod_cls_code 8 and scrt_grp_cls_code PF on a few rows."""
    width, _ = LAYOUT["KOSPI"]
    names = [n for n, _ in DOMESTIC_TAILS["KOSPI"]]
    etp_at = sum(w for _, w in DOMESTIC_TAILS["KOSPI"][: names.index("etp_prod_cls_code")])

    def with_etp(line: bytes, code: str) -> bytes:
        text = line.decode("cp949")
        at = len(text.rstrip("\n")) - width + etp_at
        return (text[:at] + code + text[at + 1 :]).encode("cp949")

    data = (
        listings("KOSPI", 95, grp="ST")
        + with_etp(record("KOSPI", "400001", padded("신상품1"), grp="EF"), "8")
        + with_etp(record("KOSPI", "400002", padded("신상품2"), grp="EF"), "8")
        + record("KOSPI", "400003", padded("펀드"), grp="PF")
    )
    parsed = parse_domestic(data, "KOSPI")
    assert len(parsed) == 98 and not parsed.malformed  # every row a listing
    assert [(c.field, c.code, c.rows, c.first_symbol) for c in parsed.new_codes] == [
        ("etp_prod_cls_code", "8", 2, "400001"),
        ("scrt_grp_cls_code", "PF", 1, "400003"),
    ]
    kinds = {x.symbol: x.kind for x in parsed}
    assert (kinds["400001"], kinds["400003"]) == ("etf", "other")


def test_new_codes_on_more_than_five_percent_of_rows_refuse_the_file() -> None:
    data = listings("KOSDAQ", 30, grp="ST") + b"".join(
        record("KOSDAQ", f"9{n:05d}", padded("새종류"), grp="QQ") for n in range(2)
    )
    with pytest.raises(MasterFileError, match=r"2 of 32 records hold codes .*'QQ'"):
        parse_domestic(data, "KOSDAQ")
    one = data[: len(data) - len(data) // 32]  # the last record dropped: 1 in 31
    assert [c.rows for c in parse_domestic(one, "KOSDAQ").new_codes] == [1]


def test_cod_columns_beyond_the_known_24_are_kept_and_counted() -> None:
    wider = cod_row("AAPL").rstrip(b"\n") + b"\tX1\t 7 \n" + cod_row("MSFT")
    apple, msft = parsed = parse_overseas(wider, "nas")
    assert parsed.extra_columns == 2
    assert (apple.symbol, apple.currency, apple.extras) == ("AAPL", "USD", ("X1", "7"))
    assert (msft.symbol, msft.extras) == ("MSFT", ())
    assert parse_overseas(cod_row("AAPL"), "nas").extra_columns == 0
