"""The exchange's record of a venue's trades, as its real-time trade feed counts them.

What FHPST01060000 (today's trades by time, `harness.sim.quotes`) answers: every trade a venue's
trade feed sends, or would have sent, with the feed's cumulative volume (ACML_VOL) after it.
KRX's (venue code J) are H0STCNT0's: its regular session's (`krx_regular_trades`) and its
after-market's (`krx_after_trades`, with `SimConfig.krx_after_market`); Nextrade's (NX) are
H0NXCNT0's and both venues' (UN) H0UNCNT0's (`venue_trades`). The record holds what a feed
withholds under `Faults.tick_loss` (the exchange printed them, the feed lost them) and, with
`SimConfig.volume_chain` "beyond", the trades KRX's ACML_VOL counts that its feed never sends
(`unsent`), each as a trade of its own: so the record's chain and the feed's agree.

Its cumulative volume is the feed's, whenever the feed was registered: the exchange counts
the trades it made, one count. A registration made later in the day starts from the record's
volume to that instant (`volume_to`, what `harness.sim.realtime` seeds it with), not from the
quote's (`quote_at` counts the day's path, the trades a halt or a quiet minute kept from
happening too). It is read a page at a time, never a day at once: the minutes walked back
from the page's end, on top of the volume before them, which a day's path gives in one
lookup (`DayPath.volume_to`) and the other venues' drawn days in one sum.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Literal

from harness.sim.config import Faults, SimConfig
from harness.sim.hours import KRX_AFTER_SPAN
from harness.sim.market import BARS_PER_DAY, KST, Market
from harness.sim.nextrade import krx_after_trades, krx_regular_trades, venue_trades
from harness.sim.protocol import NS

__all__ = ["UNSENT", "Print", "Venue", "prints_before", "unsent", "volume_to"]

Venue = Literal["J", "NX", "UN"]

UNSENT = 100  # shares of a trade KRX's ACML_VOL counts and its feed never sends (`unsent`)
_NXT_OPEN = 8 * 60  # Nextrade's (its pre-market)
_DAY_END = KRX_AFTER_SPAN.end_s // 60  # 20:00: no venue trades from then on, any day


def unsent(volume_chain: str, nth: int) -> int:
    """Shares KRX's feed counts before the ``nth`` trade of a regular-session minute, unsent.

    `SimConfig.volume_chain` "beyond": a trade of `UNSENT` shares before every tenth from the
    sixth (nth 5, 15, ...), whether or not the feed sends that one; "exact": none.
    """
    return UNSENT if volume_chain == "beyond" and nth % 10 == 5 else 0


@dataclass(frozen=True, slots=True)
class Print:
    """One trade of the record: its stamp, price, quantity and the feed's ACML_VOL after it.

    ``stamp`` is the feed's STCK_CNTG_HOUR as seconds of the KST day (whole seconds).
    """

    stamp: int
    price: int
    qty: int
    volume: int


def prints_before(
    market: Market,
    faults: Faults,
    config: SimConfig,
    venue: Venue,
    symbol: str,
    day: date,
    below: int,
    now_s: float,
    wanted: int,
    per_second: bool = False,
) -> list[Print]:
    """The newest trades of ``day`` stamped before ``below`` and done by ``now_s``, oldest first.

    ``below`` (a stamp, exclusive) and ``now_s`` (inclusive, fractions of a second counted as
    the feed counts them) are seconds of the KST day. At least ``wanted`` trades (with
    ``per_second``: more than ``wanted`` distinct stamps, so that the oldest ``wanted`` seconds
    are whole), or every one of the day before them. Only the minutes back to the oldest of
    them are drawn.
    """
    if venue == "NX" and not _nxt_trades(market, faults, symbol, day):
        return []  # a day Nextrade does not trade the name: nothing to walk back through
    first = market.hours(day).open_minute if venue == "J" else _NXT_OPEN
    minute = min((below - 1) // 60, int(now_s) // 60, _DAY_END - 1)
    walked: list[list[tuple[int, int, int]]] = []  # each minute's (stamp, price, qty), newest first
    count, stamps = 0, set[int]()
    while minute >= first:
        if count >= wanted and (not per_second or len(stamps) > wanted):
            break
        opened = minute * 60
        kept = []
        for second, price, qty in minute_trades(market, faults, config, venue, symbol, day, minute):
            if second > now_s - opened:
                break  # not done yet (the stream sends a trade once its instant has passed)
            stamp = opened + _whole_seconds(second)
            if stamp >= below:
                break
            kept.append((stamp, price, qty))
            stamps.add(stamp)
        walked.append(kept)
        count += len(kept)
        minute -= 1
    volume = volume_before(market, faults, config, venue, symbol, day, minute + 1)
    prints = []
    for kept in reversed(walked):
        for stamp, price, qty in kept:
            volume += qty
            prints.append(Print(stamp, price, qty, volume))
    return prints


def minute_trades(
    market: Market,
    faults: Faults,
    config: SimConfig,
    venue: Venue,
    symbol: str,
    day: date,
    minute: int,
) -> list[tuple[float, int, int]]:
    """The record's trades in ``minute`` (of the KST day): (seconds into it, price, quantity).

    As the venue's trade feed sends them, withheld ones too; KRX's with each trade its feed
    never sends (`unsent`) before the one it precedes, at that one's second and price.
    """
    after_market = config.krx_after_market
    if venue != "J":
        return venue_trades(market, faults, symbol, day, minute, venue == "UN", after_market)
    index = market.hours(day).bar(minute)
    if not 0 <= index < BARS_PER_DAY:
        return krx_after_trades(market, faults, symbol, day, minute) if after_market else []
    trades: list[tuple[float, int, int]] = []
    for second, price, qty, nth in krx_regular_trades(market, faults, symbol, day, index):
        if extra := unsent(config.volume_chain, nth):
            trades.append((second, price, extra))
        trades.append((second, price, qty))
    return trades


def volume_before(
    market: Market,
    faults: Faults,
    config: SimConfig,
    venue: Venue,
    symbol: str,
    day: date,
    minute: int,
) -> int:
    """The feed's ACML_VOL before ``minute``: the record's trades of the day's earlier minutes.

    Read off the day's drawn figures, the minutes a fault touched counted trade by trade.
    """
    volume = 0
    hours = market.hours(day)
    if venue != "NX":
        beyond = config.volume_chain if venue == "J" else "exact"
        volume += _krx_regular_before(market, faults, symbol, day, hours.bar(minute), beyond)
        if config.krx_after_market and minute > hours.krx_after.start_s // 60:
            volume += _krx_after_before(market, faults, symbol, day, minute)
    if venue != "J":
        volume += _nxt_before(market, faults, symbol, day, minute)
    return volume


def volume_to(
    market: Market,
    faults: Faults,
    config: SimConfig,
    venue: Venue,
    symbol: str,
    at: datetime,
    unsent_counted: bool = True,
) -> int:
    """The feed's ACML_VOL once every trade of the record done by ``at`` (KST) is counted.

    The day's volume of the trades the exchange made (a halt's, a quiet minute's never
    happened; withheld ones did; KRX's unsent ones too with "beyond", unless not
    ``unsent_counted``: its book and program feeds count no unsent trade), to and including
    ``at``, a trade at ``at`` counted as the feed counts it: a registration made at ``at``
    starts its running volume here, and its first record's ACML_VOL is this plus that
    record's own quantity, as `prints_before` has it. (`harness.sim.market.quote_at` counts
    the day's path instead, trades a fault kept from happening too.)
    """
    if not unsent_counted and config.volume_chain != "exact":
        config = replace(config, volume_chain="exact")
    day = at.date()
    minute = min(at.hour * 60 + at.minute, _DAY_END)
    volume = volume_before(market, faults, config, venue, symbol, day, minute)
    # seconds into the minute, as the feed compares its trades' (`harness.sim.realtime`)
    opened = datetime(day.year, day.month, day.day, tzinfo=KST) + timedelta(minutes=minute)
    into = (at - opened).total_seconds()
    for second, _, qty in minute_trades(market, faults, config, venue, symbol, day, minute):
        if second > into:
            break
        volume += qty
    return volume


def _krx_regular_before(
    market: Market, faults: Faults, symbol: str, day: date, index: int, volume_chain: str
) -> int:
    """KRX's feed's volume in its regular session's bars before bar ``index``.

    With its unsent trades (`unsent`) as ``volume_chain`` says.
    """
    index = min(index, BARS_PER_DAY)
    if index <= 0:
        return 0
    path = market.day_path(symbol, day)
    beyond = volume_chain == "beyond"
    # the ticks nth 5, 15, ... of each bar: (trades + 4) // 10 of them
    volume = UNSENT * int(((path.trades[:index] + 4) // 10).sum()) if beyond else 0
    volume += int(path.volume_to[index - 1])
    for bar in _touched(faults, symbol, day, path.hours.open_minute, index):
        # a bar a fault touched: less what the feed does not print of it
        drawn = int(path.volume[bar])
        drawn += UNSENT * ((int(path.trades[bar]) + 4) // 10) if beyond else 0
        printed = sum(
            qty + unsent(volume_chain, nth)
            for _, _, qty, nth in krx_regular_trades(market, faults, symbol, day, bar)
        )
        volume -= drawn - printed
    return volume


def _krx_after_before(market: Market, faults: Faults, symbol: str, day: date, minute: int) -> int:
    """KRX's feed's volume in its after-market's minutes before ``minute`` (of the KST day)."""
    evening = market.krx_after_day(symbol, day)
    if evening is None:
        return 0
    done = int(evening.at_s.searchsorted(minute * 60))  # as `DayTrades.minute` splits them
    volume = int(evening.qty[:done].sum())
    start = market.hours(day).krx_after.start_s // 60
    for touched in _touched(faults, symbol, day, start, minute - start):
        at = start + touched
        drawn = sum(qty for _, _, qty in evening.minute(at))
        printed = sum(qty for _, _, qty in krx_after_trades(market, faults, symbol, day, at))
        volume -= drawn - printed
    return volume


def _nxt_before(market: Market, faults: Faults, symbol: str, day: date, minute: int) -> int:
    """Nextrade's feed's volume before ``minute``: none on a day it does not trade the name."""
    if not _nxt_trades(market, faults, symbol, day):
        return 0
    trades = market.nxt_day(symbol, day)
    return int(trades.qty[: int(trades.at_s.searchsorted(minute * 60))].sum())


def _nxt_trades(market: Market, faults: Faults, symbol: str, day: date) -> bool:
    """Whether Nextrade trades ``symbol`` on ``day`` (`Faults.nxt`), as `venue_trades` asks."""
    listing = market.listings[symbol]
    eligible, halted = faults.nxt.standing(symbol, market.nxt_eligible(day), listing.suspended)
    return eligible and not halted


def _touched(faults: Faults, symbol: str, day: date, start: int, count: int) -> list[int]:
    """The minutes of ``count`` from minute ``start`` (of the KST day) a fault thins out.

    Quiet (`Faults.no_trades`) or overlapping a halt of ``symbol``, as offsets from ``start``.
    """
    minutes = set()
    for hhmm in faults.no_trades.get(symbol, ()):
        minutes.add(int(hhmm[:2]) * 60 + int(hhmm[2:4]) - start)
    window = faults.halts.get(symbol)
    if window is not None:
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=KST).timestamp()) * NS
        first, last = ((at - midnight) // (60 * NS) - start for at in (window[0], window[1] - 1))
        minutes.update(range(max(0, first), min(count, last + 1)))
    return sorted(m for m in minutes if 0 <= m < count)


def _whole_seconds(second: float) -> int:
    """The whole seconds a trade ``second`` into its minute is stamped with.

    As the feed formats it (its minute plus a `timedelta` of them: microseconds, rounded).
    """
    return timedelta(seconds=second).seconds
