"""Whether KIS's cumulative volume chains: each trade's ACML_VOL the last one's plus its own.

Track B proves its trades by that chain (`[track_b] volume_chain`, `GapDetector.on_volume`):
a trade whose cumulative volume is more than the last one's and its quantity means volume it
was not sent. That each feed's ACML_VOL counts only the trades the feed delivers is a belief
(UNCONFIRMED in every session: KRX's 시간외 종가, Nextrade's 종가매매): the check's own
session, freshly registered and up throughout, should see no break at all. Each trade TR's
chain is read here as the session decodes it, and `chain_finding` holds it against the
configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.events import TradeTick
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report

__all__ = ["Chain", "chain_finding"]

_ROW = "ACML_VOL chain"


@dataclass
class Chain:
    """One trade TR's chains (a symbol's each) as the session delivered them."""

    last: dict[str, int] = field(default_factory=dict)  # symbol -> its last ACML_VOL
    links: int = 0  # trades after a chain's first
    breaks: int = 0  # more volume than the last trade's and its own
    missing: int = 0  # the shares beyond, summed
    resets: int = 0  # less: ran backwards
    firsts: int = 0  # chains begun (a symbol's first trade)
    alone: int = 0  # ... whose ACML_VOL was its own quantity alone (nothing counted before)
    trades: list[TradeTick] = field(default_factory=list)  # as delivered (`time_trades`)

    def on_trade(self, tick: TradeTick) -> None:
        """Link ``tick`` to its symbol's chain."""
        self.trades.append(tick)
        before = self.last.get(tick.symbol)
        self.last[tick.symbol] = tick.cum_volume
        if before is None:
            self.firsts += 1
            self.alone += tick.cum_volume == tick.qty
            return
        self.links += 1
        beyond = tick.cum_volume - tick.qty - before
        if beyond > 0:
            self.breaks += 1
            self.missing += beyond
        elif beyond < 0:
            self.resets += 1


def chain_finding(chains: dict[str, Chain], report: Report, checked: bool) -> None:
    """A row for the trade TRs' chains, held against ``checked`` (`[track_b] volume_chain`).

    OK when every link held (or, with the check off, whatever they did); a mismatch when a
    chain broke in a session that lost nothing while Track B checks it: each break would be a
    gap of volume the exchange never missed.
    """
    measured = {tr: c for tr, c in chains.items() if c.links}
    if not measured:
        report.add(_ROW, NOT_MEASURED, "no two trades of one symbol on any trade TR")
        return
    said = "; ".join(
        f"{tr}: {c.links} links, {c.breaks} breaks ({c.missing:,} shares), {c.resets} resets"
        for tr, c in sorted(measured.items())
    )
    # KIS's ACML_VOL is believed to count the venue's day, whenever registered (UNCONFIRMED):
    # symbols the check registers mid-session then begin past their own quantity. Every
    # first trade carrying its quantity alone says it counts from the registration.
    if sum(c.firsts for c in measured.values()) >= 2 and all(
        c.alone == c.firsts for c in measured.values()
    ):
        said += (
            "; every symbol's first trade carried its own quantity alone: ACML_VOL counts "
            "from each registration, so an outage's gap is not measured and gets its minute bars"
        )
    broken = sum(c.breaks + c.resets for c in measured.values())
    if not broken:
        report.add(_ROW, OK, f"each trade's ACML_VOL is the last one's plus its quantity ({said})")
    elif checked:
        report.add(
            _ROW,
            MISMATCH,
            f"KIS's cumulative volume counts trades its feed did not send ({said}): set "
            "[track_b] volume_chain = false (silent losses are then the reconciliation's)",
        )
    else:
        report.add(_ROW, OK, f"the chain breaks ({said}), and [track_b] volume_chain is off")
