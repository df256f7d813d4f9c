"""TickGap detection for one account's stream: what the real-time data may be missing, and why.

`GapDetector` returns a `TickGap` as each closes: connection, restart (``process_restart``),
silence, dropped-record, delivery-lag and volume-chain gaps. A gap's id is derived from its
account, symbol and start, so publishing it again (after a restart) names the same gap; a
dropped-record gap's has a ``dropped:`` prefix, since it may start on the stamp a silence gap
starts from; a volume-chain gap's (``chain:``) ends with its cumulative volume before it, since
trades are stamped to the second and two may start on one. A connection gap starts at the
later of the symbol's newest trade and its latest registration, so a second drop before any new
data is a new gap. A connection gap's symbol keeps its volume chain across the outage: the gap
goes out at the symbol's first trade after it, measured in shares like a volume-chain gap, so
gap recovery can fill it with the exchange's own trades.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from bus.events import GapReason, Venue

__all__ = [
    "CHAIN_BACKSTOP_NS",
    "CHAIN_WAIT_NS",
    "Carried",
    "GapDetector",
    "SilenceRule",
    "TickGap",
    "throughout",
]

# A refused trade's own stamp is trusted within this much before its arrival (a stamp that
# reads but lies further off came with a bad record: the newest delivered trade is used).
_STAMP_TRUST_NS = 3600 * 1_000_000_000
_MINUTE_NS = 60 * 1_000_000_000
# A pause in continuous trading (Nextrade's around KRX's auctions) lasts minutes, never less
# than this: a span judged in session at this step holds none.
_PAUSE_STEP_NS = 30 * 1_000_000_000
# A connection gap waits this long after its registration for the symbol's first trade to
# measure it by the volume chain; a symbol that trades no sooner gets its gap unmeasured.
# Judged on the feed's own time (the newest trade stamp its connection delivered), so a feed
# or a process running behind measures what it delivers late; on the clock only past
# CHAIN_BACKSTOP_NS, for a connection delivering nothing at all.
CHAIN_WAIT_NS = 60 * 1_000_000_000
CHAIN_BACKSTOP_NS = 10 * CHAIN_WAIT_NS


def throughout(in_session: Callable[[int], bool], start_ns: int, end_ns: int) -> bool:
    """Whether ``[start_ns, end_ns]`` lies in session throughout, no pause between.

    Judged at both ends and every `_PAUSE_STEP_NS` between: a silence across Nextrade's
    break before or after KRX's auctions is no loss.
    """
    return all(in_session(t) for t in range(start_ns, end_ns, _PAUSE_STEP_NS)) and in_session(
        end_ns
    )


@dataclass(frozen=True, slots=True)
class SilenceRule:
    """When a pause between a symbol's ticks counts as a silence gap."""

    expected_s: float = 0.5
    tolerance_s: float = 0.2
    cadence_factor: float = 0.0  # 0: the fixed expected interval alone
    window_s: float = 60.0  # the symbol's pace is its ticks over this long
    # The resolution of the trade times judged: KIS stamps trades to the second (HHMMSS), so
    # a pause measured between two stamps may be up to a second longer than it was.
    resolution_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Carried:
    """A symbol's connection gap and volume chain, carried to another account (`hand_over`)."""

    start_ns: int
    reason: GapReason
    chain: tuple[int, int]  # its last trade's cumulative volume, and stamp


@dataclass(frozen=True, slots=True)
class TickGap:
    """A stretch of time in which ``symbol``'s ticks may be missing."""

    account: str
    symbol: str
    start_ns: int
    end_ns: int
    reason: GapReason
    venue: Venue = "KRX"  # the feed's whose trades may be missing
    # A volume-chain gap's: the shares missing, and the cumulative volumes around them (the
    # last stored trade's, and the next one's before its own quantity)
    missing_volume: int | None = None
    cum_before: int | None = None
    cum_after: int | None = None

    @property
    def gap_id(self) -> str:
        """Stable: the same gap always has the same id (a venue's other than KRX named).

        A volume-chain gap's is its cumulative volume before it, which only grows: two in
        one second (a trade lost, one delivered, another lost) are two gaps.
        """
        fed = self.symbol if self.venue == "KRX" else f"{self.symbol}@{self.venue}"
        if self.reason == "volume_chain":
            return f"chain:{self.account}:{fed}:{self.cum_before}"
        prefix = "dropped:" if self.reason == "dropped_record" else ""
        return f"{prefix}{self.account}:{fed}:{self.start_ns}"


class GapDetector:
    """Watches one account's ticks of one venue's feed and its connection; returns gaps.

    * **Connection gaps**: when the session drops (or is torn down for a token or approval-key
      renewal), every registered symbol may miss data from the newest trade stamp the
      connection delivered until the symbol is registered again; the gap closes, with its
      reason, when the registration is acknowledged on the new connection. With the chain
      on, a symbol whose chain is known goes on with it: its gap goes out at its first trade
      after the registration (within `CHAIN_WAIT_NS`, `overdue`), with the shares missing
      and the cumulative volumes around them, from its last trade before the outage.
    * **Restart gaps**: a dead process's slots are taken back (`resume`) with a
      ``process_restart`` gap each, from the last data it is known to have stored, closed like
      a connection gap when the symbol is registered again (or leaves its slot first).
    * **Silence gaps**: consecutive ticks further apart than the expected interval plus the
      tolerance (by default 500 ms + 200 ms). With ``cadence_factor`` set, the expected
      interval is at least that many times the symbol's own typical interval: ``window_s``
      divided by its ticks in the last ``window_s`` (a rate over time: the records of one frame
      share a receive time), judged once the symbol has been watched for a whole window. Only
      silences wholly inside continuous trading count (``in_session``), and of that only in the
      sessions ``silence_in`` gives (the thin ones left out: a pause is their nature). With
      the chain on, the trade that ends a silence measures it (`on_volume`): 0 shares missing
      proves the pause was the market's, and gap recovery asks nothing for it.
    * **Dropped-record gaps**: a trade record the decoder refused was a trade all the same: a
      ``dropped_record`` gap over its stamp's second, or, when its stamp does not read, from
      the symbol's newest delivered trade to the frame's arrival.
    * **Delivery-lag gaps**: a symbol that leaves its slot while the feed runs behind (as the
      caller measures it: `workers.track_b.lag.FeedLag.behind`) may have trades not delivered
      yet, and a released registration's are never sent: a ``delivery_lag`` gap from its newest
      delivered trade (no earlier than twice the lag before the release) to the release.
    * **Volume-chain gaps** (`on_volume`): each trade carries the day's cumulative volume
      (ACML_VOL), so within a registration's span each must be the previous trade's plus its
      own quantity. More is a ``volume_chain`` gap at once, from the previous trade's stamp to
      this one's, measured in shares too; less (a correction, a feed restarted) is a reset,
      counted (``chain_resets``) and never negative volume. A new registration (not one made
      again after an outage), a refused trade or the symbol leaving starts a new chain; a
      second outage before the symbol's first trade reopens the first's gap. Off with
      ``chain`` false.
    """

    def __init__(
        self,
        account: str,
        rule: SilenceRule,
        in_session: Callable[[int], bool],
        venue: Venue = "KRX",
        silence_in: Callable[[int], bool] | None = None,
        *,
        chain: bool = True,
    ) -> None:
        self.account = account
        self.chains = chain  # whether trades are checked against the volume chain
        self.venue = venue  # one venue's trade feed: its gaps are that venue's
        self.rule = rule
        self.expected_ns = rule.expected_s * 1e9
        self.tolerance_ns = (rule.tolerance_s + rule.resolution_s) * 1e9
        self.window_ns = int(rule.window_s * 1e9)
        self.in_session = in_session
        self.silence_in = silence_in or in_session  # where a silence is a gap
        self.last_tick: dict[str, int] = {}  # symbol -> last tick received (UTC ns)
        self.first_tick: dict[str, int] = {}  # symbol -> when it was first seen
        self.recent: dict[str, deque[int]] = {}  # symbol -> its ticks of the last window
        # The newest trade stamp the connection delivered: trades lost after it carry that
        # stamp or a later one (their receive time lags; a drop just after a minute's turn
        # lost trades of the minute before).
        self.last_frame_ns = 0
        # symbol -> when its registration was last acknowledged: its data is expected from
        # then, so a drop before its next tick starts there, not at an earlier gap's start
        self.registered_ns: dict[str, int] = {}
        # symbol -> (start, reason) of a connection gap
        self.open: dict[str, tuple[int, GapReason]] = {}
        # symbol -> the minute (UTC ns) its last dropped-record gap ended in: the minute's bar
        # recovers every trade of it, so a symbol whose every record is refused has a gap a
        # minute, not one a second
        self.dropped_minute: dict[str, int] = {}
        # Why the connection is down, from a drop until KIS confirms a new session; None
        # while it is up (and before its first session: nothing was streamed yet).
        self.outage: GapReason | None = None
        # symbol -> (its last trade's cumulative volume, its stamp): the volume chain
        self.chain: dict[str, tuple[int, int]] = {}
        self.chain_resets = 0  # trades whose cumulative volume ran backwards
        # symbol -> its gap waiting for the symbol's next trade to measure it by the chain: a
        # connection gap closed by its registration, or a silence (`on_volume`, `overdue`)
        self.awaiting: dict[str, TickGap] = {}

    def on_tick(
        self, symbol: str, received_ns: int, traded_ns: int | None = None
    ) -> TickGap | None:
        """Record a tick; a silence gap if the symbol was quiet too long in session.

        Silences are judged between trade times (``traded_ns``, the exchange's stamp; the
        receive time without one): a feed that stalls and then delivers every trade lost
        nothing, while trades lost on the way leave a pause between the stamps of the ones
        that arrive, however they were delivered. With the chain on and known, the silence
        goes out from `on_volume` of the same trade, measured: a pause the chain proves
        empty is a quiet symbol, not a loss.
        """
        at = received_ns if traded_ns is None else traded_ns
        self.last_frame_ns = max(self.last_frame_ns, at)
        before = self.last_tick.get(symbol)
        self.last_tick[symbol] = at
        limit = self._limit(symbol, before)  # from the ticks up to the one before
        recent = self.recent.setdefault(symbol, deque())
        recent.append(at)
        while recent[0] < at - self.window_ns:
            recent.popleft()
        self.first_tick.setdefault(symbol, at)
        if symbol in self.open or before is None or at - before <= limit:
            return None
        if not throughout(self.silence_in, before, at):
            return None
        gap = self._gap(symbol, before, at, "silence")
        if self.chains and symbol in self.chain:
            self.awaiting[symbol] = gap  # this trade's volume measures it (`on_volume`)
            return None
        return gap

    def on_volume(self, symbol: str, traded_ns: int, cum_volume: int, qty: int) -> TickGap | None:
        """A stored trade against the chain: a ``volume_chain`` gap if volume is missing.

        The trade's ``cum_volume`` must be the chain's last plus its ``qty``; the shares
        beyond that were traded between the two and not delivered (or not stored). The first
        trade of a chain starts it; one whose volume ran backwards restarts it (counted).
        The first trade after an outage (or a silence) returns the symbol's gap waiting for it
        (`awaiting`), measured: from its last trade before to this one, with the shares
        missing (0: none lost), the cumulative volumes around them, and the gap's own reason.
        """
        if not self.chains:
            return None
        last = self.chain.get(symbol)
        self.chain[symbol] = (cum_volume, traded_ns)
        waiting = self.awaiting.pop(symbol, None)
        if last is None:
            return waiting
        before, since_ns = last
        missing = cum_volume - qty - before
        if waiting is not None:
            if missing < 0:
                self.chain_resets += 1
                return waiting  # unmeasured: its minute bars
            return replace(
                waiting,
                start_ns=min(waiting.start_ns, since_ns),
                end_ns=max(waiting.end_ns, traded_ns),
                missing_volume=missing,
                cum_before=before,
                cum_after=cum_volume - qty,
            )
        if missing == 0:
            return None
        if missing < 0:
            self.chain_resets += 1
            return None
        return TickGap(
            self.account,
            symbol,
            since_ns,
            max(traded_ns, since_ns),
            "volume_chain",
            self.venue,
            missing,
            before,
            cum_volume - qty,
        )

    def on_refused_trade(self, symbol: str, received_ns: int, traded_ns: int = 0) -> TickGap | None:
        """A trade record of ``symbol`` was refused: the gap over the trade it carried.

        Over its stamp (``traded_ns``, 0: it did not read) if that is no later than its arrival nor
        more than `_STAMP_TRUST_NS` before it; else from the symbol's newest delivered trade
        (or its registration) to the arrival. None while a connection gap covers the symbol,
        or when the symbol's last dropped-record gap ended in the minute this one lies in.
        """
        self.chain.pop(symbol, None)  # its volume is the refused trade's gap: a new chain
        if symbol in self.open:
            return None
        if traded_ns and received_ns - _STAMP_TRUST_NS <= traded_ns <= received_ns:
            start = end = traded_ns
        else:
            end = received_ns
            start = min(self.last_tick.get(symbol) or self.registered_ns.get(symbol) or end, end)
        minute = end - end % _MINUTE_NS
        if start >= minute and self.dropped_minute.get(symbol) == minute:
            return None  # that gap's minute holds this trade: its bar recovers both
        self.dropped_minute[symbol] = minute
        return self._gap(symbol, start, end, "dropped_record")

    def _gap(self, symbol: str, start_ns: int, end_ns: int, reason: GapReason) -> TickGap:
        return TickGap(self.account, symbol, start_ns, end_ns, reason, self.venue)

    def _limit(self, symbol: str, before: int | None) -> float:
        """The longest pause after ``before`` that is not a silence for ``symbol`` (ns)."""
        expected = self.expected_ns
        if self.rule.cadence_factor and before is not None:
            if before - self.first_tick[symbol] < self.window_ns:
                return float("inf")  # its pace is not known yet
            typical = self.window_ns / len(self.recent[symbol])
            expected = max(expected, self.rule.cadence_factor * typical)
        return expected + self.tolerance_ns

    def on_disconnect(self, now_ns: int, reason: GapReason, symbols: Iterable[str]) -> None:
        """The connection ended: every registered symbol's data may be missing from now.

        Each symbol's gap starts at its own newest trade, or its registration if it has not
        traded since: a feed need not deliver its symbols in time order (KIS's is believed to;
        `SimConfig.push_order` tries both), so another symbol's newer trade does not prove
        this one quiet. A
        symbol still waiting for its first trade after an earlier outage has its gap opened
        again from where that one started: the chain measures the two outages as one.
        """
        self.outage = self.outage or reason
        for symbol in symbols:
            if (earlier := self.awaiting.pop(symbol, None)) is not None:
                self.open[symbol] = (earlier.start_ns, earlier.reason)
            _, chained_ns = self.chain.get(symbol, (0, 0))
            own = max(self.last_tick.get(symbol, 0), chained_ns, self.registered_ns.get(symbol, 0))
            start = own or self.last_frame_ns or now_ns
            self.open.setdefault(symbol, (start, reason))

    def on_confirmed(self) -> None:
        """KIS confirmed a new session: the outage is over (its gaps close as they register)."""
        self.outage = None

    def on_placed(self, symbol: str, now_ns: int) -> None:
        """``symbol`` was placed on the account: during an outage, missing from ``now_ns``."""
        if self.outage is not None:
            self.open.setdefault(symbol, (now_ns, self.outage))

    def resume(
        self,
        symbol: str,
        since_ns: int,
        chain: tuple[int, int] | None = None,
        reason: GapReason = "process_restart",
    ) -> None:
        """A restarted process takes ``symbol``'s slot back (or another account's, `Carried`).

        Its data may be missing from ``since_ns`` (the last its predecessor is known to have
        stored) until it is registered again, as after a dropped session. ``chain``: the
        symbol's last stored trade (cumulative volume, stamp): the gap is then measured at its
        first trade after the registration, as an outage's is.
        """
        self.open[symbol] = (since_ns, reason)
        if chain is not None and self.chains:
            self.chain[symbol] = chain

    def hand_over(self, symbol: str, now_ns: int) -> Carried | None:
        """``symbol`` leaves this account's session, down, for another account's (a failover).

        Its connection gap and volume chain go with it (`resume` on the other's detector): the
        gap is then measured at its first trade there, the ACML_VOL being the venue's day
        whatever the session. None, and nothing forgotten, when it has no connection gap or
        no chain: `forget` then publishes what it has.
        """
        chain = self.chain.get(symbol)
        if chain is None or not self.chains:
            return None
        if (waiting := self.awaiting.get(symbol)) is not None:
            start, reason = waiting.start_ns, waiting.reason
        elif (opened := self.open.get(symbol)) is not None:
            start, reason = opened
        else:
            return None
        self.forget(symbol, now_ns)  # its gap is carried, not published here
        return Carried(start, reason, chain)

    def on_registered(self, symbol: str, now_ns: int) -> TickGap | None:
        """A registration was acknowledged: close the symbol's connection gap, if any.

        A gap whose symbol's chain is known waits for its first trade (`on_volume`) and is
        not returned here. A registration that closes no gap starts a new chain: a new
        registration's span is its own.
        """
        opened = self.open.pop(symbol, None)
        self.last_tick.pop(symbol, None)  # the silence clock restarts with the next tick
        if opened is None:
            self.chain.pop(symbol, None)
            self.registered_ns[symbol] = now_ns
            return None
        start, reason = opened
        self.registered_ns[symbol] = end = max(now_ns, start)
        gap = self._gap(symbol, start, end, reason)
        if self.chains and symbol in self.chain:
            self.awaiting[symbol] = gap
            return None
        return gap

    def overdue(self, now_ns: int) -> list[TickGap]:
        """The connection gaps that will not be measured by the chain: they go out as they are.

        Those whose symbol has not traded within `CHAIN_WAIT_NS` of the registration as the
        connection's feed has delivered (its newest trade stamp past it: a feed or a process
        running behind does not cut the wait short), or within `CHAIN_BACKSTOP_NS` of the
        clock, and those whose chain restarted meanwhile (a refused trade). Their symbols'
        chains start again at their next trade: their minute bars hold the outage.
        """
        due = [
            gap
            for symbol, gap in self.awaiting.items()
            if symbol not in self.chain
            or self.last_frame_ns - gap.end_ns >= CHAIN_WAIT_NS
            or now_ns - gap.end_ns >= CHAIN_BACKSTOP_NS
        ]
        for gap in due:
            del self.awaiting[gap.symbol]
            self.chain.pop(gap.symbol, None)  # its bars recover it: the next trade starts anew
        return due

    def forget(self, symbol: str, now_ns: int, *, behind_ns: int = 0) -> TickGap | None:
        """The symbol left its slot: nothing is expected of it any more.

        A connection gap still open closes now: its data was missing from the drop until
        the symbol left, even though it will not be registered again. Otherwise, with the
        account's feed ``behind_ns`` behind (measured by the caller, `FeedLag.behind`; 0: on
        time), what the feed had not delivered yet is a delivery-lag gap; on time, a symbol
        silent past its limit while the feed went on (`on_tick`'s rule, against the feed's
        newest trade) is a silence gap to the release. A connection gap still waiting for the
        symbol's first trade goes out unmeasured.
        """
        if (outage := self.awaiting.pop(symbol, None)) is not None:
            self.forget(symbol, now_ns)
            return outage
        last = self.last_tick.get(symbol)
        limit = self._limit(symbol, last) if last is not None else float("inf")
        self.last_tick.pop(symbol, None)
        self.first_tick.pop(symbol, None)
        self.recent.pop(symbol, None)
        self.chain.pop(symbol, None)
        registered = self.registered_ns.pop(symbol, None)
        opened = self.open.pop(symbol, None)
        if opened is not None:
            start, reason = opened
            return self._gap(symbol, start, max(now_ns, start), reason)
        if not behind_ns:
            # On time, but silent: the feed delivered other trades past the symbol's newest by
            # more than its silence limit, and none of it since. The next trade would have
            # judged that silence (`on_tick`); the release ends it unjudged, so it goes out.
            if last is None or self.last_frame_ns - last <= limit:
                return None
            if not throughout(self.silence_in, last, self.last_frame_ns):
                return None
            return self._gap(symbol, last, max(now_ns, self.last_frame_ns), "silence")
        # From the symbol's own newest trade, but no earlier than twice the lag before the
        # release: a feed that far behind may deliver one symbol's trades out of step with
        # another's by as much (a catch-up sends each symbol's backlog in turn).
        lag = max(behind_ns, now_ns - self.last_frame_ns) if self.last_frame_ns else behind_ns
        start = max(last or 0, registered or 0, now_ns - 2 * lag)
        if start >= now_ns or not self.in_session(now_ns):
            return None
        return self._gap(symbol, start, now_ns, "delivery_lag")
