"""The real client against the real simulator on loopback: the two readings must agree."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from aiohttp import web

from harness.sim.market import KST, Market
from harness.sim.server import MASTER_DAMAGE, SimConfig, Simulator
from observer.calendar.clock import SimulatedClock
from observer.calendar.trading import TradingCalendar
from observer.errors import KisApiError, MasterFileError
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.kis.feeds import Feed
from observer.kis.master import (
    Downloaded,
    RemoteFile,
    download_master,
    extract_single,
    head_master,
    parse_domestic,
)
from observer.kis.stream import KisStream, StreamSettings
from tests.kis.test_kis_stream import Heard

KEY, SECRET = "PSsimTestAppKey000000000000000000000", "s" * 180
START = datetime(2026, 11, 20, 10, 0, tzinfo=KST)
MARKET = Market(3, TradingCalendar(), stocks=300, etfs=50)
SYMBOL = next(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)


@asynccontextmanager
async def simulator(speed: float = 60.0, **config: object) -> AsyncIterator[tuple[Simulator, str]]:
    clock = SimulatedClock(int(START.timestamp() * 1e9), speed)
    sim = Simulator(MARKET, clock, SimConfig(app_keys={KEY: SECRET}, **config))  # type: ignore[arg-type]
    runner = web.AppRunner(sim.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield sim, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client_for(sim: Simulator, url: str, tmp_path: Path) -> tuple[KisClient, TokenManager]:
    http = httpx.AsyncClient(base_url=url)
    creds = Credentials("sim1", Secret(KEY), Secret(SECRET))
    tokens = TokenManager(http, creds, sim.clock, tmp_path / "tokens", "sim")
    return KisClient(
        http, creds, tokens, sim.clock, RateLimits({"sim1": 50}).for_account("sim1")
    ), tokens


def test_prices_and_minute_bars_agree(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulator() as (sim, url):
            client, _ = client_for(sim, url, tmp_path)
            price = await client.current_price(SYMBOL)
            bars = await client.minute_bars_today(SYMBOL)
            path = MARKET.day_path(SYMBOL, START.date())
            assert int(price.stck_prpr) > 0 and price.stck_sdpr == str(path.prev_close)
            assert bars[0].stck_cntg_hour == "090000" and len(bars) >= 60  # 09:00 .. now
            assert [int(b.cntg_vol) for b in bars] == [int(v) for v in path.volume[: len(bars)]]
            # Yesterday, the CSAT day: KRX's day an hour late (10:00-16:30)
            past = await client.minute_bars_on(SYMBOL, "20261119", "163000", "100000")
            yesterday = MARKET.day_path(SYMBOL, date(2026, 11, 19))
            # No bar for the closing auction's ten minutes before its match: nothing trades.
            assert len(past) == 391 - 10 and past[-1].stck_prpr == str(yesterday.day_close)
            assert past[0].stck_cntg_hour == "100000"
            assert [b.stck_cntg_hour for b in past[-2:]] == ["161900", "163000"]
            daily = await client.daily_chart(SYMBOL, "20261001", "20261119")
            assert daily[-1].stck_bsop_date == "20261119"
            assert daily[-1].stck_clpr == str(MARKET.close(SYMBOL, date(2026, 11, 19)))
            assert (await client.current_price("999999")).stck_prpr == "0"  # unknown code (§4.1)
            await client._http.aclose()

    asyncio.run(scenario())


def test_rate_limit_and_5xx_faults_are_retried(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        async with simulator(calls_per_second=1000) as (sim, url):
            client, _ = client_for(sim, url, tmp_path)
            sim.faults.rate_limited = 2
            sim.faults.http_5xx = 1
            await client.current_price(SYMBOL)
            await client._http.aclose()
            return client.retries, sim.rate_limited

    assert asyncio.run(scenario()) == (3, 2)


def test_expired_tokens_are_refreshed_after_the_minute(tmp_path: Path) -> None:
    async def scenario() -> int:
        async with simulator(speed=600.0) as (sim, url):  # the 60 s guard passes in 0.1 s
            client, tokens = client_for(sim, url, tmp_path)
            await client.current_price(SYMBOL)
            sim.expire_tokens()
            await client.current_price(SYMBOL)
            await client._http.aclose()
            return tokens.issued

    assert asyncio.run(scenario()) == 2


def test_unknown_app_keys_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulator() as (_sim, url):
            http = httpx.AsyncClient(base_url=url)
            answer = await http.post(
                "/oauth2/tokenP",
                json={"grant_type": "client_credentials", "appkey": "nope", "appsecret": "x"},
            )
            assert answer.status_code == 403 and answer.json()["error_code"] == "EGW00103"
            await http.aclose()

    asyncio.run(scenario())


def test_real_time_trades_flow_and_parse(tmp_path: Path) -> None:
    heard = Heard()
    frames = heard.frames

    async def scenario() -> None:
        async with simulator(speed=120.0) as (sim, url):
            client, tokens = client_for(sim, url, tmp_path)
            stream = KisStream(url.replace("http", "ws") + "/tryitout", tokens, sim.clock, heard)
            await stream.subscribe(Feed("trades", "KRX", SYMBOL))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            async with asyncio.timeout(20):
                while sum(len(f.ticks) for f, _ in frames) < 20:
                    await asyncio.sleep(0.01)  # poll interval of a deadline-bound wait
            stop.set()
            await runner
            await client._http.aclose()

    asyncio.run(scenario())
    assert not any(f.errors for f, _ in frames)
    ticks = [tick for f, _ in frames for tick in f.ticks]
    assert {t.symbol for t in ticks} == {SYMBOL}
    volumes = [t.cum_volume for t in ticks]
    assert volumes == sorted(volumes)
    assert all(b.cum_volume - a.cum_volume == b.qty for a, b in pairwise(ticks))


def test_the_session_rules(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        async with simulator(max_registrations=2) as (sim, url):
            _, tokens = client_for(sim, url, tmp_path)
            key = (await tokens.approval_key()).reveal()
            ws_url = url.replace("http", "ws") + "/tryitout"
            codes = []

            def register(symbol: str) -> str:
                header = {
                    "approval_key": key,
                    "custtype": "P",
                    "tr_type": "1",
                    "content-type": "utf-8",
                }
                body = {"input": {"tr_id": "H0STCNT0", "tr_key": symbol}}
                return json.dumps({"header": header, "body": body})

            symbols = list(MARKET.listings)[:3]
            async with websockets.connect(ws_url) as first:
                for symbol in [*symbols, symbols[0]]:
                    await first.send(register(symbol))
                    while True:
                        answer = json.loads(await first.recv())
                        if answer["header"]["tr_id"] != "PINGPONG":
                            break
                    codes.append(answer["body"]["msg_cd"])
                async with websockets.connect(ws_url) as second:
                    await second.send(register(symbols[0]))
                    codes.append(json.loads(await second.recv())["body"]["msg_cd"])
            await tokens._http.aclose()
            return codes

    assert asyncio.run(scenario()) == ["OPSP0000", "OPSP0000", "OPSP0008", "OPSP0002", "OPSP8996"]


def test_master_files_download_and_parse(tmp_path: Path) -> None:
    async def scenario() -> tuple[RemoteFile, Downloaded, dict[str, bytes | str]]:
        async with (
            simulator() as (sim, url),
            httpx.AsyncClient(base_url=f"{url}/common/master/") as http,
        ):
            remote = await head_master(http, "kospi_code.mst.zip")
            got = await download_master(http, "kospi_code.mst.zip", tmp_path / "kospi.zip")
            broken: dict[str, bytes | str] = {}
            for how in MASTER_DAMAGE:
                sim.faults.master_damage = {"kospi_code.mst.zip": how}
                target = tmp_path / f"{how}.zip"
                try:
                    broken[how] = (
                        await download_master(http, "kospi_code.mst.zip", target)
                    ).path.read_bytes()
                except MasterFileError as exc:
                    assert not target.exists()  # nothing half-written is left behind
                    broken[how] = str(exc)
            with pytest.raises(MasterFileError, match="bytes announced"):
                await download_master(http, "nasmst.cod.zip", tmp_path / "x", max_bytes=1000)
            with pytest.raises(MasterFileError, match="HTTP 404"):
                await download_master(http, "nothing.zip", tmp_path / "x")
            sim.config.master_validators = False
            assert (await head_master(http, "nasmst.cod.zip")).etag == ""
            return remote, got, broken

    remote, got, broken = asyncio.run(scenario())
    body = got.path.read_bytes()
    assert remote.size == got.size == len(body) and got.sha256 == hashlib.sha256(body).hexdigest()
    assert remote.etag.startswith('"') and remote.last_modified.endswith(" GMT")
    assert got.path.stat().st_mode & 0o777 == 0o600
    rows = parse_domestic(extract_single(body, "kospi_code.mst"), "KOSPI")
    assert {r.symbol for r in rows} == {
        s for s, x in MARKET.listings.items() if x.market == "KOSPI"
    }
    assert broken["short_body"] == (
        f"GET kospi_code.mst.zip: the body ended after {len(body) // 2} of {len(body)} bytes"
    )
    expected = {"truncated": "not a valid zip", "crc": "Bad CRC-32"}
    for how, message in expected.items():
        with pytest.raises(MasterFileError, match=message):
            extract_single(broken[how], "kospi_code.mst")  # type: ignore[arg-type]
    with pytest.raises(MasterFileError, match="not cp949"):
        parse_domestic(extract_single(broken["encoding"], "kospi_code.mst"), "KOSPI")  # type: ignore[arg-type]
    with pytest.raises(MasterFileError, match="line 1: 12 characters"):
        parse_domestic(extract_single(broken["columns"], "kospi_code.mst"), "KOSPI")  # type: ignore[arg-type]
    assert parse_domestic(extract_single(broken["empty"], "kospi_code.mst"), "KOSPI") == []  # type: ignore[arg-type]


def test_observer_sim_command_serves_and_stops() -> None:
    import signal
    import subprocess
    import sys

    from tests.support import ROOT

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observer",
            "sim",
            "--seed",
            "5",
            "--clock",
            "2026-11-20T10:00:00+09:00@60x",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("observer sim ready rest=http://127.0.0.1:")
        rest = line.split()[3].removeprefix("rest=")
        body = {"grant_type": "client_credentials", "appkey": "k", "appsecret": "s"}
        answer = httpx.post(f"{rest}/oauth2/tokenP", json=body)
        assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc.stdout.close()  # type: ignore[union-attr]


def test_master_listing_changes_are_served(tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, bytes, dict[str, Any], RemoteFile, RemoteFile]:
        async with (
            simulator() as (_, url),
            httpx.AsyncClient(base_url=f"{url}/common/master/") as http,
        ):
            before = await download_master(http, "kosdaq_code.mst.zip", tmp_path / "a")
            kospi = await head_master(http, "kospi_code.mst.zip")
            answer = await http.post(
                f"{url}/_sim/listing_changes", json={"new": 2, "delist": 1, "rename": 1}
            )
            after = await download_master(http, "kosdaq_code.mst.zip", tmp_path / "b")
            kospi_after = await head_master(http, "kospi_code.mst.zip")
            return (
                before.path.read_bytes(),
                after.path.read_bytes(),
                answer.json(),
                kospi,
                kospi_after,
            )

    before, after, changed, kospi, kospi_after = asyncio.run(scenario())
    old = {r.symbol: r for r in parse_domestic(extract_single(before, "kosdaq_code.mst"), "KOSDAQ")}
    new = {r.symbol: r for r in parse_domestic(extract_single(after, "kosdaq_code.mst"), "KOSDAQ")}
    assert set(old) - set(new) == set(changed["delisted"]) and len(changed["delisted"]) == 1
    assert {new[s].name for s in set(new) - set(old)} == {"신규상장1", "신규상장2"}
    assert sorted(set(new) - set(old)) == sorted(changed["new"])
    (renamed,) = changed["renamed"]
    assert MARKET.listings[renamed].market == "KOSPI"
    assert kospi_after.etag != kospi.etag and kospi_after.last_modified >= kospi.last_modified


def test_etf_and_overseas_answers(tmp_path: Path) -> None:
    etf = next(s for s, x in MARKET.listings.items() if x.group == "EF")
    nas = MARKET.overseas["nas"][0]

    async def scenario() -> None:
        async with simulator() as (sim, url):
            client, _ = client_for(sim, url, tmp_path)
            price = await client.etf_price(etf)
            premium = float(price.dprt) / 100
            assert abs(float(price.stck_prpr) / float(price.nav) - 1 - premium) < 1e-3
            assert int(price.etf_ntas_ttam) > 0
            summary, parts, _ = await client.etf_components(etf)
            assert int(summary.etf_cnfg_issu_cnt) == len(parts) >= 10
            assert abs(sum(float(p.etf_cnfg_issu_rlim) for p in parts) - 100) < 0.5
            stocks = [p for p in parts if p.stck_shrn_iscd in MARKET.listings]
            cash = {p.stck_shrn_iscd for p in parts} - {p.stck_shrn_iscd for p in stocks}
            assert len(stocks) >= 10 and {"KRD010010001", "CASH00000001"} <= cash
            history = await client.etf_nav_daily(etf, "20260101", "20261119")
            assert len(history) > 200 and history[-1].stck_bsop_date == "20261119"
            quote = await client.overseas_price("NAS", nas.symbol)
            assert float(quote.last) > 0 and quote.rsym == f"DNAS{nas.symbol}"
            assert (await client.overseas_price("NAS", "NOSUCH1")).last == ""
            with pytest.raises(KisApiError):  # not an ETF: no data
                await client.etf_price(SYMBOL)
            await client._http.aclose()

    asyncio.run(scenario())


def test_krx_etf_list(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict, dict]:
        async with (
            simulator(krx_login_required=False) as (_, url),  # the login: tests/krx/test_krx.py
            httpx.AsyncClient(base_url=url) as http,
        ):
            form = {"bld": "dbms/MDC/STAT/standard/MDCSTAT04601"}
            path = "/comm/bldAttendant/getJsonData.cmd"
            referer = {"Referer": "https://data.krx.co.kr/contents/MDC/MDI/outerLoader/index.cmd"}
            listed = await http.post(path, data=form, headers=referer)
            refused = await http.post(path, data=form)
            assert listed.headers["content-type"].startswith("text/html")
            return json.loads(listed.text), json.loads(refused.text)

    listed, refused = asyncio.run(scenario())
    etfs = {s for s, x in MARKET.listings.items() if x.group == "EF"}
    assert {row["ISU_SRT_CD"] for row in listed["output"]} == etfs
    row = listed["output"][0]
    assert (
        row["LIST_SHRS"].replace(",", "").isdigit() and len(row["ETF_TOT_FEE"].split(".")[1]) == 6
    )
    assert list(row)[:2] == ["ISU_CD", "ISU_SRT_CD"]
    assert refused["output"] == []  # no Referer, no data (KRX since 2024-07)


def test_daily_price_and_overseas_info(tmp_path: Path) -> None:
    nys = MARKET.overseas["nys"][3]

    async def scenario() -> None:
        async with simulator(speed=1e-6) as (sim, url):  # time stands still between calls
            client, _ = client_for(sim, url, tmp_path)
            days = await client.daily_price(SYMBOL)
            assert len(days) == 30 and days[-1].stck_bsop_date == "20261120"
            now = await client.current_price(SYMBOL)
            assert days[-1].stck_clpr == now.stck_prpr  # today's row is the day so far
            assert days[-2].stck_clpr == str(MARKET.close(SYMBOL, date(2026, 11, 19)))
            info = await client.overseas_info("NYS", nys.symbol)
            assert info is not None and info.prdt_eng_name == nys.name_en
            assert info.ovrs_excg_cd == "NYS" and info.tr_crcy_cd == "USD"
            assert await client.overseas_info("NYS", "NOSUCH") is None
            await client._http.aclose()

    asyncio.run(scenario())


def test_accounts_are_wired_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from observer.config.tree import Settings
    from observer.kis.session import master_http, open_account, rate_limits
    from observer.kis.settings import KisSettings
    from observer.process.paths import PathSettings

    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_KEY", KEY)  # the simulator only takes KEY
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_SECRET", SECRET)

    async def scenario() -> None:
        async with simulator() as (sim, url):
            settings = Settings(
                paths=PathSettings(run_dir=str(tmp_path / "run")),
                kis=KisSettings(environment="sim", sim_url=url, token_dir=str(tmp_path / "t")),
            )
            limits = rate_limits(settings.kis, "track_a")
            account = open_account(settings.kis, "acct1", sim.clock, limits)
            assert account.ws_url == url.replace("http", "ws") + "/tryitout"
            assert int((await account.client.current_price(SYMBOL)).stck_prpr) > 0
            async with master_http(settings.kis) as masters:
                assert (await masters.head("kospi_code.mst.zip")).status_code == 200
            await account.aclose()

    asyncio.run(scenario())


def test_a_dropped_session_reconnects_and_trades_keep_flowing(tmp_path: Path) -> None:
    heard = Heard()
    frames = heard.frames

    def states() -> list[str]:
        return [state for state, _ in heard.states]

    async def scenario() -> int:
        async with simulator(speed=120.0) as (sim, url):
            client, tokens = client_for(sim, url, tmp_path)
            ws_url = url.replace("http", "ws") + "/tryitout"
            settings = StreamSettings(backoff_s=(0.01,))
            stream = KisStream(ws_url, tokens, sim.clock, heard, settings)
            await stream.subscribe(Feed("trades", "KRX", SYMBOL))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            async with asyncio.timeout(20):
                while not frames:
                    await asyncio.sleep(0.01)  # poll interval of a deadline-bound wait
                assert await sim.drop_websockets() == 1
                while states().count("connected") < 2 or not stream.registered:
                    await asyncio.sleep(0.01)
                seen = len(frames)
                while len(frames) == seen:
                    await asyncio.sleep(0.01)
            stop.set()
            await runner
            await client._http.aclose()
            return stream.reconnects

    assert asyncio.run(scenario()) >= 1
    assert "disconnected" in states()
