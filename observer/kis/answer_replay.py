"""The jobs' REST answers in the raw journal, read again into the events the jobs published.

KIS gives back neither a day's intraday investor estimates (HHPTJ04160200 answers today's
alone) nor a moment's prices, nor its flows and VIs once they have scrolled out of its lists,
so a parser fix re-derives them from the journal. Each answer of a process's journal is read
as that process read it (the typed calls' rows of `observer.kis.client`, the conversions of
`observer.kis.parse`, `observer.kis.investor` and `observer.kis.flows`) and gives what it
published of it:

- Track A's price (FHKST01010100) its snapshot, in the cycle of its venue whose window
  (scheduled to finished, as the live run stored it) holds the answer's receipt, with the
  market the day's universe gives its symbol (`TrackARun`); an answer in no stored cycle (its
  run was killed and the cycle never summarised) is counted as unplaced, not guessed at;
- an investor answer holding a posting not due at its receipt nothing (`early_postings`); of
  the others, a posting's figures the first time they are seen and each time they change (the
  job compares with the figures stored that day, which are the ones it published before);
- a flows answer its day's row (investor flows, program trading; the venue and the day are
  the request's) or none yet, and a VI answer the day's VIs;
- gap recovery's minute bars, once the last page of a gap's call is read, the bars of its
  minutes nobody published before (`observer.kis.bars`: the call's `GapAsk`, journaled with
  each of its pages, names the gap, its minutes and the bars' label; the pages are read as
  the call paged through them, and the minutes claimed in a ledger of the replay's). Bars
  asked for the reconciliation (no such context) gave no event and give none;
- gap recovery's trades (FHPST01060000), once the last page of a gap's call is read, the
  trades that close its chain within its seconds and nobody published before
  (`observer.kis.time_trades`: the call's `TradesAsk` names the gap's stamps and cumulative
  volumes), stamped received at the last page's receipt (the worker's stamp comes a moment
  after it).

An answer KIS refused (`classify`: an error code, a failed status) gave its process nothing
and gives nothing here. An event's ``fetched_ns`` (a snapshot's ``observed_ns``, and the
session read at it) is the answer's receipt, as the journal stamped it; the process stamped
it a moment later (the one difference, microseconds). The ETF jobs' answers are not read again
here: their events carry their run's context, which neither the answer nor the stored rows
hold whole, and their calls journal none.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import parse_qsl, urlsplit

import msgspec

from bus.events import Event, InvestorEstimate, MinuteBars, Venue
from observer.calendar.venues import SessionOf, no_session
from observer.errors import KisProtocolError
from observer.kis.bars import BarLedger, GapAsk, gap_bars, read_gap_pages
from observer.kis.client import (
    classify,
    current_price_output,
    investor_estimate_rows,
    investor_flow_rows,
    minute_bar_rows,
    program_daily_rows,
    time_trade_rows,
    vi_status_rows,
)
from observer.kis.endpoints import ENDPOINTS, MARKET_CODES
from observer.kis.flows import investor_flow, program_trade_daily, volatility_interruptions
from observer.kis.investor import Figures, early_postings, estimates_of, figures_of
from observer.kis.journal import JournalRecord, kst_day
from observer.kis.parse import price_snapshot
from observer.kis.schemas import Answer, MinuteBarRow, TimeTradeRow
from observer.kis.settings import HaltFrom
from observer.kis.time_trades import TradeLedger, TradesAsk, read_trade_pages, trade_tick

__all__ = ["AnswerReplay", "TrackARun", "Unplaced"]

_VENUES: dict[str, Venue] = {code: venue for venue, code in MARKET_CODES.items()}


class Unplaced(Exception):
    """An answer its process read in a context the replay does not know (see the module)."""


@dataclass(frozen=True)
class TrackARun:
    """What Track A's answers do not hold, as the live run's database has it.

    ``cycles``: each venue's cycles of the day, ``(scheduled_ns, finished_ns, cycle_id)`` in
    order; ``markets``: each universe member's market; ``halt_from``: ``[kis] halt_from``.
    """

    cycles: Mapping[str, Sequence[tuple[int, int, str]]] = field(default_factory=dict)
    markets: Mapping[str, str] = field(default_factory=dict)
    halt_from: HaltFrom = "both"

    def cycle_at(self, venue: str, received_ns: int) -> str:
        """The cycle of ``venue`` whose window holds ``received_ns``; `Unplaced` if none."""
        cycles = self.cycles.get(venue, ())
        at = bisect.bisect_right(cycles, received_ns, key=lambda c: c[0])
        if at and received_ns <= cycles[at - 1][1]:
            return cycles[at - 1][2]
        raise Unplaced(f"no stored {venue} cycle of Track A's holds its receipt")


def _day(query: dict[str, str]) -> date:
    """The day a flows request asked (``FID_INPUT_DATE_1``, YYYYMMDD)."""
    return datetime.strptime(query["FID_INPUT_DATE_1"], "%Y%m%d").date()


def _venue(query: dict[str, str]) -> Venue:
    return _VENUES[query["FID_COND_MRKT_DIV_CODE"]]


def _flows(
    replay: AnswerReplay, answer: Answer, query: dict[str, str], record: JournalRecord
) -> list[Event]:
    at = record.received_ns
    rows = investor_flow_rows(answer)
    event = investor_flow(query["FID_INPUT_ISCD"], _day(query), _venue(query), rows, at)
    return [] if event is None else [event]


def _program(
    replay: AnswerReplay, answer: Answer, query: dict[str, str], record: JournalRecord
) -> list[Event]:
    at = record.received_ns
    rows = program_daily_rows(answer)
    event = program_trade_daily(query["FID_INPUT_ISCD"], _day(query), _venue(query), rows, at)
    return [] if event is None else [event]


def _vis(
    replay: AnswerReplay, answer: Answer, query: dict[str, str], record: JournalRecord
) -> list[Event]:
    at = record.received_ns
    rows = vi_status_rows(answer)
    return list(volatility_interruptions(query["FID_INPUT_ISCD"], _day(query), rows, at))


def _estimates(
    replay: AnswerReplay, answer: Answer, query: dict[str, str], record: JournalRecord
) -> list[Event]:
    at = record.received_ns
    rows = investor_estimate_rows(answer)
    estimates = estimates_of(query["MKSC_SHRN_ISCD"], kst_day(at), rows, at)
    return [] if early_postings(estimates) else [e for e in estimates if replay.new(e)]


def _snapshot(
    replay: AnswerReplay, answer: Answer, query: dict[str, str], record: JournalRecord
) -> list[Event]:
    at = record.received_ns
    run, symbol, venue = replay.track_a, query["FID_INPUT_ISCD"], _venue(query)
    if run is None:
        raise Unplaced("Track A's cycles were not read from the live database")
    cycle_id = run.cycle_at(venue, at)
    market = run.markets.get(symbol)
    if market is None:
        raise Unplaced(f"{symbol} is no member of the day's stored universe")
    return [
        price_snapshot(
            current_price_output(answer),
            symbol,
            market,
            cycle_id,
            at,
            halt_from=run.halt_from,
            venue=venue,
            trading_session=replay.session_of(venue, at),
        )
    ]


def _gap_bars(
    replay: AnswerReplay, answer: Answer, query: dict[str, str], record: JournalRecord
) -> list[Event]:
    ask = GapAsk.of(record.context)
    if ask is None:
        return []  # the reconciliation's: nothing published of it
    endpoint = _BARS_BY_TR[record.tr]
    pages = replay.bar_pages.setdefault(record.context, [])
    pages.append(minute_bar_rows(answer, endpoint.name))
    rows = read_gap_pages(pages, endpoint.rows_per_call, query.get("FID_INPUT_DATE_1", ""), ask)
    if rows is None:
        return []  # the call's next page is still to come
    del replay.bar_pages[record.context]
    found = gap_bars(rows, ask.minutes, ask.label)
    if found.no_trades:
        return []
    symbol, venue = query["FID_INPUT_ISCD"], _venue(query)
    fresh = replay.ledger.claim(symbol, found.bars.values(), venue)
    if not fresh:
        return []
    bars = tuple(
        msgspec.structs.replace(bar, trading_session=replay.session_of(venue, bar.minute_ns))
        for bar in fresh
    )
    return [
        MinuteBars(symbol=symbol, quality="recovered", bars=bars, gap_id=ask.gap_id, venue=venue)
    ]


def _gap_trades(
    replay: AnswerReplay, answer: Answer, query: dict[str, str], record: JournalRecord
) -> list[Event]:
    ask = TradesAsk.of(record.context)
    if ask is None:
        return []  # not a gap's (`observer kis check`'s are another process's)
    pages = replay.trade_pages.setdefault(record.context, [])
    pages.append(time_trade_rows(answer))
    symbol, venue = query["FID_INPUT_ISCD"], _venue(query)
    back = read_trade_pages(pages, symbol, venue, ask)
    if back is None:
        return []  # the call's next page is still to come
    del replay.trade_pages[record.context]
    span = ask.closing(back)
    if span is None:
        return []  # the gap went to the bars
    fresh = replay.trade_ledger.claim(symbol, venue, span)
    at, account = record.received_ns, record.account
    return [trade_tick(t, symbol, venue, account, at, replay.session_of) for t in fresh]


_BARS_BY_TR = {e.tr_id: e for e in (ENDPOINTS["minute_bars_today"], ENDPOINTS["minute_bars_past"])}
_Read = Callable[["AnswerReplay", Answer, dict[str, str], JournalRecord], list[Event]]
# process -> TR -> how its answer reads: the answers a replay gives back.
_READERS: dict[str, dict[str, _Read]] = {
    "flows": {
        ENDPOINTS["investor_flows"].tr_id: _flows,
        ENDPOINTS["program_trades_daily"].tr_id: _program,
        ENDPOINTS["vi_status"].tr_id: _vis,
    },
    "investor": {ENDPOINTS["investor_estimate"].tr_id: _estimates},
    "track_a": {ENDPOINTS["current_price"].tr_id: _snapshot},
    "gap_recovery": {
        **{tr: _gap_bars for tr in _BARS_BY_TR},
        ENDPOINTS["time_trades"].tr_id: _gap_trades,
    },
}


class AnswerReplay:
    """One process's REST answers of a day, in the order it received them (see the module)."""

    def __init__(
        self,
        process: str,
        track_a: TrackARun | None = None,
        session_of: SessionOf = no_session,
    ) -> None:
        self.readers = _READERS.get(process, {})
        self.track_a = track_a
        self.session_of = session_of
        # (symbol, posting) -> the figures published of it so far
        self._figures: dict[tuple[str, int], list[Figures]] = {}
        self.ledger = BarLedger()  # gap recovery's bars published so far
        self.bar_pages: dict[str, list[list[MinuteBarRow]]] = {}  # a gap's call -> its pages
        self.trade_ledger = TradeLedger()  # gap recovery's trades published so far
        self.trade_pages: dict[str, list[list[TimeTradeRow]]] = {}

    def events(self, record: JournalRecord) -> list[Event]:
        """What ``record``'s process published of it ([] for an answer of another TR).

        Raises
        ------
        KisProtocolError
            The answer (or its request) does not read with today's parser, as its process
            would have failed the item; an answer KIS refused is not an error here.
        Unplaced
            Its process read it in a context the replay was not given or does not find.
        """
        read = self.readers.get(record.tr)
        if read is None:
            return []
        answer, error = classify(record.status, record.body, record.tr)
        if error is not None or answer is None:
            return []  # refused: its process published nothing of it
        query = dict(parse_qsl(urlsplit(record.request).query, keep_blank_values=True))
        try:
            return read(self, answer, query, record)
        except (KeyError, ValueError) as exc:
            raise KisProtocolError(f"{record.tr} request {record.request!r}: {exc!r}") from None

    def new(self, estimate: InvestorEstimate) -> bool:
        """False for an estimate whose figures were published before (the job's rule)."""
        key, figures = (estimate.symbol, estimate.posting), figures_of(estimate)
        known = self._figures.setdefault(key, [])
        if figures in known:
            return False
        known.append(figures)
        return True
