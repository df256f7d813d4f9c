"""One account's session listener: the frame path of `Collector`, per account.

`AccountFeed.on_frame` publishes what a session delivers (`TradeTick`, `OrderBook`) once the
checks pass (`observer.kis.record_checks`); a refused record is kept as a rejected record, and a
refused or undecodable trade of a streamed symbol opens a gap. It counts the ticks and each
symbol's receive times (`Collector.velocity`: KRX's and the combined feed's trades, the pace
the triggers are set for); session events go to the `Collector`.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from bus.events import (
    AuctionExpected,
    Event,
    MarketStatus,
    OrderBook,
    ProgramTrade,
    TradeTick,
    Venue,
)
from observer.kis.frames import UNKNOWN_LAYOUT, DroppedFrame
from observer.kis.record_checks import OUTSIDE_SESSION, UNREGISTERED, Checks, registered_as
from observer.kis.stream import Feed, KeyedRecord, KisStream, RealtimeEvents, StreamState
from observer.market.grid import OFF_GRID, PriceKind
from workers.track_b.gaps import GapDetector, TickGap
from workers.track_b.lag import FeedLag
from workers.track_b.layouts import UnknownLayouts
from workers.track_b.refused import RefusedData
from workers.track_b.rejections import Rejections
from workers.track_b.session_codes import SessionCodes
from workers.track_b.stale import StaleWatch

__all__ = ["MALFORMED_RECORD", "AccountFeed"]

log = logging.getLogger(__name__)

MALFORMED_RECORD = "malformed_record"  # the kind of a record the decoder refused
_LOGGED = frozenset(10**n for n in range(7))  # the 1st, 10th, 100th ... off-grid trade: logged


class FeedSettings(Protocol):
    """What of the collector's settings the frame path reads."""

    @property
    def checks(self) -> Checks: ...


class FeedOwner(Protocol):
    """What the frame path reads and feeds of its collector (`workers.track_b.collect.Collector`).

    A protocol, so that the collector imports this module and never the reverse.
    """

    publish: Callable[[Event], object]
    streams: dict[str, KisStream]
    limits: Mapping[str, tuple[int, int]]
    last_data_ns: dict[str, int]
    recent: dict[str, deque[int]]
    latest: dict[str, TradeTick]
    statuses: dict[str, MarketStatus]
    window_ns: int
    ticks: int
    off_grid: Counter[tuple[Venue, PriceKind]]
    lag: FeedLag
    refused_data: RefusedData
    rejections: Rejections
    layouts: UnknownLayouts
    stale_watch: StaleWatch
    session_codes: SessionCodes

    @property
    def settings(self) -> FeedSettings: ...
    def streamed(self, alias: str, venue: Venue) -> set[str]: ...
    def detector(self, alias: str, venue: Venue) -> GapDetector: ...
    def publish_gap(self, gap: TickGap) -> None: ...
    def overdue(self, alias: str) -> None: ...
    def _on_state(self, alias: str, state: StreamState | Literal["down"], reason: str) -> None: ...
    def _on_registered(self, alias: str, registration: Feed) -> None: ...
    def _on_refused(self, alias: str, registration: Feed, code: str, message: str) -> None: ...
    def _on_confirmed(self, alias: str) -> None: ...
    def _priority(self, registration: Feed) -> tuple[float, tuple[str, int, str]]: ...


@dataclass(frozen=True, slots=True)
class AccountFeed:
    """One account's `StreamListener`: its frames handled here, the rest to the collector."""

    collector: FeedOwner
    alias: str

    def on_frame(self, frame: RealtimeEvents, received_ns: int) -> None:
        """Publish a frame's events (decoded by the account's stream, ``account`` set).

        What a check refuses is not published (`_rejected`); the rest of the frame is.
        """
        c, alias = self.collector, self.alias
        c.last_data_ns[alias] = received_ns
        c.stale_watch.on_data(alias, received_ns)
        c.rejections.on_data(alias, received_ns)
        c.layouts.on_read(frame.tr_id, received_ns)
        stream, limits, feed_kind, venue = c.streams[alias], c.limits, frame.kind, frame.venue
        detector = c.detector(alias, venue) if feed_kind == "trades" else None
        if frame.errors:  # before the frame's ticks: a gap starts at an earlier one's
            self._dropped(frame, received_ns)
        else:
            c.refused_data.on_data(alias, received_ns)
        newest = 0
        for tick in frame.ticks:
            asked = stream.holds(Feed(feed_kind, venue, tick.symbol))
            if fault := c.settings.checks.trade(tick, asked, limits.get(tick.symbol)):
                self._rejected(frame, tick, fault)
                continue
            c.publish(tick)
            c.ticks += 1
            if (kind := c.settings.checks.price_kind(tick, tick.symbol in limits)) != "on_grid":
                self._off_grid(tick, kind)
            if tick.market_session is not None:
                c.session_codes.on_trade(tick)
            newest = max(newest, tick.exchange_ns)
            if tick.venue != "NXT":  # the symbol's pace and price as the triggers know them
                c.latest[tick.symbol] = tick
                self._count(tick.symbol, received_ns)
            assert detector is not None  # a frame of trades is a trade feed's
            if gap := detector.on_tick(tick.symbol, received_ns, tick.exchange_ns):
                c.publish_gap(gap)
            if gap := detector.on_volume(tick.symbol, tick.exchange_ns, tick.cum_volume, tick.qty):
                c.publish_gap(gap)
        for book in frame.books:
            if fault := c.settings.checks.book(
                book, stream.holds(Feed(feed_kind, venue, book.symbol))
            ):
                self._rejected(frame, book, fault)
            else:
                c.publish(book)
        for record in frame.records:
            if not stream.holds(Feed(feed_kind, venue, registered_as(record))):
                unasked = f"{record.symbol} is not registered on the session"
                self._rejected(frame, record, (UNREGISTERED, unasked))
                continue
            c.publish(record)
            if isinstance(record, MarketStatus) and record.venue == "KRX":
                c.statuses[record.symbol] = record
        if newest:
            c.lag.on_frame(alias, newest, received_ns)
        c.overdue(alias)

    def _off_grid(self, tick: TradeTick, kind: PriceKind) -> None:
        """A stored trade between two ticks: counted; one outside its quoted spread, logged."""
        counts = self.collector.off_grid
        counts[tick.venue, kind] += 1
        if kind == OFF_GRID and counts[tick.venue, kind] in _LOGGED:
            log.warning(
                "account %s: %s %s traded at %s, off the tick grid and outside its quoted "
                "spread %s-%s (stored; %d such trades so far)",
                *(self.alias, tick.venue, tick.symbol, f"{tick.price:,}"),
                *(f"{tick.bid1:,}", f"{tick.ask1:,}", counts[tick.venue, kind]),
            )

    def _rejected(
        self,
        frame: RealtimeEvents,
        record: TradeTick | OrderBook | KeyedRecord,
        fault: tuple[str, str],
    ) -> None:
        """A record a check refused: kept, counted, alerted; a streamed symbol's trade, a gap.

        Its stamp bounds the gap unless the stamp is what was refused.
        """
        c, alias = self.collector, self.alias
        symbol, received_ns = record.symbol, record.received_ns
        stamp = received_ns  # a record with no time of its own
        if isinstance(record, TradeTick | OrderBook | ProgramTrade | AuctionExpected):
            stamp = record.exchange_ns
        c.rejections.reject(alias, fault, frame, symbol, received_ns, stamp)
        if not isinstance(record, TradeTick) or symbol not in c.streamed(alias, frame.venue):
            return
        trusted = 0 if fault[0] == OUTSIDE_SESSION else stamp
        if gap := c.detector(alias, frame.venue).on_refused_trade(symbol, received_ns, trusted):
            c.publish_gap(gap)

    def _dropped(self, frame: RealtimeEvents, received_ns: int) -> None:
        """Count and alert the refused records; a refused trade of a streamed symbol: a gap.

        Its trade is lost all the same: the gap has its minute recovered from KIS's bars.
        A refused order book is counted and alerted: the next one supersedes it.
        """
        c, alias = self.collector, self.alias
        errors = frame.errors
        label = f"{frame.venue} {frame.kind}"
        c.refused_data.on_records(alias, label, len(errors), str(errors[0].error))
        streamed = c.streamed(alias, frame.venue) if frame.kind == "trades" else set()
        for refused in errors:  # one bad record each; the frame's others still count
            log.warning("account %s: dropped a %s record: %s", alias, label, refused.error)
            fault = MALFORMED_RECORD, str(refused.error)
            c.rejections.reject(  # alerted by `RefusedData`'s episode
                alias, fault, frame, refused.symbol, received_ns, refused.exchange_ns, alert=False
            )
            if refused.symbol not in streamed:
                continue
            detector = c.detector(alias, frame.venue)
            if gap := detector.on_refused_trade(refused.symbol, received_ns, refused.exchange_ns):
                c.publish_gap(gap)

    def on_dropped_frame(self, dropped: DroppedFrame) -> None:
        """A frame the stream could not read (it logged and counted it): kept and alerted.

        One of an unknown layout is alerted per TR and width (`UnknownLayouts`), not per
        account.
        """
        c, alias = self.collector, self.alias
        if dropped.cause == UNKNOWN_LAYOUT:
            c.layouts.refused(alias, dropped)
        else:
            c.refused_data.on_frame(alias, dropped.error)
        c.rejections.dropped(alias, dropped)

    def _count(self, symbol: str, received_ns: int) -> None:
        times = self.collector.recent.setdefault(symbol, deque())
        times.append(received_ns)
        while times and received_ns - times[0] > self.collector.window_ns:
            times.popleft()

    def on_state(self, state: StreamState, reason: str) -> None:
        """The session changed state."""
        self.collector._on_state(self.alias, state, reason)

    def on_registered(self, registration: Feed) -> None:
        """KIS confirmed a registration."""
        self.collector._on_registered(self.alias, registration)

    def on_refused(self, registration: Feed, code: str, message: str) -> None:
        """KIS refused a registration."""
        self.collector._on_refused(self.alias, registration, code, message)

    def on_confirmed(self) -> None:
        """KIS confirmed the session."""
        self.collector._on_confirmed(self.alias)

    def on_flood(self, why: str) -> None:
        """Frames come faster than they can be read."""
        self.collector.rejections.flood(self.alias, why)

    def on_flood_over(self, why: str) -> None:
        """The flood is over."""
        self.collector.rejections.flood_over(self.alias, why)

    def flooding(self) -> bool:
        """Whether the account's flood is alerted (this process or an earlier one)."""
        return self.collector.rejections.flooding(self.alias)

    def priority(self, registration: Feed) -> tuple[float, tuple[str, int, str]]:
        """Re-registration order after a reconnect (`Collector`)."""
        return self.collector._priority(registration)
