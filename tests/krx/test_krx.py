"""The KRX portal client against the simulator's portal on loopback: login, screens, faults."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from aiohttp import web
from aiolimiter import AsyncLimiter
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.config import Faults
from harness.sim.etf import multiple
from harness.sim.krx import ETF_DAILY_BLD, ETF_LIST_BLD, etf_daily_rows, etf_list_rows
from harness.sim.market import KST, Market
from harness.sim.server import SimConfig, Simulator
from observer.calendar.clock import SimulatedClock
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.errors import (
    ConfigError,
    KrxLoggedOut,
    KrxLoginError,
    KrxProtocolError,
    KrxServerError,
    KrxTransportError,
)
from observer.kis.credentials import Secret
from observer.kis.settings import KisSettings
from observer.krx.client import DATA_PATH, LOGIN_PATH, REFERER, KrxClient
from observer.krx.credentials import KrxCredentials, krx_credentials
from observer.krx.schemas import krx_date, krx_decimal, krx_int, krx_price, tracking_multiple
from observer.krx.settings import KrxSettings

START = datetime(2026, 11, 20, 10, 0, tzinfo=KST)
MARKET = Market(5, TradingCalendar(), stocks=120, etfs=60)
ETFS = {s for s, x in MARKET.listings.items() if x.group == "EF"}
MEMBER, PASSWORD = "observer01", "krx-pass-Secret-7781"


@asynccontextmanager
async def portal(**config: object) -> AsyncIterator[tuple[Simulator, str]]:
    clock = SimulatedClock(int(START.timestamp() * 1e9), 60.0)
    sim = Simulator(MARKET, clock, SimConfig(krx_members={MEMBER: PASSWORD}, **config))  # type: ignore[arg-type]
    runner = web.AppRunner(sim.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield sim, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def krx_client(
    sim: Simulator, url: str, *, password: str = PASSWORD, timeout: float = 10.0, **kw: object
) -> KrxClient:
    http = httpx.AsyncClient(base_url=url, timeout=timeout)
    creds = KrxCredentials(Secret(MEMBER), Secret(password))
    options: dict[str, object] = {"backoff_s": 0.01, "backoff_cap_s": 0.05} | kw
    return KrxClient(http, creds, sim.clock, AsyncLimiter(100, 1), **options)  # type: ignore[arg-type]


def test_login_then_the_list_and_the_daily_table_agree_with_kis() -> None:
    async def scenario() -> None:
        async with portal() as (sim, url):
            krx = krx_client(sim, url)
            listed = await krx.etf_list()
            assert {r.ISU_SRT_CD for r in listed} == ETFS
            assert krx.logins == 1 and sim.krx.logins == 1
            for row in listed:  # the label says what the name implies
                assert tracking_multiple(row.IDX_CALC_INST_NM2) == multiple(row.ISU_ABBRV)
                assert krx_int(row.LIST_SHRS) and krx_date(row.LIST_DD) is not None
            day = date(2026, 11, 19)
            table = {r.ISU_SRT_CD: r for r in await krx.etf_daily(day)}
            assert set(table) == ETFS and krx.logins == 1  # one session serves both
            symbol = sorted(ETFS)[0]
            row = table[symbol]
            assert krx_int(row.TDD_CLSPRC) == MARKET.close(symbol, day)
            nav = krx_decimal(row.NAV)
            units = krx_int(row.LIST_SHRS)
            assert nav is not None and units is not None
            net_assets = krx_int(row.INVSTASST_NETASST_TOTAMT)
            assert net_assets is not None  # units x NAV, NAV rounded to 2 decimals
            assert abs(net_assets - units * nav) <= units * Decimal("0.005")
            assert await krx.etf_daily(date(2026, 11, 22)) == []  # a Sunday: no rows
            await krx.aclose()

    asyncio.run(scenario())


def test_anonymous_and_refererless_calls() -> None:
    async def scenario() -> None:
        async with portal() as (_, url), httpx.AsyncClient(base_url=url) as http:
            form = {"bld": "dbms/MDC/STAT/standard/MDCSTAT04601"}
            anonymous = await http.post(DATA_PATH, data=form, headers={"Referer": REFERER})
            assert (anonymous.status_code, anonymous.text) == (400, "LOGOUT")

    asyncio.run(scenario())


def test_logout_mid_run_logs_in_again_once() -> None:
    async def scenario() -> None:
        async with portal() as (sim, url):
            krx = krx_client(sim, url)
            assert await krx.etf_list()
            sim.faults.krx_logout = 1  # the session ends under the client
            assert {r.ISU_SRT_CD for r in await krx.etf_list()} == ETFS
            assert (krx.logins, krx.logged_out) == (2, 1)
            sim.faults.krx_logout = 2  # LOGOUT even after a fresh login: raised, not "empty"
            with pytest.raises(KrxLoggedOut):
                await krx.etf_list()
            await krx.aclose()

    asyncio.run(scenario())


def test_a_second_login_ends_the_first_session() -> None:
    async def scenario() -> None:
        async with portal() as (sim, url):
            first, second = krx_client(sim, url), krx_client(sim, url)
            assert await first.etf_list()
            assert await second.etf_list()  # CD011, then skipDup=Y: the first session ends
            assert sim.krx.logins == 2
            assert await first.etf_list()  # LOGOUT, a new login, the rows
            assert (first.logged_out, first.logins) == (1, 2)
            polite = krx_client(sim, url, skip_duplicate=False)
            with pytest.raises(KrxLoginError) as refused:
                await polite.etf_list()
            assert refused.value.code == "CD011"
            for client in (first, second, polite):
                await client.aclose()

    asyncio.run(scenario())


def test_login_refusals_carry_the_code_and_never_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> list[str]:
        texts = []
        async with portal() as (sim, url):
            wrong = krx_client(sim, url, password="not-the-Password-123")
            with pytest.raises(KrxLoginError) as bad:
                await wrong.etf_list()
            assert bad.value.code == "CD002"
            texts.append(str(bad.value) + repr(bad.value))
            sim.faults.krx_password_change = True
            right = krx_client(sim, url)
            with pytest.raises(KrxLoginError) as change:
                await right.etf_list()
            assert change.value.code == "CD010"
            texts.append(str(change.value) + repr(right))
            await wrong.aclose()
            await right.aclose()
        return texts

    texts = asyncio.run(scenario())
    for text in [*texts, caplog.text]:
        assert PASSWORD not in text and "not-the-Password-123" not in text


def test_server_errors_are_retried_then_raised() -> None:
    async def scenario() -> None:
        async with portal() as (sim, url):
            krx = krx_client(sim, url, attempts=4)
            sim.faults.krx_5xx = 2
            assert await krx.etf_list()
            assert krx.retries == 2 and sim.faults.krx_5xx == 0
            sim.faults.krx_5xx = 10  # a storm longer than the attempts
            with pytest.raises(KrxServerError):
                await krx.etf_list()
            assert sim.faults.krx_5xx == 6
            await krx.aclose()

    asyncio.run(scenario())


def test_timeouts_are_retried_then_raised() -> None:
    async def scenario() -> None:
        async with portal() as (sim, url):
            krx = krx_client(sim, url, timeout=0.2, attempts=2)
            assert await krx.etf_list()
            sim.faults.krx_latency_s = 1.0
            with pytest.raises(KrxTransportError):
                await krx.etf_list()
            assert krx.retries == 1
            sim.faults.krx_latency_s = 0.0
            sim.faults.krx_empty = 1  # an empty answer is returned as it is: the job judges
            assert await krx.etf_list() == []
            await krx.aclose()

    asyncio.run(scenario())


def answering(rows: dict[str, list[dict[str, str]]]) -> KrxClient:
    """A client of a portal that logs anyone in and answers each screen (bld) with ``rows``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == LOGIN_PATH:
            return httpx.Response(200, json={"_error_code": "CD001"})
        if request.url.path != DATA_PATH:
            return httpx.Response(200, headers={"Set-Cookie": "JSESSIONID=s1"})
        bld = parse_qs(request.content.decode())["bld"][0]
        body = json.dumps({"output": rows[bld]}, ensure_ascii=False)
        return httpx.Response(200, text=body, headers={"Content-Type": "text/html"})

    http = httpx.AsyncClient(
        base_url="https://data.krx.co.kr", transport=httpx.MockTransport(handle)
    )
    clock = SimulatedClock(int(START.timestamp() * 1e9), 1.0)
    creds = KrxCredentials(Secret(MEMBER), Secret(PASSWORD))
    return KrxClient(http, creds, clock, AsyncLimiter(100, 1))


def renamed(rows: list[dict[str, str]], names: dict[str, str]) -> list[dict[str, str]]:
    """``rows`` with some keys renamed (a site update)."""
    return [{names.get(k, k): v for k, v in row.items()} for row in rows]


def test_an_answer_lacking_a_column_is_refused_never_read_as_empty() -> None:
    day = date(2026, 11, 19)
    listed = etf_list_rows(MARKET, day)
    table = etf_daily_rows(MARKET, day, START, Faults())
    one_short = [dict(r) for r in listed]
    del one_short[3]["TAX_TP_CD"]
    cases = [
        (
            renamed(listed, {"ETF_TOT_FEE": "ETF_TOT_FEE_RT", "COM_ABBRV": "COM_ABBRV_NM"}),
            table,
            "MDCSTAT04601: the answer lacks COM_ABBRV \\(60 of 60 rows\\), ETF_TOT_FEE \\(60",
        ),
        (one_short, table, "lacks TAX_TP_CD \\(1 of 60 rows\\)"),
        (listed, renamed(table, {"NAV": "LST_NAV"}), "MDCSTAT04301: the answer lacks NAV"),
    ]

    async def scenario() -> None:
        good = answering({ETF_LIST_BLD: listed, ETF_DAILY_BLD: table})
        assert [r.ISU_SRT_CD for r in await good.etf_list()] == [r["ISU_SRT_CD"] for r in listed]
        assert len(await good.etf_daily(day)) == len(table)  # the portal's own columns: read
        await good.aclose()
        for rows, daily, message in cases:
            krx = answering({ETF_LIST_BLD: rows, ETF_DAILY_BLD: daily})
            with pytest.raises(KrxProtocolError, match=message):
                await (krx.etf_list() if rows is not listed else krx.etf_daily(day))
            assert krx.retries == 0  # a changed portal is not retried
            await krx.aclose()

    asyncio.run(scenario())


def test_credentials_come_from_the_environment_or_an_owner_only_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OBSERVER_KRX_ID", raising=False)
    monkeypatch.delenv("OBSERVER_KRX_PW", raising=False)
    sim = krx_credentials(KrxSettings(), KisSettings())
    assert sim.member_id.reveal() == "sim-krx-member"
    live = msgspec_settings(environment="real")
    with pytest.raises(ConfigError, match="OBSERVER_KRX_ID"):
        krx_credentials(live.krx, live.kis)
    file = tmp_path / "krx.toml"
    file.write_text(f'member_id = "{MEMBER}"\npassword = "{PASSWORD}"\n')
    file.chmod(0o644)
    filed = msgspec_settings(environment="real", file=str(file))
    with pytest.raises(ConfigError, match="owner-only") as open_file:
        krx_credentials(filed.krx, filed.kis)
    assert PASSWORD not in str(open_file.value)
    file.chmod(0o600)
    read = krx_credentials(filed.krx, filed.kis)
    assert read.password.reveal() == PASSWORD and PASSWORD not in repr(read)
    monkeypatch.setenv("OBSERVER_KRX_ID", "env-member")
    monkeypatch.setenv("OBSERVER_KRX_PW", "env-Password-9931")
    assert krx_credentials(live.krx, live.kis).member_id.reveal() == "env-member"


def msgspec_settings(*, environment: str, file: str = "") -> Settings:
    import msgspec

    raw = {"kis": {"environment": environment}, "krx": {"credentials_file": file}}
    return msgspec.convert(raw, Settings)


# ---------------------------------------------------------------------- the parsers

_MULTIPLES = st.sampled_from([Decimal(1), Decimal(2), Decimal(3), Decimal("1.5")])


@given(
    size=_MULTIPLES,
    inverse=st.booleans(),
    spaces=st.sampled_from(["", " ", "  "]),
    suffix=st.booleans(),
)
def test_tracking_multiple_reads_every_label_shape(
    size: Decimal, inverse: bool, spaces: str, suffix: bool
) -> None:
    kind = "인버스" if inverse else "레버리지"
    label = f"{size}X{spaces}{kind}" + (f" ({-size if inverse else size})" if suffix else "")
    assert tracking_multiple(f" {label} ") == (-size if inverse else size)


@pytest.mark.parametrize(
    ("label", "expected"),
    [("일반", Decimal(1)), ("일반 (1)", Decimal(1)), ("2X 레버리지", Decimal(2)),
     ("1X 인버스", Decimal(-1)), ("2X 인버스", Decimal(-2)), ("인버스", Decimal(-1)),
     ("", None), ("레버리지", None), ("기타", None)],
)  # fmt: skip
def test_tracking_multiple_of_the_labels_krx_uses(label: str, expected: Decimal | None) -> None:
    assert tracking_multiple(label) == expected


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_comma_grouped_integers_round_trip(value: int) -> None:
    assert krx_int(f"{value:,}") == value
    sign = -1 if value < 0 else 1
    assert krx_decimal(f"{value:,}.25") == Decimal(value) + sign * Decimal("0.25")


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["", " ", "  "]))
def test_a_price_not_positive_is_missing(value: int, pad: str) -> None:
    """KRX prints 0 for the open, high and low of a day without trades: no price, not 0.

    Only prices: `krx_int` keeps the 0 of a volume, a value or a count.
    """
    text = f"{pad}{value:,}{pad}"
    assert krx_price(text) == (value if value > 0 else None)
    assert krx_int(text) == value


@pytest.mark.parametrize("text", ["-", "", " ", "n/a", "1,2x"])
def test_not_available_is_none_never_zero(text: str) -> None:
    assert krx_int(text) is None
    assert krx_decimal(text) is None
    assert krx_price(text) is None
