"""The ETF TRs of the KIS client against the simulator, and their agreement with the KRX portal."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from harness.sim.etf import multiple, units
from harness.sim.server import Simulator
from observer.errors import KisPaperRefused
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.krx.schemas import krx_decimal, krx_int
from tests.krx.test_krx import MARKET, krx_client, portal

KEY, SECRET = "PSsimTestAppKey000000000000000000000", "s" * 180
ETFS = sorted(s for s, x in MARKET.listings.items() if x.group == "EF")
LEVERAGED = next(s for s in ETFS if multiple(MARKET.listings[s].name) != 1)


def kis_client(sim: Simulator, url: str, tmp_path: Path, environment: str = "sim") -> KisClient:
    http = httpx.AsyncClient(base_url=url)
    creds = Credentials("sim1", Secret(KEY), Secret(SECRET))
    tokens = TokenManager(http, creds, sim.clock, tmp_path / "tokens", "sim")
    limiter = RateLimits({"sim1": 200}).for_account("sim1")
    return KisClient(http, creds, tokens, sim.clock, limiter, environment=environment)


def test_paper_accounts_never_send_a_real_only_tr(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with portal() as (sim, url):
            paper = kis_client(sim, url, tmp_path, "paper")
            for call in (
                paper.etf_price(ETFS[0]),
                paper.etf_nav_daily(ETFS[0], "20261101", "20261119"),
                paper.etf_components(ETFS[0]),
            ):
                with pytest.raises(KisPaperRefused, match="real accounts only"):
                    await call
            assert not {"FHPST02400000", "FHPST02440200", "FHKST121600C0"} & set(sim.calls)
            assert int((await paper.current_price(ETFS[0])).stck_prpr) > 0  # paper has this
            await paper._http.aclose()

    asyncio.run(scenario())


def test_kis_and_krx_tell_one_story(tmp_path: Path) -> None:
    day = date(2026, 11, 19)

    async def scenario() -> None:
        async with portal() as (sim, url):
            kis, krx = kis_client(sim, url, tmp_path), krx_client(sim, url)
            table = {r.ISU_SRT_CD: r for r in await krx.etf_daily(day)}
            for symbol in (ETFS[0], LEVERAGED):
                history = await kis.etf_nav_daily(symbol, "20260101", "20261119")
                assert len(history) > 200  # paged: 100 rows a call
                row = history[-1]
                assert row.stck_bsop_date == "20261119"
                assert krx_int(table[symbol].TDD_CLSPRC) == int(row.stck_clpr)
                assert krx_decimal(table[symbol].NAV) == Decimal(row.nav)
                premium = (Decimal(row.stck_clpr) - Decimal(row.nav)) / Decimal(row.nav) * 100
                assert abs(premium - Decimal(row.dprt)) <= Decimal("0.01")
            price = await kis.etf_price(LEVERAGED)
            assert int(price.etf_trc_ert_mltp) == multiple(MARKET.listings[LEVERAGED].name)
            units = {int(r.LIST_SHRS.replace(",", "")) for r in table.values()}
            assert int(price.lstn_stcn) > 0 and len(units) > 1
            summary, parts, _ = await kis.etf_components(LEVERAGED)
            codes = {p.stck_shrn_iscd for p in parts}
            assert {"KRD010010001", "CASH00000001"} <= codes  # cash lines, as in KRX's PDF
            assert any(c.startswith("KR4") for c in codes)  # the futures line
            assert int(summary.etf_cnfg_issu_cnt) == len(parts)
            weights = sum(Decimal(p.etf_cnfg_issu_rlim) for p in parts)
            assert weights != 100  # as live: weights never sum exactly to 100
            await kis._http.aclose()
            await krx.aclose()

    asyncio.run(scenario())


def test_units_change_from_day_to_day() -> None:
    days = [d for d in MARKET.sessions if date(2026, 10, 1) <= d <= date(2026, 11, 19)]
    changed = sum(
        units(MARKET, s, a) != units(MARKET, s, b) for s in ETFS for a, b in pairwise(days)
    )
    assert changed > len(ETFS)  # creations and redemptions on many days


def test_nav_not_yet_published(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with portal() as (sim, url):  # 10:00 KST, a session
            kis, krx = kis_client(sim, url, tmp_path), krx_client(sim, url)
            sim.faults.etf_nav_late_until = "23:00"
            price = await kis.etf_price(ETFS[0])
            assert price.nav == "0" and price.etf_ntas_ttam == "0" and price.dprt == "0.00"
            today = {r.ISU_SRT_CD: r for r in await krx.etf_daily(date(2026, 11, 20))}
            assert today[ETFS[0]].NAV == "-" and today[ETFS[0]].INVSTASST_NETASST_TOTAMT == "0"
            history = await kis.etf_nav_daily(ETFS[0], "20261118", "20261120")
            assert [r.nav == "0" for r in history] == [False, False, True]  # only today's
            sim.faults.etf_nav_late_until = None
            assert (await kis.etf_price(ETFS[0])).nav != "0"
            await kis._http.aclose()
            await krx.aclose()

    asyncio.run(scenario())
