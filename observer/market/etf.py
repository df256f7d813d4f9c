"""An ETF's premium: how far its price stands from its NAV, in percent."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["premium_pct"]

_PLACES = Decimal("0.0001")  # four decimals, as the ETF job stores a premium


def premium_pct(close: int | None, nav: Decimal | None) -> Decimal | None:
    """``(close - nav) / nav x 100``; None when either is missing or the NAV is not positive."""
    if close is None or nav is None or nav <= 0:
        return None
    return ((Decimal(close) - nav) / nav * 100).quantize(_PLACES)
