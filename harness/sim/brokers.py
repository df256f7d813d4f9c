"""The simulator's brokers' trading records (H0STMBC0, H0NXMBC0, H0UNMBC0; 78 fields).

One record at each minute's last trade of the venue's feed, as program trading's: the day's
volume so far split among `BROKERS` (ten synthetic brokers, the last four foreign) by
weights each symbol draws once, a set for each side. A side's five largest are ranked, each
with its share of the volume and its change by the minute's last trade; the foreign brokers'
totals are all four's, ranked or not. A broker ranks once it has traded the side; what KIS
sends for a rank no broker fills is UNCONFIRMED (`SimConfig.broker_unfilled`: empty, zeros, or
the untraded brokers ranked with nothing).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Literal

import numpy as np

__all__ = ["BROKERS", "BROKER_FEEDS", "Unfilled", "broker_record"]

Unfilled = Literal["empty", "zeros", "filled"]  # a rank no broker fills (`SimConfig`)

BROKER_FEEDS = frozenset({"H0STMBC0", "H0NXMBC0", "H0UNMBC0"})
# (number, name, English name, foreign): synthetic, no real broker's figures.
BROKERS = tuple(
    (f"{900 + n:05d}", f"회원사{n:02d}", f"BROKER {n:02d}", n > 6) for n in range(1, 11)
)
_FOREIGN = np.array([foreign for *_, foreign in BROKERS])


def _weights(symbol: str, side: str) -> np.ndarray:
    """The brokers' shares of ``side`` of ``symbol``'s volume (summing to 1), fixed a name."""
    rng = np.random.default_rng(zlib.crc32(f"{symbol}:{side}".encode()))
    drawn = rng.dirichlet(np.ones(len(BROKERS)))
    return np.asarray(drawn, dtype=np.float64)


def broker_record(symbol: str, volume: int, traded: int, unfilled: Unfilled = "empty") -> str:
    """``symbol``'s brokers' record once ``volume`` shares traded, the last ``traded`` of them.

    A rank whose broker has traded nothing of its side is sent as ``unfilled`` says.
    """
    sides = []
    foreign = []
    for side in ("sell", "buy"):
        weights = _weights(symbol, side)
        qty = np.floor(weights * volume).astype(np.int64)
        change = np.floor(weights * traded).astype(np.int64)
        top = np.argsort(-qty, kind="stable")[:5]
        sides.append((top, qty, change))
        foreign.append((int(qty[_FOREIGN].sum()), int(change[_FOREIGN].sum())))

    def share(qty: int) -> str:
        return f"{100 * qty / volume:.2f}" if volume else "0.00"

    def ranked(
        top: np.ndarray, qty: np.ndarray, value: Callable[[int], str], zero: str
    ) -> list[str]:
        """One field of each rank: ``value`` of its broker, or the unfilled rank's."""
        blank = "" if unfilled == "empty" else zero
        return [value(i) if qty[i] or unfilled == "filled" else blank for i in top]

    (sell_top, sell_qty, sell_change), (buy_top, buy_qty, buy_change) = sides

    def both(value: Callable[[int], str], zero: str) -> list[str]:
        return ranked(sell_top, sell_qty, value, zero) + ranked(buy_top, buy_qty, value, zero)

    def by_side(sell: Callable[[int], str], buy: Callable[[int], str], zero: str) -> list[str]:
        return ranked(sell_top, sell_qty, sell, zero) + ranked(buy_top, buy_qty, buy, zero)

    fields: list[str] = [symbol, *both(lambda i: BROKERS[i][1], "")]
    fields += by_side(lambda i: str(sell_qty[i]), lambda i: str(buy_qty[i]), "0")
    fields += both(lambda i: "Y" if BROKERS[i][3] else "N", "")
    fields += both(lambda i: BROKERS[i][0], "0")
    fields += by_side(lambda i: share(int(sell_qty[i])), lambda i: share(int(buy_qty[i])), "0")
    fields += by_side(lambda i: str(sell_change[i]), lambda i: str(buy_change[i]), "0")
    (sold, sold_change), (bought, bought_change) = foreign
    fields += [str(sold), str(bought), str(sold_change), str(bought_change), str(bought - sold)]
    fields += [share(sold), share(bought)]
    fields += both(lambda i: BROKERS[i][2], "")
    return "^".join(fields)
