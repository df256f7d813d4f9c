"""A `SectorSource` speaking quoteSummary JSON over httpx, at a configurable base URL.

``GET {base}/v10/finance/quoteSummary/{symbol}?modules=assetProfile``; the answer is
``{"quoteSummary": {"result": [{"assetProfile": {"sectorKey": ..., ...}}], "error": ...}}``
(ref-KRX §5.1). 404 (or a "Not Found" error) and a result without ``assetProfile`` mean
"no profile"; 429, 5xx and timeouts raise the retryable `FallbackError` classes, any
other httpx error (a body that does not decode) `FallbackProtocolError`.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import msgspec

from observer.errors import (
    FallbackError,
    FallbackProtocolError,
    FallbackRateLimited,
    FallbackServerError,
    FallbackTransportError,
)
from observer.sector_sources.source import Profile

__all__ = ["QuoteSummarySource"]

log = logging.getLogger(__name__)


class _AssetProfile(msgspec.Struct):
    sector: str = ""
    sectorKey: str = ""  # noqa: N815 - the wire's spelling
    industry: str = ""
    industryKey: str = ""  # noqa: N815


class _Result(msgspec.Struct):
    assetProfile: _AssetProfile | None = None  # noqa: N815


class _Summary(msgspec.Struct):
    result: list[_Result] | None = None
    error: dict[str, Any] | None = None


class _Answer(msgspec.Struct):
    quoteSummary: _Summary  # noqa: N815


_DECODER = msgspec.json.Decoder(_Answer)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None  # absent, or an HTTP date (not sent by the sources we know)


class QuoteSummarySource:
    """quoteSummary over ``http`` (an ``httpx.AsyncClient`` whose base URL is the source's).

    The client is the caller's: it sets the timeouts and closes it.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    def __repr__(self) -> str:
        return f"QuoteSummarySource({self._http.base_url})"

    async def profile(self, symbol: str) -> Profile | None:
        """See `observer.sector_sources.source.SectorSource.profile`."""
        try:
            response = await self._http.get(
                f"/v10/finance/quoteSummary/{symbol}", params={"modules": "assetProfile"}
            )
        except httpx.TimeoutException as exc:
            raise FallbackTransportError(f"{symbol}: timed out") from exc
        except httpx.TransportError as exc:
            raise FallbackTransportError(f"{symbol}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # a body that does not decode (gzip, charset), ...
            raise FallbackProtocolError(f"{symbol}: {type(exc).__name__}") from exc
        status = response.status_code
        if status == 429:
            raise FallbackRateLimited(f"{symbol}: 429 Too Many Requests", _retry_after(response))
        if status >= 500:
            raise FallbackServerError(f"{symbol}: HTTP {status}")
        if status == 404:
            return None
        if status != 200:
            raise FallbackError(f"{symbol}: HTTP {status}")
        try:
            summary = _DECODER.decode(response.content).quoteSummary
        except msgspec.DecodeError as exc:
            raise FallbackProtocolError(f"{symbol}: not quoteSummary JSON: {exc}") from exc
        if not summary.result or summary.result[0].assetProfile is None:
            return None
        p = summary.result[0].assetProfile
        if not p.sectorKey:
            return None
        return Profile(
            sector=p.sector,
            sector_key=p.sectorKey,
            industry=p.industry,
            industry_key=p.industryKey,
        )
