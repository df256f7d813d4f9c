"""Whether each symbol trades freely: trading halts and limit locks, from snapshots and ticks.

Track A's snapshots (FHKST01010100: ``temp_stop_yn`` or status 58 as ``[kis] halt_from`` says,
limits ``stck_mxpr`` / ``stck_llam``), the trade stream (H0STCNT0: ``TRHT_YN``, the price) and
the market-operation stream (H0STMKO0: ``TRHT_YN`` or status 58, sent when a halt starts and
ends, where a halted symbol sends no trade) say so; the latest observation of a symbol, by its
clock time, counts (`Tradability`). **Halted**: the observation says so.
**Limit-locked**: the price sits at the day's upper or lower limit (from the snapshots: the
trade frame carries none): at once for a snapshot (sampled every ten minutes, rarely on the
limit by chance), once trades have stayed there ``lock_s`` (a touch keeps the slot). Either
clears with the first later observation that says otherwise.
"""

from __future__ import annotations

from typing import NamedTuple

from bus.events import MarketStatus, PriceSnapshot, TradeTick
from workers.track_b.barred import BarKind

__all__ = ["HALTED_STATUS", "Observation", "Tradability"]

_NS = 1_000_000_000
HALTED_STATUS = "58"  # ISCD_STAT_CLS_CODE 거래정지


class Observation(NamedTuple):
    """What one snapshot or tick said of its symbol."""

    at_ns: int  # clock time: the snapshot's observed_ns, the tick's received_ns
    halted: bool
    price: int
    limit: str  # "upper", "lower" or ""


class Tradability:
    """Each symbol's latest observation, and whether it is halted or limit-locked now."""

    def __init__(self, lock_s: float) -> None:
        self.lock_ns = int(lock_s * _NS)
        self.limits: dict[str, tuple[int, int]] = {}  # symbol -> (lower, upper), KRW
        self.latest: dict[str, Observation] = {}
        self.locked_from: dict[str, int] = {}  # symbol -> when its stay at a limit is a lock
        self.flagged: set[str] = set()  # symbols last seen halted or at a limit

    def __repr__(self) -> str:
        return f"<Tradability {len(self.latest)} symbols, {len(self.flagged)} flagged>"

    def on_snapshot(self, snapshot: PriceSnapshot) -> None:
        """A Track A snapshot: the day's limits, and the symbol's state when it was taken."""
        if snapshot.upper_limit > 0:
            self.limits[snapshot.symbol] = (snapshot.lower_limit, snapshot.upper_limit)
        self._observe(snapshot.symbol, snapshot.observed_ns, snapshot.halted, snapshot.price, 0)

    def on_tick(self, tick: TradeTick) -> None:
        """A trade of a streamed symbol."""
        self._observe(tick.symbol, tick.received_ns, tick.halted, tick.price, self.lock_ns)

    def on_status(self, status: MarketStatus) -> None:
        """A market-operation record of KRX: halted or not, the price as last observed."""
        latest = self.latest.get(status.symbol)
        if latest is not None and status.received_ns < latest.at_ns:
            return  # older than what is known
        halted = status.halted or status.status == HALTED_STATUS
        price, limit = (latest.price, latest.limit) if latest is not None else (0, "")
        self.latest[status.symbol] = Observation(status.received_ns, halted, price, limit)
        if halted or limit:
            self.flagged.add(status.symbol)
        else:
            self.flagged.discard(status.symbol)

    def _observe(self, symbol: str, at_ns: int, halted: bool, price: int, lock_ns: int) -> None:
        latest = self.latest.get(symbol)
        if latest is not None and at_ns < latest.at_ns:
            return  # older than what is known
        limit = self._limit(symbol, price)
        self.latest[symbol] = Observation(at_ns, halted, price, limit)
        if limit:  # the stay at the limit started with the first observation there
            self.locked_from[symbol] = min(
                self.locked_from.get(symbol, at_ns + lock_ns), at_ns + lock_ns
            )
        else:
            self.locked_from.pop(symbol, None)
        if halted or limit:
            self.flagged.add(symbol)
        else:
            self.flagged.discard(symbol)

    def _limit(self, symbol: str, price: int) -> str:
        lower, upper = self.limits.get(symbol, (0, 0))
        if upper and price >= upper:
            return "upper"
        if lower and 0 < price <= lower:
            return "lower"
        return ""

    def state(self, symbol: str, now_ns: int) -> tuple[BarKind, str] | None:
        """``("halted" | "limit_locked", reason)`` if the symbol does not trade freely now."""
        latest = self.latest.get(symbol)
        if latest is None:
            return None
        if latest.halted:
            return "halted", "trading halted"
        if latest.limit and now_ns >= self.locked_from.get(symbol, now_ns + 1):
            return "limit_locked", f"locked at its {latest.limit} limit ({latest.price:,} KRW)"
        return None
