"""The optional yfinance fallback: its mapping and errors, and the error when it is missing.

yfinance itself is never imported here: the source takes the function that fetches a
symbol's info, so these tests give it one (yfinance is an optional extra, not a test
dependency).
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from observer.clock import SystemClock
from observer.errors import FallbackRateLimited, FallbackTransportError
from observer.fallback import GuardedSource, GuardSettings
from observer.fallback.yfinance_source import YFinanceSource


class RateLimited(Exception):
    """Stands for yfinance's YFRateLimitError."""


INFO = {
    "MSFT": {"sector": "Technology", "sectorKey": "technology", "industry": "Software - "
             "Infrastructure", "industryKey": "software-infrastructure", "country": "US"},
    "NOPE": {"trailingPegRatio": None},  # what an unknown symbol answers
}  # fmt: skip


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
