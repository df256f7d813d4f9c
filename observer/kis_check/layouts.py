"""A real-time frame's record width as KIS sent it, and the layout generation it is.

The widths known for each TR are the client's own (`observer.kis.schemas.REALTIME_LAYOUTS`);
the check counts a frame's width itself, before the decoder accepts or refuses it.
"""

from __future__ import annotations

from observer.kis.schemas import REALTIME_LAYOUTS

__all__ = ["generation", "record_width"]


def generation(tr_id: str, width: int) -> str | None:
    """The layout generation of a ``tr_id`` record ``width`` fields wide; None if unknown."""
    layout = REALTIME_LAYOUTS.get(tr_id, {}).get(width)
    return None if layout is None else layout.generation


def record_width(text: str) -> tuple[str, int] | None:
    """``(tr_id, fields per record)`` of a plain data frame; None if it is not one.

    Counted from the raw frame (total fields / record count), before any parser cuts or
    refuses it: the width is what KIS sent; -1 when the count does not divide the fields.
    """
    parts = text.split("|", 3)
    if len(parts) != 4 or parts[0] != "0" or not parts[2].isdigit() or int(parts[2]) < 1:
        return None
    fields, count = parts[3].count("^") + 1, int(parts[2])
    if fields % count:
        return parts[1], -1
    return parts[1], fields // count
