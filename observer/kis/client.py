"""The async KIS REST client: headers, rate limit, error classification, retries, paging.

Errors are classified by the body's ``msg_cd`` whatever the HTTP status (gateway errors come as
HTTP 500 with the usual envelope, business errors as HTTP 200 with ``rt_cd != "0"``; §3.3).
Retryable ones (EGW00201, temporary gateway errors, bare 5xx, timeouts) are retried with capped,
jittered backoff; a token-expired answer refreshes the token once (shared by concurrent callers).
Every request of an account in this process passes one `Pace`, its share of the account's limit.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple, TypeVar

import httpx
import msgspec

from bus.events import Venue
from observer.calendar.clock import Clock
from observer.errors import (
    KisApiError,
    KisAuthError,
    KisError,
    KisPaperRefused,
    KisProtocolError,
    KisRateLimited,
    KisServerError,
    KisTokenThrottled,
    KisTransportError,
)
from observer.kis.auth import TokenManager
from observer.kis.credentials import Credentials
from observer.kis.daily_bars import DailyBar, daily_bars
from observer.kis.endpoints import ENDPOINTS, MARKET_CODES, OVERSEAS_PRODUCT_TYPES, RestEndpoint
from observer.kis.journal import Journal, rest_request
from observer.kis.master import group_kind
from observer.kis.minutes import MinuteRows, page_minutes
from observer.kis.pacing import RECOVER_S, Pace
from observer.kis.parse import decode_answer, decode_json
from observer.kis.rest_get import RestGet
from observer.kis.schemas import (
    Answer,
    CurrentPriceOutput,
    DailyBarRow,
    EtfComponentRow,
    EtfComponentSummary,
    EtfNavDailyRow,
    EtfPriceOutput,
    IndustryCodeRow,
    InvestorEstimateRow,
    InvestorFlowRow,
    MinuteBarRow,
    OverseasInfoOutput,
    OverseasPriceOutput,
    ProgramDailyRow,
    StockInfoOutput,
    TimeTradeRow,
    ViStatusRow,
)
from observer.kis.settings import PAPER_REFUSAL_CODES
from observer.process.retry import retry

__all__ = [
    "PAPER_REFUSAL_TEXTS",
    "KisClient",
    "MinuteRows",
    "NxtStatus",
    "Page",
    "RateLimits",
    "classify",
    "current_price_output",
    "investor_estimate_rows",
    "investor_flow_rows",
    "minute_bar_rows",
    "nxt_status",
    "program_daily_rows",
    "time_trade_rows",
    "vi_status_rows",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_Dated = TypeVar("_Dated", DailyBarRow, EtfNavDailyRow)  # rows keyed by stck_bsop_date

# msg_cd -> exception class (shared/reference/kis-api.md §3.6).
_CODES: dict[str, type[KisApiError]] = {
    "EGW00201": KisRateLimited,
    "EGW00001": KisServerError,
    "EGW00002": KisServerError,
    "EGW00202": KisServerError,
    "EGW00203": KisServerError,
    "EGW00121": KisAuthError,
    "EGW00122": KisAuthError,
    "EGW00123": KisAuthError,
    "EGW00133": KisTokenThrottled,
}
_MORE = frozenset({"F", "M"})  # response tr_cont: more pages follow
# A paper host's refusal says so in its msg1 ("모의투자 미지원", "모의투자 TR 이 아닙니다"),
# whatever its msg_cd (KIS's code for it is UNCONFIRMED: `PAPER_REFUSAL_CODES`). Not any
# msg1 naming 모의투자: EGW02004 (a paper app key on the real host) is a configuration error.
PAPER_REFUSAL_TEXTS = ("모의투자 미지원", "모의투자 TR")


class RateLimits:
    """The per-account paces of one process; create one and give it to every client.

    ``per_second`` is this process's share of each account's limit (configured so that all
    processes of an account together stay under KIS's budget); ``recover_s`` how soon a pace
    slowed by refusals climbs back (`Pace`).
    """

    def __init__(self, per_second: Mapping[str, float], recover_s: float = RECOVER_S) -> None:
        self._per_second = dict(per_second)
        self._recover_s = recover_s
        self._paces: dict[str, Pace] = {}

    def for_account(self, account: str) -> Pace:
        """The account's pace (created on first use)."""
        pace = self._paces.get(account)
        if pace is None:
            if account not in self._per_second:
                raise KisError(f"no rate limit configured for account {account!r}")
            pace = Pace(self._per_second[account], self._recover_s)
            self._paces[account] = pace
        return pace


def classify(status: int, content: bytes, tr_id: str) -> tuple[Answer | None, KisError | None]:
    """Decode an answer and say what went wrong, if anything (pure function)."""
    try:
        answer = decode_answer(content, status, Answer, tr_id)
    except KisServerError as exc:  # not JSON, with a 5xx: the gateway's failure
        return None, exc
    except KisProtocolError:
        return None, KisProtocolError(f"{tr_id}: HTTP {status} answer is not a KIS envelope")
    if answer.rt_cd == "0" and status < 400:
        return answer, None
    if not answer.msg_cd and status >= 500:
        return answer, KisServerError(f"HTTP{status}", answer.msg1, tr_id, status)
    cls = _CODES.get(answer.msg_cd, KisApiError)
    return answer, cls(answer.msg_cd or f"rt_cd={answer.rt_cd}", answer.msg1, tr_id, status)


@dataclass(frozen=True, slots=True)
class Page:
    """One answer: its envelope and whether KIS says more pages follow (``tr_cont``)."""

    answer: Answer
    more: bool


class KisClient:
    """REST access for one account.

    Parameters
    ----------
    http:
        GETs to the REST host: `AiohttpGet`, or ``httpx.AsyncClient`` (tests: MockTransport).
    credentials, tokens:
        The account and its token manager.
    clock, pace:
        For retry backoff; the account's pace from the process's `RateLimits`.
    max_attempts:
        Tries per request for retryable errors.
    backoff_s, backoff_cap_s:
        First retry pause and its cap (doubling, with full jitter).
    environment:
        ``"paper"`` refuses the TRs KIS offers on real accounts only (`KisPaperRefused`,
        before anything is sent), and reads the paper host's own refusal the same way.
    paper_codes:
        The msg_cd values read as that refusal (``[kis] paper_refusal_codes``).
    journal:
        Where every answer goes as received, before it is read (`observer.kis.journal`).
    """

    def __init__(
        self,
        http: RestGet,
        credentials: Credentials,
        tokens: TokenManager,
        clock: Clock,
        pace: Pace,
        *,
        max_attempts: int = 5,
        backoff_s: float = 0.2,
        backoff_cap_s: float = 5.0,
        environment: str = "real",
        paper_codes: Collection[str] = PAPER_REFUSAL_CODES,
        journal: Journal | None = None,
    ) -> None:
        self._http = http
        self.journal = journal
        self.environment = environment
        self._paper_codes = frozenset(paper_codes)
        self._credentials = credentials
        self._tokens = tokens
        self._clock = clock
        self.pace = pace
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._backoff_cap_s = backoff_cap_s
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0
        self._errors: deque[int] = deque()  # when each failed answer came (clock ns)

    @property
    def alias(self) -> str:
        """The account's alias (in alerts and logs)."""
        return self._credentials.alias

    @property
    def paper(self) -> bool:
        """True for a paper account."""
        return self.environment == "paper"

    def offers(self, endpoint: RestEndpoint) -> bool:
        """True if KIS offers ``endpoint`` to this account (the endpoint table's ``paper``)."""
        return endpoint.paper or not self.paper

    @property
    def offers_nxt_status(self) -> bool:
        """True if this account may ask a stock's Nextrade standing (`nxt_status`)."""
        return self.offers(ENDPOINTS["stock_info"])

    def errors_within(self, seconds: float) -> int:
        """Requests that failed (error answers, transport failures) in the last ``seconds``."""
        since = self._clock.now_ns() - int(seconds * 1e9)
        while self._errors and self._errors[0] < since:
            self._errors.popleft()
        return len(self._errors)

    def __repr__(self) -> str:
        return (
            f"<KisClient {self._credentials.alias} requests={self.requests} "
            f"retries={self.retries} rate_limited={self.rate_limited}>"
        )

    async def get(
        self, endpoint: RestEndpoint, params: Mapping[str, str], *, next_page: bool = False
    ) -> Page:
        """One GET with retries; raises the classified `KisError` when it cannot succeed.

        An expired token is refreshed once per call and the request sent again at once; that
        is not a retry.

        Raises
        ------
        KisPaperRefused
            ``endpoint`` is real-only and this is a paper account (nothing is sent), or the
            paper host refused it as one it does not offer.
        """
        if not self.offers(endpoint):
            raise KisPaperRefused(
                f"{endpoint.tr_id} ({endpoint.name}) is offered on real accounts only; "
                "this account is a paper one"
            )
        refreshed = False

        async def once() -> Page:
            nonlocal refreshed
            token = await self._tokens.token()
            try:
                return await self._send(endpoint, params, next_page, token.reveal())
            except KisAuthError:
                if refreshed:
                    raise
                refreshed = True
                await self._tokens.refresh("emergency", stale=token)
                return await once()

        def retried(error: BaseException, attempt: int, pause: float) -> None:
            self.retries += 1
            log.info("%s: %s, retry %d in %.2fs", endpoint.tr_id, error, attempt, pause)

        return await retry(
            once,
            clock=self._clock,
            attempts=self._max_attempts,
            initial_s=self._backoff_s,
            max_s=self._backoff_cap_s,
            retry_if=lambda error: isinstance(error, KisError) and error.retryable,
            on_retry=retried,
        )

    def headers(self, endpoint: RestEndpoint, token: str, more: bool = False) -> dict[str, str]:
        """The headers of one request (§3.1; ``more``: a next page): the account's secrets."""
        return {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token}",
            "appkey": self._credentials.app_key.reveal(),
            "appsecret": self._credentials.app_secret.reveal(),
            "tr_id": endpoint.tr_id,
            "tr_cont": "N" if more else "",
            "custtype": "P",
        }

    async def _send(
        self, endpoint: RestEndpoint, params: Mapping[str, str], next_page: bool, token: str
    ) -> Page:
        headers = self.headers(endpoint, token, next_page)
        generation = self.pace.generation
        async with self.pace:
            self.requests += 1
            try:
                response = await self._http.get(endpoint.path, params=params, headers=headers)
            except httpx.TimeoutException:
                self._errors.append(self._clock.now_ns())
                raise KisTransportError(f"{endpoint.tr_id}: timed out") from None
            except httpx.HTTPError as exc:
                self._errors.append(self._clock.now_ns())
                raise KisTransportError(f"{endpoint.tr_id}: {type(exc).__name__}") from None
        if self.journal is not None:
            self.journal.answer(
                self._credentials.alias,
                endpoint.tr_id,
                rest_request(endpoint.path, params),
                response.status_code,
                response.content,
                self._clock.now_ns(),
                response.headers.get("tr_cont", ""),
            )
        answer, error = classify(response.status_code, response.content, endpoint.tr_id)
        if error is not None:
            self._errors.append(self._clock.now_ns())
            if isinstance(error, KisRateLimited):
                self.rate_limited += 1
                self.pace.refused(generation)
            elif answer is not None:
                self.pace.answered()
            if self.paper and isinstance(error, KisApiError) and self._paper_refusal(error):
                raise KisPaperRefused(
                    f"{endpoint.tr_id} ({endpoint.name}): the paper host does not offer it "
                    f"({error.msg_cd} {error.msg1})"
                ) from None
            raise error
        assert answer is not None
        self.pace.answered()
        return Page(answer, response.headers.get("tr_cont", "") in _MORE)

    def _paper_refusal(self, error: KisApiError) -> bool:
        """True if ``error`` is the paper host saying it does not offer the TR."""
        if error.retryable or isinstance(error, KisAuthError | KisTokenThrottled):
            return False
        return error.msg_cd in self._paper_codes or any(
            text in error.msg1 for text in PAPER_REFUSAL_TEXTS
        )

    async def pages(
        self, endpoint: RestEndpoint, params: Mapping[str, str], *, max_pages: int = 10
    ) -> list[Answer]:
        """Every page of a continued query (§3.4), up to ``max_pages``.

        While KIS answers ``tr_cont`` F or M, ask again with ``tr_cont: N`` and the returned
        ``CTX_AREA_*`` cursors.
        """
        answers: list[Answer] = []
        query = dict(params)
        next_page = False
        while len(answers) < max_pages:
            page = await self.get(endpoint, query, next_page=next_page)
            answers.append(page.answer)
            if not page.more:
                break
            for width in ("100", "200"):
                fk = getattr(page.answer, f"ctx_area_fk{width}")
                nk = getattr(page.answer, f"ctx_area_nk{width}")
                if fk or nk:
                    query[f"CTX_AREA_FK{width}"] = fk
                    query[f"CTX_AREA_NK{width}"] = nk
            next_page = True
        return answers

    # ------------------------------------------------------------------ typed calls

    async def current_price(self, symbol: str, venue: Venue = "KRX") -> CurrentPriceOutput:
        """FHKST01010100 for one symbol on ``venue`` (``stck_prpr == "0"``: an unknown code)."""
        page = await self.get(
            ENDPOINTS["current_price"],
            {"FID_COND_MRKT_DIV_CODE": MARKET_CODES[venue], "FID_INPUT_ISCD": symbol},
        )
        return current_price_output(page.answer)

    async def minute_bars_today(
        self, symbol: str, until: str = "153000", since: str = "090000", venue: Venue = "KRX"
    ) -> list[MinuteBarRow]:
        """Today's one-minute bars from ``since`` to ``until`` (HHMMSS), oldest first (§4.3a).

        KIS returns at most 30 bars per call, newest first, at or before ``FID_INPUT_HOUR_1``.
        ``venue``: KRX's, Nextrade's or both venues' (the combined) bars.
        """
        return (await self.minute_bars_span(symbol, since, until, venue=venue)).rows

    async def minute_bars_on(
        self,
        symbol: str,
        day: str,
        until: str = "153000",
        since: str = "090000",
        venue: Venue = "KRX",
    ) -> list[MinuteBarRow]:
        """One past day's one-minute bars (YYYYMMDD), oldest first; 120 per call (§4.3b)."""
        return (await self.minute_bars_span(symbol, since, until, day, venue)).rows

    async def minute_bars_span(
        self, symbol: str, since: str, until: str, day: str = "", venue: Venue = "KRX"
    ) -> MinuteRows:
        """The bars from ``since`` to ``until`` and whether they are all (`MinuteRows`).

        ``day``: empty for today's (FHKST03010200), or a past day's YYYYMMDD (FHKST03010230).
        ``venue``: whose bars, KRX's, Nextrade's or the combined (both venues'), either TR.
        """
        params = {"FID_COND_MRKT_DIV_CODE": MARKET_CODES[venue], "FID_INPUT_ISCD": symbol}
        if not day:
            params |= {"FID_PW_DATA_INCU_YN": "N", "FID_ETC_CLS_CODE": ""}
            return await self._minutes(ENDPOINTS["minute_bars_today"], params, "", since, until)
        params |= {
            "FID_INPUT_DATE_1": day,
            "FID_PW_DATA_INCU_YN": "N",
            "FID_FAKE_TICK_INCU_YN": "",
        }
        return await self._minutes(ENDPOINTS["minute_bars_past"], params, day, since, until)

    async def _minutes(
        self, endpoint: RestEndpoint, params: dict[str, str], day: str, since: str, until: str
    ) -> MinuteRows:
        """Page back through minute bars (`observer.kis.minutes.page_minutes`)."""

        async def batch(cursor: str) -> list[MinuteBarRow]:
            page = await self.get(endpoint, params | {"FID_INPUT_HOUR_1": cursor})
            return minute_bar_rows(page.answer, endpoint.name)

        return await page_minutes(batch, endpoint.rows_per_call, day, since, until)

    async def time_trades(
        self, symbol: str, before: str, venue: Venue = "KRX"
    ) -> list[TimeTradeRow]:
        """One page of FHPST01060000: today's trades before ``before`` (HHMMSS), newest first.

        ``venue``: KRX's, Nextrade's or both venues' trades. Paging back is the caller's
        (`observer.kis.time_trades.trades_back_to`): KIS offers no continuation.
        """
        params = {
            "FID_COND_MRKT_DIV_CODE": MARKET_CODES[venue],
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": before,
        }
        page = await self.get(ENDPOINTS["time_trades"], params)
        return time_trade_rows(page.answer)

    async def daily_bars(self, symbol: str, start: str, end: str) -> list[DailyBar]:
        """KRX's daily bars of ``symbol`` from ``start`` to ``end`` (YYYYMMDD), oldest first.

        `daily_chart`'s rows read (`observer.kis.daily_bars`): a garbled one raises
        `KisProtocolError`.
        """
        return daily_bars(await self.daily_chart(symbol, start, end))

    async def daily_chart(self, symbol: str, start: str, end: str) -> list[DailyBarRow]:
        """Daily bars from ``start`` to ``end`` (YYYYMMDD), oldest first; 100 per call (§4.2)."""
        params = {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_PERIOD_DIV_CODE": "D",
            "FID_ORG_ADJ_PRC": "0",
        }
        return await self._days(
            ENDPOINTS["daily_chart"], params, "output2", DailyBarRow, start, end
        )

    async def etf_price(self, symbol: str) -> EtfPriceOutput:
        """FHPST02400000: an ETF's price, NAV, premium and net assets (real accounts only)."""
        page = await self.get(
            ENDPOINTS["etf_price"], {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol}
        )
        return _typed(page.answer.output, EtfPriceOutput, "etf_price")

    async def etf_nav_daily(self, symbol: str, start: str, end: str) -> list[EtfNavDailyRow]:
        """FHPST02440200: daily price and NAV from ``start`` to ``end``, oldest first."""
        params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol}
        endpoint = ENDPOINTS["etf_nav_daily_trend"]
        return await self._days(endpoint, params, "output", EtfNavDailyRow, start, end)

    async def _days(
        self,
        endpoint: RestEndpoint,
        params: dict[str, str],
        output: str,
        row: type[_Dated],
        start: str,
        end: str,
    ) -> list[_Dated]:
        """Page back through daily rows: the end date moves to the day before the oldest."""
        rows: dict[str, _Dated] = {}
        cursor = end
        while cursor >= start:
            query = params | {"FID_INPUT_DATE_1": start, "FID_INPUT_DATE_2": cursor}
            page = await self.get(endpoint, query)
            batch = [
                r
                for r in _rows(getattr(page.answer, output), row, endpoint.name)
                if r.stck_bsop_date and start <= r.stck_bsop_date <= cursor
            ]
            rows.update((r.stck_bsop_date, r) for r in batch)
            if len(batch) < endpoint.rows_per_call:
                break
            cursor = _day_before(min(r.stck_bsop_date for r in batch))
        return [rows[k] for k in sorted(rows)]

    async def etf_components(
        self, symbol: str
    ) -> tuple[EtfComponentSummary, list[EtfComponentRow], bool]:
        """FHKST121600C0: an ETF's summary, its constituents, and whether KIS said "more".

        "More" is ``tr_cont`` F or M. KIS's workbook says this TR cannot be continued with
        ``tr_cont``: one answer is read, and a "more" in it is returned for the caller to
        report, never followed.

        Raises
        ------
        KisProtocolError
            A constituent code listed twice in the answer: malformed, nothing of it is used.
        """
        page = await self.get(
            ENDPOINTS["etf_components"],
            {
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": symbol,
                "FID_COND_SCR_DIV_CODE": "11216",
            },
        )
        summary = _typed(page.answer.output1, EtfComponentSummary, "etf_components")
        rows = _rows(page.answer.output2, EtfComponentRow, "etf_components")
        seen: dict[str, int] = {}
        for line, row in enumerate(rows, start=1):
            code = row.stck_shrn_iscd.strip()
            if code and seen.setdefault(code, line) != line:
                raise KisProtocolError(
                    f"FHKST121600C0 {symbol}: constituent {code} listed twice (lines "
                    f"{seen[code]} and {line} of {len(rows)}): the answer is refused"
                )
        return summary, rows, page.more

    async def investor_estimates(self, symbol: str) -> list[InvestorEstimateRow]:
        """HHPTJ04160200: the day's intraday investor estimates of a stock, one row a posting.

        KIS's staff post them through the session; the answer is today's alone (no date).
        """
        page = await self.get(ENDPOINTS["investor_estimate"], {"MKSC_SHRN_ISCD": symbol})
        return investor_estimate_rows(page.answer)

    async def investor_flows(
        self, symbol: str, day: str, venue: Venue = "KRX", etc_cls_code: str = ""
    ) -> list[InvestorFlowRow]:
        """FHPTJ04160001: a stock's final flows by investor group, ``day`` (YYYYMMDD) first.

        ``venue``: KRX's, Nextrade's or both venues'. KIS has a day's from 15:40.
        ``etc_cls_code``: FID_ETC_CLS_CODE, "1" in one KIS source and blank in another.
        """
        page = await self.get(
            ENDPOINTS["investor_flows"],
            {
                "FID_COND_MRKT_DIV_CODE": MARKET_CODES[venue],
                "FID_INPUT_ISCD": symbol,
                "FID_INPUT_DATE_1": day,
                "FID_ORG_ADJ_PRC": "",
                "FID_ETC_CLS_CODE": etc_cls_code,
            },
        )
        return investor_flow_rows(page.answer)

    async def program_trades_daily(
        self, symbol: str, day: str, venue: Venue = "KRX"
    ) -> list[ProgramDailyRow]:
        """FHPPG04650201: a stock's program trading by day on ``venue``, ``day`` first."""
        market = MARKET_CODES[venue]
        page = await self.get(
            ENDPOINTS["program_trades_daily"],
            {"FID_COND_MRKT_DIV_CODE": market, "FID_INPUT_ISCD": symbol, "FID_INPUT_DATE_1": day},
        )
        return program_daily_rows(page.answer)

    async def vi_status(self, symbol: str, day: str) -> list[ViStatusRow]:
        """FHPST01390000: a stock's volatility interruptions of ``day`` (YYYYMMDD).

        KIS lists the latest 30 at most, without paging; no venue is named.
        """
        page = await self.get(
            ENDPOINTS["vi_status"],
            {
                "FID_DIV_CLS_CODE": "0",
                "FID_COND_SCR_DIV_CODE": "20139",
                "FID_MRKT_CLS_CODE": "0",
                "FID_INPUT_ISCD": symbol,
                "FID_RANK_SORT_CLS_CODE": "0",
                "FID_INPUT_DATE_1": day,
                "FID_TRGT_CLS_CODE": "",
                "FID_TRGT_EXLS_CLS_CODE": "",
            },
        )
        return vi_status_rows(page.answer)

    async def nxt_status(self, symbol: str) -> NxtStatus:
        """CTPF1002R for one domestic stock: whether Nextrade trades it, and has halted it."""
        page = await self.get(ENDPOINTS["stock_info"], {"PRDT_TYPE_CD": "300", "PDNO": symbol})
        return nxt_status(symbol, _typed(page.answer.output, StockInfoOutput, "stock_info"))

    async def overseas_price(self, exchange: str, symbol: str) -> OverseasPriceOutput:
        """HHDFS00000300: last price of an overseas symbol (``EXCD`` like NAS, NYS, HKS)."""
        page = await self.get(
            ENDPOINTS["overseas_price"], {"AUTH": "", "EXCD": exchange, "SYMB": symbol}
        )
        return _typed(page.answer.output, OverseasPriceOutput, "overseas_price")

    async def overseas_info(self, exchange: str, symbol: str) -> OverseasInfoOutput | None:
        """CTPF1702R: product facts of an overseas symbol; None when KIS has no data."""
        product_type = OVERSEAS_PRODUCT_TYPES.get(exchange)
        if product_type is None:
            raise KisError(f"no CTPF1702R product type for exchange {exchange!r}")
        try:
            page = await self.get(
                ENDPOINTS["overseas_info"], {"PRDT_TYPE_CD": product_type, "PDNO": symbol}
            )
        except KisApiError as exc:
            if exc.msg_cd.startswith("rt_cd=7") or exc.msg_cd == "KIOK0560":
                return None  # "no data" (python-kis reads rt_cd 7 the same way)
            raise
        return _typed(page.answer.output, OverseasInfoOutput, "overseas_info")

    async def overseas_industry_codes(self, exchange: str) -> list[IndustryCodeRow]:
        """HHDFS76370100: the industry catalog of an overseas exchange (``EXCD`` like NAS).

        One call lists every code of the exchange (ref-KRX §3.2); rows are read from
        ``output2``, or from ``output`` when that is where they come (UNCONFIRMED).
        """
        page = await self.get(ENDPOINTS["overseas_industry_codes"], {"AUTH": "", "EXCD": exchange})
        rows = _rows(page.answer.output2, IndustryCodeRow, "overseas_industry_codes")
        return rows or _rows(page.answer.output, IndustryCodeRow, "overseas_industry_codes")

    async def daily_price(self, symbol: str) -> list[DailyBarRow]:
        """FHKST01010400: the most recent 30 daily bars, oldest first (no paging, §4.4)."""
        page = await self.get(
            ENDPOINTS["daily_price"],
            {
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": symbol,
                "FID_PERIOD_DIV_CODE": "D",
                "FID_ORG_ADJ_PRC": "1",
            },
        )
        rows = _rows(page.answer.output, DailyBarRow, "daily_price")
        return sorted(rows, key=lambda r: r.stck_bsop_date)


class NxtStatus(NamedTuple):
    """A listing's standing on Nextrade as KIS answers it now (KIS keeps no history of it)."""

    symbol: str
    eligible: bool  # Nextrade trades it (``cptt_trad_tr_psbl_yn``)
    halted: bool  # Nextrade has halted it (``nxt_tr_stop_yn``)
    # its product (``scty_grp_id_cd``, `observer.kis.master.group_kind`): stock, etf, etn, ...;
    # "other" where the answer names no group the master files list
    kind: str = "other"


def nxt_status(symbol: str, output: StockInfoOutput) -> NxtStatus:
    """The two flags and the product of a CTPF1002R answer.

    `KisProtocolError` naming a flag not Y or N. The fields read, as KIS's own samples name
    them (koreainvestment/open-trading-api, ``search_stock_info``; no real answer captured
    here), the rest of the answer's fields left out::

        {"rt_cd": "0", "output": {"pdno": "069500", "scty_grp_id_cd": "EF",
                                  "cptt_trad_tr_psbl_yn": "Y", "nxt_tr_stop_yn": "N", ...}}
    """
    flags = {
        "cptt_trad_tr_psbl_yn": output.cptt_trad_tr_psbl_yn,
        "nxt_tr_stop_yn": output.nxt_tr_stop_yn,
    }
    for field, value in flags.items():
        if value not in ("Y", "N"):
            raise KisProtocolError(f"stock_info {symbol}: {field} is {value!r}, not Y or N")
    return NxtStatus(
        symbol,
        output.cptt_trad_tr_psbl_yn == "Y",
        output.nxt_tr_stop_yn == "Y",
        group_kind(output.scty_grp_id_cd),
    )


# The outputs of the answers Track A and the flows and investor jobs read, as their typed calls
# and the journal's replay (`observer.kis.answer_replay`) read them; `KisProtocolError` if they
# do not.


def current_price_output(answer: Answer) -> CurrentPriceOutput:
    """FHKST01010100's ``output``."""
    return _typed(answer.output, CurrentPriceOutput, "current_price")


def investor_estimate_rows(answer: Answer) -> list[InvestorEstimateRow]:
    """HHPTJ04160200's rows (``output2``)."""
    return _rows(answer.output2, InvestorEstimateRow, "investor_estimate")


def investor_flow_rows(answer: Answer) -> list[InvestorFlowRow]:
    """FHPTJ04160001's rows (``output2``)."""
    return _rows(answer.output2, InvestorFlowRow, "investor_flows")


def minute_bar_rows(answer: Answer, name: str) -> list[MinuteBarRow]:
    """FHKST03010200's or FHKST03010230's rows (``output2``; ``name``: the endpoint's)."""
    return _rows(answer.output2, MinuteBarRow, name)


def time_trade_rows(answer: Answer) -> list[TimeTradeRow]:
    """FHPST01060000's rows (``output2``)."""
    return _rows(answer.output2, TimeTradeRow, "time_trades")


def program_daily_rows(answer: Answer) -> list[ProgramDailyRow]:
    """FHPPG04650201's rows (``output``)."""
    return _rows(answer.output, ProgramDailyRow, "program_trades_daily")


def vi_status_rows(answer: Answer) -> list[ViStatusRow]:
    """FHPST01390000's rows (``output``)."""
    return _rows(answer.output, ViStatusRow, "vi_status")


def _typed(raw: msgspec.Raw, kind: type[_T], name: str) -> _T:
    return decode_json(raw, kind, f"{name}: unexpected output shape")


def _rows(raw: msgspec.Raw, row: type[_T], name: str) -> list[_T]:
    """An ``output2`` array; KIS sends null or an empty string when there are no rows."""
    if bytes(raw).strip() in (b"null", b'""', b"[]"):
        return []
    return _typed(raw, list[row], name)  # type: ignore[valid-type]


def _day_before(yyyymmdd: str) -> str:
    day = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])) - timedelta(days=1)
    return day.strftime("%Y%m%d")
