"""The REST client against httpx.MockTransport: classification, retries, refresh, paging."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from observer.calendar.clock import SimulatedClock
from observer.errors import (
    KisApiError,
    KisAuthError,
    KisError,
    KisProtocolError,
    KisRateLimited,
    KisServerError,
    KisTransportError,
)
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits, classify
from observer.kis.credentials import Credentials, Secret

KEY, SECRET = "PSclientTestKey000000000000000000000", "clientSecret" + "y" * 168
Handler = Callable[[httpx.Request], httpx.Response]


def envelope(
    rt_cd: str = "0",
    msg_cd: str = "MCA00000",
    msg1: str = "정상처리 되었습니다.",
    **outputs: object,
) -> dict[str, object]:
    return {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1, **outputs}


def make_client(tmp_path: Path, handler: Handler) -> KisClient:
    tokens_issued = iter(range(1, 100))

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/tokenP":
            return httpx.Response(
                200, json={"access_token": f"tok-{next(tokens_issued)}", "expires_in": 86400}
            )
        return handler(request)

    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(route))
    creds = Credentials(f"acct-{id(handler)}", Secret(KEY), Secret(SECRET))
    # Retry pauses pass in a fraction of a millisecond; the day-long token lasts 8 wall seconds.
    clock = SimulatedClock(start_ns=0, speed=1e4)
    tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim", min_issue_interval_s=0)
    limits = RateLimits({creds.alias: 1000})
    return KisClient(http, creds, tokens, clock, limits.for_account(creds.alias))


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, envelope("1", "EGW00201", "초당 거래건수를 초과하였습니다."), KisRateLimited),
        (200, envelope("1", "EGW00123", "기간이 만료된 token 입니다."), KisAuthError),
        (500, envelope("1", "EGW00121", "유효하지 않은 token 입니다."), KisAuthError),
        (200, envelope("1", "OPSQ2001", "invalid market"), KisApiError),
        (200, envelope("7", "", "조회할 자료가 없습니다"), KisApiError),
        (500, envelope("1", "EGW00002", "서버 에러"), KisServerError),
    ],
)
def test_classified_by_msg_cd_whatever_the_status(status: int, body: dict, error: type) -> None:
    answer, failure = classify(status, json.dumps(body).encode(), "FHKST01010100")
    assert type(failure) is error and answer is not None
    assert failure.tr_id == "FHKST01010100" and failure.status == status  # type: ignore[union-attr]


def test_non_envelope_answers() -> None:
    assert isinstance(classify(502, b"<html>bad gateway</html>", "X")[1], KisServerError)
    assert isinstance(classify(200, b"<html>", "X")[1], KisProtocolError)
    answer, failure = classify(200, json.dumps(envelope(output={})).encode(), "X")
    assert failure is None and answer is not None


def test_rate_limited_answers_are_retried_with_backoff(tmp_path: Path) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= 2:
            return httpx.Response(
                500, json=envelope("1", "EGW00201", "초당 거래건수를 초과하였습니다.")
            )
        return httpx.Response(
            200, json=envelope(output={"stck_prpr": "73100", "prdy_ctrt": "-0.54"})
        )

    client = make_client(tmp_path, handler)
    price = asyncio.run(client.current_price("005930"))
    assert price.stck_prpr == "73100" and price.prdy_ctrt == "-0.54"
    assert (client.requests, client.retries, client.rate_limited) == (3, 2, 2)
    headers = calls[-1].headers
    assert headers["tr_id"] == "FHKST01010100" and headers["authorization"] == "Bearer tok-1"
    assert headers["appkey"] == KEY and headers["custtype"] == "P"
    assert calls[-1].url.params["FID_INPUT_ISCD"] == "005930"


def test_a_non_retryable_error_is_raised_at_once(tmp_path: Path) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=envelope("1", "MCA05918", "종목코드 오류입니다."))

    client = make_client(tmp_path, handler)
    with pytest.raises(KisApiError, match="MCA05918") as failure:
        asyncio.run(client.current_price("999999"))
    assert len(calls) == 1 and not failure.value.retryable


def test_retries_are_bounded(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no answer", request=request)

    client = make_client(tmp_path, handler)
    with pytest.raises(KisTransportError, match="timed out"):
        asyncio.run(client.current_price("005930"))
    assert client.requests == 5


def test_an_expired_token_is_refreshed_once_then_the_call_retried(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if request.headers["authorization"] == "Bearer tok-1":
            return httpx.Response(
                500, json=envelope("1", "EGW00123", "기간이 만료된 token 입니다.")
            )
        return httpx.Response(200, json=envelope(output={"stck_prpr": "1"}))

    client = make_client(tmp_path, handler)
    asyncio.run(client.current_price("005930"))
    assert seen == ["Bearer tok-1", "Bearer tok-2"]


def test_minute_bars_page_backwards_thirty_at_a_time(tmp_path: Path) -> None:
    minutes = [f"{m // 60:02d}{m % 60:02d}00" for m in range(9 * 60, 15 * 60 + 31)]  # 391 bars
    cursors: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params["FID_INPUT_HOUR_1"]
        cursors.append(cursor)
        upto = [m for m in minutes if m <= cursor][::-1][:30]  # newest first, at most 30
        rows = [
            {
                "stck_bsop_date": "20261120",
                "stck_cntg_hour": m,
                "stck_prpr": "100",
                "stck_oprc": "100",
                "stck_hgpr": "101",
                "stck_lwpr": "99",
                "cntg_vol": "10",
                "acml_tr_pbmn": "0",
            }
            for m in upto
        ]
        return httpx.Response(200, json=envelope(output1={}, output2=rows))

    client = make_client(tmp_path, handler)
    bars = asyncio.run(client.minute_bars_today("005930"))
    assert [b.stck_cntg_hour for b in bars] == minutes
    assert len(cursors) == 14 and cursors[:2] == ["153000", "150000"]


def test_secrets_never_reach_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json=envelope("1", "EGW00002", "server error"))

    client = make_client(tmp_path, handler)
    with pytest.raises(KisServerError) as failure:
        asyncio.run(client.current_price("005930"))
    for text in (str(failure.value), repr(failure.value), caplog.text, repr(client)):
        assert KEY not in text and SECRET not in text and "tok-1" not in text


def test_one_limiter_per_account_per_process() -> None:
    limits = RateLimits({"acct-x": 18, "acct-y": 9})
    assert limits.for_account("acct-x") is limits.for_account("acct-x")
    assert limits.for_account("acct-x") is not limits.for_account("acct-y")
    with pytest.raises(KisError, match="no rate limit"):
        limits.for_account("acct-z")


def test_tr_cont_paging_echoes_the_cursors(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["tr_cont"], request.url.params.get("CTX_AREA_NK100", "")))
        page = len(seen)
        more = "M" if page < 3 else "D"
        body = envelope(
            output=[{"n": page}], ctx_area_fk100=f"fk{page}", ctx_area_nk100=f"nk{page}"
        )
        return httpx.Response(200, json=body, headers={"tr_cont": more})

    client = make_client(tmp_path, handler)
    from observer.kis.endpoints import ENDPOINTS

    answers = asyncio.run(client.pages(ENDPOINTS["daily_price"], {"FID_INPUT_ISCD": "005930"}))
    assert len(answers) == 3
    assert seen == [("", ""), ("N", "nk1"), ("N", "nk2")]


@pytest.mark.parametrize("where", ["output2", "output"])
def test_industry_codes_are_read_from_either_output(tmp_path: Path, where: str) -> None:
    rows = [{"icod": "010", "name": "석유·가스"}, {"icod": "260", "name": "반도체"}]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["tr_id"] == "HHDFS76370100"
        assert request.url.params["EXCD"] == "NAS"
        return httpx.Response(200, json=envelope(**{where: rows}))

    client = make_client(tmp_path, handler)
    found = asyncio.run(client.overseas_industry_codes("NAS"))
    assert [(r.icod, r.name) for r in found] == [("010", "석유·가스"), ("260", "반도체")]


def test_every_answer_is_journaled_before_it_is_read_and_no_secret_with_it(
    tmp_path: Path,
) -> None:
    """Errors too (a retried refusal is an answer KIS gave); the token's answer never."""
    from observer.kis.journal import Journal, day_files, journal_days, read_file

    answers = [
        httpx.Response(500, json=envelope("1", "EGW00201", "초당 거래건수를 초과하였습니다.")),
        httpx.Response(200, json=envelope(output={"stck_prpr": "73100"}), headers={"tr_cont": ""}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    client = make_client(tmp_path, handler)
    client.journal = Journal(tmp_path / "journal", "track_a")
    asyncio.run(client.current_price("005930"))
    client.journal.close()
    (day,) = journal_days(tmp_path / "journal")
    (path,) = day_files(tmp_path / "journal", day)
    records = list(read_file(path))
    assert [(r.channel, r.tr, r.status) for r in records] == [
        ("rest", "FHKST01010100", 500),
        ("rest", "FHKST01010100", 200),
    ]
    assert records[1].request.startswith("/uapi/domestic-stock/v1/quotations/inquire-price?")
    assert "FID_INPUT_ISCD=005930" in records[1].request
    assert json.loads(records[1].body)["output"] == {"stck_prpr": "73100"}
    assert all(r.account == client.alias for r in records)
    raw = path.read_bytes() + b"".join(r.body + r.request.encode() for r in records)
    assert KEY.encode() not in raw and SECRET.encode() not in raw and b"tok-1" not in raw
