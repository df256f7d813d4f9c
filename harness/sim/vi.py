"""The simulator's volatility interruptions as they happen (H0STVIC0, H0NXVIC0, H0UNVIC0).

The VIs are `Market.vi_window`'s (one stock in ten a day on each venue, a static VI off the
previous close, lifted two minutes later; on KRX in its after-market too), the ones the
market-status feeds report; KRX's are FHPST01390000's too (`harness.sim.flows`). Nextrade's,
since 2026-09-14, of the stocks it trades that day, are drawn apart from KRX's (its own
trigger price). A record at each start and end, in the 2026-09 layout (15 fields; the combined
feed's 16, its EXCH_CLS_CODE "1" for KRX's, "2" for Nextrade's): H0STVIC0 KRX's, H0NXVIC0
Nextrade's, H0UNVIC0 both. KIS's workbook names the business date as the key but its example
a symbol (UNCONFIRMED): `SimConfig.vi_tr_key` says which this simulator takes (both by
default); under the date, every stock's VIs of that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from harness.sim.market import Market, quote_at

__all__ = ["VI_FEEDS", "DayVis", "ViChange", "vi_key_taken", "vi_numbers"]

VI_FEEDS = frozenset({"H0STVIC0", "H0NXVIC0", "H0UNVIC0"})
_VENUES = {"H0STVIC0": ("KRX",), "H0NXVIC0": ("NXT",), "H0UNVIC0": ("KRX", "NXT")}


@dataclass(frozen=True, slots=True)
class ViChange:
    """A VI starting (``applies``) or lifted, at ``at``."""

    at: datetime
    symbol: str
    applies: bool
    start: datetime
    end: datetime
    venue: str = "KRX"  # whose VI: KRX's or Nextrade's ("NXT")


def vi_numbers(market: Market, symbol: str, day: date, start: datetime) -> tuple[int, int, str]:
    """The price that set the VI off, its static base (the previous close), the move (%)."""
    price = quote_at(market, symbol, start).price
    base = market.day_path(symbol, day).prev_close
    return price, base, f"{(price - base) * 100 / base:.2f}"


def vi_key_taken(kind: str, tr_key: str, market: Market) -> bool:
    """Whether a VI registration under ``tr_key`` is taken when the key is ``kind``'s."""
    symbol = tr_key in market.listings
    date_key = len(tr_key) == 8 and tr_key.isascii() and tr_key.isdigit()
    return {"symbol": symbol, "date": date_key}.get(kind, symbol or date_key)


class DayVis:
    """Each day's VI starts and ends over the whole market, in time order (made once a day)."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self._days: dict[date, list[ViChange]] = {}

    def changes(self, day: date) -> list[ViChange]:
        """``day``'s starts and ends on both venues, by time, code, then venue."""
        if day not in self._days:
            found = []
            traded = self.market.nxt_eligible(day)
            for symbol in self.market.listings:
                for venue in ("KRX", "NXT") if symbol in traded else ("KRX",):
                    if (window := self.market.vi_window(symbol, day, venue)) is not None:
                        start, end = window
                        found += [
                            ViChange(start, symbol, True, *window, venue),
                            ViChange(end, symbol, False, *window, venue),
                        ]
            # today's alone
            self._days = {day: sorted(found, key=lambda c: (c.at, c.symbol, c.venue))}
        return self._days[day]

    def records(self, tr_id: str, key: str, start: datetime, end: datetime) -> list[str]:
        """The records of ``tr_id`` under ``key`` (a date or a symbol) in (start, end]."""
        venues = _VENUES[tr_id]
        day = end.date()
        whole = key == f"{day:%Y%m%d}"
        if not whole and key not in self.market.listings:
            return []
        changes = [
            c
            for c in self.changes(day)
            if start < c.at <= end and (whole or c.symbol == key) and c.venue in venues
        ]
        return [self._record(tr_id, day, c) for c in changes]

    def _record(self, tr_id: str, day: date, change: ViChange) -> str:
        listing = self.market.listings[change.symbol]
        price, base, move = vi_numbers(self.market, change.symbol, day, change.start)
        fields = [
            f"{day:%Y%m%d}",
            change.symbol,
            listing.name,
            "0" if listing.market == "KOSPI" else "1",  # MRKT_DIV_CLS_CODE: the simulator's
            "Y" if change.applies else "N",
            "000000" if change.applies else f"{change.end:%H%M%S}",
            f"{change.start:%H%M%S}",
            "1",
            str(price),
            str(base),
            move,
            "0",
            "0.00",
            "1",
        ]
        if tr_id == "H0UNVIC0":
            fields.append("1" if change.venue == "KRX" else "2")  # EXCH_CLS_CODE
        fields.append("Y" if listing.group == "EF" else "N")
        return "^".join(fields)
