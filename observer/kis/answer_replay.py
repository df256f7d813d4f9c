"""The flows and investor jobs' REST answers in the raw journal, read again into their events.

KIS gives back neither a day's intraday investor estimates (HHPTJ04160200 answers today's
alone) nor its flows and VIs once they have scrolled out of its lists, so a parser fix
re-derives them from the journal. Each answer is read as its job read it (the typed calls'
rows of `observer.kis.client`, the events of `observer.kis.investor` and `observer.kis.flows`)
and gives what the job published of it:

- an investor answer holding a posting not due at its receipt gives nothing
  (`early_postings`); of the others, a posting's figures the first time they are seen and
  each time they change (the job compares with the figures stored that day, which are the
  ones it published before);
- a flows answer its day's row (investor flows, program trading; the venue and the day are
  the request's) or none yet, and a VI answer the day's VIs.

An answer KIS refused (`classify`: an error code, a failed status) gave its job nothing and
gives nothing here. Every event's ``fetched_ns`` is the answer's receipt, as the journal
stamped it; the job stamped it a moment later (the one difference, microseconds). The other
REST answers (Track A's prices, gap recovery's bars, the ETF jobs') are not read again here:
their events carry their run's context (a cycle, a gap), which the answer does not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from urllib.parse import parse_qsl, urlsplit

from bus.events import Event, InvestorEstimate, Venue
from observer.errors import KisProtocolError
from observer.kis.client import (
    classify,
    investor_estimate_rows,
    investor_flow_rows,
    program_daily_rows,
    vi_status_rows,
)
from observer.kis.endpoints import ENDPOINTS, MARKET_CODES
from observer.kis.flows import investor_flow, program_trade_daily, volatility_interruptions
from observer.kis.investor import Figures, early_postings, estimates_of, figures_of
from observer.kis.journal import JournalRecord, kst_day
from observer.kis.schemas import Answer

__all__ = ["REPLAYED_ANSWERS", "AnswerReplay"]

_VENUES: dict[str, Venue] = {code: venue for venue, code in MARKET_CODES.items()}
_Read = Callable[[Answer, dict[str, str], int], list[Event]]


def _day(query: dict[str, str]) -> date:
    """The day a flows request asked (``FID_INPUT_DATE_1``, YYYYMMDD)."""
    return datetime.strptime(query["FID_INPUT_DATE_1"], "%Y%m%d").date()


def _flows(answer: Answer, query: dict[str, str], received_ns: int) -> list[Event]:
    symbol, venue = query["FID_INPUT_ISCD"], _VENUES[query["FID_COND_MRKT_DIV_CODE"]]
    event = investor_flow(symbol, _day(query), venue, investor_flow_rows(answer), received_ns)
    return [] if event is None else [event]


def _program(answer: Answer, query: dict[str, str], received_ns: int) -> list[Event]:
    symbol, venue = query["FID_INPUT_ISCD"], _VENUES[query["FID_COND_MRKT_DIV_CODE"]]
    rows = program_daily_rows(answer)
    event = program_trade_daily(symbol, _day(query), venue, rows, received_ns)
    return [] if event is None else [event]


def _vis(answer: Answer, query: dict[str, str], received_ns: int) -> list[Event]:
    rows = vi_status_rows(answer)
    return list(volatility_interruptions(query["FID_INPUT_ISCD"], _day(query), rows, received_ns))


def _estimates(answer: Answer, query: dict[str, str], received_ns: int) -> list[Event]:
    symbol = query["MKSC_SHRN_ISCD"]
    rows = investor_estimate_rows(answer)
    estimates = estimates_of(symbol, kst_day(received_ns), rows, received_ns)
    return [] if early_postings(estimates) else list(estimates)


# TR -> how its answer reads; the TRs whose answers a replay gives back.
_READERS: dict[str, _Read] = {
    ENDPOINTS["investor_flows"].tr_id: _flows,
    ENDPOINTS["program_trades_daily"].tr_id: _program,
    ENDPOINTS["vi_status"].tr_id: _vis,
    ENDPOINTS["investor_estimate"].tr_id: _estimates,
}
REPLAYED_ANSWERS = frozenset(_READERS)


class AnswerReplay:
    """One process's REST answers of a day, in the order it received them (see the module)."""

    def __init__(self) -> None:
        # (symbol, posting) -> the figures published of it so far
        self._figures: dict[tuple[str, int], list[Figures]] = {}

    def events(self, record: JournalRecord) -> list[Event]:
        """What ``record``'s job published of it ([] for an answer of another TR).

        Raises
        ------
        KisProtocolError
            The answer (or its request) does not read with today's parser, as its job would
            have failed the item; an answer KIS refused is not an error here.
        """
        read = _READERS.get(record.tr)
        if read is None:
            return []
        answer, error = classify(record.status, record.body, record.tr)
        if error is not None or answer is None:
            return []  # refused: its job published nothing of it
        try:
            query = dict(parse_qsl(urlsplit(record.request).query, keep_blank_values=True))
            events = read(answer, query, record.received_ns)
        except (KeyError, ValueError) as exc:
            raise KisProtocolError(f"{record.tr} request {record.request!r}: {exc!r}") from None
        return [e for e in events if self._new(e)]

    def _new(self, event: Event) -> bool:
        """False for an estimate whose figures were published before (the job's rule)."""
        if not isinstance(event, InvestorEstimate):
            return True
        key, figures = (event.symbol, event.posting), figures_of(event)
        known = self._figures.setdefault(key, [])
        if figures in known:
            return False
        known.append(figures)
        return True
