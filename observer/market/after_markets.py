"""What the after-markets trade: KRX's (16:00-20:00) and Nextrade's take no ETF or ETN.

Both since 2026-09-14 (kis-market-2026-09.md §1 and §3, CONFIRMED-2nd): an ETF or ETN trades
in the venues' main sessions (and Nextrade's pre-market) alone. Stocks under market measures
(투자경고, 관리종목, ...) are excluded too; the observer does not know them, so it treats them
as the after-markets' (a feed that stays silent, never a trade lost).
"""

from __future__ import annotations

__all__ = ["AFTER_MARKETS_EXCLUDE", "trades_after_markets"]

# The products (`observer.kis.master.group_kind`'s words) no after-market trades.
AFTER_MARKETS_EXCLUDE = frozenset({"etf", "etn"})


def trades_after_markets(kind: str) -> bool:
    """Whether a listing of product ``kind`` (stock, etf, etn, ...) trades in the after-markets.

    True for a kind the rule does not name (``other``: unknown is followed, not dropped).
    """
    return kind not in AFTER_MARKETS_EXCLUDE
