"""The simulator's real-time side: KIS's WebSocket, its registrations, pushes and cuts.

One session per app key (``OPSP8996``), 41 registrations per session (``OPSP0008``), JSON
``PINGPONG`` keep-alives; trades and books are pushed as their simulated time passes, several
records per frame, in the layout `SimConfig.realtime_layout` names (with
`SimConfig.realtime_extra_fields` more on every record): KRX's (H0STCNT0, H0STASP0),
Nextrade's (H0NXCNT0, H0NXASP0: `harness.sim.nextrade`) and the combined feed's (H0UNCNT0,
H0UNASP0: both venues' trades in time order); each venue's market-operation records and
program trading (`harness.sim.market_status`); KRX's auctions' expected matches
(`harness.sim.auction`). KRX's trades are its regular session's (09:00-15:30, session code
"2") and, from 2026-09-14, its after-market's (16:00-20:00, code "3", the day's volume and
value running on; `SimConfig.krx_after_market`), on KRX's feeds and the combined ones alike
(program trading: the regular session's alone). A paper account registers KRX's trades and
books alone. ``drop_websockets`` cuts every session like a network failure; the faults
`Realtime` takes refuse, halt, lock, cut, withhold and delay.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any

from aiohttp import WSMsgType, web

from harness.sim.auction import EXPECTED, expected_records
from harness.sim.brokers import BROKER_FEEDS, broker_record
from harness.sim.config import SimConfig, TickLoss
from harness.sim.gateway import Gateway
from harness.sim.market import BARS_PER_DAY, KST, Market, Tick, quote_at, tick_size
from harness.sim.market_status import PROGRAMS, STATUSES, program_record, status_records
from harness.sim.nextrade import DayTrades, krx_after_trades, krx_trades, span_at, venue_trades
from harness.sim.price_units import price_limits
from harness.sim.protocol import NS, price_sign
from harness.sim.tape import unsent, volume_to
from harness.sim.vi import VI_FEEDS, DayVis, vi_key_taken
from observer.calendar.clock import Clock

__all__ = ["Realtime", "best_quotes", "trade_ns"]

# The trade and book TRs of KRX, Nextrade and the combined feed; only KRX's are offered to
# paper accounts ("모의투자 미지원").
_TRADES = frozenset({"H0STCNT0", "H0NXCNT0", "H0UNCNT0"})
_BOOKS = frozenset({"H0STASP0", "H0NXASP0", "H0UNASP0"})
_PAPER_TRS = frozenset({"H0STCNT0", "H0STASP0"})
# Besides: each venue's market-operation records and program trading
# (`harness.sim.market_status`), and its brokers' trading (`harness.sim.brokers`).
_OFFERED = _TRADES | _BOOKS | STATUSES | PROGRAMS | EXPECTED | VI_FEEDS | BROKER_FEEDS


class Realtime:
    """The WebSocket endpoint and its live sessions.

    Parameters
    ----------
    market:
        The synthetic market streamed.
    clock:
        Simulated time: which ticks are due.
    config:
        Registration limit, keep-alive and push intervals.
    gateway:
        Whose approval keys are valid; its `Faults` say what to refuse, halt, lock, cut
        and withhold.

    The faults refuse a symbol's registrations with a given control code, halt a symbol
    (nothing is pushed while halted) and lock it at its upper price limit (every trade at the
    limit, sign ``1``); ``ws_down_until`` cuts one app key's sessions for a while;
    `Faults.tick_loss` withholds trade records with the session up (a silent loss: the trades
    still count in the minute bars and in the next record's ACML_VOL); `Faults.feed_delay`
    sends them late (what a released registration was still owed is never sent).
    """

    def __init__(
        self,
        market: Market,
        clock: Clock,
        config: SimConfig,
        gateway: Gateway,
    ) -> None:
        self.market = market
        self.clock = clock
        self.config = config
        self.gateway = gateway
        self.faults = gateway.faults
        self._sessions: dict[str, web.WebSocketResponse] = {}  # app key -> live session
        self.vis = DayVis(market)  # the whole market's VIs (`harness.sim.vi`)
        self.records_sent: defaultdict[str, int] = defaultdict(int)  # tr_id -> pushed records
        # tr_id -> registrations answered SUBSCRIBE SUCCESS, and released (UNSUBSCRIBE SUCCESS)
        self.registered: defaultdict[str, int] = defaultdict(int)
        self.released: defaultdict[str, int] = defaultdict(int)
        # (tr_id, tr_key) of each registration answered SUBSCRIBE SUCCESS, in the order answered
        self.registrations: list[tuple[str, str]] = []
        self.refused: defaultdict[str, int] = defaultdict(int)  # symbol -> refused by a fault
        self.records_withheld: defaultdict[str, int] = defaultdict(int)  # symbol -> trades
        self.pingpong_drops = 0  # sessions dropped for a PINGPONG not answered as accepted
        # PINGPONG answers heard, by kind ("pong" frames, "echo" texts)
        self.pingpong_answers: defaultdict[str, int] = defaultdict(int)
        # each session's PINGPONGs as sent (clock ns), in the order the sessions began pushing
        self.pingpongs_sent: list[list[int]] = []

    async def drop_websockets(self) -> int:
        """Close every live WebSocket session without a close handshake; return how many."""
        sessions = list(self._sessions.values())
        for ws in sessions:
            if ws._writer is not None:  # abort the transport like a network cut
                ws._writer.transport.abort()
        return len(sessions)

    async def cut(self, app_key: str) -> bool:
        """Cut ``app_key``'s live session like a network failure; False if it had none."""
        ws = self._sessions.get(app_key)
        if ws is None or ws._writer is None:
            return False
        ws._writer.transport.abort()
        return True

    def _down(self, app_key: str) -> bool:
        """True while the ``ws_down_until`` fault cuts this app key's sessions."""
        until = self.faults.ws_down_until.get(app_key)
        return until is not None and self.clock.now_ns() < until

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /``, ``/tryitout``: one session's registrations, answered as KIS does."""
        # No per-message deflate: on loopback it only costs CPU on both ends (KIS's own
        # server does not document it either).
        # Pong frames reach the loop below only without autoping (pings are answered there).
        pongs = self.config.pingpong_accepts == "pong"
        ws = web.WebSocketResponse(autoping=not pongs, compress=False)
        await ws.prepare(request)
        app_key: str | None = None
        held: dict[tuple[str, str], int] = {}  # (tr_id, tr_key) -> when it was registered
        pusher: asyncio.Task[None] | None = None
        keepalive = _Keepalive()
        try:
            async for message in ws:
                if message.type == WSMsgType.PING:
                    await ws.pong(message.data)
                    continue
                if message.type == WSMsgType.PONG:
                    self._answered(keepalive, "pong")
                    continue
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    body = json.loads(message.data)
                    header, data = body["header"], body.get("body", {}).get("input", {})
                except (ValueError, KeyError, AttributeError):
                    await ws.send_json(
                        _control(
                            "", "", "9", "OPSP9993", "JSON PARSING ERROR : invalid json format"
                        )
                    )
                    continue
                if header.get("tr_id") == "PINGPONG":
                    self._answered(keepalive, "echo")  # the client's echo of our keep-alive
                    continue
                tr_id, tr_key = data.get("tr_id", ""), data.get("tr_key", "")
                owner = self.gateway.approval_owner(header.get("approval_key", ""))
                if owner is None:
                    await ws.send_json(_control(tr_id, tr_key, "9", "OPSP9994", "INVALID appkey"))
                    continue
                if app_key is None:
                    if self._down(owner):  # the session fails once it says whose it is
                        if ws._writer is not None:
                            ws._writer.transport.abort()
                        break
                    if owner in self._sessions:
                        await ws.send_json(
                            _control("(null)", "", "9", "OPSP8996", "ALREADY IN USE appkey")
                        )
                        await ws.close()
                        break
                    app_key = owner
                    self._sessions[app_key] = ws
                    pusher = asyncio.create_task(self._push(ws, held, keepalive))
                pair = (tr_id, tr_key)
                if header.get("tr_type") == "2":
                    if pair in held and self.faults.unanswered_releases:
                        pass  # streamed on, never answered (`Faults.unanswered_releases`)
                    elif pair in held:
                        del held[pair]
                        self.released[tr_id] += 1
                        await ws.send_json(
                            _control(tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS")
                        )
                    else:
                        await ws.send_json(
                            _control(
                                tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)"
                            )
                        )
                elif tr_id not in _OFFERED or (self.config.paper and tr_id not in _PAPER_TRS):
                    # What KIS's paper host answers for a TR it lacks is UNCONFIRMED: here,
                    # as for a TR it does not know.
                    if self.config.paper and tr_id not in _PAPER_TRS:
                        self.gateway.paper_refused[tr_id] += 1
                    await ws.send_json(
                        _control(tr_id, tr_key, "9", "OPSP8991", "SUBSCRIBE ERROR : invalid tr_id")
                    )
                elif (
                    not vi_key_taken(self.config.vi_tr_key, tr_key, self.market)
                    if tr_id in VI_FEEDS
                    else tr_key not in self.market.listings
                ):
                    await ws.send_json(
                        _control(tr_id, tr_key, "9", "OPSP8992", "SUBSCRIBE ERROR : invalid tr_key")
                    )
                elif pair in held:
                    await ws.send_json(
                        _control(tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE")
                    )
                elif (code := self.faults.take_refusal(tr_key)) is not None:
                    self.refused[tr_key] += 1
                    text = _REFUSALS.get(code, "SUBSCRIBE ERROR")
                    await ws.send_json(_control(tr_id, tr_key, "9", code, text))
                elif self._full(held, tr_key):
                    await ws.send_json(
                        _control(tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER")
                    )
                else:
                    held[pair] = self.clock.now_ns()
                    self.registered[tr_id] += 1
                    self.registrations.append(pair)
                    answer = _control(tr_id, tr_key, "0", "OPSP0000", "SUBSCRIBE SUCCESS")
                    answer["body"]["output"] = {
                        "iv": secrets.token_hex(8),
                        "key": secrets.token_hex(16),
                    }
                    await ws.send_json(answer)
        finally:
            if pusher is not None:
                pusher.cancel()
            if app_key is not None and self._sessions.get(app_key) is ws:
                del self._sessions[app_key]
        return ws

    def _full(self, held: Mapping[tuple[str, str], int], tr_key: str) -> bool:
        """Whether a session holding ``held`` refuses one more registration of ``tr_key``.

        ``registrations_counted`` says what counts: each (TR, symbol), or each symbol (one
        already held then costs nothing more).
        """
        if self.config.registrations_counted == "feed":
            return len(held) >= self.config.max_registrations
        symbols = {key for _, key in held}
        return tr_key not in symbols and len(symbols) >= self.config.max_registrations

    def _answered(self, keepalive: _Keepalive, kind: str) -> None:
        """A PINGPONG answer of ``kind`` ("pong" or "echo") heard on a session."""
        self.pingpong_answers[kind] += 1
        if self.config.pingpong_accepts in ("any", kind):
            keepalive.since = None

    def _unanswered(self, keepalive: _Keepalive) -> bool:
        """Whether the session's PINGPONG went unanswered (as accepted) past its timeout."""
        if self.config.pingpong_accepts == "any" or keepalive.since is None:
            return False
        return time.monotonic() - keepalive.since > self.config.pingpong_timeout_s

    def _ping_due(self, now: int, keepalive: _Keepalive) -> bool:
        """Whether a PINGPONG is due: every ``pingpong_interval_s`` wall, else clock seconds."""
        interval = self.config.pingpong_interval_s
        if interval is not None:
            due = time.monotonic() >= keepalive.next_wall
            if due:
                keepalive.next_wall = time.monotonic() + interval
            return due
        if now < keepalive.next_clock:
            return False
        keepalive.next_clock = now + int(self.config.pingpong_s * NS)
        return True

    async def _push(
        self, ws: web.WebSocketResponse, held: dict[tuple[str, str], int], keepalive: _Keepalive
    ) -> None:
        """Send each registered symbol's trades (and books) as their simulated time passes.

        A registration's records start at its registration: under a feed delay, not at the
        delayed point the session's others have reached. A session that leaves a PINGPONG
        unanswered (`SimConfig.pingpong_accepts`) is dropped.
        """
        sent_until = self.clock.now_ns()
        self.pingpongs_sent.append(keepalive.sent)
        keepalive.next_clock = sent_until + int(self.config.pingpong_s * NS)
        if self.config.pingpong_interval_s is not None:
            keepalive.next_wall = time.monotonic() + self.config.pingpong_interval_s
        state: dict[tuple[str, str], _Running] = {}  # (tr_id, symbol) -> its day so far
        # (tr_id, symbol) -> the instant its running figures count trades to: a registration
        # made again after a release starts where no running does, and is read afresh
        covered: dict[tuple[str, str], int] = {}
        while not ws.closed:
            await asyncio.sleep(self.config.push_interval_s)
            if self._unanswered(keepalive):
                self.pingpong_drops += 1
                if ws._writer is not None:  # KIS closes it: the client sees the connection end
                    ws._writer.transport.abort()
                return
            now = self.clock.now_ns()
            upto = max(sent_until, now - self.faults.delay_ns(now))  # `Faults.feed_delay`
            # (frame, its registration or None, records)
            frames: list[tuple[str, tuple[str, str] | None, int]] = []
            runs: list[tuple[tuple[str, str], list[str]]] = []  # each registration's records
            for tr_id, symbol in sorted(held):
                await asyncio.sleep(0)  # REST answers wait for one symbol, not for them all
                if (tr_id, symbol) not in held:  # released meanwhile
                    continue
                after = max(sent_until, held[tr_id, symbol])
                if covered.get((tr_id, symbol), after) != after:
                    # released and registered again: the running figures missed the trades
                    # in between (the exchange's ACML_VOL did not)
                    state.pop((tr_id, symbol), None)
                records = self._records(tr_id, symbol, after, upto, state) if after < upto else []
                covered[tr_id, symbol] = max(after, upto)
                if records:
                    runs.append(((tr_id, symbol), records))
            if self.config.push_order == "time":
                runs = in_time_order(runs)
            for (tr_id, symbol), records in runs:
                for start in range(0, len(records), 10):  # several records per frame
                    chunk = records[start : start + 10]
                    frame = f"0|{tr_id}|{len(chunk):03d}|{'^'.join(self._garbled(tr_id, chunk))}"
                    frames.append((self._garbled_frame(frame), (tr_id, symbol), len(chunk)))
            sent_until = upto
            if self._ping_due(now, keepalive):
                if keepalive.since is None:
                    keepalive.since = time.monotonic()  # the oldest unanswered one counts
                stamp = datetime.fromtimestamp(now / NS, tz=KST).strftime("%Y%m%d%H%M%S")
                ping = json.dumps({"header": {"tr_id": "PINGPONG", "datetime": stamp}})
                frames.append((ping, None, 0))
                keepalive.sent.append(now)
            for frame, pair, count in frames:
                if _cut(ws):  # a dropped session's frames are not "sent"
                    return
                if pair is not None and pair not in held:
                    # Released while this round was sent: its confirmation has gone out, and
                    # nothing of it follows that (what a client reads to before it closes).
                    continue
                try:
                    await ws.send_str(frame)
                except (ConnectionResetError, RuntimeError):
                    return
                if pair is not None:
                    self.records_sent[pair[0]] += count

    def _garbled(self, tr_id: str, records: list[str]) -> list[str]:
        """The records, the first ``Faults.garbled_records`` trades unreadable (one field)."""
        if tr_id != "H0STCNT0" or not self.faults.garbled_records:
            return records
        garbled = []
        for record in records:
            if self.faults.garbled_records:
                self.faults.garbled_records -= 1
                fields = record.split("^")
                fields[_ACML_TR_PBMN] = "1e3"  # a cumulative value that is no integer
                record = "^".join(fields)
            garbled.append(record)
        return garbled

    def _garbled_frame(self, frame: str) -> str:
        """The frame, its record count unreadable while ``Faults.garbled_frames`` lasts."""
        if not self.faults.garbled_frames:
            return frame
        self.faults.garbled_frames -= 1
        enc, tr_id, _, payload = frame.split("|", 3)
        return f"{enc}|{tr_id}|x01|{payload}"

    def _records(
        self,
        tr_id: str,
        symbol: str,
        after_ns: int,
        until_ns: int,
        state: dict[tuple[str, str], _Running],
    ) -> list[str]:
        start = datetime.fromtimestamp(after_ns / NS, tz=KST)
        end = datetime.fromtimestamp(until_ns / NS, tz=KST)
        day = end.date()
        if start.date() != day or not self.market.calendar.is_session(day):
            return []
        if tr_id in STATUSES:
            return status_records(tr_id, symbol, start, end, self.faults, self.market)
        if tr_id in VI_FEEDS:  # `harness.sim.vi`: ``symbol`` is the key, a date or a symbol
            return self.vis.records(tr_id, symbol, start, end)
        if tr_id in EXPECTED:  # the auctions' expected matches (`harness.sim.auction`)
            path = self.market.day_path(symbol, day)
            tail = self._tail(tr_id, 0)
            nxt = self._nxt_day(symbol, day) if tr_id == "H0NXANC0" else None
            return [r + tail for r in expected_records(tr_id, symbol, path, start, end, nxt)]
        if tr_id not in ("H0STCNT0", "H0STASP0", "H0STPGM0", "H0STMBC0"):
            return self._venue_records(tr_id, symbol, start, end, state)
        losses = [
            loss for loss in self.faults.tick_loss if loss.end_ns > after_ns and tr_id in loss.feeds
        ]
        records = self._krx_records(tr_id, symbol, start, end, state, losses)
        if tr_id in ("H0STCNT0", "H0STASP0") and self.config.krx_after_market:
            records += self._after_records(tr_id, symbol, start, end, state, losses)
        return records

    def _krx_running(
        self, tr_id: str, symbol: str, start: datetime, state: dict[tuple[str, str], _Running]
    ) -> _Running:
        """KRX's day of ``symbol`` to ``start`` as the feed ``tr_id`` reports it (kept).

        Its volume is the exchange's count of the trades it made to ``start``, FHPST01060000's
        (`harness.sim.tape.volume_to`): the same ACML_VOL whenever registered (unless
        `SimConfig.acml_vol_from` says otherwise).
        """
        running = state.get((tr_id, symbol))
        if running is None:
            q = quote_at(self.market, symbol, start, after_market=self.config.krx_after_market)
            # The quote counts the day's path, trades a halt or a quiet minute kept from
            # happening too: the volume is the record's (the unsent trades on H0STCNT0's).
            volume = volume_to(
                self.market,
                self.faults,
                self.config,
                "J",
                symbol,
                start,
                unsent_counted=tr_id == "H0STCNT0",
            )
            running = state[tr_id, symbol] = _Running(
                q.prev_close, q.open, q.high, q.low, self._from(volume), q.value
            )
        return running

    def _from(self, volume: int) -> int:
        """A registration's first ACML_VOL before its trades: the day's ``volume``, or 0."""
        return 0 if self.config.acml_vol_from == "registration" else volume

    def _krx_records(
        self,
        tr_id: str,
        symbol: str,
        start: datetime,
        end: datetime,
        state: dict[tuple[str, str], _Running],
        losses: list[TickLoss],
    ) -> list[str]:
        """KRX's regular session's records of ``symbol`` in (start, end] (to 15:30)."""
        day = end.date()
        hours = self.market.hours(day)
        first = max(0, hours.bar(start.hour * 60 + start.minute))
        last = min(BARS_PER_DAY - 1, hours.bar(end.hour * 60 + end.minute))
        if last < 0 or first >= BARS_PER_DAY:
            return []
        running = self._krx_running(tr_id, symbol, start, state)
        path = self.market.day_path(symbol, day)
        faults = self.faults
        halts, locks = symbol in faults.halts, symbol in faults.limit_locks
        upper = price_limits(running.prev_close)[1]
        records = []
        quiet = self.faults.no_trades.get(symbol, set())
        for index in range(first, last + 1):
            bar = path.bar_start(index)
            if f"{bar:%H%M}" in quiet:  # a minute without trades (`Faults.no_trades`)
                continue
            ticks = self.market.ticks(symbol, day, index)
            # Only the ticks after ``start`` up to ``end`` (a busy minute holds 400 of them):
            # seconds into the bar, compared as `quote_at` does.
            after = bisect.bisect_right(ticks, (start - bar).total_seconds(), key=_second)
            upto = bisect.bisect_right(ticks, (end - bar).total_seconds(), key=_second)
            for nth, tick in enumerate(ticks[after:upto], start=after):
                at = bar + timedelta(seconds=tick.second)
                price = tick.price
                if halts or locks:
                    at_ns = trade_ns(bar, tick)  # as `harness.sim.nextrade.krx_regular_trades`
                    if halts and faults.halted(symbol, at_ns):
                        continue  # no trades while halted
                    if locks and faults.locked(symbol, at_ns):
                        price = upper
                running.add(price, tick.qty)
                if tr_id == "H0STCNT0":
                    # a trade the feed never sends, counted (`SimConfig.volume_chain`): the
                    # exchange's, so counted whether or not this record is withheld
                    running.volume += unsent(self.config.volume_chain, nth)
                if losses and _withheld(losses, symbol, bar, tick, nth):
                    self.records_withheld[symbol] += 1
                    continue
                hhmmss = at.strftime("%H%M%S")
                if tr_id == "H0STCNT0":
                    record = _trade_record(symbol, hhmmss, day, price, tick.qty, running)
                elif tr_id == "H0STASP0":
                    record = _book_record(symbol, hhmmss, price, running)
                elif nth != len(ticks) - 1:  # program trading, brokers: a minute's last trade
                    continue
                elif tr_id in BROKER_FEEDS:
                    record = broker_record(
                        symbol, running.volume, tick.qty, self.config.broker_unfilled
                    )
                else:
                    record = program_record(symbol, hhmmss, price, running.volume)
                records.append(record + self._tail(tr_id, price))
        return records

    def _after_records(
        self,
        tr_id: str,
        symbol: str,
        start: datetime,
        end: datetime,
        state: dict[tuple[str, str], _Running],
        losses: list[TickLoss],
    ) -> list[str]:
        """KRX's after-market records (H0STCNT0, H0STASP0) of ``symbol`` in (start, end].

        Its trades as KRX's feed has them (`harness.sim.nextrade.krx_after_trades`), the
        session code `SimConfig.krx_after_market_code` ("3"), the day's figures running on
        from the regular session's.
        """
        day = end.date()
        span = self.market.hours(day).krx_after
        first = max(start.hour * 60 + start.minute, span.start_s // 60)
        last = min(end.hour * 60 + end.minute, span.end_s // 60 - 1)
        if first > last or self.market.krx_after_day(symbol, day) is None:
            return []
        running = self._krx_running(tr_id, symbol, start, state)
        midnight = datetime(day.year, day.month, day.day, tzinfo=KST)
        code = self.config.krx_after_market_code  # the span's ("3") by default
        records = []
        for minute in range(first, last + 1):
            bar = midnight + timedelta(minutes=minute)
            trades = krx_after_trades(self.market, self.faults, symbol, day, minute)
            # Only the trades after ``start`` up to ``end``, as the regular session's.
            after = bisect.bisect_right(trades, (start - bar).total_seconds(), key=_first)
            upto = bisect.bisect_right(trades, (end - bar).total_seconds(), key=_first)
            for nth, (second, price, qty) in enumerate(trades[after:upto], start=after):
                running.add(price, qty)
                if losses and _withheld(losses, symbol, bar, Tick(second, price, qty), nth):
                    self.records_withheld[symbol] += 1
                    continue
                hhmmss = (bar + timedelta(seconds=second)).strftime("%H%M%S")
                if tr_id == "H0STCNT0":
                    record = _trade_record(symbol, hhmmss, day, price, qty, running)
                else:
                    record = _book_record(symbol, hhmmss, price, running)
                records.append(record + self._tail(tr_id, price, code))
        return records

    def _nxt_day(self, symbol: str, day: date) -> DayTrades | None:
        """``symbol``'s Nextrade day, if Nextrade trades it that day (`Faults.nxt`)."""
        listing = self.market.listings[symbol]
        selected = self.market.nxt_eligible(day)
        eligible, halted = self.faults.nxt.standing(symbol, selected, listing.suspended)
        return self.market.nxt_day(symbol, day) if eligible and not halted else None

    def _venue_records(
        self,
        tr_id: str,
        symbol: str,
        start: datetime,
        end: datetime,
        state: dict[tuple[str, str], _Running],
    ) -> list[str]:
        """Nextrade's records of ``symbol`` in (start, end], or the combined feed's.

        The combined feed sends KRX's trades and Nextrade's in time order
        (`harness.sim.nextrade.venue_trades`). Nextrade's sends none for a name it does not
        trade that day or halts (whether KIS refuses such a registration is UNCONFIRMED:
        here it is registered, and silent).
        """
        day = end.date()
        combined = tr_id in ("H0UNCNT0", "H0UNASP0", "H0UNPGM0", "H0UNMBC0")
        after_market = self.config.krx_after_market
        midnight = datetime(day.year, day.month, day.day, tzinfo=KST)
        running = state.get((tr_id, symbol))
        if running is None:
            running = state[tr_id, symbol] = self._running_before(symbol, start, combined)
        after_ns = int(start.timestamp() * NS)
        losses = [
            loss for loss in self.faults.tick_loss if loss.end_ns > after_ns and tr_id in loss.feeds
        ]
        records = []
        for minute in range(start.hour * 60 + start.minute, end.hour * 60 + end.minute + 1):
            bar = midnight + timedelta(minutes=minute)
            after, upto = (start - bar).total_seconds(), (end - bar).total_seconds()
            trades = venue_trades(
                self.market, self.faults, symbol, day, minute, combined, after_market
            )
            closing = self._closing_trades(symbol, day, minute)
            krx = self._krx_codes(symbol, day, minute) if combined else {}
            for nth, (second, price, qty) in enumerate(trades):
                if not after < second <= upto:
                    continue
                running.add(price, qty)
                if losses and _withheld(losses, symbol, bar, Tick(second, price, qty), nth):
                    self.records_withheld[symbol] += 1
                    continue
                hhmmss = (bar + timedelta(seconds=second)).strftime("%H%M%S")
                if tr_id in _TRADES:
                    record = _trade_record(symbol, hhmmss, day, price, qty, running)
                elif tr_id in _BOOKS:
                    record = _book_record(symbol, hhmmss, price, running)
                elif nth != len(trades) - 1:  # program trading, brokers: a minute's last trade
                    continue
                elif tr_id in BROKER_FEEDS:
                    record = broker_record(symbol, running.volume, qty, self.config.broker_unfilled)
                else:
                    record = program_record(symbol, hhmmss, price, running.volume)
                if (second, price, qty) in closing:
                    code = self.config.nxt_closing_price_code
                elif (second, price, qty) in krx:
                    code = krx[second, price, qty]
                else:
                    span = span_at(minute * 60 + second, self.market.hours(day).nxt)
                    code = span.market_code if span else "2"
                records.append(record + self._tail(tr_id, price, code))
        return records

    def _krx_codes(self, symbol: str, day: date, minute: int) -> dict[tuple[float, int, int], str]:
        """KRX's trades of ``minute`` on the combined feed, each with its session code there.

        The code of the venue that printed it, as KRX's own feed sends it: "2" in the regular
        session (its 15:30 match too, within Nextrade's after-market's auction), else
        `SimConfig.krx_after_market_code`; never Nextrade's session at that instant.
        """
        after = minute * 60 >= self.market.hours(day).krx_after.start_s
        code = self.config.krx_after_market_code if after else "2"
        krx = krx_trades(
            self.market, self.faults, symbol, day, minute, self.config.krx_after_market
        )
        return dict.fromkeys(krx, code)

    def _closing_trades(self, symbol: str, day: date, minute: int) -> set[tuple[float, int, int]]:
        """Nextrade's 종가매매 trades of ``minute`` (`Market.nxt_closing_day`), to code apart."""
        span = self.market.hours(day).closing_price
        if not span.start_s // 60 <= minute < span.end_s // 60:
            return set()
        closing = self.market.nxt_closing_day(symbol, day)
        return set() if closing is None else set(closing.minute(minute))

    def _running_before(self, symbol: str, start: datetime, combined: bool) -> _Running:
        """Nextrade's day before ``start`` (with KRX's, for the combined feed).

        Its volume the exchanges' count of the trades they made to ``start``, as
        FHPST01060000's (`harness.sim.tape.volume_to`), or 0 (`SimConfig.acml_vol_from`).
        """
        day = start.date()
        path = self.market.day_path(symbol, day)
        running = _Running(path.prev_close, 0, 0, 0, 0, 0)
        if combined:
            q = quote_at(self.market, symbol, start, after_market=self.config.krx_after_market)
            # KRX's volume the record's, not the quote's (which counts a halt's trades too);
            # Nextrade's added below, trade by trade
            volume = volume_to(
                self.market, self.faults, self.config, "J", symbol, start, unsent_counted=False
            )
            running = _Running(q.prev_close, q.open, q.high, q.low, volume, q.value)
        midnight = datetime(day.year, day.month, day.day, tzinfo=KST)
        for minute in range(8 * 60, start.hour * 60 + start.minute + 1):
            before = (start - (midnight + timedelta(minutes=minute))).total_seconds()
            for second, price, qty in venue_trades(
                self.market, self.faults, symbol, day, minute, combined=False
            ):
                if second <= before:
                    running.add(price, qty)
        running.volume = self._from(running.volume)
        return running

    def _tail(self, tr_id: str, price: int, market_code: str = "2") -> str:
        """What the configured layout appends to a 2026-05 record, with its extra fields.

        A book record is H0STASP0's 59 fields, for Nextrade's and the combined book too.
        """
        if tr_id in PROGRAMS or tr_id in BROKER_FEEDS:
            return ""  # one layout in every export
        fields: list[str] = []
        newer = self.config.realtime_layout == "2026-09"
        if tr_id in EXPECTED:  # Nextrade's and the combined VI_STND_PRC; 2026-09's dummy
            fields = ["0"] * ((tr_id != "H0STANC0") + newer)
            fields += ["0"] * self.config.realtime_extra_fields
            return "^" + "^".join(fields) if fields else ""
        mid = _newer_book(price)[:3]
        if tr_id in _TRADES:
            fields = [market_code] if newer else []
        elif tr_id == "H0STASP0":
            fields = [*mid, market_code] if newer else []
        elif tr_id == "H0NXASP0":  # 2026-09: KRX's mid-point gone from the middle
            fields = mid if newer else [*mid, *mid]
        else:  # H0UNASP0: 2026-09 appends the expected price's venue (KRX's here)
            fields = [*mid, *mid, "1"] if newer else [*mid, *mid]
        fields = fields + ["0"] * self.config.realtime_extra_fields
        return "^" + "^".join(fields) if fields else ""


def trade_ns(bar: datetime, tick: Tick) -> int:
    """The instant of a trade (UTC ns): its bar's start plus its seconds into the bar."""
    return int(bar.timestamp()) * NS + int(tick.second * NS)


def _withheld(losses: list[TickLoss], symbol: str, bar: datetime, tick: Tick, nth: int) -> bool:
    at_ns = trade_ns(bar, tick)
    return any(loss.withholds(symbol, at_ns, nth) for loss in losses)


def _cut(ws: web.WebSocketResponse) -> bool:
    """True once the session is closed or its connection aborted (`drop_websockets`)."""
    writer = ws._writer
    return ws.closed or writer is None or writer.transport.is_closing()


@dataclass(slots=True)
class _Keepalive:
    """One session's PINGPONGs: when the next is due, since when one is unanswered."""

    next_clock: int = 0  # simulated ns
    next_wall: float = 0.0  # time.monotonic()
    since: float | None = None  # the unanswered PINGPONG's wall time; None: all answered
    sent: list[int] = field(default_factory=list)  # the PINGPONGs' clock ns, as sent


@dataclass(slots=True)
class _Running:
    """A symbol's day so far, as the real-time stream reports it."""

    prev_close: int
    open: int
    high: int
    low: int
    volume: int
    value: int

    def add(self, price: int, qty: int) -> None:
        self.open = self.open or price
        self.high = max(self.high, price)
        self.low = min(self.low, price) if self.low else price
        self.volume += qty
        self.value += price * qty


_ACML_TR_PBMN = 14  # the cumulative traded value's field in a trade record


def _trade_record(symbol: str, hhmmss: str, day: date, price: int, qty: int, r: _Running) -> str:
    """One H0STCNT0 record: the 2026-05 layout's 46 fields in the order of §5.6."""
    change = price - r.prev_close
    ask, bid = best_quotes(price)
    fields = [
        symbol,
        hhmmss,
        str(price),
        price_sign(price, r.prev_close),
        str(change),
        f"{change * 100 / r.prev_close:.2f}",
        f"{r.value / max(r.volume, 1):.2f}",
        str(r.open),
        str(r.high),
        str(r.low),
        str(ask),
        str(bid),
        str(qty),
        str(r.volume),
        str(r.value),
        "0",
        "0",
        "0",
        "100.00",
        "0",
        "0",
        "1",
        "50.00",
        "100.00",
        "090000",
        "3",
        "0",
        "090000",
        "3",
        "0",
        "090000",
        "3",
        "0",
        day.strftime("%Y%m%d"),
        "20",
        "N",
        "100",
        "100",
        "10000",
        "10000",
        "0.10",
        "0",
        "0.00",
        "0",
        "0",
        "0",
    ]
    return "^".join(fields)


def best_quotes(price: int) -> tuple[int, int]:
    """The best ask and bid a trade record at ``price`` carries (ASKP1, BIDP1).

    The tick at or below the price and the one above (a mid-point trade's: either side of it).
    """
    unit = tick_size(price)
    bid = price // unit * unit
    return bid + unit, bid


def _book_record(symbol: str, hhmmss: str, price: int, r: _Running) -> str:
    """One H0STASP0 record: the 2026-05 layout's 59 fields in the order of §5.7."""
    unit = tick_size(price)
    asks = [str(price + unit * (i + 1)) for i in range(10)]
    bids = [str(max(unit, price - unit * i)) for i in range(10)]
    qtys = [str(100 * (i + 1)) for i in range(10)]
    tail = [
        "5500",
        "5500",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "3",
        "0.00",
        str(r.volume),
        "0",
        "0",
        "0",
        "0",
        "0",
    ]
    return "^".join([symbol, hhmmss, "0", *asks, *bids, *qtys, *qtys, *tail])


def _newer_book(price: int) -> list[str]:
    """The 2026-09 book's fields of a book whose best bid is ``price``.

    MID_PRC (between the best ask and bid: half a tick above the price), MIDP_TOTAL_RSQN,
    MIDP_CLS_CODE and MARKET_CLS_CODE.
    """
    unit = tick_size(price)
    mid = f"{price + unit // 2}" if unit % 2 == 0 else f"{price + unit // 2}.5"
    return [mid, "300", "1", "2"]


# msg1 of the refusals a fault may inject (shared/reference/kis-api.md §5.3).
_REFUSALS = {
    "OPSP0007": "SUBSCRIBE INTERNAL ERROR",
    "OPSP0008": "MAX SUBSCRIBE OVER",
    "OPSP0009": "SUBSCRIBE ERROR : mci send failed",
    "OPSP8991": "SUBSCRIBE ERROR : invalid tr_id",
    "OPSP8992": "SUBSCRIBE ERROR : invalid tr_key",
    "OPSP8999": "resource not available(ALLOC_CALL_PARAM)",
}


def _control(tr_id: str, tr_key: str, rt_cd: str, msg_cd: str, msg1: str) -> dict[str, Any]:
    return {
        "header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"},
        "body": {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1},
    }


_second = attrgetter("second")
_first = itemgetter(0)


def in_time_order(
    runs: list[tuple[tuple[str, str], list[str]]],
) -> list[tuple[tuple[str, str], list[str]]]:
    """A push's records (each registration's, in order) merged in the order they were stamped.

    A record's stamp is its second field (HHMMSS) on the trade, book, program-trading and
    expected-match feeds; market-status and VI records carry none there and go first. Stamps
    that tie keep the registrations' order, and each registration's records keep theirs
    whatever their stamps (a record is placed by the latest stamp of its registration so
    far: a trade never overtakes its predecessor, whose cumulative volume it continues).
    Consecutive records of one registration stay together (a frame holds one TR's records).
    """
    keyed = []
    for n, (pair, records) in enumerate(runs):
        latest = ""
        for i, record in enumerate(records):
            latest = max(latest, _stamp(pair[0], record))
            keyed.append((latest, n, i, pair, record))
    keyed.sort(key=itemgetter(0, 1, 2))
    merged: list[tuple[tuple[str, str], list[str]]] = []
    for _, _, _, pair, record in keyed:
        if merged and merged[-1][0] == pair:
            merged[-1][1].append(record)
        else:
            merged.append((pair, [record]))
    return merged


def _stamp(tr_id: str, record: str) -> str:
    """The record's HHMMSS stamp; "" on a feed whose records hold none in their second field."""
    if tr_id in STATUSES or tr_id in VI_FEEDS:
        return ""
    return record.split("^", 2)[1]
