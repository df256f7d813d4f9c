"""One WebSocket session, subscribed to a symbol's trades and books, watched as it is.

A real account's session registers each venue's trade and book TR (KRX's, Nextrade's and the
combined feed's: `SUBSCRIBED`) and its market-operation, program-trading, expected-match,
VI and brokers' TRs (`SIDE_FEEDS`), and may register a TR under another key too (``keyed``:
a VI TR under the business date); a paper account's KRX's trades and book alone
(`PAPER_SUBSCRIBED`), the only ones KIS's paper host offers.

Frames are read raw: the record width is counted before the client's decoder cuts or refuses
a record, and each record is then decoded by that decoder (`RealtimeDecoder`), so that the
check validates what the product would store. PINGPONGs are answered as the product is
configured to answer them (`observer.kis.keepalive`) and timed; a session KIS closes early is
a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from observer.calendar.clock import Clock
from observer.errors import KisError
from observer.kis.credentials import Secret
from observer.kis.feeds import TR_IDS, feed_of
from observer.kis.keepalive import PingpongAnswer, answer_pingpong
from observer.kis.parse import ControlMessage, is_data_frame, parse_control
from observer.kis.realtime import (
    BOOK_TRS,
    EXPECTED_TRS,
    PROGRAM_TRS,
    STATUS_TRS,
    TRADE_TRS,
    VI_TRS,
    RealtimeDecoder,
)
from observer.kis.registrations import message
from observer.kis.schemas import H0STMBC0_FIELDS
from observer.kis_check.chain import Chain
from observer.kis_check.layouts import record_width
from observer.kis_check.minute_label import LiveTrade
from observer.kis_check.session_codes import Coded

__all__ = [
    "PAPER_SUBSCRIBED",
    "SIDE_FEEDS",
    "SUBSCRIBED",
    "SessionSeen",
    "unfilled_ranks",
    "watch_session",
]

# A symbol's trades and book on each venue (six registrations of the 41).
SUBSCRIBED = (*TRADE_TRS.values(), *BOOK_TRS.values())
# Beside them on a real account, what KIS keeps no history of: each venue's market operation
# (the combined one's names no symbol), program trading, auctions' expected matches, VIs and
# brokers' trading (whose width KIS's samples alone give).
SIDE_FEEDS = (
    *STATUS_TRS.values(),
    *PROGRAM_TRS.values(),
    *EXPECTED_TRS.values(),
    *VI_TRS.values(),
    *TR_IDS["brokers"].values(),
)
PAPER_SUBSCRIBED = (TRADE_TRS["KRX"], BOOK_TRS["KRX"])
_BROKER_TRS = frozenset(TR_IDS["brokers"].values())
# Each brokers' rank's number and quantity fields (`unfilled_ranks`).
_RANKS = tuple(
    (H0STMBC0_FIELDS.index(f"{no}{rank}"), H0STMBC0_FIELDS.index(f"{qty}{rank}"))
    for no, qty in (("SELN_MBCR_NO", "TOTAL_SELN_QTY"), ("SHNU_MBCR_NO", "TOTAL_SHNU_QTY"))
    for rank in range(1, 6)
)
_NS = 1_000_000_000
_KEPT_ERRORS = 3  # refused records named in the report, per TR


@dataclass
class SessionSeen:
    """What one session showed; the frames themselves are not kept."""

    opened: bool = False
    widths: dict[str, Counter[int]] = field(default_factory=dict)  # tr_id -> width -> records
    refused: dict[str, list[str]] = field(default_factory=dict)  # tr_id -> decoder errors
    refused_count: Counter[str] = field(default_factory=Counter)
    # tr_id (or "tr_id tr_key" for a ``keyed`` registration) -> msg_cd (rt_cd 0: "")
    answers: dict[str, str] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)  # the same -> "msg_cd msg1"
    vi_symbols: dict[str, set[str]] = field(default_factory=dict)  # VI TR -> stocks heard
    pingpongs_ns: list[int] = field(default_factory=list)  # clock time of each PINGPONG
    opened_ns: int = 0
    closed_after_s: float | None = None  # wall seconds: KIS ended the session this early
    close_reason: str = ""
    encrypted: int = 0
    trades: list[LiveTrade] = field(default_factory=list)  # KRX's
    chains: dict[str, Chain] = field(default_factory=dict)  # trade TR -> its ACML_VOL chain
    coded: list[Coded] = field(default_factory=list)  # each trade's MARKET_CLS_CODE, if sent
    # brokers' TR -> how its ranks came: "empty", "zeros" (no broker), "untraded" (a broker
    # ranked with 0 shares) or "filled" (`unfilled_ranks`)
    ranks: dict[str, Counter[str]] = field(default_factory=dict)


def _subscription(key: Secret, tr_id: str, symbol: str) -> str:
    """A registration message, as `observer.kis.stream` sends it."""
    return message(feed_of(tr_id, symbol), key.reveal(), register=True)


async def watch_session(
    ws_url: str,
    key: Secret,
    symbol: str,
    seconds: float,
    clock: Clock,
    answer: PingpongAnswer = "both",
    subscribed: Sequence[str] = SUBSCRIBED,
    keyed: Sequence[tuple[str, str]] = (),
) -> SessionSeen:
    """Open a session, register ``subscribed`` for ``symbol``, and watch it ``seconds`` (wall).

    The seconds count from the opening: connecting is not watching.

    ``keyed`` registers (TR, key) pairs besides: their answers are under "TR key".

    PINGPONGs are answered as ``answer`` says, as Track B's stream answers them.

    Never raises for what KIS does: a refused connection or an early close is in the result.
    """
    seen = SessionSeen()
    decoder = RealtimeDecoder("check")
    started = time.monotonic()
    try:
        async with connect(ws_url, ping_interval=None, open_timeout=10, close_timeout=2) as ws:
            seen.opened, seen.opened_ns = True, clock.now_ns()
            started = time.monotonic()
            deadline = started + seconds
            for tr_id in subscribed:
                await ws.send(_subscription(key, tr_id, symbol))
            for tr_id, tr_key in keyed:
                await ws.send(_subscription(key, tr_id, tr_key))
            while (left := deadline - time.monotonic()) > 0:
                try:
                    async with asyncio.timeout(left):
                        message = await ws.recv()
                except TimeoutError:
                    break
                text = message if isinstance(message, str) else message.decode(errors="replace")
                if is_data_frame(text):
                    _data(seen, decoder, text, clock.now_ns())
                    continue
                with contextlib.suppress(KisError):
                    control = parse_control(text)
                    if control.is_pingpong:
                        seen.pingpongs_ns.append(clock.now_ns())
                        await answer_pingpong(ws, text, answer)
                    elif control.rt_cd == "0":
                        seen.answers.setdefault(_answered(control, keyed), control.msg_cd)
                    elif control.tr_id or control.msg_cd:
                        seen.refusals[_answered(control, keyed) or "session"] = (
                            f"{control.msg_cd} {control.msg1}".strip()
                        )
    except ConnectionClosed as exc:
        seen.closed_after_s = time.monotonic() - started
        seen.close_reason = f"closed (code {exc.rcvd.code if exc.rcvd else 'none'})"
    except (OSError, TimeoutError, WebSocketException) as exc:
        seen.close_reason = f"could not connect: {type(exc).__name__}"
    return seen


def _data(seen: SessionSeen, decoder: RealtimeDecoder, text: str, received_ns: int) -> None:
    """Count a data frame's width, decode its records, keep its trades."""
    if text.startswith("1|"):
        seen.encrypted += 1
        return
    measured = record_width(text)
    if measured is None:
        seen.refused_count["frame"] += 1
        return
    tr_id, width = measured
    count = int(text.split("|", 3)[2])
    seen.widths.setdefault(tr_id, Counter())[width] += count
    if tr_id in _BROKER_TRS and width == len(H0STMBC0_FIELDS):
        seen.ranks.setdefault(tr_id, Counter()).update(unfilled_ranks(text, count))
    try:
        events = decoder.decode(text, received_ns)
    except KisError as exc:
        seen.refused_count[tr_id] += count
        _keep(seen, tr_id, str(exc))
        return
    for refused in events.errors:
        seen.refused_count[tr_id] += 1
        _keep(seen, tr_id, str(refused.error))
    if tr_id == TRADE_TRS["KRX"]:  # the minute-label reading compares them with J bars
        seen.trades += [LiveTrade(t.exchange_ns, t.qty) for t in events.ticks]
    if events.ticks:
        chain = seen.chains.setdefault(tr_id, Chain())
        for tick in events.ticks:
            chain.on_trade(tick)
            if tick.market_session is not None:
                seen.coded.append((tick.venue, tick.exchange_ns, tick.market_session))
    if events.vis:
        seen.vi_symbols.setdefault(tr_id, set()).update(vi.symbol for vi in events.vis)


def unfilled_ranks(text: str, count: int) -> Counter[str]:
    """How a brokers' frame of ``count`` records sent each rank, counted (UNCONFIRMED at KIS).

    "empty" (no broker number), "zeros" (a number of zeros): no broker ranked there, which
    the decoder leaves out; "untraded": a broker ranked with no shares, stored as such;
    "filled" the rest.
    """
    fields = text.split("|", 3)[3].split("^")
    width = len(H0STMBC0_FIELDS)
    seen: Counter[str] = Counter()
    for start in range(0, count * width, width):
        for no, qty in _RANKS:
            number, shares = fields[start + no].strip(), fields[start + qty].strip()
            if not number:
                seen["empty"] += 1
            elif not number.strip("0"):
                seen["zeros"] += 1
            else:
                seen["untraded" if not shares.strip("0") else "filled"] += 1
    return seen


def _answered(control: ControlMessage, keyed: Sequence[tuple[str, str]]) -> str:
    """What an answer is filed under: its TR, or "TR key" for a ``keyed`` registration's."""
    if (control.tr_id, control.tr_key) in keyed:
        return f"{control.tr_id} {control.tr_key}"
    return control.tr_id


def _keep(seen: SessionSeen, tr_id: str, error: str) -> None:
    kept = seen.refused.setdefault(tr_id, [])
    if len(kept) < _KEPT_ERRORS:
        kept.append(error[:200])
