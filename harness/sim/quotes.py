"""The simulator's REST quotes: the ``/uapi/...`` endpoints, each TR answered as KIS does.

Every call passes the `Gateway` first; an answer is read off the `Market` at the clock's
now (section numbers are those of shared/reference/kis-api.md).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from aiohttp import web

from harness.sim.etf import (
    CU_UNITS,
    EtfDay,
    etf_day,
    holding_count,
    holdings,
    multiple,
    nav_published,
)
from harness.sim.flows import investor_rows, program_rows, vi_rows
from harness.sim.gateway import Gateway
from harness.sim.market import (
    BARS_PER_DAY,
    KST,
    Market,
    Overseas,
    Quote,
    bar_value,
    bars_value,
    quote_at,
)
from harness.sim.nextrade import krx_after_trades, venue_trades
from harness.sim.price_units import price_limits
from harness.sim.protocol import NS, OK, envelope, fail, now_kst, price_sign, session_day, sign
from harness.sim.realtime import best_quotes
from harness.sim.sectors import CATALOG, detail_name, info_class, listed_code
from harness.sim.tape import Print, Venue, prints_before, volume_to
from observer.calendar.clock import Clock

__all__ = ["PAPER_LACKS", "Quotes"]

# The TRs KIS's paper host does not offer: "모의투자 미지원" in the API workbook (past-day
# minute bars, ETF and overseas detail), or treated so where the workbook is silent.
PAPER_LACKS = frozenset(
    {
        "FHKST03010230",
        "FHPST02400000",
        "FHPST02440000",
        "FHPST02440200",
        "FHKST121600C0",
        "CTPF1002R",
        "CTPF1702R",
        "HHDFS76370100",
        "HHDFS76200200",
        "HHDFS76370000",
        "HHPTJ04160200",
        "FHPTJ04160001",
        "FHPPG04650201",
        "FHPST01390000",
    }
)
_PAPER_REFUSAL_TEXT = "모의투자 미지원 서비스입니다."
# HHPTJ04160200's postings (bsop_hour_gb) as KIS documents them: foreigners' at 09:30,
# institutions' at 10:00, both at 11:20, 13:20 and 14:30.
_POSTINGS = {1: dtime(9, 30), 2: dtime(10, 0), 3: dtime(11, 20), 4: dtime(13, 20), 5: dtime(14, 30)}


class Quotes:
    """The REST quote and bar endpoints.

    Parameters
    ----------
    market:
        The synthetic market quoted.
    clock:
        Simulated time: what "now" and "today" are.
    gateway:
        Admits (or refuses) each call and counts the answered ones.
    """

    def __init__(self, market: Market, clock: Clock, gateway: Gateway) -> None:
        self.market = market
        self.clock = clock
        self.gateway = gateway

    async def rest(self, request: web.Request) -> web.Response:
        """``GET /uapi/...``: the gateway's verdict, then the answer of the TR asked for."""
        failure = await self.gateway.admit(request)
        if failure is not None:
            return failure
        tr_id = request.headers.get("tr_id", "")
        handler = _ROUTES.get((request.match_info["path"], tr_id))
        if handler is None:
            return fail(500, "OPSQ0002", "없는 서비스 코드 입니다")
        config = self.gateway.config
        if config.paper and tr_id in PAPER_LACKS:
            self.gateway.paper_refused[tr_id] += 1
            return fail(500, config.paper_refusal_code, _PAPER_REFUSAL_TEXT)
        self.gateway.calls[tr_id] += 1
        if refused := self.gateway.faults.refused_trs.get(tr_id):
            return fail(500, refused, "서비스가 제공되지 않습니다")
        try:
            if self.gateway.faults.no_data_symbols.intersection(request.query.values()):
                raise KeyError("a symbol KIS has no data of (`Faults.no_data_symbols`)")
            return handler(self, request.query)
        except KeyError:
            return web.json_response(envelope("7", "KIOK0560", "조회할 자료가 없습니다"))

    def _now(self) -> datetime:
        return now_kst(self.clock)

    def investor_estimate(self, query: Any) -> web.Response:
        """HHPTJ04160200: today's postings made so far, one row each (none on other days).

        Foreigners' figure from 09:30, institutions' from 10:00 (0 before), in shares, a
        share of the day's volume at the posting's time that the symbol, day and posting
        pick (the same however late it is asked, unless `SimConfig.investor_revised_from`);
        a posting in `Faults.missed_postings` is not made.
        """
        symbol = query.get("MKSC_SHRN_ISCD", "")
        if symbol not in self.market.listings:
            raise KeyError(symbol)  # "no data", as for an unknown code
        now = self._now()
        missed = self.gateway.faults.missed_postings
        config = self.gateway.config
        rows = []
        day, asked = now.date(), now
        if config.investor_before_postings == "last_session" and now.time() < _POSTINGS[1]:
            # the last session's postings, all made (KIS answering no date)
            day = self.market.calendar.previous_session(day)
            asked = datetime.combine(day, dtime(15, 30), KST)
        revised = config.investor_revised_from
        bump = 101 if revised and now.time() >= dtime.fromisoformat(revised) else 100
        if self.market.calendar.is_session(day):
            for posting, at in _POSTINGS.items():
                if asked.time() < at or posting in missed:
                    continue
                # KRX's regular session's volume at the posting's time: a posting's figures
                # stay what they were posted as (its after-market makes none move)
                posted = datetime.combine(day, at, KST)
                volume = self._quote_at(symbol, posted, after_market=False).volume
                mark = zlib.crc32(f"{symbol}{day}{posting}".encode())
                foreign = volume * (mark % 21 - 10) * bump // 10_000
                institution = 0 if posting == 1 else volume * (mark // 21 % 21 - 10) // 100
                rows.append(
                    {
                        "bsop_hour_gb": str(posting),
                        "frgn_fake_ntby_qty": str(foreign),
                        "orgn_fake_ntby_qty": str(institution),
                        "sum_fake_ntby_qty": str(foreign + institution),
                    }
                )
        return web.json_response(envelope(*OK, output2=rows))

    def investor_flows(self, query: Any) -> web.Response:
        """FHPTJ04160001: final net buying by investor group (`harness.sim.flows`)."""
        code, symbol = query.get("FID_COND_MRKT_DIV_CODE", "J"), query.get("FID_INPUT_ISCD", "")
        asked = _date(query.get("FID_INPUT_DATE_1", "") or self._now().strftime("%Y%m%d"))
        rows = investor_rows(self.market, symbol, code, asked, self._now(), self._after_market())
        answered = self.gateway.config.investor_etc_cls_code
        if answered not in ("any", query.get("FID_ETC_CLS_CODE", "")):
            rows = []  # what KIS answers to the other value is UNCONFIRMED: nothing here
        return web.json_response(envelope(*OK, output1={}, output2=rows))

    def program_trades_daily(self, query: Any) -> web.Response:
        """FHPPG04650201: a day's program trading (`harness.sim.flows`)."""
        code, symbol = query.get("FID_COND_MRKT_DIV_CODE", "J"), query.get("FID_INPUT_ISCD", "")
        asked = _date(query.get("FID_INPUT_DATE_1", "") or self._now().strftime("%Y%m%d"))
        rows = program_rows(self.market, symbol, code, asked, self._now(), self._after_market())
        return web.json_response(envelope(*OK, output=rows))

    def vi_status(self, query: Any) -> web.Response:
        """FHPST01390000 by stock: the day's VIs (`harness.sim.flows`)."""
        symbol = query.get("FID_INPUT_ISCD", "")
        asked = _date(query.get("FID_INPUT_DATE_1", "") or self._now().strftime("%Y%m%d"))
        return web.json_response(
            envelope(
                *OK,
                output=vi_rows(
                    self.market,
                    symbol,
                    asked,
                    self._now(),
                    self.gateway.faults.busy_vis.get(symbol, 0),
                ),
            )
        )

    def inquire_price(self, query: Any) -> web.Response:
        """FHKST01010100 (§4.1): KRX's price (FID J), or Nextrade's (NX).

        UN (both venues') is not served: it reads as J. KRX's follows its after-market's
        trades from 16:00 (`quote_at`; `SimConfig.krx_after_market`).
        """
        symbol = query.get("FID_INPUT_ISCD", "")
        listing = self.market.listings.get(symbol)
        if listing is None:
            return web.json_response(envelope(*OK, output={"stck_prpr": "0"}))
        if query.get("FID_COND_MRKT_DIV_CODE", "J") == "NX":
            q, halted = self._nextrade_quote(symbol)
        else:
            _, q = self._latest_quote(symbol)
            q, halted = self._faulted(symbol, q)
        lower, upper = price_limits(q.prev_close)
        change = q.price - q.prev_close
        output = {
            "stck_prpr": str(q.price),
            "prdy_vrss": str(change),
            "prdy_vrss_sign": price_sign(q.price, q.prev_close),
            "prdy_ctrt": f"{change * 100 / q.prev_close:.2f}",
            "acml_vol": str(q.volume),
            "acml_tr_pbmn": str(q.value),
            "stck_oprc": str(q.open),
            "stck_hgpr": str(q.high),
            "stck_lwpr": str(q.low),
            "stck_mxpr": str(upper),
            "stck_llam": str(lower),
            "stck_sdpr": str(q.prev_close),
            "hts_avls": str(listing.listed_shares * q.price // 100_000_000),
            "lstn_stcn": str(listing.listed_shares),
            **self._halt_fields(listing.suspended or halted),
            "mang_issu_cls_code": "Y" if listing.administrative else "N",
            "rprs_mrkt_kor_name": listing.market,
            "stck_shrn_iscd": symbol,
        }
        return web.json_response(envelope(*OK, output=output))

    def _nextrade_quote(self, symbol: str) -> tuple[Quote, bool]:
        """Nextrade's quote of ``symbol`` now, and whether Nextrade halts it.

        Its day runs from 08:00 (before, the last session's to its 20:00 close); its base is
        KRX's previous close. A name it does not list, or halts, has no trade: its quote is
        the previous close without volume (what KIS answers for such a name is UNCONFIRMED).
        """
        now = self._now()
        today = now.date()
        if self.market.calendar.is_session(today) and now.hour >= _NXT_OPEN_HOUR:
            day = today
            second = now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
        else:
            day, second = self.market.calendar.previous_session(today), 24 * 3600.0
        listing = self.market.listings[symbol]
        path = self.market.day_path(symbol, day)
        selected = self.market.nxt_eligible(day)
        eligible, halted = self.gateway.faults.nxt.standing(symbol, selected, listing.suspended)
        trades = self.market.nxt_day(symbol, day)
        done = trades.until(second) if eligible and not halted else 0
        if not done:
            return Quote(path.prev_close, 0, 0, 0, 0, 0, path.prev_close, None), halted
        prices, quantities = trades.price[:done], trades.qty[:done]
        quote = Quote(
            int(prices[-1]),
            int(prices[0]),
            int(prices.max()),
            int(prices.min()),
            int(quantities.sum()),
            int((prices * quantities).sum()),
            path.prev_close,
            None,
        )
        return quote, halted

    def _halt_fields(self, halted: bool) -> dict[str, str]:
        """``temp_stop_yn`` and ``iscd_stat_cls_code``, a halt in those `SimConfig` says."""
        signal = self.gateway.config.halt_signal
        flag = halted and signal in ("both", "temp_stop_yn")
        code = halted and signal in ("both", "iscd_stat_cls_code")
        return {"temp_stop_yn": "Y" if flag else "N", "iscd_stat_cls_code": "58" if code else "55"}

    def _faulted(self, symbol: str, q: Quote) -> tuple[Quote, bool]:
        """The quote as a halt (frozen at its start) or a limit lock makes it; halted or not."""
        now = self.clock.now_ns()
        faults = self.gateway.faults
        if faults.halted(symbol, now):
            start = faults.halts[symbol][0]
            at = datetime.fromtimestamp(start / NS, KST)
            return self._quote_at(symbol, at, self._after_market()), True
        if faults.locked(symbol, now):
            upper = price_limits(q.prev_close)[1]
            return dataclasses.replace(q, price=upper, high=max(q.high, upper)), False
        return q, False

    def _quote_at(self, symbol: str, at: datetime, after_market: bool) -> Quote:
        """`quote_at`, its volume the exchange's count of KRX's trades to ``at`` (KST).

        That is FHPST01060000's and the feed's (`harness.sim.tape.volume_to`, KRX's unsent
        trades aside): the day's path also counts the trades a halt or a quiet minute kept
        from happening, a real exchange has one count. Its price, high, low and value stay
        the path's. ``after_market`` as `quote_at`'s.
        """
        quote = quote_at(self.market, symbol, at, after_market=after_market)
        faults = self.gateway.faults
        if symbol not in faults.halts and symbol not in faults.no_trades:
            return quote  # no trade kept from happening: the path's volume is the record's
        config = self.gateway.config
        if config.krx_after_market != after_market:
            config = dataclasses.replace(config, krx_after_market=after_market)
        volume = volume_to(self.market, faults, config, "J", symbol, at, unsent_counted=False)
        return dataclasses.replace(quote, volume=volume)

    def _after_market(self) -> bool:
        """Whether KRX's after-market trades are served (`SimConfig.krx_after_market`)."""
        return self.gateway.config.krx_after_market

    def _after_market_bars(self) -> bool:
        """Whether KRX's minute bars hold its after-market's minutes (both switches on)."""
        config = self.gateway.config
        return config.krx_after_market and config.krx_after_market_bars

    def _rows_of(
        self, query: Any, symbol: str, day: date, until: str, limit: int
    ) -> list[dict[str, str]]:
        """The minute bars of the venue ``FID_COND_MRKT_DIV_CODE`` names.

        J is KRX's, NX Nextrade's, UN both venues' trades; any other code reads as J. KRX's
        (J's, and KRX's part of UN's) hold its after-market's minutes with
        `SimConfig.krx_after_market_bars`.
        """
        venue = query.get("FID_COND_MRKT_DIV_CODE", "J")
        if venue in ("NX", "UN"):
            return self._venue_bar_rows(symbol, day, until, limit, combined=venue == "UN")
        return self._bar_rows(symbol, day, until, limit)

    def _venue_bar_rows(
        self, symbol: str, day: date, until: str, limit: int, combined: bool
    ) -> list[dict[str, str]]:
        """Nextrade's minute bars (or the combined ones), newest first, at or before ``until``.

        A bar for each minute with a trade, 08:00-20:00 (whether KIS's NX and UN bars cover
        Nextrade's hours outside KRX's, and how it fills a minute without trades, is
        UNCONFIRMED: here they do, and it has no bar, as KRX's).
        """
        now = self._now()
        last = 20 * 60 - 1
        if day == now.date():
            last = min(last, now.hour * 60 + now.minute)
        late = 1 if self.gateway.config.bar_label == "end" else 0
        upto = min(last, int(until[:2]) * 60 + int(until[2:4]) - late)
        bars: list[tuple[int, list[tuple[float, int, int]]]] = []
        faults, after_market = self.gateway.faults, self._after_market_bars()
        for minute in range(8 * 60, upto + 1):
            trades = venue_trades(self.market, faults, symbol, day, minute, combined, after_market)
            if day == now.date() and minute == now.hour * 60 + now.minute:
                trades = [t for t in trades if t[0] <= now.second + now.microsecond / 1e6]
            if trades:
                bars.append((minute, trades))
        rows: list[dict[str, str]] = []
        cumulative = sum(p * q for _, trades in bars for _, p, q in trades)
        midnight = datetime(day.year, day.month, day.day, tzinfo=KST)
        for minute, trades in reversed(bars):
            if len(rows) == limit:
                break
            rows.append(_bar_row(midnight + timedelta(minutes=minute + late), trades, cumulative))
            cumulative -= sum(p * q for _, p, q in trades)
        return rows

    def _bar_rows(self, symbol: str, day: date, until: str, limit: int) -> list[dict[str, str]]:
        """KRX's minute bars, newest first, at or before ``until``.

        Its after-market's (`_after_bar_rows`), then its regular session's.
        """
        path = self.market.day_path(symbol, day)
        now = self._now()
        last = BARS_PER_DAY - 1
        if day == now.date():
            last = min(last, path.hours.bar(now.hour * 60 + now.minute))
        # Labelled by its end (SimConfig.bar_label), the bar of a minute names the next one:
        # the newest bar at or before ``until`` is the minute before it.
        late = 1 if self.gateway.config.bar_label == "end" else 0
        asked = int(until[:2]) * 60 + int(until[2:4]) - late
        upto = min(last, path.hours.bar(asked))
        rows: list[dict[str, str]] = []
        if self._after_market_bars():
            rows = self._after_bar_rows(symbol, day, asked, limit, late)
        cumulative = bars_value(path, upto + 1)
        faults = self.gateway.faults
        quiet = faults.no_trades.get(symbol, set())
        for index in range(upto, -1, -1):
            if len(rows) == limit:
                break
            start = path.bar_start(index)
            opened = int(start.timestamp()) * NS
            halted = faults.halted(symbol, opened) and faults.halted(symbol, opened + 59 * NS)
            if halted or f"{start:%H%M}" in quiet or not path.trades[index]:
                # No trade in the minute (halted throughout, quiet, or KRX's closing auction
                # before its match): KIS has no bar for it.
                cumulative -= bar_value(path, index)
                continue
            rows.append(
                {
                    "stck_bsop_date": day.strftime("%Y%m%d"),
                    "stck_cntg_hour": (start + timedelta(minutes=late)).strftime("%H%M00"),
                    "stck_prpr": str(path.close[index]),
                    "stck_oprc": str(path.open[index]),
                    "stck_hgpr": str(path.high[index]),
                    "stck_lwpr": str(path.low[index]),
                    "cntg_vol": str(path.volume[index]),
                    "acml_tr_pbmn": str(cumulative),
                }
            )
            cumulative -= bar_value(path, index)
        return rows

    def _after_bar_rows(
        self, symbol: str, day: date, asked: int, limit: int, late: int
    ) -> list[dict[str, str]]:
        """KRX's after-market's minute bars, newest first, to minute ``asked`` of the day.

        A bar for each minute with a trade as KRX's feed has them
        (`harness.sim.nextrade.krx_after_trades`: none quiet or halted); ``acml_tr_pbmn``
        the day's value to the bar's end, the regular session's (`bars_value`) and every
        after-market trade's before it.
        """
        evening = self.market.krx_after_day(symbol, day)
        if evening is None:
            return []
        now = self._now()
        span = self.market.hours(day).krx_after
        upto = min(asked, span.end_s // 60 - 1)
        second = 24 * 3600.0
        if day == now.date():
            upto = min(upto, now.hour * 60 + now.minute)
            second = now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
        midnight = datetime(day.year, day.month, day.day, tzinfo=KST)
        regular = bars_value(self.market.day_path(symbol, day), BARS_PER_DAY)
        faults = self.gateway.faults
        rows: list[dict[str, str]] = []
        for minute in range(upto, span.start_s // 60 - 1, -1):
            if len(rows) == limit:
                break
            ends = min(second, minute * 60 + 60)
            trades = [
                t
                for t in krx_after_trades(self.market, faults, symbol, day, minute)
                if minute * 60 + t[0] <= ends
            ]
            if not trades:
                continue
            value = regular + evening.totals(evening.until(ends))[1]
            rows.append(_bar_row(midnight + timedelta(minutes=minute + late), trades, value))
        return rows

    def _chart_summary(self, symbol: str, q: Quote) -> dict[str, str]:
        """The minute charts' ``output1`` (§4.3a): the issue as it stands when asked."""
        change = q.price - q.prev_close
        return {
            "prdy_vrss": str(change),
            "prdy_vrss_sign": sign(change),
            "prdy_ctrt": f"{change * 100 / q.prev_close:.2f}",
            "stck_prdy_clpr": str(q.prev_close),
            "acml_vol": str(q.volume),
            "acml_tr_pbmn": str(q.value),
            "hts_kor_isnm": self.market.listings[symbol].name,
            "stck_prpr": str(q.price),
        }

    def minute_bars_today(self, query: Any) -> web.Response:
        """FHKST03010200 (§4.3a): today only, 30 rows, newest first, and today's summary."""
        symbol = query["FID_INPUT_ISCD"]
        now = self._now()
        until = query.get("FID_INPUT_HOUR_1", "153000")
        rows = self._rows_of(query, symbol, now.date(), until, 30)
        quote = self._quote_at(symbol, now, self._after_market())
        summary = self._chart_summary(symbol, quote)
        return web.json_response(envelope(*OK, output1=summary, output2=rows))

    def time_trades(self, query: Any) -> web.Response:
        """FHPST01060000 (주식현재가 당일시간대별체결): today's trades before a time, newest first.

        The trades of the venue ``FID_COND_MRKT_DIV_CODE`` names (J KRX's, NX Nextrade's, UN
        both venues'; any other code reads as J) stamped before ``FID_INPUT_HOUR_1`` (HHMMSS;
        blank: the whole day) and done by now, never a later one: `SimConfig.time_trades_rows`
        rows (30), a row a trade (`time_trades_per`), strictly before the time
        (`time_trades_inclusive`). Each row is a trade exactly as the venue's real-time trade
        feed sends it, or would have (`harness.sim.tape`: withheld ones too): its stamp,
        price, quantity (cnqn) and ACML_VOL (acml_vol, plus `time_trades_cum_offset`), so
        each row's acml_vol less its cnqn is the next (older) row's. No continuation (KIS:
        "tr_cont를 이용한 다음조회 불가"): a caller pages back asking an earlier time.
        ``output1`` is the venue's quote now. Today not a session: "no data".
        """
        symbol = query.get("FID_INPUT_ISCD", "")
        listing = self.market.listings[symbol]
        code = query.get("FID_COND_MRKT_DIV_CODE", "J")
        venue: Venue = "NX" if code == "NX" else "UN" if code == "UN" else "J"
        hour = query.get("FID_INPUT_HOUR_1", "").strip()
        if hour and (len(hour) != 6 or not hour.isdigit()):
            raise KeyError(hour)  # what KIS answers to a malformed time is UNCONFIRMED
        below = int(hour[:2]) * 3600 + int(hour[2:4]) * 60 + int(hour[4:]) if hour else 86_400
        now = self._now()
        day = now.date()
        prev_close = self.market.day_path(symbol, day).prev_close  # KeyError: no session
        config = self.gateway.config
        faults = self.gateway.faults
        wanted, per_second = config.time_trades_rows, config.time_trades_per == "second"
        seconds = now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
        prints = prints_before(
            self.market,
            faults,
            config,
            venue,
            symbol,
            day,
            below + config.time_trades_inclusive,  # stamps are whole seconds
            seconds,
            wanted,
            per_second,
        )
        page = (_per_second(prints) if per_second else _per_trade(prints))[-wanted:]
        offset = config.time_trades_cum_offset
        rows = [_trade_row(last, qty, prev_close, offset) for last, qty in reversed(page)]
        quote = self._quote_at(symbol, now, self._after_market())
        volume, prev_volume = quote.volume, self._krx_day_volume(symbol, day)
        if venue != "J":
            nxt, _ = self._nextrade_quote(symbol)
            nxt_prev = self._nxt_day_volume(symbol, day)
            quote = nxt if venue == "NX" else quote
            volume = nxt.volume if venue == "NX" else volume + nxt.volume
            prev_volume = nxt_prev if venue == "NX" else prev_volume + nxt_prev
        change = quote.price - quote.prev_close
        summary = {
            "stck_prpr": str(quote.price),
            "prdy_vrss": str(change),
            "prdy_vrss_sign": price_sign(quote.price, quote.prev_close),
            "prdy_ctrt": f"{change * 100 / quote.prev_close:.2f}",
            "acml_vol": str(volume + config.time_trades_cum_offset),
            "prdy_vol": str(prev_volume),
            "rprs_mrkt_kor_name": listing.market,
        }
        return web.json_response(envelope(*OK, output1=summary, output2=rows))

    def _krx_day_volume(self, symbol: str, day: date) -> int:
        """KRX's volume of the session before ``day`` (its after-market's too, when served)."""
        previous = self.market.calendar.previous_session(day)
        try:
            volume = self.market.daily_bar(symbol, previous).volume
        except KeyError:  # before the first session served
            return 0
        evening = self.market.krx_after_bar(symbol, previous) if self._after_market() else None
        return volume + (evening[0] if evening is not None else 0)

    def _nxt_day_volume(self, symbol: str, day: date) -> int:
        """Nextrade's volume of the session before ``day``: none where it did not trade it."""
        previous = self.market.calendar.previous_session(day)
        listing = self.market.listings[symbol]
        try:
            selected = self.market.nxt_eligible(previous)
            eligible, halted = self.gateway.faults.nxt.standing(symbol, selected, listing.suspended)
            traded = eligible and not halted
            return int(self.market.nxt_day(symbol, previous).qty.sum()) if traded else 0
        except KeyError:  # before the first session served
            return 0

    def minute_bars_past(self, query: Any) -> web.Response:
        """FHKST03010230 (§4.3b): any past day, 120 rows, newest first; the latest summary."""
        symbol = query["FID_INPUT_ISCD"]
        raw = query.get("FID_INPUT_DATE_1", "")
        day = date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
        rows = self._rows_of(query, symbol, day, query.get("FID_INPUT_HOUR_1", "153000"), 120)
        summary = self._chart_summary(symbol, self._latest_quote(symbol)[1])
        return web.json_response(envelope(*OK, output1=summary, output2=rows))

    def _daily_rows(self, symbol: str, start: date, end: date, limit: int) -> list[dict[str, str]]:
        """Daily bars, newest first; today's row (during a session) is the day so far.

        A day with KRX's after-market (`SimConfig.krx_after_market`) counts its trades
        (volume, value, high and low: today's those done so far); its close stays the 15:30
        match's.
        """
        rows: list[dict[str, str]] = []
        now = self._now()
        day = min(end, session_day(self.market, now))
        calendar = self.market.calendar
        after_market = self._after_market()
        if not calendar.is_session(day):
            day = calendar.previous_session(day)
        while day >= start and len(rows) < limit:
            if day == now.date():
                q = self._quote_at(symbol, now, after_market)
                close = quote_at(self.market, symbol, now, after_market=False).price
                bar = (close, q.open, q.high, q.low, q.volume, q.value, q.prev_close)
            else:  # a past session: its minute path summed up (drawn in blocks, kept)
                b = self.market.daily_bar(symbol, day)
                bar = (b.close, b.open, b.high, b.low, b.volume, b.value, b.prev_close)
                evening = self.market.krx_after_bar(symbol, day) if after_market else None
                if evening is not None:
                    volume, value, high, low = evening
                    high, low = max(b.high, high), min(b.low, low)
                    bar = (
                        b.close,
                        b.open,
                        high,
                        low,
                        b.volume + volume,
                        b.value + value,
                        b.prev_close,
                    )
            close, open_, high, low, volume, value, prev_close = bar
            rows.append(
                {
                    "stck_bsop_date": day.strftime("%Y%m%d"),
                    "stck_clpr": str(close),
                    "stck_oprc": str(open_),
                    "stck_hgpr": str(high),
                    "stck_lwpr": str(low),
                    "acml_vol": str(volume),
                    "acml_tr_pbmn": str(value),
                    "prdy_vrss": str(close - prev_close),
                    "prdy_vrss_sign": sign(close - prev_close),
                }
            )
            day = calendar.previous_session(day)
        return rows

    def daily_chart(self, query: Any) -> web.Response:
        """FHKST03010100 (§4.2): daily bars between two dates, 100 rows, newest first."""
        start, end = (_date(query[k]) for k in ("FID_INPUT_DATE_1", "FID_INPUT_DATE_2"))
        rows = self._daily_rows(query["FID_INPUT_ISCD"], start, end, 100)
        return web.json_response(envelope(*OK, output1={}, output2=rows))

    def daily_price(self, query: Any) -> web.Response:
        """FHKST01010400 (§4.4): the most recent 30 days, no paging."""
        rows = self._daily_rows(query["FID_INPUT_ISCD"], date(2000, 1, 1), date(9999, 1, 1), 30)
        return web.json_response(envelope(*OK, output=rows))

    def _latest_quote(self, symbol: str) -> tuple[date, Quote]:
        """The session day and quote: now during a session, else the last session's end.

        That is its 15:30 close, or its after-market's last trade.
        """
        now = self._now()
        day = session_day(self.market, now)
        at = now if day == now.date() else datetime.combine(day, _DAY_END, tzinfo=KST)
        return day, self._quote_at(symbol, at, self._after_market())

    def _etf(self, query: Any) -> tuple[str, date, Quote]:
        symbol = query.get("FID_INPUT_ISCD", "")
        if self.market.listings[symbol].group != "EF":
            raise KeyError(symbol)
        day, quote = self._latest_quote(symbol)
        return symbol, day, quote

    def _etf_figures(self, symbol: str, day: date, price: int) -> EtfDay:
        """The ETF's day as both sources tell it (`harness.sim.etf`)."""
        published = nav_published(self.gateway.faults.etf_nav_late_until, day, self._now())
        return etf_day(self.market, symbol, day, price, published)

    def etf_price(self, query: Any) -> web.Response:
        """FHPST02400000 (§4.5): price, NAV, premium (dprt), net assets (억 KRW, assumed).

        A NAV not yet published answers ``0`` with ``dprt`` and net assets ``0``.
        """
        symbol, day, q = self._etf(query)
        listing = self.market.listings[symbol]
        today = self._etf_figures(symbol, day, q.price)
        previous = self.market.calendar.previous_session(day)
        prev_nav = q.prev_close / (1 + self.market.etf_premium(symbol, previous))
        nav = today.nav
        output = {
            "stck_prpr": str(q.price),
            "stck_prdy_clpr": str(q.prev_close),
            "prdy_vrss": str(q.price - q.prev_close),
            "prdy_ctrt": f"{(q.price / q.prev_close - 1) * 100:.2f}",
            "stck_oprc": str(q.open),
            "stck_hgpr": str(q.high),
            "stck_lwpr": str(q.low),
            "acml_vol": str(q.volume),
            "nav": f"{nav:.2f}" if nav else "0",
            "prdy_last_nav": f"{prev_nav:.2f}",
            "trc_errt": f"{abs(today.premium) * 50:.2f}",
            "dprt": f"{today.premium * 100:.2f}" if nav else "0.00",
            "etf_ntas_ttam": str(today.net_assets_krw // 100_000_000),
            "etf_cnfg_issu_cnt": str(holding_count(self.market, symbol)),  # with cash, futures
            "lstn_stcn": str(today.units),
            "etf_crcl_stcn": str(today.units),
            "etf_trc_ert_mltp": str(multiple(listing.name)),
            "etf_cu_unit_scrt_cnt": str(CU_UNITS),
            "stck_lstn_date": listing.listed_on.strftime("%Y%m%d"),
        }
        return web.json_response(envelope(*OK, output=output))

    def etf_nav_daily(self, query: Any) -> web.Response:
        """FHPST02440200 (§4.6): daily close and NAV, 100 rows, newest first."""
        symbol = query["FID_INPUT_ISCD"]
        if self.market.listings[symbol].group != "EF":
            raise KeyError(symbol)
        start, end = (_date(query[k]) for k in ("FID_INPUT_DATE_1", "FID_INPUT_DATE_2"))
        rows = []
        for row in self._daily_rows(symbol, start, end, 100):
            day, close = _date(row["stck_bsop_date"]), int(row["stck_clpr"])
            figures = self._etf_figures(symbol, day, close)
            nav = figures.nav
            rows.append(
                {
                    "stck_bsop_date": row["stck_bsop_date"],
                    "stck_clpr": row["stck_clpr"],
                    "acml_vol": row["acml_vol"],
                    "nav": f"{nav:.2f}" if nav else "0",
                    "dprt": f"{figures.premium * 100:.2f}" if nav else "0.00",
                    "nav_vrss_prpr": f"{close - nav:.2f}" if nav else "0",
                }
            )
        return web.json_response(envelope(*OK, output=rows))

    def etf_components(self, query: Any) -> web.Response:
        """FHKST121600C0 (§4.7): summary, constituents with weights, cash and futures lines.

        The lines are `harness.sim.etf.holdings`, all in one answer (KIS cannot continue
        this TR: no ``tr_cont``, no cursor); ``SimConfig.etf_component_max_rows`` cuts them
        short, ``etf_component_repeat`` lists the first one again at the end.
        """
        symbol, day, q = self._etf(query)
        figures = self._etf_figures(symbol, day, q.price)
        lines = holdings(self.market, symbol, figures.net_assets_krw or q.price * figures.units)
        summary = {
            "stck_prpr": str(q.price),
            "nav": f"{figures.nav:.2f}" if figures.nav else "0",
            "etf_ntas_ttam": str(figures.net_assets_krw // 100_000_000),
            "etf_cnfg_issu_cnt": str(len(lines)),
        }
        config = self.gateway.config
        page = lines[: config.etf_component_max_rows]
        if config.etf_component_repeat and page:
            page = [*page, page[0]]
        rows = [
            {
                "stck_shrn_iscd": x.code,
                "hts_kor_isnm": x.name,
                "etf_cnfg_issu_rlim": f"{x.weight_pct:.2f}",
                "etf_vltn_amt": str(x.value_krw),
            }
            for x in page
        ]
        return web.json_response(envelope(*OK, output1=summary, output2=rows))

    def overseas_price(self, query: Any) -> web.Response:
        """HHDFS00000300 (§4.8a); an unknown symbol answers success with an empty ``last``."""
        exchange, symbol = query.get("EXCD", ""), query.get("SYMB", "")
        known = any(
            x.exchange == exchange and x.symbol == symbol
            for rows in self.market.overseas.values()
            for x in rows
        )
        if not known:
            return web.json_response(envelope(*OK, output={"rsym": "", "last": ""}))
        last, base, volume = self.market.overseas_quote(exchange, symbol, self._now().date())
        output = {
            "rsym": f"D{exchange}{symbol}",
            "zdiv": "4",
            "base": f"{base:.4f}",
            "pvol": "0",
            "last": f"{last:.4f}",
            "sign": sign(int((last - base) * 10_000)),
            "diff": f"{last - base:.4f}",
            "rate": f"{(last / base - 1) * 100:.2f}",
            "tvol": str(volume),
            "tamt": str(int(volume * last)),
            "ordy": "매수가능",
        }
        return web.json_response(envelope(*OK, output=output))

    def stock_info(self, query: Any) -> web.Response:
        """CTPF1002R (주식기본조회): a stock's or an ETF's Nextrade flags and group; else "no data".

        The quarter's selection (`Market.nxt_eligible`, ETFs in it from `NXT_ETFS_FROM`)
        with the ad-hoc changes since.
        """
        symbol = query.get("PDNO", "")
        listing = self.market.listings.get(symbol)
        if listing is None or query.get("PRDT_TYPE_CD") != "300":
            raise KeyError(symbol)
        selected = self.market.nxt_eligible(self._now().date())
        eligible, halted = self.gateway.faults.nxt.standing(symbol, selected, listing.suspended)
        output = {
            "pdno": symbol,
            "prdt_name": listing.name,
            "cptt_trad_tr_psbl_yn": "Y" if eligible else "N",
            "nxt_tr_stop_yn": "Y" if halted else "N",
        }
        if self.gateway.config.stock_info_group:
            output["scty_grp_id_cd"] = listing.group
        return web.json_response(envelope(*OK, output=output))

    def overseas_info(self, query: Any) -> web.Response:
        """CTPF1702R (§4.9); an unknown product answers rt_cd 7, "no data"."""
        exchange = _PRODUCT_EXCHANGES.get(query.get("PRDT_TYPE_CD", ""), "")
        symbol = query.get("PDNO", "")
        row = next(
            (
                x
                for rows in self.market.overseas.values()
                for x in rows
                if x.exchange == exchange and x.symbol == symbol
            ),
            None,
        )
        if row is None:
            raise KeyError(symbol)
        code, name = info_class(row.exchange, row.symbol, row.industry_code)
        output = {
            "std_pdno": f"US{zlib.crc32(symbol.encode()):010d}" if row.currency == "USD" else "",
            "prdt_eng_name": row.name_en,
            "prdt_name": row.name,
            "natn_cd": row.currency[:2],
            "ovrs_excg_cd": row.exchange,
            "tr_crcy_cd": row.currency,
            "prdt_clsf_cd": code,
            "prdt_clsf_name": name,
            "lstg_stck_num": "100000000",
            "lstg_dt": "20100104",
            "ovrs_stck_tr_stop_dvsn_cd": "01",
            "lstg_abol_item_yn": "N",
        }
        return web.json_response(envelope(*OK, output=output))

    def price_detail(self, query: Any) -> web.Response:
        """HHDFS76200200 (§4.8b), the fields enrichment reads; unknown: an empty ``last``."""
        row = self._overseas_row(query.get("EXCD", ""), query.get("SYMB", ""))
        if row is None:
            return web.json_response(envelope(*OK, output={"rsym": "", "last": ""}))
        last, base, _ = self.market.overseas_quote(row.exchange, row.symbol, self._now().date())
        output = {
            "rsym": f"D{row.exchange}{row.symbol}",
            "last": f"{last:.4f}",
            "base": f"{base:.4f}",
            "curr": row.currency,
            "e_icod": detail_name(row.exchange, row.symbol, row.industry_code),
        }
        return web.json_response(envelope(*OK, output=output))

    def industry_members(self, query: Any) -> web.Response:
        """HHDFS76370000 (ref-KRX §3.2): the stocks listed under one industry code."""
        exchange, icod = query.get("EXCD", ""), query.get("ICOD", "").strip()
        rows = [
            {
                "symb": x.symbol,
                "excd": x.exchange,
                "name": x.name,
                "rsym": f"D{x.exchange}{x.symbol}",
            }
            for x in self.market.overseas.get(exchange.lower(), [])
            if x.security_type == "2"
            and listed_code(x.exchange, x.symbol, x.industry_code) == icod.zfill(3)[-3:]
        ]
        if not rows:
            raise KeyError(icod)
        return web.json_response(envelope(*OK, output1={"nrec": str(len(rows))}, output2=rows))

    def _overseas_row(self, exchange: str, symbol: str) -> Overseas | None:
        return next(
            (x for x in self.market.overseas.get(exchange.lower(), []) if x.symbol == symbol),
            None,
        )

    def industry_codes(self, query: Any) -> web.Response:
        """HHDFS76370100 (ref-KRX §3.2): the exchange's industry catalog, 3-digit codes.

        The codes are those the simulated overseas masters carry (`harness.sim.sectors`);
        an exchange KIS does not list answers rt_cd 7, "no data".
        """
        if query.get("EXCD", "") not in _PRODUCT_EXCHANGES.values():
            raise KeyError(query.get("EXCD", ""))
        rows = [{"icod": code, "name": name} for code, name, _ in CATALOG]
        return web.json_response(envelope(*OK, output1={"nrec": str(len(rows))}, output2=rows))


_DAY_END = dtime(23, 59, 59)  # a past session's last trade: its 15:30 match, or its 20:00's
_NXT_OPEN_HOUR = 8  # Nextrade's day: from its pre-market's open

# CTPF1702R product type code -> exchange code (§4.9), as the simulator reads it.
_PRODUCT_EXCHANGES = {
    "512": "NAS", "513": "NYS", "529": "AMS", "515": "TSE", "501": "HKS", "507": "HNX",
    "508": "HSX", "551": "SHS", "552": "SZS",
}  # fmt: skip


def _date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


_Handler = Callable[[Quotes, Any], web.Response]

_ROUTES: dict[tuple[str, str], _Handler] = {
    ("domestic-stock/v1/quotations/inquire-price", "FHKST01010100"): Quotes.inquire_price,
    ("domestic-stock/v1/quotations/inquire-time-itemchartprice", "FHKST03010200"):
        Quotes.minute_bars_today,
    ("domestic-stock/v1/quotations/inquire-time-dailychartprice", "FHKST03010230"):
        Quotes.minute_bars_past,
    ("domestic-stock/v1/quotations/inquire-time-itemconclusion", "FHPST01060000"):
        Quotes.time_trades,
    ("domestic-stock/v1/quotations/inquire-daily-itemchartprice", "FHKST03010100"):
        Quotes.daily_chart,
    ("domestic-stock/v1/quotations/inquire-daily-price", "FHKST01010400"): Quotes.daily_price,
    ("etfetn/v1/quotations/inquire-price", "FHPST02400000"): Quotes.etf_price,
    ("etfetn/v1/quotations/nav-comparison-daily-trend", "FHPST02440200"): Quotes.etf_nav_daily,
    ("etfetn/v1/quotations/inquire-component-stock-price", "FHKST121600C0"):
        Quotes.etf_components,
    ("domestic-stock/v1/quotations/search-stock-info", "CTPF1002R"): Quotes.stock_info,
    ("domestic-stock/v1/quotations/investor-trend-estimate", "HHPTJ04160200"):
        Quotes.investor_estimate,
    ("domestic-stock/v1/quotations/investor-trade-by-stock-daily", "FHPTJ04160001"):
        Quotes.investor_flows,
    ("domestic-stock/v1/quotations/program-trade-by-stock-daily", "FHPPG04650201"):
        Quotes.program_trades_daily,
    ("domestic-stock/v1/quotations/inquire-vi-status", "FHPST01390000"): Quotes.vi_status,
    ("overseas-price/v1/quotations/price", "HHDFS00000300"): Quotes.overseas_price,
    ("overseas-price/v1/quotations/search-info", "CTPF1702R"): Quotes.overseas_info,
    ("overseas-price/v1/quotations/industry-price", "HHDFS76370100"): Quotes.industry_codes,
    ("overseas-price/v1/quotations/price-detail", "HHDFS76200200"): Quotes.price_detail,
    ("overseas-price/v1/quotations/industry-theme", "HHDFS76370000"): Quotes.industry_members,
}  # fmt: skip


def _per_trade(prints: list[Print]) -> list[tuple[Print, int]]:
    """A row per trade: each trade and its quantity, oldest first."""
    return [(p, p.qty) for p in prints]


def _per_second(prints: list[Print]) -> list[tuple[Print, int]]:
    """A row per second: its last trade and the second's quantity, oldest first."""
    rows: list[tuple[Print, int]] = []
    for p in prints:
        if rows and rows[-1][0].stamp == p.stamp:
            rows[-1] = (p, rows[-1][1] + p.qty)
        else:
            rows.append((p, p.qty))
    return rows


def _trade_row(last: Print, qty: int, prev_close: int, offset: int) -> dict[str, str]:
    """An FHPST01060000 row: the trade ``last`` (of ``qty`` shares), as its feed's record.

    askp and bidp the record's (`best_quotes`); tday_rltv the record's CTTR (100.00).
    """
    change = last.price - prev_close
    ask, bid = best_quotes(last.price)
    hours, minutes, seconds = last.stamp // 3600, last.stamp // 60 % 60, last.stamp % 60
    return {
        "stck_cntg_hour": f"{hours:02d}{minutes:02d}{seconds:02d}",
        "stck_prpr": str(last.price),
        "prdy_vrss": str(change),
        "prdy_vrss_sign": price_sign(last.price, prev_close),
        "prdy_ctrt": f"{change * 100 / prev_close:.2f}",
        "askp": str(ask),
        "bidp": str(bid),
        "tday_rltv": "100.00",
        "acml_vol": str(last.volume + offset),
        "cnqn": str(qty),
    }


def _bar_row(label: datetime, trades: list[tuple[float, int, int]], value: int) -> dict[str, str]:
    """A minute-bar row of ``trades`` (seconds, price, quantity) labelled ``label`` (KST).

    ``value`` is the day's traded value to the bar's end.
    """
    prices = [p for _, p, _ in trades]
    return {
        "stck_bsop_date": label.strftime("%Y%m%d"),
        "stck_cntg_hour": label.strftime("%H%M00"),
        "stck_prpr": str(prices[-1]),
        "stck_oprc": str(prices[0]),
        "stck_hgpr": str(max(prices)),
        "stck_lwpr": str(min(prices)),
        "cntg_vol": str(sum(q for _, _, q in trades)),
        "acml_tr_pbmn": str(value),
    }
