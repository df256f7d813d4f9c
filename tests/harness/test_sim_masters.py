"""The simulator's master files parse with the client's parser into the same listings.

The two sides were written separately from the reference; this is where they must agree.
"""

from __future__ import annotations

import functools

from harness.sim.market import Market
from harness.sim.masters import master_files
from observer.calendar.trading import TradingCalendar
from observer.kis.master import extract_single, parse_domestic, parse_overseas


@functools.cache
def files() -> tuple[Market, dict[str, int], dict[str, bytes]]:
    market = Market(11, TradingCalendar())
    prices = {s: 1000 + n for n, s in enumerate(market.listings)}
    return market, prices, master_files(market, prices)


def test_domestic_masters_round_trip() -> None:
    market, prices, archives = files()
    for stem, name in (("kospi_code", "KOSPI"), ("kosdaq_code", "KOSDAQ"), ("konex_code", "KONEX")):
        data = extract_single(archives[f"{stem}.mst.zip"], f"{stem}.mst")
        parsed = {x.symbol: x for x in parse_domestic(data, name)}  # type: ignore[arg-type]
        expected = {s: x for s, x in market.listings.items() if x.market == name}
        assert parsed.keys() == expected.keys()
        for symbol, listing in expected.items():
            row = parsed[symbol]
            group = "KN" if name == "KONEX" and listing.group == "ST" else listing.group
            assert (row.name, row.isin, row.security_group) == (listing.name, listing.isin, group)
            if listing.group == "ST":
                assert row.kind == "stock"
            assert row.base_price == prices[symbol]
            assert (row.halted, row.administrative) == (listing.suspended, listing.administrative)
            administrative = ("administrative",) if listing.administrative else ()
            assert row.measures == tuple(sorted(listing.measures + administrative))
            assert row.listed_shares == listing.listed_shares
            etp = row.tail.get("etp_prod_cls_code", "0")  # KONEX has no such field
            assert etp == ("1" if listing.group == "EF" else "0")


def test_overseas_masters_round_trip() -> None:
    market, _, archives = files()
    for stem, rows in market.overseas.items():
        parsed = parse_overseas(
            extract_single(archives[f"{stem}mst.cod.zip"], f"{stem}mst.cod"), stem
        )
        assert [(x.symbol, x.name_en, x.currency) for x in parsed] == [
            (x.symbol, x.name_en, x.currency) for x in rows
        ]


def test_konex_stocks_are_kn_rows_and_stocks() -> None:
    """The KONEX .h's group code is ``KN`` (코넥스): the simulator writes it, and both the
    parser and the master-file worker call such a row a stock."""
    from observer.reference.instruments import master_file
    from workers.master_file.reading import read_listings

    market, _, archives = files()
    data = extract_single(archives["konex_code.mst.zip"], "konex_code.mst")
    rows = parse_domestic(data, "KONEX")
    assert rows and {x.security_group for x in rows} == {"KN"}
    assert {x.kind for x in rows} == {"stock"}
    konex = {s for s, x in market.listings.items() if x.market == "KONEX" and x.group == "ST"}
    listed = read_listings(master_file("KONEX"), data)
    assert {x.symbol for x in listed if x.security_type == "stock"} == konex


def test_some_stocks_are_under_a_market_alarm_and_the_masters_say_which() -> None:
    """About 1.3 % of the synthetic stocks carry 투자경고 or 투자위험 (mrkt_alrm_cls_code)."""
    market, _, archives = files()
    data = extract_single(archives["kospi_code.mst.zip"], "kospi_code.mst")
    alarms = {x.tail["mrkt_alrm_cls_code"] for x in parse_domestic(data, "KOSPI")}
    assert {"00", "02", "03"} <= alarms
    warned = [x for x in market.listings.values() if x.measures]
    stocks = sum(x.group == "ST" for x in market.listings.values())
    assert 0.005 * stocks < len(warned) < 0.03 * stocks
    assert {x.group for x in warned} == {"ST"}
