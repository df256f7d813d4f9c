"""How KIS counts a session's 41 registrations: one per TR and symbol, or one per symbol.

Track B spends a session's 41 in registrations, one per TR and symbol: a Nextrade name's
KRX and Nextrade trades are two, a trade feed and its book two. KIS's material states the 41
and not what it counts. The probe registers KRX's trades and book (H0STCNT0 and H0STASP0,
which paper accounts have too) for `PROBE_SYMBOLS`, 42 registrations over 21 symbols, one at
a time, each answered before the next, and counts how many KIS holds before it answers
OPSP0008 (MAX SUBSCRIBE OVER). Every one it held is released before the session closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from observer.errors import KisError
from observer.kis.credentials import Secret
from observer.kis.feeds import feed_of
from observer.kis.keepalive import PingpongAnswer, answer_pingpong
from observer.kis.parse import ControlMessage, is_data_frame, parse_control
from observer.kis.realtime import BOOK_TRS, TRADE_TRS
from observer.kis.registrations import MAX_REGISTRATIONS, message
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report

__all__ = ["ITEM", "PROBE_SYMBOLS", "Counted", "count_registrations", "counting_finding"]

ITEM = "registration count"
FULL = "OPSP0008"  # MAX SUBSCRIBE OVER
IN_USE = "OPSP8996"  # ALREADY IN USE appkey: the key's other session is still open
# Twenty-one of KOSPI's largest stocks, listed for years: twice as many registrations as
# symbols, one more than a session holds if KIS counts each TR and symbol.
PROBE_SYMBOLS = (
    "005930", "000660", "373220", "207940", "005380", "000270", "068270", "105560", "055550",
    "012450", "329180", "034020", "028260", "035420", "005490", "032830", "012330", "086790",
    "015760", "006400", "035720",
)  # fmt: skip
_TRS = (TRADE_TRS["KRX"], BOOK_TRS["KRX"])
_ANSWER_S = 10.0  # wall seconds an answer may take
# The check's own session before this one may still count as open for a moment: tried again
# this many times, this far apart (wall seconds).
_IN_USE_TRIES, _IN_USE_PAUSE_S = 3, 2.0


@dataclass
class Counted:
    """What the probe saw: how many KIS held, and where it stopped."""

    held: int = 0
    full_at: int | None = None  # the attempt (1-based) KIS answered OPSP0008
    refused: str = ""  # another refusal: "tr_id tr_key: msg_cd"
    refused_text: str = ""  # ... and its msg1
    failed: str = ""  # no session, or one that ended or went quiet


def _message(key: Secret, tr_type: str, tr_id: str, symbol: str) -> str:
    """A registration ("1") or release ("2"), as `observer.kis.stream` sends them."""
    return message(feed_of(tr_id, symbol), key.reveal(), register=tr_type == "1")


async def _answer(
    ws: ClientConnection, tr_id: str, symbol: str, pingpong: PingpongAnswer
) -> ControlMessage:
    """KIS's answer to the registration or release of (``tr_id``, ``symbol``).

    PINGPONGs are answered on the way, data frames passed over. TimeoutError past
    `_ANSWER_S`.
    """
    async with asyncio.timeout(_ANSWER_S):
        while True:
            message = await ws.recv()
            text = message if isinstance(message, str) else message.decode(errors="replace")
            if is_data_frame(text):
                continue
            with contextlib.suppress(KisError):
                control = parse_control(text)
                if control.is_pingpong:
                    await answer_pingpong(ws, text, pingpong)
                elif control.tr_key in (symbol, ""):  # "": the session's, not a symbol's
                    return control


async def count_registrations(
    ws_url: str,
    key: Secret,
    pingpong: PingpongAnswer = "both",
    symbols: tuple[str, ...] = PROBE_SYMBOLS,
) -> Counted:
    """Register both of `_TRS` for each of ``symbols`` until KIS answers OPSP0008; release.

    A session refused because the key's previous one still counts (OPSP8996) is tried again.
    Never raises for what KIS does: a refused connection, an early close or a silence is in
    the result.
    """
    for _ in range(_IN_USE_TRIES - 1):
        counted = await _probe(ws_url, key, pingpong, symbols)
        if not counted.refused.endswith(f": {IN_USE}"):
            return counted
        await asyncio.sleep(_IN_USE_PAUSE_S)
    return await _probe(ws_url, key, pingpong, symbols)


async def _probe(
    ws_url: str, key: Secret, pingpong: PingpongAnswer, symbols: tuple[str, ...]
) -> Counted:
    counted = Counted()
    attempts = [(tr_id, symbol) for tr_id in _TRS for symbol in symbols]
    held: list[tuple[str, str]] = []
    try:
        async with connect(ws_url, ping_interval=None, open_timeout=10, close_timeout=2) as ws:
            try:
                for n, (tr_id, symbol) in enumerate(attempts, start=1):
                    await ws.send(_message(key, "1", tr_id, symbol))
                    answer = await _answer(ws, tr_id, symbol, pingpong)
                    if answer.rt_cd == "0":
                        held.append((tr_id, symbol))
                    elif answer.msg_cd == FULL:
                        counted.full_at = n
                        break
                    else:
                        counted.refused = f"{tr_id} {symbol}: {answer.msg_cd}"
                        counted.refused_text = answer.msg1
                        break
            finally:
                counted.held = len(held)
                for tr_id, symbol in held:  # KIS's count is the session's: released anyway
                    await ws.send(_message(key, "2", tr_id, symbol))
                    with contextlib.suppress(TimeoutError):
                        await _answer(ws, tr_id, symbol, pingpong)
    except TimeoutError:
        counted.failed = f"no answer within {_ANSWER_S:.0f} s"
    except ConnectionClosed as exc:
        counted.failed = f"the session closed (code {exc.rcvd.code if exc.rcvd else 'none'})"
    except (OSError, WebSocketException) as exc:
        counted.failed = f"could not connect: {type(exc).__name__}"
    return counted


def counting_finding(counted: Counted, report: Report, limit: int = MAX_REGISTRATIONS) -> None:
    """What the count says of Track B's assumption: ``limit`` per session, each TR and symbol."""
    symbols = len(PROBE_SYMBOLS)
    if counted.failed or counted.refused:
        refused = f"{counted.refused} {counted.refused_text}".strip()
        why = counted.failed or f"a registration refused: {refused}"
        report.add(ITEM, NOT_MEASURED, f"{why} (after {counted.held} held)")
        return
    if counted.full_at == limit + 1:
        report.add(
            ITEM,
            OK,
            f"{limit} registrations held over {-(-limit // 2)} symbols, the next refused "
            f"({FULL}): KIS counts each TR and symbol, as Track B does",
        )
        return
    if counted.full_at is None:
        report.add(
            ITEM,
            MISMATCH,
            f"all {counted.held} registrations over {symbols} symbols held: KIS does not count "
            f"each TR and symbol against {limit}; Track B watches fewer symbols than it could",
        )
        return
    report.add(
        ITEM,
        MISMATCH,
        f"{FULL} after {counted.held} registrations: the session holds fewer than {limit}; "
        f"set [kis.stream] max_registrations = {counted.held}",
    )
