"""A `SectorSource` over the yfinance library: ``[enrich] fallback = "yfinance"``.

yfinance is an optional extra (``pip install "observer[enrich]"``): it pulls in pandas and
curl_cffi, which nothing else needs, so it is imported only when this source is selected
and never by the tests (which use `QuoteSummarySource` against the simulator). It is
synchronous: each ``Ticker(symbol).info`` runs in a thread, behind the same guards as the
quoteSummary client (`GuardedSource`: one limiter per host, retries, breaker, cache). Its
own retries do not cover 429 (``YFRateLimitError``), which becomes `FallbackRateLimited`
so that the guards pause and retry it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from observer.errors import ConfigError, FallbackRateLimited, FallbackTransportError
from observer.fallback.source import Profile

__all__ = ["YFinanceSource"]

INSTALL_HINT = 'pip install "observer[enrich]"'


class YFinanceSource:
    """``Ticker.info``'s ``sector/sectorKey/industry/industryKey`` as a `Profile`.

    ``info`` fetches one symbol's info dict and ``rate_limited`` is the exception class it
    raises on a 429; `installed` builds both from yfinance.
    """

    def __init__(
        self, info: Callable[[str], Mapping[str, Any]], rate_limited: type[BaseException]
    ) -> None:
        self._info = info
        self._rate_limited = rate_limited

    @classmethod
    def installed(cls) -> YFinanceSource:
        """The source over the installed yfinance; `ConfigError` when it is not installed."""
        try:
            import yfinance  # type: ignore[import-not-found]
            from yfinance.exceptions import YFRateLimitError  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError(
                '[enrich] fallback = "yfinance" needs the yfinance library, an optional '
                f'extra: {INSTALL_HINT} (or set fallback = "quote_summary" with a '
                f"fallback_url): {exc}"
            ) from None
        rate_limited: type[BaseException] = YFRateLimitError

        def info(symbol: str) -> Mapping[str, Any]:
            answer: Mapping[str, Any] = yfinance.Ticker(symbol).info
            return answer

        return cls(info, rate_limited)

    def __repr__(self) -> str:
        return "YFinanceSource()"

    async def profile(self, symbol: str) -> Profile | None:
        """See `observer.fallback.source.SectorSource.profile`."""
        try:
            info = await asyncio.to_thread(self._info, symbol)
        except Exception as exc:
            if isinstance(exc, self._rate_limited):
                raise FallbackRateLimited(f"{symbol}: 429 Too Many Requests (yfinance)") from None
            # network failures and Yahoo's errors, as the library raises them: retryable
            raise FallbackTransportError(f"{symbol}: yfinance {type(exc).__name__}") from None
        key = str(info.get("sectorKey") or "")
        if not key:
            return None  # unknown symbols answer (almost) empty info
        return Profile(
            sector=str(info.get("sector") or ""),
            sector_key=key,
            industry=str(info.get("industry") or ""),
            industry_key=str(info.get("industryKey") or ""),
        )
