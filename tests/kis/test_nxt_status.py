"""A stock's or an ETF's Nextrade standing (CTPF1002R): the client reads both flags or refuses
the answer, the simulator answers as KIS's list does, and a paper account is never asked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.config import SimConfig
from harness.sim.market import NXT_ETF_SHARE, NXT_SHARE, Market
from harness.sim.nextrade import NXT_ETFS_FROM
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.errors import KisApiError, KisPaperRefused, KisProtocolError, KisRateLimited
from observer.kis.client import KisClient, NxtStatus, nxt_status
from observer.kis.schemas import StockInfoOutput
from tests.support import SimThread, sim_client

MARKET = Market(48, TradingCalendar(), stocks=40, etfs=20)
TEN = datetime(2026, 11, 20, 10, 0, tzinfo=KST)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(MARKET, TEN, SimConfig(token_min_interval_s=0)) as thread:
        yield thread


def _ask(client: KisClient, symbols: list[str]) -> list[NxtStatus | Exception]:
    async def run() -> list[NxtStatus | Exception]:
        try:
            answers: list[NxtStatus | Exception] = []
            for symbol in symbols:
                while True:
                    try:
                        answers.append(await client.nxt_status(symbol))
                    except KisRateLimited:  # the simulator's 20/s, crossed by a loaded burst
                        await asyncio.sleep(0.1)  # a backoff before asking again
                        continue
                    except (KisApiError, KisPaperRefused) as exc:
                        answers.append(exc)
                    break
            return answers
        finally:
            await client._http.aclose()  # type: ignore[attr-defined]

    return asyncio.run(run())


def test_the_simulator_answers_nextrade_s_list_and_the_client_reads_it(
    sim: SimThread, tmp_path: Path
) -> None:
    """The quarter's selection (the largest by listed value at its eve, administrative
    issues out) is Nextrade's, with the largest ETFs from their first day (ranked at its
    eve); a suspended one among them is halted there; an unknown code is "no data"."""

    def largest(group: str, eve: date, share: float) -> tuple[list[str], set[str]]:
        names = sorted(
            (x for x in MARKET.listings.values() if x.group == group and x.market != "KONEX"),
            key=lambda x: (-MARKET.close(x.symbol, eve) * x.listed_shares, x.symbol),
        )
        candidates = [x for x in names if not x.administrative]
        return [x.symbol for x in names], {
            x.symbol for x in candidates[: round(len(candidates) * share)]
        }

    stocks, eligible = largest("ST", MARKET.calendar.previous_session(date(2026, 10, 1)), NXT_SHARE)
    etfs, etfs_eligible = largest(
        "EF", MARKET.calendar.previous_session(NXT_ETFS_FROM), NXT_ETF_SHARE
    )
    assert 0 < len(eligible) < len(stocks) and 0 < len(etfs_eligible) < len(etfs)
    eligible |= etfs_eligible
    assert MARKET.nxt_eligible(TEN.date()) == eligible
    symbols = [*stocks, *etfs]
    *answers, for_nothing = _ask(sim_client(sim, tmp_path, "nx1"), [*symbols, "999999"])
    assert answers == [
        NxtStatus(
            s,
            s in eligible,
            s in eligible and MARKET.listings[s].suspended,
            "stock" if s in stocks else "etf",  # the answer's group code, ST or EF
        )
        for s in symbols
    ]
    assert isinstance(for_nothing, KisApiError) and for_nothing.msg_cd == "KIOK0560"
    assert sim.sim.gateway.calls["CTPF1002R"] >= len(symbols) + 1


def test_a_paper_account_is_refused_before_anything_is_sent(sim: SimThread, tmp_path: Path) -> None:
    """KIS's paper host lacks CTPF1002R: the client says so without a call."""
    before = sim.sim.gateway.calls["CTPF1002R"]
    [answer] = _ask(sim_client(sim, tmp_path, "nx1", "paper"), ["005930"])
    assert isinstance(answer, KisPaperRefused)
    assert sim.sim.gateway.calls["CTPF1002R"] == before


@given(st.text(max_size=3), st.text(max_size=3))
def test_both_flags_read_as_y_or_n_or_the_answer_is_refused_naming_the_flag(
    tradable: str, halted: str
) -> None:
    output = StockInfoOutput(pdno="005930", cptt_trad_tr_psbl_yn=tradable, nxt_tr_stop_yn=halted)
    if tradable in ("Y", "N") and halted in ("Y", "N"):
        assert nxt_status("005930", output) == NxtStatus("005930", tradable == "Y", halted == "Y")
        return
    wrong = "cptt_trad_tr_psbl_yn" if tradable not in ("Y", "N") else "nxt_tr_stop_yn"
    with pytest.raises(KisProtocolError, match=f"005930: {wrong} is"):
        nxt_status("005930", output)
