"""The optional yfinance fallback: its mapping and errors, and the error when it is missing.

yfinance itself is never imported here: the source takes the function that fetches a
symbol's info, so these tests give it one (yfinance is an optional extra, not a test
dependency).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from observer.calendar.clock import SystemClock
from observer.config.tree import Settings
from observer.errors import (
    ConfigError,
    FallbackError,
    FallbackRateLimited,
    FallbackServerError,
    FallbackTransportError,
)
from observer.sector_sources import GuardedSource, GuardSettings, Profile
from observer.sector_sources import guarded as guards_module
from observer.sector_sources.yfinance_source import YFinanceSource
from workers.enrich.run import guarded_source, requests_per_call


class RateLimited(Exception):
    """Stands for yfinance's YFRateLimitError."""


INFO: dict[str, dict[str, Any]] = {
    "MSFT": {"sector": "Technology", "sectorKey": "technology", "industry": "Software - "
             "Infrastructure", "industryKey": "software-infrastructure", "country": "US"},
    "NOPE": {"trailingPegRatio": None},  # what an unknown symbol answers
}  # fmt: skip


class HTTPError(OSError):
    """Stands for the HTTPError of requests or curl_cffi: the answer on ``response``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP Error {status}: for url: https://query2.finance.yahoo.com/?crumb=x")
        self.response = types.SimpleNamespace(status_code=status)


def source(failures: list[BaseException] | None = None) -> tuple[YFinanceSource, list[str]]:
    asked: list[str] = []
    pending = list(failures or [])

    def info(symbol: str) -> Mapping[str, Any]:
        asked.append(symbol)
        if pending:
            raise pending.pop(0)
        return INFO[symbol]

    return YFinanceSource(info, RateLimited), asked


def test_info_becomes_a_profile_and_an_unknown_symbol_none() -> None:
    yf, asked = source()
    found = asyncio.run(yf.profile("MSFT"))
    assert found is not None
    assert (found.sector_key, found.industry_key) == ("technology", "software-infrastructure")
    assert asyncio.run(yf.profile("NOPE")) is None
    assert asked == ["MSFT", "NOPE"]


def test_a_429_is_retryable_and_the_guards_retry_it() -> None:
    yf, _ = source([RateLimited("Too Many Requests"), ConnectionError("reset")])
    with pytest.raises(FallbackRateLimited) as limited:
        asyncio.run(yf.profile("MSFT"))
    assert limited.value.retryable
    with pytest.raises(FallbackTransportError, match="ConnectionError"):
        asyncio.run(yf.profile("MSFT"))
    yf, asked = source([RateLimited("Too Many Requests")])
    guards = GuardSettings(rate_per_s=1000, max_retries=2, retry_delay_s=0.001)
    guarded = GuardedSource(yf, SystemClock(), "query2.finance.yahoo.com", guards)
    found = asyncio.run(guarded.profile("MSFT"))
    assert found is not None and asked == ["MSFT", "MSFT"] and guarded.retries == 1


@pytest.mark.skipif(
    importlib.util.find_spec("yfinance") is not None, reason="yfinance is installed here"
)
def test_selecting_yfinance_without_it_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "observer.db"}"\n'
        '[enrich]\nfallback = "yfinance"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "workers.enrich.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert 'fallback = "yfinance"' in done.stderr and "observer[enrich]" in done.stderr
    assert not (tmp_path / "data" / "enrich").exists()  # refused before anything started


def test_http_errors_are_told_apart_by_their_status() -> None:
    """yfinance raises them once `installed` stops it hiding them: none is "no profile"
    but the 404."""
    yf, _ = source([HTTPError(404)])
    assert asyncio.run(yf.profile("NOSUCH")) is None  # an unknown symbol
    retryable: dict[int, type[FallbackError]] = {
        503: FallbackServerError,
        500: FallbackServerError,
        429: FallbackRateLimited,
    }
    for status, error in retryable.items():
        yf, _ = source([HTTPError(status)])
        with pytest.raises(error, match=str(status)) as raised:
            asyncio.run(yf.profile("MSFT"))
        assert raised.value.retryable
    yf, _ = source([HTTPError(401)])  # "Invalid Crumb" even after yfinance's own retry
    with pytest.raises(FallbackError, match="HTTP 401") as raised:
        asyncio.run(yf.profile("MSFT"))
    assert not raised.value.retryable and "crumb" not in str(raised.value)


def test_a_server_error_is_retried_then_fails_the_stock_never_reads_as_no_profile() -> None:
    yf, asked = source([HTTPError(503)] * 3)
    guards = GuardSettings(rate_per_s=1000, max_retries=2, retry_delay_s=0.001)
    guarded = GuardedSource(yf, SystemClock(), "yf-503.test", guards)
    with pytest.raises(FallbackServerError):
        asyncio.run(guarded.profile("MSFT"))
    assert asked == ["MSFT"] * 3 and guarded.breaker.failures == 1
    assert "MSFT" not in guarded.cache


def fake_yfinance(with_config: bool) -> types.ModuleType:
    """A stand-in for the yfinance package: 1.x has ``config.debug``, 0.2.x none."""
    module = types.ModuleType("yfinance")
    module.__version__ = "1.7.0" if with_config else "0.2.54"  # type: ignore[attr-defined]
    if with_config:
        debug = types.SimpleNamespace(hide_exceptions=True)
        module.config = types.SimpleNamespace(debug=debug)  # type: ignore[attr-defined]
    module.Ticker = lambda symbol: types.SimpleNamespace(info=INFO[symbol])  # type: ignore[attr-defined]
    exceptions = types.ModuleType("yfinance.exceptions")
    exceptions.YFRateLimitError = RateLimited  # type: ignore[attr-defined]
    module.exceptions = exceptions  # type: ignore[attr-defined]
    return module


def test_installing_the_source_stops_yfinance_hiding_http_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new = fake_yfinance(with_config=True)
    monkeypatch.setitem(sys.modules, "yfinance", new)
    monkeypatch.setitem(sys.modules, "yfinance.exceptions", new.exceptions)
    found = asyncio.run(YFinanceSource.installed().profile("MSFT"))
    assert found is not None and found.sector_key == "technology"
    assert new.config.debug.hide_exceptions is False
    # yfinance before 1.0 has no such switch: a failure would read as a stock without a
    # sector, stored and not asked again for a month. It only warned: now it is refused.
    old = fake_yfinance(with_config=False)
    monkeypatch.setitem(sys.modules, "yfinance", old)
    monkeypatch.setitem(sys.modules, "yfinance.exceptions", old.exceptions)
    with pytest.raises(ConfigError, match=r"yfinance 0\.2\.54 hides Yahoo's HTTP errors"):
        YFinanceSource.installed()


def test_the_limiter_charges_a_call_the_three_requests_it_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Ticker.info`` asks quoteSummary, the v7 quote and the timeseries: at 3 requests/s
    configured, Yahoo sees one call a second."""
    monkeypatch.setattr(guards_module, "_LIMITERS", {})  # no limiter of an earlier test
    new = fake_yfinance(with_config=True)
    monkeypatch.setitem(sys.modules, "yfinance", new)
    monkeypatch.setitem(sys.modules, "yfinance.exceptions", new.exceptions)
    settings = Settings()
    enrich = msgspec.structs.replace(settings.enrich, fallback="yfinance", fallback_rate_per_s=3.0)
    settings = msgspec.structs.replace(settings, enrich=enrich)
    assert YFinanceSource.REQUESTS_PER_CALL == requests_per_call(settings) == 3
    guarded, http = guarded_source(settings, SystemClock())
    assert guarded.limiter.max_rate == 1 and guarded.limiter.time_period == pytest.approx(1.0)
    assert http is None and guarded.requests_per_call == 3
    # a source of one request a call (quoteSummary over httpx) is charged one
    assert requests_per_call(Settings()) == 1
    single = GuardedSource(OneRequest(), SystemClock(), "one.test", GuardSettings(rate_per_s=4.0))
    assert single.requests_per_call == 1 and single.limiter.time_period == pytest.approx(0.25)


class OneRequest:
    """A source without ``REQUESTS_PER_CALL``."""

    async def profile(self, symbol: str) -> Profile | None:
        return None


@pytest.mark.skipif(
    importlib.util.find_spec("yfinance") is None,
    reason="yfinance (the optional extra observer[enrich]) is not installed",
)
def test_the_real_yfinance_raises_what_yahoo_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """yfinance itself, its HTTP faked: a quoteSummary 503 is a server error, a 404 no
    profile, and a healthy answer makes the three requests `REQUESTS_PER_CALL` says."""
    yd = pytest.importorskip("yfinance.data")
    http = pytest.importorskip("yfinance._http", reason="yfinance before 1.0")
    status = {"quoteSummary": 200}
    asked: list[str] = []

    class Response:
        def __init__(self, code: int, body: object) -> None:
            self.status_code, self.body = code, body
            self.text, self.url = json.dumps(body), "https://query2.finance.yahoo.com/"

        def raise_for_status(self) -> None:
            if self.status_code >= 400:
                error = http.HTTPError(f"HTTP Error {self.status_code}")
                error.response = self
                raise error

        def json(self) -> object:
            return self.body

    def get(self: object, url: str, params: object = None, **_: object) -> Response:
        if "quoteSummary" in url:
            asked.append("quoteSummary")
            profile = {"sector": "Technology", "sectorKey": "technology"}
            body = {"quoteSummary": {"result": [{"assetProfile": profile}], "error": None}}
            return Response(status["quoteSummary"], body)
        if "v7/finance/quote" in url:
            asked.append("quote")
            return Response(200, {"quoteResponse": {"result": [], "error": None}})
        asked.append("timeseries")
        return Response(200, {"timeseries": {"result": [], "error": None}})

    monkeypatch.setattr(yd.YfData, "get", get)
    monkeypatch.setattr(yd.YfData, "cache_get", get)
    yf = YFinanceSource.installed()
    status["quoteSummary"] = 503
    with pytest.raises(FallbackServerError, match="503"):  # not "no profile"
        asyncio.run(yf.profile("AAPL"))
    status["quoteSummary"] = 404
    assert asyncio.run(yf.profile("NOSUCH")) is None
    status["quoteSummary"] = 200
    asked.clear()
    found = asyncio.run(yf.profile("MSFT"))
    assert found is not None and found.sector_key == "technology"
    assert len(asked) == YFinanceSource.REQUESTS_PER_CALL
