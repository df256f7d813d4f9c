"""The simulated market carries the real market's best-known listings, as KIS serves them."""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import date, datetime
from pathlib import Path
from random import Random

import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st

from bus.events import TradeTick
from harness.sim.listings_krx import KNOWN_LISTINGS, isin_for
from harness.sim.market import KST, Market
from harness.sim.masters import domestic_master, group_code, zipped
from harness.sim.paths import CLOSING_AUCTION_FROM
from harness.sim.server import Simulator
from observer.calendar.clock import ManualClock
from observer.calendar.trading import TradingCalendar
from observer.kis.master import extract_single, parse_domestic
from observer.kis.realtime import RealtimeDecoder
from tests.harness.test_sim_server import MARKET, client_for, simulator

DAY = date(2026, 11, 20)
KNOWN = {x.code: x for x in KNOWN_LISTINGS}
STEMS = {"KOSPI": "kospi_code", "KOSDAQ": "kosdaq_code", "KONEX": "konex_code"}


@functools.cache
def default_market() -> Market:
    return Market(1, TradingCalendar())  # what `observer sim` serves by default


def test_the_known_listings_are_real_and_fit_the_masters() -> None:
    def count(market: str, group: str) -> int:
        return sum(x.market == market and x.group == group for x in KNOWN_LISTINGS)

    assert count("KOSPI", "ST") >= 30 and count("KOSDAQ", "ST") >= 10 and count("KOSPI", "EF") >= 10
    assert len(KNOWN) == len({x.name for x in KNOWN_LISTINGS}) == len(KNOWN_LISTINGS)
    for x in KNOWN_LISTINGS:
        assert len(x.code) == 6 and x.code.isdigit()
        assert len(x.name.encode("cp949")) <= 40  # the masters' name field
        assert x.listed_shares % 1000 == 0 and x.listed_shares > 0  # the masters carry thousands
    assert (KNOWN["005930"].name, KNOWN["000660"].name, KNOWN["069500"].name) == (
        "삼성전자",
        "SK하이닉스",
        "KODEX 200",
    )
    assert [isin_for(c) for c in ("005930", "000660", "069500")] == [
        "KR7005930003",
        "KR7000660001",
        "KR7069500007",
    ]


def test_the_market_lists_the_real_names_first_and_synthetic_ones_around_them() -> None:
    m = default_market()
    stocks = [x for x in m.listings.values() if x.group == "ST"]
    assert (len(stocks), len(m.listings) - len(stocks)) == (2500, 1000)
    samsung = m.listings["005930"]
    assert (samsung.name, samsung.market, samsung.isin, samsung.known) == (
        "삼성전자",
        "KOSPI",
        "KR7005930003",
        True,
    )
    assert {s for s, x in m.listings.items() if x.known} == set(KNOWN)
    synthetic = [x for x in m.listings.values() if not x.known]
    assert not {x.name for x in synthetic} & {x.name for x in KNOWN_LISTINGS}
    assert len({x.name for x in m.listings.values()}) == len(m.listings)
    kospi = sum(x.market == "KOSPI" for x in stocks)
    assert kospi == 2500 * 36 // 100  # the real ones count towards each market's share
    small = Market(1, TradingCalendar(), stocks=20, etfs=3)  # as many real ones as fit
    real_stocks = [x.code for x in KNOWN_LISTINGS if x.group == "ST"]
    assert list(small.listings) == [*real_stocks[:20], "069500", "360750", "459580"]
    assert Market(1, TradingCalendar()).listings == m.listings


def test_real_prices_stay_in_their_real_ranges() -> None:
    m = MARKET
    days = [d for d in m.sessions if d <= date(2027, 6, 30)]
    samsung = [m.close("005930", d) for d in days]
    assert min(samsung) >= 55_000 and max(samsung) <= 100_000
    for code, known in KNOWN.items():
        closes = [m.close(code, d) for d in days[::5]]
        assert known.price / 2.5 < min(closes) and max(closes) < known.price * 2.5, code


def test_the_busiest_real_names_trade_at_real_density() -> None:
    for code in ("005930", "000660"):
        path = MARKET.day_path(code, DAY)
        per_second = path.trades / 60
        before_auction = per_second[CLOSING_AUCTION_FROM - 10 : CLOSING_AUCTION_FROM]
        assert per_second[:10].mean() >= 5 and before_auction.mean() >= 5, code  # open, close
        assert per_second[120:270].mean() >= 1, code  # midday
    samsung = [int(MARKET.day_path("005930", d).volume.sum()) for d in MARKET.sessions[400:420]]
    assert 8_000_000 < sorted(samsung)[10] < 25_000_000  # a median day, in shares


def test_the_product_universe_keeps_its_size() -> None:
    m = default_market()
    closes = [m.close(s, DAY) for s, x in m.listings.items() if x.group == "ST"]
    assert 1_000 <= sum(c >= 4_000 for c in closes) <= 1_150  # the universe's price floor


SYNTHETIC = sorted(s for s, x in MARKET.listings.items() if not x.known)


@given(
    st.lists(st.sampled_from(sorted(KNOWN)), min_size=1, max_size=25, unique=True),
    st.lists(st.sampled_from(SYNTHETIC), max_size=25, unique=True),
    st.randoms(use_true_random=False),
)
def test_known_listings_round_trip_through_the_master_parser(
    known: list[str], synthetic: list[str], rnd: Random
) -> None:
    codes = known + synthetic
    rnd.shuffle(codes)
    listings = [MARKET.listings[s] for s in codes]
    for market, stem in STEMS.items():
        rows = [x for x in listings if x.market == market]
        prices = {x.symbol: MARKET.close(x.symbol, DAY) for x in rows}
        archive = zipped(f"{stem}.mst", domestic_master(rows, prices))
        parsed = parse_domestic(extract_single(archive, f"{stem}.mst"), market)  # type: ignore[arg-type]
        assert [(p.symbol, p.name, p.market, p.listed_shares, p.isin) for p in parsed] == [
            (x.symbol, x.name, x.market, x.listed_shares, x.isin) for x in rows
        ]
        assert [p.base_price for p in parsed] == [prices[x.symbol] for x in rows]
        assert [p.security_group for p in parsed] == [group_code(x) for x in rows]  # KONEX: KN


def test_005930_answers_and_streams_like_the_real_one(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, list[TradeTick]]:
        async with simulator() as (sim, url):
            client, tokens = client_for(sim, url, tmp_path)
            price = await client.current_price("005930")
            assert 55_000 <= int(price.stck_prpr) <= 100_000
            assert price.rprs_mrkt_kor_name == "KOSPI" and price.lstn_stcn == "5919638000"
            key = (await tokens.approval_key()).reveal()
            header = {"approval_key": key, "custtype": "P", "tr_type": "1", "content-type": "utf-8"}
            body = {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}
            ticks: list[TradeTick] = []
            async with websockets.connect(url.replace("http", "ws") + "/tryitout") as ws:
                await ws.send(json.dumps({"header": header, "body": body}))
                control = json.loads(await ws.recv())
                async with asyncio.timeout(20):
                    while len(ticks) < 30:
                        text = await ws.recv()
                        assert isinstance(text, str)
                        if text.startswith("0|H0STCNT0|"):
                            frame = RealtimeDecoder().decode(text, 0)
                            assert not frame.errors
                            ticks += frame.ticks
            await client._http.aclose()
            return control["body"]["msg_cd"], ticks

    msg_cd, ticks = asyncio.run(scenario())
    assert msg_cd == "OPSP0000"
    assert {t.symbol for t in ticks} == {"005930"}
    assert all(55_000 <= t.price <= 100_000 for t in ticks)


@pytest.mark.parametrize("hhmmss", ["083000", "100030", "152959", "160000"])
def test_minute_bars_carry_the_summary_of_the_quote_when_asked(hhmmss: str) -> None:
    at = datetime.strptime(f"20261120{hhmmss}", "%Y%m%d%H%M%S").replace(tzinfo=KST)
    sim = Simulator(MARKET, ManualClock(int(at.timestamp() * 1e9)))
    query = {"FID_INPUT_ISCD": "005930", "FID_INPUT_HOUR_1": "153000"}
    bars = json.loads(sim.minute_bars_today(query).text)  # type: ignore[arg-type]
    quote = json.loads(sim.inquire_price({"FID_INPUT_ISCD": "005930"}).text)["output"]  # type: ignore[arg-type]
    summary = bars["output1"]
    assert set(summary) == {
        "prdy_vrss",
        "prdy_vrss_sign",
        "prdy_ctrt",
        "stck_prdy_clpr",
        "acml_vol",
        "acml_tr_pbmn",
        "hts_kor_isnm",
        "stck_prpr",
    }
    assert summary["hts_kor_isnm"] == "삼성전자"
    path = MARKET.day_path("005930", DAY)
    assert summary["stck_prdy_clpr"] == str(path.prev_close)
    if hhmmss == "083000":  # before the open: yesterday's close, nothing traded yet
        assert (summary["stck_prpr"], summary["acml_vol"]) == (str(path.prev_close), "0")
        assert bars["output2"] == []
        return
    same = ("stck_prpr", "prdy_vrss", "prdy_vrss_sign", "prdy_ctrt", "acml_vol", "acml_tr_pbmn")
    assert {k: summary[k] for k in same} == {k: quote[k] for k in same}
    change = int(summary["stck_prpr"]) - int(summary["stck_prdy_clpr"])
    assert int(summary["prdy_vrss"]) == change
    if hhmmss == "160000":  # after the close: the whole day
        assert summary["stck_prpr"] == str(path.day_close)
        assert summary["acml_vol"] == str(int(path.volume.sum()))
        assert bars["output2"][0]["stck_prpr"] == summary["stck_prpr"]  # the 15:30 bar
    past = json.loads(
        sim.minute_bars_past(query | {"FID_INPUT_DATE_1": "20261119"}).text  # type: ignore[arg-type]
    )
    assert past["output1"] == summary and len(past["output2"]) == 120
