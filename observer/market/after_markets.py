"""What the after-markets trade: KRX's (16:00-20:00) and Nextrade's take no ETF or ETN.

Both since 2026-09-14 (kis-market-2026-09.md §1 and §3, CONFIRMED-2nd): an ETF or ETN trades
in the venues' main sessions (and Nextrade's pre-market) alone. Nextrade's after-market takes
no stock under a market measure either (§3: "투자경고, 관리, ..."): which measures a venue's
after-market excludes is its hours' ``after_market_excludes`` (`observer.calendar.settings`),
in the words of `MEASURES`, as the master files name each listing's
(`observer.kis.master.DomesticListing.measures`).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["AFTER_MARKETS_EXCLUDE", "MEASURES", "Measure", "trades_after_markets"]

# A market measure a listing is under: its market alarm (투자주의, 투자경고, 투자위험) or a
# designation (관리종목, 정리매매, 단기과열).
Measure = Literal["caution", "warning", "risk", "administrative", "liquidation", "overheated"]
MEASURES: tuple[Measure, ...] = get_args(Measure)

# The products (`observer.kis.master.group_kind`'s words) no after-market trades.
AFTER_MARKETS_EXCLUDE = frozenset({"etf", "etn"})


def trades_after_markets(kind: str) -> bool:
    """Whether a listing of product ``kind`` (stock, etf, etn, ...) trades in the after-markets.

    True for a kind the rule does not name (``other``: unknown is followed, not dropped).
    """
    return kind not in AFTER_MARKETS_EXCLUDE
