"""KIS hosts and REST endpoints, written down as data (shared/reference/kis-api.md §1, §4)."""

from __future__ import annotations

from typing import Literal

import msgspec

from bus.events import Venue

__all__ = [
    "APPROVAL_PATH",
    "ENDPOINTS",
    "ENVIRONMENTS",
    "MARKET_CODES",
    "TOKEN_PATH",
    "Environment",
    "RestEndpoint",
]

EnvironmentName = Literal["real", "paper", "sim"]


class Environment(msgspec.Struct, frozen=True, kw_only=True):
    """Where one kind of account talks to: REST base URL and WebSocket URL."""

    name: EnvironmentName
    rest_url: str
    ws_url: str


ENVIRONMENTS: dict[str, Environment] = {
    "real": Environment(
        name="real",
        rest_url="https://openapi.koreainvestment.com:9443",
        ws_url="ws://ops.koreainvestment.com:21000/tryitout",
    ),
    "paper": Environment(
        name="paper",
        rest_url="https://openapivts.koreainvestment.com:29443",
        ws_url="ws://ops.koreainvestment.com:31000/tryitout",
    ),
}


# FID_COND_MRKT_DIV_CODE of each venue's prices, bars and flows: KRX's, Nextrade's, both.
MARKET_CODES: dict[Venue, str] = {"KRX": "J", "NXT": "NX", "combined": "UN"}


class RestEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """One REST function: its path, tr_id, and whether the paper host offers it.

    ``paper`` is the one list of what paper accounts lack: `KisClient.get` refuses the others
    before sending anything.
    """

    name: str
    path: str
    tr_id: str
    paper: bool = True
    rows_per_call: int = 0  # 0: not paged by rows


ENDPOINTS: dict[str, RestEndpoint] = {
    e.name: e
    for e in (
        RestEndpoint(name="current_price", tr_id="FHKST01010100",
                     path="/uapi/domestic-stock/v1/quotations/inquire-price"),
        RestEndpoint(name="daily_chart", tr_id="FHKST03010100", rows_per_call=100,
                     path="/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"),
        RestEndpoint(name="minute_bars_today", tr_id="FHKST03010200", rows_per_call=30,
                     path="/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice"),
        # The workbook: "모의투자 미지원" (an older table of the samples said otherwise).
        RestEndpoint(name="minute_bars_past", tr_id="FHKST03010230", rows_per_call=120,
                     paper=False,
                     path="/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice"),
        # 주식현재가 당일시간대별체결: today's trades of a venue before an hour, 30 a call
        # (KIS's sample), paged back by the hour alone (no tr_cont); paper too.
        RestEndpoint(name="time_trades", tr_id="FHPST01060000", rows_per_call=30,
                     path="/uapi/domestic-stock/v1/quotations/inquire-time-itemconclusion"),
        RestEndpoint(name="daily_price", tr_id="FHKST01010400",
                     path="/uapi/domestic-stock/v1/quotations/inquire-daily-price"),
        RestEndpoint(name="etf_price", tr_id="FHPST02400000", paper=False,
                     path="/uapi/etfetn/v1/quotations/inquire-price"),
        RestEndpoint(name="etf_nav_trend", tr_id="FHPST02440000", paper=False,
                     path="/uapi/etfetn/v1/quotations/nav-comparison-trend"),
        RestEndpoint(name="etf_nav_daily_trend", tr_id="FHPST02440200", paper=False,
                     rows_per_call=100,
                     path="/uapi/etfetn/v1/quotations/nav-comparison-daily-trend"),
        RestEndpoint(name="etf_components", tr_id="FHKST121600C0", paper=False,
                     path="/uapi/etfetn/v1/quotations/inquire-component-stock-price"),
        # 종목별 외인기관 추정가집계: the day's intraday estimates; no date, no venue; real only.
        RestEndpoint(name="investor_estimate", tr_id="HHPTJ04160200", paper=False,
                     path="/uapi/domestic-stock/v1/quotations/investor-trend-estimate"),
        # 종목별 투자자매매동향(일별): a day's final flows per venue, from 15:40; real only.
        RestEndpoint(name="investor_flows", tr_id="FHPTJ04160001", paper=False,
                     path="/uapi/domestic-stock/v1/quotations/investor-trade-by-stock-daily"),
        # 종목별 프로그램매매추이(일별): a day's program trading per venue; real only.
        RestEndpoint(name="program_trades_daily", tr_id="FHPPG04650201", paper=False,
                     path="/uapi/domestic-stock/v1/quotations/program-trade-by-stock-daily"),
        # 변동성완화장치(VI) 현황: a day's VIs, here of one stock (30 rows at most); real only.
        RestEndpoint(name="vi_status", tr_id="FHPST01390000", paper=False,
                     path="/uapi/domestic-stock/v1/quotations/inquire-vi-status"),
        # 주식기본조회: NXT eligibility (cptt_trad_tr_psbl_yn, nxt_tr_stop_yn); real only.
        RestEndpoint(name="stock_info", tr_id="CTPF1002R", paper=False,
                     path="/uapi/domestic-stock/v1/quotations/search-stock-info"),
        RestEndpoint(name="overseas_price", tr_id="HHDFS00000300",
                     path="/uapi/overseas-price/v1/quotations/price"),
        RestEndpoint(name="overseas_info", tr_id="CTPF1702R", paper=False,
                     path="/uapi/overseas-price/v1/quotations/search-info"),
        # paper availability UNCONFIRMED (ref-KRX §3.2): treated as real-only
        RestEndpoint(name="overseas_industry_codes", tr_id="HHDFS76370100", paper=False,
                     path="/uapi/overseas-price/v1/quotations/industry-price"),
        RestEndpoint(name="overseas_price_detail", tr_id="HHDFS76200200", paper=False,
                     path="/uapi/overseas-price/v1/quotations/price-detail"),
        # paper availability UNCONFIRMED, like its catalog's: treated as real-only
        RestEndpoint(name="overseas_industry_members", tr_id="HHDFS76370000", paper=False,
                     path="/uapi/overseas-price/v1/quotations/industry-theme"),
    )
}  # fmt: skip

# CTPF1702R product type codes by overseas exchange code (§4.9).
OVERSEAS_PRODUCT_TYPES: dict[str, str] = {
    "NAS": "512", "NYS": "513", "AMS": "529", "TSE": "515", "HKS": "501", "HNX": "507",
    "HSX": "508", "SHS": "551", "SZS": "552",
}  # fmt: skip

# Public master files (no authentication), §6.1.
MASTER_BASE_URL = "https://new.real.download.dws.co.kr/common/master/"

TOKEN_PATH = "/oauth2/tokenP"  # noqa: S105 - a URL path, not a password
APPROVAL_PATH = "/oauth2/Approval"
