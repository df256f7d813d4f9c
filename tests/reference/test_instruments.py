"""The symbol master's pure parts: round trips, the diff, quality, the decision table."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.market import Listing as SimListing
from harness.sim.market import Overseas
from harness.sim.masters import domestic_master, overseas_master
from harness.sim.sectors import kr_codes
from observer.config.workers import MasterFileSettings
from observer.errors import MasterFileError
from observer.kis.master import RemoteFile, parse_domestic
from observer.reference.instruments import Listing, master_file, resolve
from workers.master_file.decide import decide
from workers.master_file.diff import diff
from workers.master_file.files import Current
from workers.master_file.quality import assess
from workers.master_file.reading import read_listings

HANGUL = st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
WORD = st.text(st.one_of(HANGUL, st.sampled_from("ABCXYZ0123&-")), min_size=1, max_size=12)
NAME = (
    st.lists(WORD, min_size=1, max_size=3)
    .map(" ".join)
    .filter(lambda n: len(n.encode("cp949")) <= 40)
)
CODE = st.from_regex(r"[0-9][0-9A-Z]{4}[0-9]", fullmatch=True)


@st.composite
def domestic_rows(draw: st.DrawFn) -> list[SimListing]:
    market = draw(st.sampled_from(["KOSPI", "KOSDAQ", "KONEX"]))
    symbols = draw(st.lists(CODE, min_size=1, max_size=20, unique=True))
    return [
        SimListing(
            symbol=s,
            isin=f"KR7{s}003",
            name=draw(NAME),
            market=market,
            group=draw(st.sampled_from(["ST", "EF", "EN", "RT"])),
            listed_shares=draw(st.integers(0, 10**10)) // 1000 * 1000,
            start_price=draw(st.integers(1, 999_999)),
            volatility=0.01,
            avg_volume=1,
            suspended=draw(st.booleans()),
            administrative=draw(st.booleans()),
            sector_code="" if market == "KONEX" else f"{draw(st.integers(1, 9999)):04d}",
            listed_on=draw(st.dates(date(1956, 3, 3), date(2030, 12, 31))),
        )
        for s in symbols
    ]


@given(domestic_rows())
def test_domestic_parse_of_render_is_identity(rows: list[SimListing]) -> None:
    market = rows[0].market
    prices = {x.symbol: x.start_price for x in rows}
    data = domestic_master(rows, prices)
    types = {"ST": "stock", "EF": "etf", "EN": "etn", "RT": "reit"}
    kr = (market, "KR", "KRW")
    expected = [
        Listing(
            market,
            x.symbol,
            x.name,
            "",
            *kr,
            types[x.group],
            x.sector_code,
            *kr_codes(x.symbol, x.market, x.group),
            tuple(sorted({*x.measures, *(("administrative",) if x.administrative else ())})),
        )
        for x in rows
    ]
    assert read_listings(master_file(market), data) == expected
    parsed = parse_domestic(data, market)  # type: ignore[arg-type]
    got = [(p.isin, p.base_price, p.halted, p.administrative, p.listed_shares) for p in parsed]
    assert got == [
        (x.isin, x.start_price, x.suspended, x.administrative, x.listed_shares) for x in rows
    ]
    assert [p.listing_date for p in parsed] == [x.listed_on.strftime("%Y%m%d") for x in rows]


@pytest.mark.parametrize(
    ("etp", "kind"), [("3", "etn"), ("4", "etn"), ("1", "etf"), ("0", "stock")]
)
def test_an_etp_is_known_by_its_product_type_whatever_its_group_code(etp: str, kind: str) -> None:
    # The KOSPI .h lists no ETN group code: an ETN row marked "ST" is an ETN all the same,
    # and never a universe candidate (the universe takes `kind == "stock"` only).
    row = SimListing(
        symbol="500001",
        isin="KRA500001003",
        name="ETN",
        market="KOSPI",
        group="ST",
        listed_shares=10**6,
        start_price=10_000,
        volatility=0.01,
        avg_volume=1,
        suspended=False,
        administrative=False,
        sector_code="0001",
        listed_on=date(2020, 1, 2),
    )
    data = bytearray(domestic_master([row], {"500001": 10_000}))
    data[61 + 22] = ord(etp)  # etp_prod_cls_code: the tail's 23rd byte, after a 61-byte head
    (parsed,) = parse_domestic(bytes(data), "KOSPI")
    assert parsed.security_group == "ST" and parsed.kind == kind
    assert read_listings(master_file("KOSPI"), bytes(data))[0].security_type == kind


@st.composite
def overseas_rows(draw: st.DrawFn) -> tuple[str, list[Overseas]]:
    stem = draw(st.sampled_from(["nas", "nys", "hks", "tse", "hsx", "shs"]))
    code = {"nas": "NAS", "nys": "NYS", "hks": "HKS", "tse": "TSE", "hsx": "HSX", "shs": "SHS"}
    symbols = draw(
        st.lists(
            st.from_regex(r"[A-Z0-9][A-Z0-9.]{0,7}", fullmatch=True),
            min_size=1,
            max_size=20,
            unique=True,
        )
    )
    return stem, [
        Overseas(
            stem,
            code[stem],
            s,
            draw(NAME),
            draw(st.from_regex(r"[A-Z][A-Za-z0-9 ]{0,30}[a-z]", fullmatch=True)),
            draw(st.sampled_from("1234")),
            draw(st.sampled_from(["USD", "HKD", "JPY", "VND"])),
            f"{draw(st.integers(0, 9999)):04d}",
        )
        for s in symbols
    ]


@given(overseas_rows())
def test_overseas_parse_of_render_is_identity(case: tuple[str, list[Overseas]]) -> None:
    stem, rows = case
    file = resolve([stem])[0]
    types = {"1": "index", "2": "stock", "3": "etp", "4": "warrant"}
    expected = [
        Listing(
            file.market,
            x.symbol,
            x.name,
            x.name_en,
            file.exchange,
            file.region,
            x.currency,
            types[x.security_type],
            x.industry_code,
        )
        for x in rows
    ]
    assert read_listings(file, overseas_master(rows)) == expected


def test_codes_resolve_by_market_seed_exchange_and_region() -> None:
    assert [f.market for f in resolve(["nas"])] == ["NAS"]
    assert [f.market for f in resolve(["SHAA"])] == ["SHS", "SHI"]
    assert [f.market for f in resolve(["US", "kospi"])] == ["KOSPI", "NAS", "NYS", "AMS"]
    # KIS: HASE = 베트남 하노이 (Hanoi, hnx), VNSE = 베트남 호치민 (Ho Chi Minh, hsx).
    assert master_file("HNX").exchange == "HASE" and master_file("HSX").exchange == "VNSE"
    assert [f.market for f in resolve(["HASE"])] == ["HNX"]
    assert [f.market for f in resolve(["VNSE"])] == ["HSX"]
    assert {f.currency for f in resolve(["VN"])} == {"VND"}
    with pytest.raises(MasterFileError, match="unknown exchange 'NASDAQ'"):
        resolve(["NASDAQ"])
    with pytest.raises(MasterFileError, match="holds no records"):
        read_listings(master_file("NAS"), b"")


LISTINGS = st.lists(
    st.builds(
        Listing,
        market=st.just("NAS"),
        symbol=st.sampled_from([f"S{n}" for n in range(12)]),
        name=st.sampled_from(["a", "b"]),
        name_en=st.just(""),
        exchange=st.just("NASD"),
        region=st.just("US"),
        currency=st.sampled_from(["USD", "US"]),
        security_type=st.sampled_from(["stock", "etp"]),
        sector_code=st.just(""),
        measures=st.sampled_from([(), ("warning",), ("administrative", "warning")]),
    ),
    max_size=12,
)


@given(LISTINGS, LISTINGS, st.lists(st.booleans(), min_size=12, max_size=12))
def test_applying_a_diff_makes_the_database_equal_to_the_file(
    old: list[Listing], new: list[Listing], active: list[bool]
) -> None:
    known = {x.symbol: (x, active[i]) for i, x in enumerate(old)}
    d = diff(new, known)
    db = dict(known)
    for event in d.events():
        kept = {
            "market",
            "symbol",
            "name",
            "name_en",
            "exchange",
            "region",
            "currency",
            "security_type",
            "sector_code",
            "measures",
        }
        row = Listing(**{k: getattr(event, k) for k in kept})
        if event.change == "removed":
            db[event.symbol] = (db[event.symbol][0], False)
        else:
            db[event.symbol] = (row, True)
    first = {}
    for x in new:
        first.setdefault(x.symbol, x)
    assert {s: x for s, (x, a) in db.items() if a} == first
    assert d.unchanged + len(d.changed) + len(d.new) == len(first)
    assert diff(new, {s: (x, True) for s, x in first.items()}).empty  # applied: nothing left


def test_quality_counts_what_seed_001_counts() -> None:
    good = Listing("NAS", "AAPL", "애플", "APPLE INC", "NASD", "US", "USD", "stock", "")
    bad = Listing("NAS", "aa pl", "", "", "", "XX", "", "stock", "")
    q = assess([good, bad, good])
    assert (q.records, q.valid_ticker, q.has_name, q.complete, q.duplicates) == (3, 2, 2, 2, 1)
    assert str(q.complete_pct) == "66.67"
    assert q.lines()[0] == "Valid ticker: 2/3 (66.7%)"


LIMITS = MasterFileSettings()
HAVE = Current(size=1000, sha256="a", content_sha256="b", records=10, etag='"x"')


@pytest.mark.parametrize(
    ("current", "remote", "force", "action", "severity", "reason"),
    [
        (None, RemoteFile(1000), False, "download", "info", "initial download"),
        (HAVE, RemoteFile(0), False, "skip", "critical", "0 bytes"),
        (HAVE, RemoteFile(1000, '"x"'), False, "skip", "info", "unchanged"),
        (HAVE, RemoteFile(1000), False, "download", "info", "compared by sha256"),  # no validators
        (HAVE, RemoteFile(1000, '"y"'), False, "download", "info", "new ETag"),
        (HAVE, RemoteFile(1000, '"x"'), True, "download", "info", "forced"),
        (HAVE, RemoteFile(1001), False, "download", "info", "grew"),  # seed: skip (< 0.1 %)
        (HAVE, RemoteFile(1200), False, "download", "info", "grew"),
        (HAVE, RemoteFile(1201), False, "download", "warning", "large increase"),
        (HAVE, RemoteFile(995), False, "download", "warning", "minor decrease"),
        (HAVE, RemoteFile(900), False, "download", "warning", "minor decrease"),
        (HAVE, RemoteFile(899), False, "hold", "critical", "major decrease"),
    ],
)
def test_decision_table(
    current: Current | None,
    remote: RemoteFile,
    force: bool,
    action: str,
    severity: str,
    reason: str,
) -> None:
    decision = decide(current, remote, LIMITS, force=force)
    assert (decision.action, decision.severity) == (action, severity)
    assert reason in decision.reason


YESTERDAY, TODAY = "Thu, 19 Nov 2026 21:00:00 GMT", "Fri, 20 Nov 2026 21:00:00 GMT"


def test_force_only_turns_unchanged_into_a_download() -> None:
    """The weekly forced run still holds a major decrease, as the daily run does."""
    forced = decide(HAVE, RemoteFile(899), LIMITS, force=True)
    assert (forced.action, forced.severity) == ("hold", "critical")
    assert "major decrease" in forced.reason
    assert decide(HAVE, RemoteFile(1100), LIMITS, force=True).action == "download"


def test_a_remote_older_than_the_file_in_use_is_a_stale_copy() -> None:
    have = Current(1000, "a", "b", 10, '"x"', TODAY)
    for force in (False, True):
        stale = decide(have, RemoteFile(1010, '"y"', YESTERDAY), LIMITS, force=force)
        assert (stale.action, stale.severity, stale.alert) == (
            "skip",
            "warning",
            "master_stale_file",
        )
    by_hand = decide(
        have, RemoteFile(1010, '"y"', YESTERDAY), LIMITS, force=False, allow_rollback=True
    )
    assert by_hand.action == "download"
    newer = decide(
        have, RemoteFile(1010, '"y"', "Sat, 21 Nov 2026 21:00:00 GMT"), LIMITS, force=False
    )
    assert newer.action == "download"
    unreadable = decide(have, RemoteFile(1010, '"y"', "yesterday"), LIMITS, force=False)
    assert unreadable.action == "download"  # not judged: downloaded and compared
