"""A `SectorSource` over the yfinance library: ``[enrich] fallback = "yfinance"``.

yfinance is an optional extra (``observer[enrich]``: it pulls in pandas and curl_cffi), imported
only when this source is selected and never by the tests. It is synchronous: each
``Ticker(symbol).info`` runs in a thread, behind the quoteSummary client's guards
(`GuardedSource`). yfinance's hiding of HTTP errors is turned off (`YFinanceSource.installed`),
so that a failed lookup is never read as "no profile".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from observer.errors import (
    ConfigError,
    FallbackError,
    FallbackRateLimited,
    FallbackServerError,
    FallbackTransportError,
)
from observer.sector_sources.source import Profile

__all__ = ["YFinanceSource", "http_status"]

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "observer[enrich]"'


def http_status(error: BaseException) -> int | None:
    """The HTTP status of an HTTP error as requests and curl_cffi raise it (None: not one)."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def raise_http_errors(yfinance: Any) -> bool:
    """Make ``yfinance`` raise HTTP errors instead of hiding them; False when it cannot.

    ``yf.config.debug.hide_exceptions`` came with yfinance 1.0; 0.2.x has no ``config``.
    """
    debug = getattr(getattr(yfinance, "config", None), "debug", None)
    if debug is None:
        return False
    debug.hide_exceptions = False
    return True


class YFinanceSource:
    """``Ticker.info``'s ``sector/sectorKey/industry/industryKey`` as a `Profile`.

    ``info`` fetches one symbol's info dict and ``rate_limited`` is the exception class it
    raises on a 429; `installed` builds both from yfinance. An HTTP error is known by its
    ``response.status_code`` (`http_status`).
    """

    # ``Ticker.info`` asks Yahoo three times (quoteSummary, the v7 quote, the timeseries of
    # ``trailingPegRatio``), and yfinance has no public call for ``assetProfile`` alone: the
    # guards' limiter charges a call all three.
    REQUESTS_PER_CALL = 3

    def __init__(
        self, info: Callable[[str], Mapping[str, Any]], rate_limited: type[BaseException]
    ) -> None:
        self._info = info
        self._rate_limited = rate_limited

    @classmethod
    def installed(cls) -> YFinanceSource:
        """The source over the installed yfinance; `ConfigError` when it is not installed.

        Turns yfinance's hiding of HTTP errors (``yf.config.debug.hide_exceptions``) off, for
        the whole process: hidden, a 5xx or a 401 "Invalid Crumb" comes back as an info dict
        without ``sectorKey``, read as "no profile", stored as a stock without a sector, not
        asked again for ``max_age_days``, and never a failure for the breaker. A yfinance
        without the switch (before 1.0) is refused with a `ConfigError` too.
        """
        try:  # an optional extra, imported only where it is configured
            import yfinance  # type: ignore[import-not-found]
            from yfinance.exceptions import YFRateLimitError  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError(
                '[enrich] fallback = "yfinance" needs the yfinance library, an optional '
                f'extra: {INSTALL_HINT} (or set fallback = "quote_summary" with a '
                f"fallback_url): {exc}"
            ) from None
        if not raise_http_errors(yfinance):
            raise ConfigError(
                f"yfinance {getattr(yfinance, '__version__', '?')} hides Yahoo's HTTP errors "
                "(no config.debug.hide_exceptions before 1.0): a failed lookup would be "
                f"stored as a stock without a sector; upgrade it: {INSTALL_HINT} -U"
            )
        rate_limited: type[BaseException] = YFRateLimitError

        def info(symbol: str) -> Mapping[str, Any]:
            answer: Mapping[str, Any] = yfinance.Ticker(symbol).info
            return answer

        return cls(info, rate_limited)

    def __repr__(self) -> str:
        return "YFinanceSource()"

    async def profile(self, symbol: str) -> Profile | None:
        """See `observer.sector_sources.source.SectorSource.profile`."""
        try:
            info = await asyncio.to_thread(self._info, symbol)
        except Exception as exc:
            if isinstance(exc, self._rate_limited):
                raise FallbackRateLimited(f"{symbol}: 429 Too Many Requests (yfinance)") from None
            status = http_status(exc)
            if status is None:
                # network failures, and answers yfinance could not read: retryable
                raise FallbackTransportError(f"{symbol}: yfinance {type(exc).__name__}") from None
            if status == 404:
                return None  # Yahoo knows no such symbol
            if status == 429:
                raise FallbackRateLimited(f"{symbol}: 429 Too Many Requests (yfinance)") from None
            if status >= 500:
                raise FallbackServerError(f"{symbol}: HTTP {status} (yfinance)") from None
            raise FallbackError(f"{symbol}: HTTP {status} (yfinance)") from None
        key = str(info.get("sectorKey") or "")
        if not key:
            return None  # unknown symbols answer (almost) empty info
        return Profile(
            sector=str(info.get("sector") or ""),
            sector_key=key,
            industry=str(info.get("industry") or ""),
            industry_key=str(info.get("industryKey") or ""),
        )
