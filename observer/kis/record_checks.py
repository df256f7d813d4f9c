"""What a real-time record must be for Track B to store it: asked for, and possible.

Each trade and book a session delivers is checked before it is published; the first check
it fails names its kind (the rejected record's ``kind``, the alert's subject):
``unregistered``, ``price_not_positive`` / ``volume_not_positive``, ``outside_session``,
``outside_limits`` (`Checks`). A price off the tick grid is never refused: both venues trade
mid-point orders between two ticks (`observer.market.grid`); `Checks.price_kind` says what
it is, for the day's counts. The checks are pure and cost a few comparisons a record
(`Checks.trade`, `Checks.book`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.events import OrderBook, TradeTick, ViNotice
from observer.calendar.timeline import hhmm
from observer.config.workers import TrackBSettings
from observer.kis.realtime import KeyedRecord
from observer.market.grid import KRX_TICK_SIZES, PriceKind, price_kind

__all__ = [
    "FUTURE_S",
    "OUTSIDE_LIMITS",
    "OUTSIDE_SESSION",
    "PRICE",
    "RECORD_KINDS",
    "UNREGISTERED",
    "VOLUME",
    "Checks",
    "registered_as",
]

UNREGISTERED = "unregistered"
PRICE, VOLUME = "price_not_positive", "volume_not_positive"
OUTSIDE_SESSION, OUTSIDE_LIMITS = "outside_session", "outside_limits"
RECORD_KINDS = (UNREGISTERED, PRICE, VOLUME, OUTSIDE_SESSION, OUTSIDE_LIMITS)
# A stamp this far after its arrival is false: KIS stamps the exchange's time and a frame
# cannot arrive before its trade. Five minutes cover any skew of a synchronised clock; a
# host clock further behind refuses every trade, each kind and symbol alerted: a fault too.
FUTURE_S = 300
_NS = 1_000_000_000
_KST_S = 9 * 3600
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Checks:
    """The checks of one configuration; ``None`` from each: stored.

    * ``unregistered``: its symbol is not one the session asked for, for its TR (wanted, or
      registered on the connection and not yet confirmed released: `KisStream.holds`).
    * ``price_not_positive`` / ``volume_not_positive``: a trade's price or quantity is 0 or
      less; a book's price or quantity below 0 (a 0 is an empty level).
    * ``outside_session``: stamped outside ``[track_b] exchange_hours`` (KST), on another KST
      day than it arrived, or more than `FUTURE_S` after its arrival.
    * ``outside_limits``: a trade priced outside the day's limits, where Track A's snapshots
      gave them (KIS's own ``stck_llam`` / ``stck_mxpr``, not the previous close +-30 %: the
      base price moves on a split or a rights issue; the snapshots of 09:00-09:30 give every
      universe symbol's limits before Track B streams it).

    ``tick_sizes`` (``[track_b] tick_sizes``, KRX's stock table by default) classify a stored
    trade's price (`price_kind`), never refuse it.
    """

    open_s: int = 7 * 3600  # seconds after KST midnight
    close_s: int = 20 * 3600
    tick_sizes: tuple[tuple[int, int], ...] = KRX_TICK_SIZES  # empty: every price on the grid

    @classmethod
    def of(cls, settings: TrackBSettings) -> Checks:
        """The checks ``[track_b]`` configures."""
        opens, closes = (hhmm(at) for at in settings.exchange_hours)
        return cls(
            opens.hour * 3600 + opens.minute * 60,
            closes.hour * 3600 + closes.minute * 60,
            settings.tick_sizes,
        )

    def trade(
        self, tick: TradeTick, asked: bool, limits: tuple[int, int] | None
    ) -> tuple[str, str] | None:
        """``(kind, why)`` if ``tick`` is refused.

        ``asked``: its session asked for its symbol; ``limits``: the day's (lower, upper).
        """
        price = tick.price
        if not asked:
            return UNREGISTERED, f"{tick.symbol} is not registered on the session"
        if price <= 0:
            return PRICE, f"price {price}"
        if tick.qty <= 0:
            return VOLUME, f"quantity {tick.qty}"
        if (late := self._outside(tick.exchange_ns, tick.received_ns)) is not None:
            return OUTSIDE_SESSION, late
        if limits is None:  # not a stock Track A snapshotted: neither limits nor the grid known
            return None
        if not limits[0] <= price <= limits[1]:
            return OUTSIDE_LIMITS, f"price {price:,} outside {limits[0]:,}-{limits[1]:,}"
        return None

    def price_kind(self, tick: TradeTick, stock: bool) -> PriceKind:
        """A stored trade's price: on the grid, a mid-point, or off both (`price_kind`).

        ``stock``: a universe stock Track A snapshotted (known limits); a pin's ETF or other
        product has a grid of its own, so its prices are not classified (``on_grid``).
        """
        if not stock:
            return "on_grid"
        return price_kind(tick.price, tick.bid1, tick.ask1, self.tick_sizes)

    def book(self, book: OrderBook, asked: bool) -> tuple[str, str] | None:
        """``(kind, why)`` if ``book`` is refused (a 0 is an empty level)."""
        if not asked:
            return UNREGISTERED, f"{book.symbol} is not registered on the session"
        if min(book.ask_prices + book.bid_prices, default=0) < 0:
            return PRICE, "a negative price level"
        quantities = (*book.ask_qtys, *book.bid_qtys, book.total_ask_qty, book.total_bid_qty)
        if min(quantities) < 0:
            return VOLUME, "a negative quantity"
        late = self._outside(book.exchange_ns, book.received_ns)
        return None if late is None else (OUTSIDE_SESSION, late)

    def _outside(self, stamp_ns: int, received_ns: int) -> str | None:
        """Why ``stamp_ns`` is outside the session of a record received at ``received_ns``."""
        stamp_s = stamp_ns // _NS + _KST_S
        day, second = divmod(stamp_s, _DAY_S)
        if day != (received_ns // _NS + _KST_S) // _DAY_S:
            return "stamped on another day than it arrived (KST)"
        if not self.open_s <= second <= self.close_s:
            return f"stamped {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d} KST"
        if stamp_ns > received_ns + FUTURE_S * _NS:
            return f"stamped {(stamp_ns - received_ns) // _NS} s after it arrived"
        return None


def registered_as(record: KeyedRecord) -> str:
    """The key ``record``'s registration holds: its symbol; a VI's, its business date.

    The VI feeds are registered for the whole market under the date (`[track_b] vi_feed`).
    """
    return f"{record.trade_date:%Y%m%d}" if isinstance(record, ViNotice) else record.symbol
