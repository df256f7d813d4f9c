"""Data quality of a parsed file: valid tickers, and rows with every field the product needs.

A record held back as malformed counts as a record that is not complete.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from observer.reference.instruments import REGIONS, Listing

__all__ = ["Quality", "assess"]


@dataclass(slots=True)
class Quality:
    """Data-quality counts for one parsed file: how many rows have each field, and are whole."""

    records: int = 0
    valid_ticker: int = 0
    has_name: int = 0
    has_exchange: int = 0
    has_region: int = 0
    has_currency: int = 0
    complete: int = 0
    duplicates: int = 0  # rows repeating an earlier symbol (the first one is kept)
    malformed: int = 0  # records with fields outside their form: counted, never complete

    @property
    def complete_pct(self) -> Decimal:
        """Complete rows in percent, two decimals."""
        if not self.records:
            return Decimal(0)
        return (Decimal(100 * self.complete) / self.records).quantize(Decimal("0.01"))

    def lines(self) -> list[str]:
        """The report: one line per count, with its share of the records."""
        rows = [
            ("Valid ticker", self.valid_ticker),
            ("Has name", self.has_name),
            ("Has exchange", self.has_exchange),
            ("Has region", self.has_region),
            ("Has currency", self.has_currency),
            ("Complete", self.complete),
        ]
        if self.malformed:
            rows.append(("Malformed", self.malformed))
        total = max(self.records, 1)
        return [f"{k + ':':14}{v:,}/{self.records:,} ({100 * v / total:.1f}%)" for k, v in rows]


_TICKER = re.compile(r"[0-9A-Z][0-9A-Z.\-/]{0,11}")


def assess(listings: Sequence[Listing], malformed: int = 0) -> Quality:
    """Count valid tickers, and rows that have a name, an exchange, a region and a currency.

    ``malformed``: the file's records held back as malformed, records none of whose fields
    counts.
    """
    q = Quality(records=len(listings) + malformed, malformed=malformed)
    seen: set[str] = set()
    for x in listings:
        checks = (
            _TICKER.fullmatch(x.symbol) is not None,
            bool(x.name or x.name_en),
            bool(x.exchange),
            x.region in REGIONS,
            len(x.currency) == 3,
        )
        q.valid_ticker += checks[0]
        q.has_name += checks[1]
        q.has_exchange += checks[2]
        q.has_region += checks[3]
        q.has_currency += checks[4]
        q.complete += all(checks)
        q.duplicates += x.symbol in seen
        seen.add(x.symbol)
    return q
