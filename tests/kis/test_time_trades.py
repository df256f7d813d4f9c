"""FHPST01060000 paged back to a cumulative volume: every trade once, the chain the proof.

The client runs against KIS's paging as believed and as it may be (UNCONFIRMED): the trades
before an hour, or at or before it; 30 rows a page or another size. Whatever the paging, the
trades found are the tape's, once each, and a span found whole closes its chain.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from observer.calendar.phases import KST
from observer.errors import KisProtocolError
from observer.kis.schemas import TimeTradeRow
from observer.kis.time_trades import (
    TimeTrade,
    TradesBack,
    chain_closes,
    time_trade,
    trades_back_to,
)
from tests.kis.test_kis_client import envelope, make_client

S = 1_000_000_000
DAY = "20261120"
NINE_NS = int(datetime(2026, 11, 20, 9, tzinfo=KST).timestamp()) * S

# A tape: (second after 09:00, quantity) per trade, in time order
Tape = list[tuple[int, int]]


def _hhmmss(second: int) -> str:
    return f"{9 + second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"


def _rows(tape: Tape) -> list[dict[str, str]]:
    """The tape as KIS's rows, oldest first, cumulative volumes from 0."""
    rows, cum = [], 0
    for second, qty in tape:
        cum += qty
        rows.append(
            {
                "stck_cntg_hour": _hhmmss(second),
                "stck_prpr": "70100",
                "prdy_ctrt": "-1.25",
                "askp": "70200",
                "bidp": "70100",
                "tday_rltv": "98.40",
                "acml_vol": str(cum),
                "cnqn": str(qty),
            }
        )
    return rows


def _page_back(
    tmp_path: Path,
    tape: Tape,
    until: int,
    since_cum: int,
    *,
    page: int = 30,
    inclusive: bool = False,
    max_pages: int = 1000,
) -> tuple[TradesBack, list[str]]:
    rows = _rows(tape)
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["tr_id"] == "FHPST01060000"
        assert request.url.params["FID_COND_MRKT_DIV_CODE"] == "NX"
        hour = request.url.params["FID_INPUT_HOUR_1"]
        asked.append(hour)
        before = [
            r
            for r in rows
            if (r["stck_cntg_hour"] <= hour if inclusive else r["stck_cntg_hour"] < hour)
        ]
        body = list(reversed(before))[:page]
        return httpx.Response(200, json=envelope(output1={}, output2=body))

    client = make_client(tmp_path, handler)
    until_ns = NINE_NS + until * S
    found = asyncio.run(trades_back_to(client, "005930", "NXT", until_ns, since_cum, max_pages))
    return found, asked


def _tape() -> st.SearchStrategy[Tape]:
    # Up to 12 trades a second: fewer than a page, so the paging always gets through
    seconds = st.lists(st.integers(0, 40), min_size=1, max_size=120).map(sorted)
    return seconds.flatmap(
        lambda ss: st.lists(st.integers(1, 500), min_size=len(ss), max_size=len(ss)).map(
            lambda qs: list(zip(ss, qs, strict=True))
        )
    ).filter(lambda tape: max(sum(1 for s, _ in tape if s == x) for x, _ in tape) < 12)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(_tape(), st.data(), st.sampled_from([30, 13]), st.booleans())
def test_the_trades_between_two_cumulative_volumes_come_back_whole_and_once(
    tmp_path: Path, tape: Tape, data: st.DataObject, page: int, inclusive: bool
) -> None:
    cums = [sum(q for _, q in tape[: i + 1]) for i in range(len(tape))]
    after_index = data.draw(st.integers(0, len(tape) - 1), label="the gap's last trade")
    before_index = data.draw(st.integers(-1, after_index - 1), label="the last one streamed")
    cum_before = cums[before_index] if before_index >= 0 else 0
    cum_after = cums[after_index]
    until = tape[after_index][0]  # asked from the stamp of the gap's last trade
    found, asked = _page_back(tmp_path, tape, until, cum_before, page=page, inclusive=inclusive)
    span = [t for t in found.trades if t.cum_volume <= cum_after]
    # Every trade of the span, once, in order: the chain closes
    assert [t.cum_volume for t in span] == cums[before_index + 1 : after_index + 1]
    assert chain_closes(span, cum_before, cum_after)
    # Reached through a trade at or below cum_before; from the day's first, no further back
    assert found.reached == (before_index >= 0) and found.stuck == (before_index < 0)
    # Each page but the last brings trades never seen: pages <= trades / new-per-page + 2
    assert found.pages == len(asked) <= len(tape) + 2


def test_a_second_holding_more_than_a_page_stops_the_paging_and_says_so(tmp_path: Path) -> None:
    tape = [(5, 10)] + [(10, 1)] * 40  # 40 trades in 09:00:10, a page of 30
    found, asked = _page_back(tmp_path, tape, 10, 10)
    assert found.stuck and not found.reached and len(asked) == 2
    span = [t for t in found.trades if t.cum_volume <= 50]
    assert not chain_closes(span, 10, 50)  # ten of that second's trades were never seen


def test_the_page_limit_ends_the_paging_short_of_the_chain(tmp_path: Path) -> None:
    # 100 trades of a share each, a second apart: the first page's 30 shares say 70 more take
    # 3 more pages, 4 in all: more than 2 allowed, so the paging stops at the first
    tape = [(s, 1) for s in range(100)]
    found, asked = _page_back(tmp_path, tape, 99, 0, max_pages=2)
    assert not found.reached and not found.stuck and found.pages == len(asked) == 1
    assert found.needed == 4 and not chain_closes(found.trades, 0, 100)
    assert [t.cum_volume for t in found.trades] == list(range(71, 101))
    # Allowed 4: the estimate is no limit, the paging goes on to the chain's start
    found, asked = _page_back(tmp_path, tape, 99, 1, max_pages=4)
    assert found.reached and found.needed == 0 and found.pages == 4
    # Estimated within 5 but needing more (a page's overlap, busier seconds further back):
    # cut at the limit as before
    uneven = [(s, 1) for s in range(40)] + [(40 + s, 10) for s in range(60)]
    found, _ = _page_back(tmp_path, uneven, 99, 0, max_pages=3)
    assert not found.reached and found.needed == 0 and found.pages == 3


def test_rows_of_one_second_each_do_not_close_a_chain_of_trades() -> None:
    # KIS answering a second's trades as one row (UNCONFIRMED): the rows chain among
    # themselves, but a gap's edge inside a second does not fall on a row.
    trades = [
        # 09:00:00's three trades of 10, as one row
        TimeTrade(NINE_NS, 100, 30, 130, 0, 0, Decimal(0), Decimal(0)),
    ]
    assert chain_closes(trades, 100, 130)
    assert not chain_closes(trades, 110, 130)  # the streamed trade of 10 ended at 110


def test_a_row_names_its_price_either_way_and_a_non_trade_is_refused() -> None:
    row = TimeTradeRow(stck_cntg_hour="141159", acml_vol="1979727", cnqn="20", stck_pbpr="104500")
    trade = time_trade(row, DAY)
    assert (trade.price, trade.qty, trade.cum_volume) == (104500, 20, 1979727)
    assert trade.exchange_ns == int(datetime(2026, 11, 20, 14, 11, 59, tzinfo=KST).timestamp()) * S
    for bad in (
        TimeTradeRow(stck_cntg_hour="141159", acml_vol="10", cnqn="20", stck_prpr="1"),
        TimeTradeRow(stck_cntg_hour="141159", acml_vol="10", cnqn="0", stck_prpr="1"),
        TimeTradeRow(stck_cntg_hour="141159", acml_vol="10", cnqn="1", stck_prpr=""),
        TimeTradeRow(stck_cntg_hour="146159", acml_vol="10", cnqn="1", stck_prpr="1"),
        TimeTradeRow(
            stck_cntg_hour="141159", acml_vol="10", cnqn="1", stck_prpr="1", prdy_ctrt="x"
        ),
    ):
        with pytest.raises(KisProtocolError):
            time_trade(bad, DAY)
