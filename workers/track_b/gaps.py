"""Gap detection for one account's stream: what the real-time data may be missing, and why.

* **Connection gaps**: when the session drops (or is torn down for a token or approval-key
  renewal), every registered symbol may miss data from the last frame the connection
  delivered until the symbol is registered again; the gap closes, with its reason, when the
  registration is acknowledged on the new connection.
* **Silence gaps**: a symbol whose consecutive ticks are further apart than the expected
  interval plus the tolerance (seed 004: 500 ms + 200 ms, configurable). Only silences
  wholly inside continuous trading count (``in_session``): the night, the close and a
  late open are not gaps.

A gap's id is derived from its account, symbol and start, so publishing it again (after a
restart) names the same gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Gap", "GapDetector"]


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of time in which ``symbol``'s ticks may be missing."""

    account: str
    symbol: str
    start_ns: int
    end_ns: int
    reason: str  # "disconnect", "token_refresh", "silence", ...

    @property
    def gap_id(self) -> str:
        """Stable: the same gap always has the same id."""
        return f"{self.account}:{self.symbol}:{self.start_ns}"


class GapDetector:
    """Watches one account's ticks and connection; returns gaps as they close."""

    def __init__(
        self,
        account: str,
        expected_s: float,
        tolerance_s: float,
        in_session: Callable[[int], bool],
    ) -> None:
        self.account = account
        self.limit_ns = int((expected_s + tolerance_s) * 1e9)
        self.in_session = in_session
        self.last_tick: dict[str, int] = {}  # symbol -> last tick received (UTC ns)
        self.last_frame_ns = 0  # the newest data the current connection delivered
        self.open: dict[str, tuple[int, str]] = {}  # symbol -> (start, reason) of a connection gap

    def on_tick(self, symbol: str, received_ns: int) -> Gap | None:
        """Record a tick; a silence gap if the symbol was quiet too long in session."""
        self.last_frame_ns = max(self.last_frame_ns, received_ns)
        before = self.last_tick.get(symbol)
        self.last_tick[symbol] = received_ns
        if symbol in self.open or before is None or received_ns - before <= self.limit_ns:
            return None
        if not (self.in_session(before) and self.in_session(received_ns)):
            return None
        return Gap(self.account, symbol, before, received_ns, "silence")

    def on_disconnect(self, now_ns: int, reason: str, symbols: Iterable[str]) -> None:
        """The connection ended: every registered symbol's data may be missing from now."""
        start = self.last_frame_ns or now_ns
        for symbol in symbols:
            self.open.setdefault(symbol, (start, reason))

    def on_registered(self, symbol: str, now_ns: int) -> Gap | None:
        """A registration was acknowledged: close the symbol's connection gap, if any."""
        opened = self.open.pop(symbol, None)
        self.last_tick.pop(symbol, None)  # the silence clock restarts with the next tick
        if opened is None:
            return None
        start, reason = opened
        return Gap(self.account, symbol, start, max(now_ns, start), reason)

    def forget(self, symbol: str) -> None:
        """The symbol left its slot: nothing is expected of it any more."""
        self.last_tick.pop(symbol, None)
        self.open.pop(symbol, None)
