"""What a fallback sector source answers, and how its symbols are spelt (ref-KRX §5.3)."""

from __future__ import annotations

from typing import Protocol

import msgspec

__all__ = ["Profile", "SectorSource", "yahoo_symbol"]

# KIS exchange code -> Yahoo suffix. HNX has none in yfinance's map: it is skipped unasked.
_SUFFIXES = {
    "NAS": "", "NYS": "", "AMS": "", "SHS": ".SS", "SZS": ".SZ", "HKS": ".HK", "TSE": ".T",
    "HSX": ".VN",
}  # fmt: skip


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's profile: Morningstar-style names and keys (no GICS codes)."""

    sector: str = ""
    sector_key: str = ""
    industry: str = ""
    industry_key: str = ""


class SectorSource(Protocol):
    """Anything that can tell a symbol's sector by its Yahoo-style name."""

    async def profile(self, symbol: str) -> Profile | None:
        """The symbol's profile; None when the source has none (unknown, or no profile).

        Raises `observer.errors.FallbackError` when the source could not be asked.
        """
        ...


def yahoo_symbol(exchange: str, symbol: str) -> str | None:
    """The Yahoo spelling of a KIS overseas symbol, or None when Yahoo has no suffix for it.

    Hong Kong codes are at least 4 digits (``0700.HK``); US class shares use a hyphen
    (``BRK.B`` -> ``BRK-B``, UNVERIFIED against Yahoo).
    """
    suffix = _SUFFIXES.get(exchange)
    if suffix is None:
        return None
    if exchange == "HKS" and symbol.isdigit():
        symbol = str(int(symbol)).zfill(4)
    if suffix == "":
        symbol = symbol.replace(".", "-")
    return symbol + suffix
