"""Each REST TR the product uses, called once and read by the client's own schemas.

One call per TR (no paging: the check reports whether KIS said more pages follow), with the
client's `KisClient.get` (its headers, pace, retries and error classification) and the
answer typed by the client's schemas (`observer.kis.schemas`), so that a field missing or of
the wrong shape is found as the product would meet it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from observer.errors import KisApiError, KisError, KisPaperRefused
from observer.kis.client import KisClient, Page, nxt_status
from observer.kis.endpoints import ENDPOINTS, OVERSEAS_PRODUCT_TYPES
from observer.kis.parse import decode_json, price_snapshot
from observer.kis.schemas import (
    CurrentPriceOutput,
    DailyBarRow,
    EtfComponentRow,
    EtfComponentSummary,
    EtfNavDailyRow,
    EtfPriceOutput,
    IndustryCodeRow,
    IndustryMemberRow,
    InvestorEstimateRow,
    InvestorFlowRow,
    MinuteBarRow,
    OverseasInfoOutput,
    OverseasPriceOutput,
    PriceDetailOutput,
    ProgramDailyRow,
    StockInfoOutput,
    TimeTradeRow,
    ViStatusRow,
)
from observer.kis_check.investor import NONE_STORED, StoredPostings, postings_finding
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Outcome, Report

__all__ = ["Targets", "check_rest"]

_EMPTY = (b"null", b'""', b"[]", b"{}")


@dataclass(frozen=True, slots=True)
class Targets:
    """The symbols the calls ask about: a liquid stock, an ETF, an overseas listing."""

    symbol: str = "005930"
    etf: str = "069500"
    exchange: str = "NAS"
    overseas: str = "AAPL"
    today: date = date(1970, 1, 1)  # KST; the past-day TRs ask about the day before


@dataclass(frozen=True, slots=True)
class _Probe:
    endpoint: str
    params: dict[str, str]
    outputs: tuple[tuple[str, Any], ...]  # (answer field, schema type) read from the answer


def _probes(t: Targets) -> list[_Probe]:
    """What each endpoint is asked, and which schema reads which part of its answer."""
    day, past = t.today.strftime("%Y%m%d"), (t.today - timedelta(days=7)).strftime("%Y%m%d")
    yesterday = (t.today - timedelta(days=1)).strftime("%Y%m%d")
    stock = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": t.symbol}
    etf = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": t.etf}
    abroad = {"AUTH": "", "EXCD": t.exchange, "SYMB": t.overseas}
    chart = {"FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0"}
    return [
        _Probe("current_price", stock, (("output", CurrentPriceOutput),)),
        _Probe(
            "daily_chart",
            stock | chart | {"FID_INPUT_DATE_1": past, "FID_INPUT_DATE_2": day},
            (("output2", list[DailyBarRow]),),
        ),
        _Probe(
            "minute_bars_today",
            stock
            | {"FID_PW_DATA_INCU_YN": "N", "FID_ETC_CLS_CODE": "", "FID_INPUT_HOUR_1": "153000"},
            (("output2", list[MinuteBarRow]),),
        ),
        _Probe(
            "minute_bars_past",
            stock
            | {
                "FID_INPUT_DATE_1": yesterday,
                "FID_PW_DATA_INCU_YN": "N",
                "FID_FAKE_TICK_INCU_YN": "",
                "FID_INPUT_HOUR_1": "153000",
            },
            (("output2", list[MinuteBarRow]),),
        ),
        _Probe(
            "time_trades",
            stock | {"FID_INPUT_HOUR_1": "153000"},
            (("output2", list[TimeTradeRow]),),
        ),
        _Probe(
            "daily_price",
            stock | {"FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "1"},
            (("output", list[DailyBarRow]),),
        ),
        _Probe("etf_price", etf, (("output", EtfPriceOutput),)),
        _Probe(
            "etf_nav_daily_trend",
            etf | {"FID_INPUT_DATE_1": past, "FID_INPUT_DATE_2": day},
            (("output", list[EtfNavDailyRow]),),
        ),
        _Probe(
            "etf_components",
            etf | {"FID_COND_SCR_DIV_CODE": "11216"},
            (("output1", EtfComponentSummary), ("output2", list[EtfComponentRow])),
        ),
        _Probe(
            "stock_info",
            {"PRDT_TYPE_CD": "300", "PDNO": t.symbol},
            (("output", StockInfoOutput),),
        ),
        _Probe(
            "investor_estimate",
            {"MKSC_SHRN_ISCD": t.symbol},
            (("output2", list[InvestorEstimateRow]),),
        ),
        _Probe(
            "investor_flows",
            stock | {"FID_INPUT_DATE_1": yesterday, "FID_ORG_ADJ_PRC": "", "FID_ETC_CLS_CODE": ""},
            (("output2", list[InvestorFlowRow]),),
        ),
        _Probe(
            "program_trades_daily",
            stock | {"FID_INPUT_DATE_1": yesterday},
            (("output", list[ProgramDailyRow]),),
        ),
        _Probe(
            "vi_status",
            {
                "FID_DIV_CLS_CODE": "0",
                "FID_COND_SCR_DIV_CODE": "20139",
                "FID_MRKT_CLS_CODE": "0",
                "FID_INPUT_ISCD": t.symbol,
                "FID_RANK_SORT_CLS_CODE": "0",
                "FID_INPUT_DATE_1": yesterday,
                "FID_TRGT_CLS_CODE": "",
                "FID_TRGT_EXLS_CLS_CODE": "",
            },
            (("output", list[ViStatusRow]),),
        ),
        _Probe("overseas_price", abroad, (("output", OverseasPriceOutput),)),
        _Probe(
            "overseas_info",
            {"PRDT_TYPE_CD": OVERSEAS_PRODUCT_TYPES.get(t.exchange, ""), "PDNO": t.overseas},
            (("output", OverseasInfoOutput),),
        ),
        _Probe(
            "overseas_industry_codes",
            {"AUTH": "", "EXCD": t.exchange},
            (("output2", list[IndustryCodeRow]), ("output", list[IndustryCodeRow])),
        ),
        _Probe("overseas_price_detail", abroad, (("output", PriceDetailOutput),)),
    ]


async def check_rest(
    client: KisClient,
    targets: Targets,
    report: Report,
    now_ns: Callable[[], int],
    postings: StoredPostings = NONE_STORED,
) -> list[MinuteBarRow]:
    """Call every probe once, adding a finding each; return today's minute bars as read.

    The bars are the newest 30 at 15:30 (or now), for the minute-label reading. ``postings``:
    today's investor postings of ``targets.symbol`` stored, which KIS's answer is held against.
    """
    bars: list[MinuteBarRow] = []
    for probe in _probes(targets):
        endpoint = ENDPOINTS[probe.endpoint]
        item = f"{endpoint.tr_id} {endpoint.name}"
        try:
            page = await client.get(endpoint, probe.params)
        except KisError as exc:
            report.add(item, *_unanswered(exc))
            continue
        read = _read(page, probe)
        if isinstance(read, str):
            report.add(item, MISMATCH, read)
            continue
        rows, typed = read
        if probe.endpoint == "current_price" and isinstance(typed, CurrentPriceOutput):
            try:
                price_snapshot(typed, targets.symbol, "KOSPI", "check", now_ns())
            except KisError as exc:
                report.add(item, MISMATCH, f"fields present but not usable: {exc}")
                continue
        if isinstance(typed, StockInfoOutput):
            try:
                status = nxt_status(targets.symbol, typed)
            except KisError as exc:
                report.add(item, MISMATCH, f"the Nextrade flags do not read: {exc}")
                continue
            nxt = f"Nextrade: {'trades' if status.eligible else 'does not trade'} {status.symbol}"
            report.add(item, OK, nxt + (", halted" if status.halted else ""))
            continue
        if probe.endpoint == "minute_bars_today" and isinstance(typed, list):
            bars = [r for r in typed if isinstance(r, MinuteBarRow)]
        if probe.endpoint == "etf_components" and (wrong := _constituents_wrong(page)):
            report.add(item, MISMATCH, wrong)
            continue
        if probe.endpoint == "investor_estimate" and isinstance(typed, list):
            rows_read = [r for r in typed if isinstance(r, InvestorEstimateRow)]
            report.add(item, OK, postings_finding(targets.symbol, rows_read, now_ns(), postings))
            continue
        paging = "tr_cont: more pages" if page.more else ""
        report.add(item, OK, f"{rows} row(s) read by the client's schema", layout=paging)
    await _industry_members(client, targets, report)
    return bars


def _read(page: Page, probe: _Probe) -> tuple[int, object] | str:
    """The rows read and the first typed output; a description of what did not read."""
    rows, first = 0, None
    for field, kind in probe.outputs:
        raw = bytes(getattr(page.answer, field))
        if raw.strip() in _EMPTY:
            if first is None and kind in (CurrentPriceOutput, EtfPriceOutput, StockInfoOutput):
                return f"{field} is empty"
            continue
        try:
            typed = decode_json(raw, kind, f"{probe.endpoint} {field}")
        except KisError as exc:
            return f"{field} does not read: {_short(exc)}"
        rows += len(typed) if isinstance(typed, list) else 1
        first = typed if first is None else first
    return rows, first


async def _industry_members(client: KisClient, targets: Targets, report: Report) -> None:
    """HHDFS76370000, asked for the first industry code of the exchange's catalog."""
    endpoint = ENDPOINTS["overseas_industry_members"]
    item = f"{endpoint.tr_id} {endpoint.name}"
    try:
        asked = {"AUTH": "", "EXCD": targets.exchange}
        catalog = await client.get(ENDPOINTS["overseas_industry_codes"], asked)
        raw = bytes(catalog.answer.output2).strip()
        if raw in _EMPTY:  # the client reads the catalog from either output
            raw = bytes(catalog.answer.output).strip()
        codes = [] if raw in _EMPTY else decode_json(raw, list[IndustryCodeRow], "catalog")
        if not codes:
            report.add(item, NOT_MEASURED, "no industry code to ask about")
            return
        params = asked | {"ICOD": codes[0].icod, "VOL_RANG": "0", "KEYB": ""}
        page = await client.get(endpoint, params)
    except KisError as exc:
        report.add(item, *_unanswered(exc))
        return
    raw = bytes(page.answer.output2).strip()
    try:
        rows = [] if raw in _EMPTY else decode_json(raw, list[IndustryMemberRow], "members")
    except KisError as exc:
        report.add(item, MISMATCH, f"output2 does not read: {_short(exc)}")
        return
    paging = "tr_cont: more pages" if page.more else ""
    report.add(item, OK, f"{len(rows)} row(s) read by the client's schema", layout=paging)


def _constituents_wrong(page: Page) -> str:
    """What is wrong with an ETF's constituents, read as the ETF job reads them; "" if nothing.

    The answer is one page (KIS does not continue it): a ``tr_cont`` saying more, or fewer
    lines than the answer's own count, is an answer cut short; a code listed twice, malformed.
    """
    raw, head = bytes(page.answer.output2).strip(), bytes(page.answer.output1).strip()
    rows = [] if raw in _EMPTY else decode_json(raw, list[EtfComponentRow], "constituents")
    summary = (
        EtfComponentSummary()
        if head in _EMPTY
        else decode_json(head, EtfComponentSummary, "summary")
    )
    codes = [row.stck_shrn_iscd for row in rows]
    if len(set(codes)) != len(codes):
        return f"a constituent listed twice in {len(codes)} lines: malformed"
    counted = int(summary.etf_cnfg_issu_cnt) if summary.etf_cnfg_issu_cnt.isdigit() else 0
    if page.more or len(codes) < counted:
        return f"cut short: {len(codes)} lines of {counted}" + (
            ", tr_cont says more (KIS documents one page)" if page.more else ""
        )
    return ""


def _unanswered(exc: KisError) -> tuple[Outcome, str]:
    """The outcome and finding of a call paper lacks, KIS refused, or that failed."""
    if isinstance(exc, KisPaperRefused):
        return NOT_MEASURED, f"not offered on paper accounts: {exc}"
    if isinstance(exc, KisApiError):
        return MISMATCH, f"refused: {exc.msg_cd} {exc.msg1} (HTTP {exc.status})"
    return MISMATCH, f"failed: {_short(exc)}"


def _short(exc: Exception) -> str:
    return str(exc)[:200]
