"""Paging back through KIS's minute bars, and whether the answer holds every bar of a span.

KIS answers the newest minute bars at or before the asked minute (``FID_INPUT_HOUR_1``),
newest first, none left out, ``rows_per_call`` at a time (§4.3): the next page is asked one
minute before the oldest row kept. The paging stops at the page whose oldest row, whatever
its minute, is at or before ``since``: stopping on the oldest row *kept* asked KIS again
whenever ``since`` itself had no trade.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from observer.kis.schemas import MinuteBarRow

__all__ = ["MinuteRows", "page_minutes"]


@dataclass(frozen=True, slots=True)
class MinuteRows:
    """Minute bars from ``since`` to ``until``, oldest first, and whether that is all of them.

    ``reached``: the answer went back to ``since`` or past it, or KIS had nothing older
    after answering bars; a minute of the span without a row then had no trades. An answer
    with no row at all proves nothing (a symbol not traded yet, or an answer gone wrong).
    """

    rows: list[MinuteBarRow]
    reached: bool


async def page_minutes(
    batch: Callable[[str], Awaitable[list[MinuteBarRow]]],
    per_call: int,
    day: str,
    since: str,
    until: str,
) -> MinuteRows:
    """The bars of ``day`` (YYYYMMDD; "" for today's TR) from ``since`` to ``until`` (HHMMSS).

    ``batch(cursor)`` is one call: the rows KIS answers at or before ``cursor``.
    """
    rows: dict[str, MinuteBarRow] = {}
    cursor = until
    answered = False  # a full page of bars came before this one
    while True:
        found = await batch(cursor)
        fresh = [
            r
            for r in found
            if since <= r.stck_cntg_hour <= cursor and (not day or r.stck_bsop_date == day)
        ]
        rows.update((r.stck_cntg_hour, r) for r in fresh)
        stamps = [s for r in found if (s := _stamp(r, day)) is not None]
        if stamps and min(stamps) <= (day, since):
            reached = True
            break
        if len(found) < per_call:  # KIS has no older bar
            reached = answered or bool(found)
            break
        if not fresh:
            reached = False
            break
        answered = True
        cursor = _minute_before(min(r.stck_cntg_hour for r in fresh))
    return MinuteRows([rows[k] for k in sorted(rows)], reached)


def _stamp(row: MinuteBarRow, day: str) -> tuple[str, str] | None:
    """Where a row stands against ``(day, since)`` (a past day's TR runs into the day before)."""
    hour, of = row.stck_cntg_hour, row.stck_bsop_date
    valid = len(hour) == 6 and hour.isdigit() and (not day or (len(of) == 8 and of.isdigit()))
    return (of if day else "", hour) if valid else None


def _minute_before(hhmmss: str) -> str:
    minutes = int(hhmmss[:2]) * 60 + int(hhmmss[2:4]) - 1
    return f"{minutes // 60:02d}{minutes % 60:02d}00"
