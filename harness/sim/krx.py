"""The KRX data portal's ETF list (screen MDCSTAT04601), as pykrx reads it.

Facts from shared/reference/krx-etf-and-metadata.md §1: ``POST
/comm/bldAttendant/getJsonData.cmd`` with form field ``bld``; the answer is JSON served as
``text/html``, ``{"output": [...], "CURRENT_DATETIME": ...}``; without a ``Referer`` header
KRX answers with an empty list (since 2024-07). KRX's login (since 2025-12) is not simulated.
"""

from __future__ import annotations

import json
from datetime import datetime

from aiohttp import web

from harness.sim.market import Listing, Market

__all__ = ["ETF_LIST_BLD", "etf_list_rows", "krx_json"]

ETF_LIST_BLD = "dbms/MDC/STAT/standard/MDCSTAT04601"

_MANAGERS = {
    "KODEX": "삼성자산운용", "TIGER": "미래에셋자산운용", "KBSTAR": "케이비자산운용",
    "ARIRANG": "한화자산운용", "HANARO": "엔에이치아문디자산운용", "KOSEF": "키움투자자산운용",
    "ACE": "한국투자신탁운용", "SOL": "신한자산운용", "PLUS": "한화자산운용",
}  # fmt: skip


def _multiple(name: str) -> str:
    if "레버리지" in name:
        return "2X 레버리지"
    if "인버스" in name:
        return "1X 인버스"
    return "일반"


def _row(etf: Listing) -> dict[str, str]:
    brand, _, theme = etf.name.partition(" ")
    overseas = theme.startswith("미국")
    return {
        "ISU_CD": etf.isin,
        "ISU_SRT_CD": etf.symbol,
        "ISU_NM": f"{_MANAGERS.get(brand, brand)} {brand}{theme} 증권상장지수투자신탁[주식]",
        "ISU_ABBRV": etf.name,
        "ISU_ENG_NM": f"{brand} {theme} ETF",
        "LIST_DD": etf.listed_on.strftime("%Y/%m/%d"),
        "ETF_OBJ_IDX_NM": theme,
        "IDX_CALC_INST_NM1": "S&P" if overseas else "KRX",
        "IDX_CALC_INST_NM2": _multiple(theme),
        "ETF_REPLICA_METHD_TP_CD": "실물(패시브)",
        "IDX_MKT_CLSS_NM": "해외" if overseas else "국내",
        "IDX_ASST_CLSS_NM": "채권" if "채권" in theme else "주식",
        "LIST_SHRS": f"{etf.listed_shares:,}",
        "COM_ABBRV": _MANAGERS.get(brand, "기타자산운용"),
        "CU_QTY": "50,000",
        "ETF_TOT_FEE": f"{0.05 + (etf.volatility * 10) % 0.5:.6f}",
        "TAX_TP_CD": "배당소득세(보유기간과세)" if overseas else "비과세",
    }


def etf_list_rows(market: Market) -> list[dict[str, str]]:
    """Every listed ETF as a MDCSTAT04601 row."""
    return [_row(x) for x in market.listings.values() if x.group == "EF"]


async def krx_json(market: Market, now: datetime, request: web.Request) -> web.Response:
    """Answer ``getJsonData.cmd`` for the ETF list screen."""
    form = await request.post()
    rows = etf_list_rows(market) if "Referer" in request.headers else []
    if form.get("bld") != ETF_LIST_BLD:
        rows = []
    body = {"output": rows, "CURRENT_DATETIME": now.strftime("%Y.%m.%d %p %I:%M:%S")}
    return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="text/html")
