"""A stock's daily bars (FHKST03010100) as typed records: its sessions' prices and volume.

KIS answers each day as text (``stck_bsop_date``, ``stck_oprc``, ...); a `DailyBar` is the
day's open, high, low and close in KRW and its volume in shares, each read and bounded like
every KIS number, so a garbled row fails its symbol, never a whole build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from observer.errors import KisProtocolError
from observer.kis.parse import read_int
from observer.kis.schemas import DailyBarRow

__all__ = ["DailyBar", "daily_bars"]


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One session of a stock: its prices (KRW) and volume (shares)."""

    day: date
    open: int
    high: int
    low: int
    close: int
    volume: int


def daily_bars(rows: Sequence[DailyBarRow]) -> list[DailyBar]:
    """FHKST03010100's rows as bars, in their order.

    Raises
    ------
    KisProtocolError
        A row's date or number does not read.
    """
    bars = []
    for row in rows:
        try:
            day = datetime.strptime(row.stck_bsop_date, "%Y%m%d").date()
        except ValueError as exc:
            raise KisProtocolError(f"daily bar: {exc}") from exc
        bars.append(
            DailyBar(
                day=day,
                open=read_int(row.stck_oprc, "stck_oprc"),
                high=read_int(row.stck_hgpr, "stck_hgpr"),
                low=read_int(row.stck_lwpr, "stck_lwpr"),
                close=read_int(row.stck_clpr, "stck_clpr"),
                volume=read_int(row.acml_vol, "acml_vol"),
            )
        )
    return bars
