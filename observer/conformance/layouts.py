"""Which real-time layout generation a record width is (fields per record, by TR).

The widths come from KIS's API workbook exports (2026-05-08 and 2026-09-20); the client's
parser reads the 2026-05 fields and at most a few trailing ones (`observer.kis.realtime`).
"""

from __future__ import annotations

__all__ = ["KNOWN_WIDTHS", "generation", "record_width"]

# tr_id -> record width -> the export that documents it.
KNOWN_WIDTHS: dict[str, dict[int, str]] = {
    "H0STCNT0": {46: "2026-05", 47: "2026-09"},
    "H0STASP0": {59: "2026-05", 63: "2026-09"},
}


def generation(tr_id: str, width: int) -> str | None:
    """The layout generation of a ``tr_id`` record ``width`` fields wide; None if unknown."""
    return KNOWN_WIDTHS.get(tr_id, {}).get(width)


def record_width(text: str) -> tuple[str, int] | None:
    """``(tr_id, fields per record)`` of a plain data frame; None if it is not one.

    Counted from the raw frame (total fields / record count), before any parser cuts or
    refuses it: the width is what KIS sent.
    """
    parts = text.split("|", 3)
    if len(parts) != 4 or parts[0] != "0" or not parts[2].isdigit() or int(parts[2]) < 1:
        return None
    fields, count = parts[3].count("^") + 1, int(parts[2])
    if fields % count:
        return parts[1], -1  # the count does not divide the fields: no width at all
    return parts[1], fields // count
