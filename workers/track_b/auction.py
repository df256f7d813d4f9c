"""KRX's auctions: the expected matches of the most watched names, on registrations idle then.

Between Nextrade's pre-market (its slots released at 08:50) and KRX's day (09:30) Track B
holds no slot, while KRX's opening auction sets the day's first prices: its expected match
moves with every order, and no later request gives that path back (KIS's REST history of
it, FHPST01810000, keeps 30 rows). With a ``[track_b.feeds] krx_opening_auction`` row (by
default KRX's expected matches, its auction feed) each account's session holds, from the
auction's start (or the pre-market's end) to its match and `CLOSE_GRACE_S`, the row's
registrations per name: this host's pins first, then the largest market caps, barred
names passed over, as many as the sessions hold. They are no slots (`Collector.hold`): no
trigger places them and no gap or reconciliation counts them (an auction prints no trade
before its match).

Through KRX's closing auction (15:20 to `CLOSING_LEAD_S` before its 15:30 match) the sessions
are full with the day's slots: there KRX's feeds hold the ``krx_closing_auction`` row, whose
``auction`` kind (in place of program trading, idle until the match) holds the expected
matches (`RegistrationPolicy.during`, `in_auction`). Nextrade's after-market opens the same
way, its orders from 15:30 matched at one price at 15:40 (its ``opening_auction`` session in
``[venues.nxt]``): Nextrade's feeds hold the ``nxt_after_market`` row from then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

from bus.events import Venue
from observer.calendar.venues import CLOSE_GRACE_S, Venues
from observer.kis.stream import Feed
from workers.track_b.registrations import RegistrationPolicy

__all__ = [
    "CLOSING_LEAD_S",
    "KRX_CLOSING_FEEDS",
    "auction_registrations",
    "closing_auction",
    "nxt_after_market_auction",
    "opening_auction",
]

# The closing auction's expected matches are followed to this long before its match: the
# program-trading registrations are back for the match's program trades.
CLOSING_LEAD_S = 10.0
# The feeds in KRX's closing auction: KRX's, and the combined one (KRX's match is its too).
KRX_CLOSING_FEEDS: tuple[Venue, ...] = ("KRX", "combined")


def opening_auction(
    venues: Venues,
    day: date,
    pre_market: tuple[datetime, datetime] | None,
    trades_at_match: bool = False,
) -> tuple[datetime, datetime] | None:
    """KRX's opening auction of ``day`` as Track B follows it (start, end), if it has one.

    From the auction's start, or the end of Nextrade's ``pre_market`` when Track B follows
    it (its slots hold the sessions until then), to the match and `CLOSE_GRACE_S`; with
    ``trades_at_match`` (the first half hour's trades follow it), to `CLOSING_LEAD_S` before
    the match, so that the trade feeds hold the match's print.
    """
    spans = [(s, e) for s, e, span in venues.spans("KRX", day) if span.session == "opening_auction"]
    if not spans:
        return None
    # Its orders from the first span (08:20 since 2026-09-14), its match at the last's end.
    start, end = spans[0][0], spans[-1][1]
    if pre_market is not None:
        start = max(start, pre_market[1])
    end += timedelta(seconds=-CLOSING_LEAD_S if trades_at_match else CLOSE_GRACE_S)
    return (start, end) if start < end else None


def closing_auction(
    venues: Venues, day: date, krx_until: datetime
) -> tuple[datetime, datetime] | None:
    """KRX's closing auction of ``day`` as Track B follows it, to `CLOSING_LEAD_S` before its match.

    None if it has none, or KRX's feeds end (``krx_until``) before it starts.
    """
    spans = [(s, e) for s, e, span in venues.spans("KRX", day) if span.session == "closing_auction"]
    if not spans or krx_until <= spans[0][0]:
        return None
    start, end = spans[0]
    return start, end - timedelta(seconds=CLOSING_LEAD_S)


def nxt_after_market_auction(venues: Venues, day: date) -> tuple[datetime, datetime] | None:
    """Nextrade's after-market opening auction of ``day``, to `CLOSING_LEAD_S` before its match.

    None if Nextrade has none that day (its ``opening_auction`` session after 12:00).
    """
    spans = [
        (s, e)
        for s, e, span in venues.spans("NXT", day)
        if span.session == "opening_auction" and s.hour >= 12
    ]
    if not spans:
        return None
    start, end = spans[0]
    return start, end - timedelta(seconds=CLOSING_LEAD_S)


def auction_registrations(
    policy: RegistrationPolicy,
    names: Iterable[str],
    accounts: Sequence[str],
    capacity: int,
    barred: Mapping[str, str],
    reserved: Mapping[str, int] | None = None,
    feeds_of: Callable[[str], tuple[Feed, ...]] | None = None,
) -> dict[str, set[Feed]]:
    """Each account's registrations: ``names`` in order (pins, then by market cap) dealt out.

    An account at a time takes the next name's feeds (``feeds_of``: `RegistrationPolicy.
    opening_auction_feeds` by default) while they fit in its ``capacity`` less what is
    ``reserved`` of it (the VI feed's); a barred name (refused, halted) is passed over.
    """
    feeds_of = feeds_of or policy.opening_auction_feeds
    reserved = reserved or {}
    held: dict[str, set[Feed]] = {alias: set() for alias in accounts}
    if not accounts:
        return held
    turn = 0
    for symbol in dict.fromkeys(names):
        feeds = feeds_of(symbol)
        if symbol in barred or not feeds:
            continue
        for _ in accounts:
            alias = accounts[turn % len(accounts)]
            turn += 1
            if len(held[alias]) + len(feeds) + reserved.get(alias, 0) <= capacity:
                held[alias].update(feeds)
                break
        else:
            break  # every session is full
    return held
