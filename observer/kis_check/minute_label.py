"""Which minute a bar of FHKST03010200 is labelled by: its start or its end.

A minute the session saw whole (a trade before its start and one after its end, the session
up throughout) has its traded volume in the sum of its trades' quantities (``CNTG_VOL``), as
the reconciliation counts it. That volume is compared with the bar labelled by the minute's
start and with the one labelled by its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

__all__ = ["LabelReading", "LiveTrade", "read_label"]

_NS = 1_000_000_000
_KST_OFFSET_S = 9 * 3600  # Korea has no daylight saving time


class LiveTrade(NamedTuple):
    """One live trade as received: its exchange time (UTC ns) and quantity."""

    exchange_ns: int
    qty: int


class LabelReading(NamedTuple):
    """What the minutes showed: the label they agree with (None: not told), and why."""

    label: Literal["start", "end"] | None
    minutes: int  # whole minutes compared
    detail: str


def _kst_minute(ns: int) -> int:
    """Minutes since 1970-01-01 00:00 KST."""
    return (ns // _NS + _KST_OFFSET_S) // 60


def _label(minute: int) -> str:
    """``HHMMSS`` of a KST minute number, as ``stck_cntg_hour`` spells a bar."""
    of_day = minute % (24 * 60)
    return f"{of_day // 60:02d}{of_day % 60:02d}00"


def read_label(trades: Sequence[LiveTrade], bars: Mapping[str, int]) -> LabelReading:
    """Compare each whole minute's live volume with the bars (``stck_cntg_hour`` -> volume).

    A minute without a trade is skipped (KIS has no bar for it). The label is told only when
    every compared minute agrees with one reading and not with the other.
    """
    ordered = sorted(trades)
    if not ordered:
        return LabelReading(None, 0, "no live trades")
    first, last = _kst_minute(ordered[0].exchange_ns), _kst_minute(ordered[-1].exchange_ns)
    volumes: dict[int, int] = {}  # minute -> its traded volume
    for trade in ordered:
        minute = _kst_minute(trade.exchange_ns)
        volumes[minute] = volumes.get(minute, 0) + trade.qty
    starts = ends = compared = 0
    for minute in range(first + 1, last):  # whole minutes: a trade before and one after
        volume = volumes.get(minute)
        if not volume:
            continue
        compared += 1
        starts += bars.get(_label(minute)) == volume
        ends += bars.get(_label(minute + 1)) == volume
    if not compared:
        return LabelReading(None, 0, "no whole minute with trades seen (run --seconds 150)")
    if starts == compared and ends < compared:
        return LabelReading("start", compared, f"{compared} minute(s) agree with start labels")
    if ends == compared and starts < compared:
        return LabelReading("end", compared, f"{compared} minute(s) agree with end labels")
    return LabelReading(
        None,
        compared,
        f"of {compared} minute(s), {starts} agree with start labels and {ends} with end labels",
    )
