"""What a read asks for: symbols, a venue, and a time range in UTC nanoseconds.

A time is what a user types or holds: a ``date`` (that KST day), a ``datetime`` (naive: KST),
an ISO text (``"2026-11-20"``, ``"2026-11-20 09:00"``, with or without an offset; naive: KST),
or UTC nanoseconds as an ``int``.

One convention for a range's end, in the API and every command: a day (a ``date`` or its
text) is the whole KST day at either end, so ``start=date(2026, 11, 2), end=date(2026, 11,
6)`` is five days, the 6th included, as pandas slices a day; an instant (a ``datetime``, a
time's text, nanoseconds) is excluded as an end, ``[start, end)``. ``end`` defaults to the end
of ``start``'s KST day, so one date is one day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bus.events import Venue
from observer.calendar.phases import KST
from observer.calendar.venues import VENUES
from observer.errors import ObserverError

__all__ = ["DataRequestError", "Span", "When", "span_of"]

When = date | datetime | str | int
_NS = 10**9
_DAY = timedelta(days=1)


class DataRequestError(ObserverError, ValueError):
    """A read asked for something that cannot be answered: a bad time, an empty range."""


# A venue as asked (any case) -> as stored: KRX, NXT, and KIS's combined feed
_VENUE_NAMES: dict[str, Venue] = {v.upper(): v for v in VENUES}


@dataclass(frozen=True, slots=True)
class Span:
    """``symbols`` (None: all) on ``venue`` (None: every venue) in ``[lo_ns, hi_ns)`` (UTC)."""

    symbols: tuple[str, ...] | None
    venue: Venue | None
    lo_ns: int
    hi_ns: int

    def days(self) -> Iterator[date]:
        """The KST days the range touches, in order."""
        day = _kst(self.lo_ns).date()
        last = _kst(self.hi_ns - 1).date()
        while day <= last:
            yield day
            day += _DAY


def span_of(
    symbols: str | Iterable[str] | None,
    start: When,
    end: When | None = None,
    venue: str | None = None,
) -> Span:
    """The `Span` of a read's arguments.

    ``venue``: KRX, NXT or combined, in any case.

    Raises
    ------
    DataRequestError
        A time that is not one, an ``end`` not after ``start``, or a venue that is none.
    """
    lo = _instant(start, "start")
    hi = _day_end(end, "end") if end is not None and _is_day(end) else None
    if hi is None:
        hi = _instant(end, "end") if end is not None else _day_end(start, "start")
    if hi <= lo:
        raise DataRequestError(f"the range ends ({_text(hi)}) before it starts ({_text(lo)})")
    if symbols is None:
        chosen = None
    else:
        chosen = (symbols,) if isinstance(symbols, str) else tuple(dict.fromkeys(symbols))
        if not chosen:
            raise DataRequestError("no symbols asked for (None means every symbol)")
    return Span(chosen, _venue(venue), lo, hi)


def _venue(asked: str | None) -> Venue | None:
    if not asked:
        return None
    found = _VENUE_NAMES.get(asked.strip().upper())
    if found is None:
        known = ", ".join(VENUES)
        raise DataRequestError(f"venue {asked!r} is none of the venues ({known})")
    return found


def _instant(value: When, what: str) -> int:
    if isinstance(value, bool):
        raise DataRequestError(f"{what}: {value!r} is not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = _parse(value, what)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=KST)
        return _ns(aware)
    if isinstance(value, date):
        return _ns(datetime.combine(value, time(), KST))
    raise DataRequestError(f"{what}: {value!r} is not a date, a datetime, a text or an int")


def _is_day(value: When) -> bool:
    """Whether ``value`` names a whole day: a ``date`` (not a ``datetime``) or its text."""
    if isinstance(value, str):
        return len(value.strip()) == 10
    return isinstance(value, date) and not isinstance(value, datetime)


def _day_end(value: When, what: str) -> int:
    """The end of ``value``'s KST day: the next day's first instant."""
    day = _kst(_instant(value, what)).date() + _DAY
    return _ns(datetime.combine(day, time(), KST))


def _parse(text: str, what: str) -> date | datetime:
    try:
        if len(text.strip()) == 10:
            return date.fromisoformat(text.strip())
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataRequestError(
            f"{what}: {text!r} is not an ISO date or time (2026-11-20, 2026-11-20 09:00)"
        ) from None


def _ns(at: datetime) -> int:
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def _kst(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // _NS, KST)


def _text(ns: int) -> str:
    return f"{_kst(ns):%Y-%m-%d %H:%M:%S} KST"
