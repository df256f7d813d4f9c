"""The simulator's final flows: investor groups, program trading and VIs by stock.

FHPTJ04160001 (investor groups) and FHPPG04650201 (program trading):
a day's row, per venue, once its day is final: KRX's (J) from its after-market's 20:00 close
on a day the stock has one (from 2026-09-14, `SimConfig.krx_after_market`), its volume
counted in, else from 15:40; Nextrade's (NX) from its 20:00 close; before that the answer
lists the sessions before it alone, as KIS's lists the days it has. Two rows at most: the
day asked and the session before. Nextrade's volume is a fixed share of KRX's regular day
(`NXT_SHARE_PCT`); the investor groups split it by a share the symbol, day and venue pick
(individuals the rest), program trading is the share
`harness.sim.market_status` sends tick by tick at the day's end. Values: the investor
groups' in millions of KRW, program trading's in KRW, at the day's close. FHPST01390000
(VIs by stock): the VI `Market.vi_window` gives the stock that day, once
it has started, lifted once it has ended; a static VI off the previous close.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, time, timedelta

from harness.sim.market import KST, Market
from harness.sim.market_status import PROGRAM_BUY_PCT, PROGRAM_SELL_PCT
from harness.sim.nextrade import DayTrades
from harness.sim.vi import vi_numbers

__all__ = ["NXT_SHARE_PCT", "investor_rows", "program_rows", "vi_rows"]

NXT_SHARE_PCT = 30
_CLOSED = time(15, 40)  # KRX's day without an after-market: final after 시간외 종가's start
_EVENING_CLOSED = time(20, 0)  # KRX's after-market's close, and Nextrade's
_MILLION = 1_000_000


def _evening(
    market: Market, symbol: str, day: date, code: str, after_market: bool
) -> DayTrades | None:
    """KRX's after-market trades of ``symbol``'s ``day`` where its day runs to 20:00."""
    return market.krx_after_day(symbol, day) if code == "J" and after_market else None


def _days(
    market: Market, symbol: str, asked: date, now: datetime, code: str, after_market: bool
) -> list[date]:
    """The sessions the answer lists: ``asked`` if final by ``now``, then the one before."""
    calendar = market.calendar
    day = asked if calendar.is_session(asked) else calendar.previous_session(asked)
    if day > now.date():
        return []
    evening = code == "NX" or _evening(market, symbol, day, code, after_market) is not None
    final = day < now.date() or now.time() >= (_EVENING_CLOSED if evening else _CLOSED)
    first = day if final else calendar.previous_session(day)
    return [first, calendar.previous_session(first)]


def _volume_close(
    market: Market, symbol: str, day: date, code: str, after_market: bool
) -> tuple[int, int]:
    bar = market.daily_bar(symbol, day)
    if code == "NX":
        return bar.volume * NXT_SHARE_PCT // 100, bar.close
    evening = _evening(market, symbol, day, code, after_market)
    return bar.volume + (0 if evening is None else int(evening.qty.sum())), bar.close


def investor_rows(
    market: Market, symbol: str, code: str, asked: date, now: datetime, after_market: bool = True
) -> list[dict[str, str]]:
    """FHPTJ04160001's ``output2``: net buying by group, shares and KRW millions."""
    if symbol not in market.listings:
        raise KeyError(symbol)  # "no data", as for an unknown code
    rows = []
    for day in _days(market, symbol, asked, now, code, after_market):
        volume, close = _volume_close(market, symbol, day, code, after_market)
        mark = zlib.crc32(f"{symbol}{day}{code}".encode())
        foreign = volume * (mark % 21 - 10) // 100
        institution = volume * (mark // 21 % 21 - 10) // 100
        other = volume * (mark // 441 % 7 - 3) // 100
        individual = -(foreign + institution + other)
        groups = {"prsn": individual, "frgn": foreign, "orgn": institution}
        row = {"stck_bsop_date": day.strftime("%Y%m%d"), "acml_vol": str(volume)}
        for group, qty in groups.items():
            row[f"{group}_ntby_qty"] = str(qty)
            row[f"{group}_ntby_tr_pbmn"] = str(qty * close // _MILLION)
        row["etc_corp_ntby_vol"] = str(other)
        row["etc_corp_ntby_tr_pbmn"] = str(other * close // _MILLION)
        rows.append(row)
    return rows


def program_rows(
    market: Market, symbol: str, code: str, asked: date, now: datetime, after_market: bool = True
) -> list[dict[str, str]]:
    """FHPPG04650201's ``output``: the day's program selling, buying and net, and in KRW."""
    if symbol not in market.listings:
        raise KeyError(symbol)
    rows = []
    for day in _days(market, symbol, asked, now, code, after_market):
        volume, close = _volume_close(market, symbol, day, code, after_market)
        sold, bought = volume * PROGRAM_SELL_PCT // 100, volume * PROGRAM_BUY_PCT // 100
        rows.append(
            {
                "stck_bsop_date": day.strftime("%Y%m%d"),
                "whol_smtn_seln_vol": str(sold),
                "whol_smtn_shnu_vol": str(bought),
                "whol_smtn_ntby_qty": str(bought - sold),
                "whol_smtn_seln_tr_pbmn": str(sold * close),
                "whol_smtn_shnu_tr_pbmn": str(bought * close),
                "whol_smtn_ntby_tr_pbmn": str((bought - sold) * close),
            }
        )
    return rows


VI_ROWS = 30  # FHPST01390000 lists a day's latest 30


def vi_rows(
    market: Market, symbol: str, asked: date, now: datetime, busy: int = 0
) -> list[dict[str, str]]:
    """FHPST01390000's ``output`` for one stock and day: its VI, once started.

    ``busy`` (`Faults.busy_vis`): that many VIs, every three minutes from 10:00; the latest
    `VI_ROWS` of those started, each with the day's count so far.
    """
    if symbol not in market.listings:
        raise KeyError(symbol)
    if busy and market.calendar.is_session(asked):
        first = datetime.combine(asked, time(10, 0), KST)
        windows = [first + timedelta(minutes=3 * n) for n in range(busy)]
        started = [(n + 1, at) for n, at in enumerate(windows) if at <= now]
        return [
            row
            for count, at in started[-VI_ROWS:]
            for row in _vi_row(market, symbol, asked, now, (at, at + timedelta(minutes=2)), count)
        ]
    window = market.vi_window(symbol, asked) if market.calendar.is_session(asked) else None
    if window is None or window[0] > now:
        return []
    return _vi_row(market, symbol, asked, now, window, 1)


def _vi_row(
    market: Market,
    symbol: str,
    asked: date,
    now: datetime,
    window: tuple[datetime, datetime],
    count: int,
) -> list[dict[str, str]]:
    start, end = window
    price, base, move = vi_numbers(market, symbol, asked, start)
    lifted = end <= now
    return [
        {
            "mksc_shrn_iscd": symbol,
            "bsop_date": asked.strftime("%Y%m%d"),
            "vi_cls_code": "N" if lifted else "Y",
            "vi_kind_code": "1",
            "cntg_vi_hour": start.strftime("%H%M%S"),
            "vi_cncl_hour": end.strftime("%H%M%S") if lifted else "000000",
            "vi_prc": str(price),
            "vi_stnd_prc": str(base),
            "vi_dprt": move,
            "vi_dmc_stnd_prc": "0",
            "vi_dmc_dprt": "0.00",
            "vi_count": str(count),
        }
    ]
