"""The flows job: a day's final investor flows, program trading and VIs, per stock and venue.

After a venue's day is final at KIS (`[flows] krx_from` and `nxt_from`, 20:05: after KRX's
and Nextrade's after-markets close at 20:00), the job asks, for every member of the day's
universe on KRX and for the Nextrade names on Nextrade too, its net buying by investor group
(FHPTJ04160001, `InvestorFlow`) and its program trading (FHPPG04650201,
`ProgramTradeDaily`); once KRX's day is over (`vi_from`, 20:05) its volatility
interruptions of the day (FHPST01390000 by stock, `VolatilityInterruption`; a stock without
one stores nothing), at the jobs' REST share, and publishes what is not stored yet: a later
run asks only what is missing. An answer without the day's row is pending (KIS has not
posted it). Questions failing or pending are `INCOMPLETE` (a warning per day; an error past
``max_failed_pct``, or when none answered), resolved by a run that leaves none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Literal

from bus.events import Event, Venue, VolatilityInterruption
from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.db.queries import flows_stored, universe_references
from observer.db.readers import read_once
from observer.kis.client import KisClient
from observer.kis.fanout import fan_out
from observer.kis.flows import investor_flow, program_trade_daily, volatility_interruptions
from observer.kis.journal import Journal
from observer.kis.rate_alert import KIS_RATE_LIMITED, RateWatch
from observer.kis.session import open_account, rate_limits

__all__ = [
    "CODES",
    "INCOMPLETE",
    "VI_CUT",
    "FlowsRun",
    "due_kinds",
    "due_venues",
    "run_flows",
]

log = logging.getLogger(__name__)

INCOMPLETE = "flows_incomplete"
VI_CUT = "flows_vi_cut"  # a stock's VIs of a day past what KIS lists: not stored by REST
CODES = (INCOMPLETE, VI_CUT, KIS_RATE_LIMITED)
Kind = Literal["investor", "program", "vi"]
KINDS: tuple[Kind, ...] = ("investor", "program", "vi")
VI_ROWS = 30  # KIS lists a day's latest 30 VIs at most: a full list may be cut
Send = Callable[[Event], object]
Ask = tuple[Kind, str, Venue]  # what, of which symbol, on which venue


@dataclass
class FlowsRun:
    """What a run did: the venues due, what it asked, published, found pending or failed."""

    day: date
    venues: tuple[Venue, ...] = ()
    asked: int = 0
    already_stored: int = 0
    published: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    pending: list[Ask] = field(default_factory=list)  # answered without the day's row
    # symbol -> its VIs of the day its list of VI_ROWS left out (its VI count says more)
    vi_cut: dict[str, int] = field(default_factory=dict)
    failed: dict[Ask, str] = field(default_factory=dict)
    calls: int = 0
    skipped: str = ""  # why nothing was asked ("" when the run asked)
    failed_over: bool = False  # more missing than ``max_failed_pct``, or none answered

    @property
    def missing(self) -> int:
        """What the run could not store: failed or pending."""
        return len(self.failed) + len(self.pending)

    def summary(self) -> str:
        """One line for a person."""
        if self.skipped:
            return f"flows of {self.day}: {self.skipped}"
        published = ", ".join(f"{n} {kind}" for kind, n in self.published.items())
        cut = sum(self.vi_cut.values())
        full = f", {cut} VIs of {len(self.vi_cut)} stocks past KIS's {VI_ROWS}" if cut else ""
        return (
            f"flows of {self.day} on {', '.join(self.venues)}: {self.asked} asked "
            f"({self.already_stored} stored already, {self.calls} calls); published {published}; "
            f"{len(self.pending)} pending, {len(self.failed)} failed{full}"
        )


def due_venues(settings: Settings, now: datetime, day: date) -> tuple[Venue, ...]:
    """The venues whose ``day`` is final at KIS by ``now`` (KST): every venue of a past day."""
    flows = settings.flows
    if day < now.date():
        return ("KRX", "NXT")
    at = now.time()
    due: list[Venue] = []
    if at >= time.fromisoformat(flows.krx_from):
        due.append("KRX")
    if at >= time.fromisoformat(flows.nxt_from):
        due.append("NXT")
    return tuple(due)


def due_kinds(settings: Settings, now: datetime, day: date, venue: Venue) -> tuple[Kind, ...]:
    """What is final of ``venue``'s ``day`` by ``now``: the VIs on KRX from ``vi_from``."""
    late = day < now.date() or now.time() >= time.fromisoformat(settings.flows.vi_from)
    return KINDS if venue == "KRX" and late else ("investor", "program")


def run_flows(
    settings: Settings,
    clock: Clock,
    send: Send,
    day: date | None = None,
    journal: Journal | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    alerts: AlertBook | None = None,
) -> FlowsRun:
    """One run on ``day`` (today by default): ask what is due and missing, publish it.

    ``alerts``: the run's alert book, holding what earlier runs left open of `CODES`;
    None: a book of its own, publishing through ``send``.
    """
    now = now_utc(clock).astimezone(KST)
    run = FlowsRun(day or now.date())
    calendar = TradingCalendar(settings.calendar.extra_closed, settings.calendar.extra_open)
    if not calendar.is_session(run.day):
        run.skipped = "not a session"
        return run
    if run.day > now.date():
        run.skipped = "a day to come"
        return run
    if settings.kis.paper:
        run.skipped = (
            "KIS offers paper accounts none of its TRs (FHPTJ04160001, FHPPG04650201, "
            "FHPST01390000)"
        )
        return run
    run.venues = due_venues(settings, now, run.day)
    if not run.venues:
        run.skipped = f"no venue's day is final yet (KRX's from {settings.flows.krx_from})"
        return run
    references, stored = read_once(
        settings.database,
        "flows",
        lambda conn: (universe_references(conn, run.day), flows_stored(conn, run.day)),
    )
    if references is None:
        run.skipped = "no universe of the day"
        return run
    wanted: list[Ask] = [
        (kind, r.symbol, venue)
        for venue in run.venues
        for r in references
        if venue == "KRX" or r.nxt
        for kind in due_kinds(settings, now, run.day, venue)
    ]
    todo = [ask for ask in wanted if ask not in stored]
    run.already_stored, run.asked = len(wanted) - len(todo), len(todo)
    book = alerts or AlertBook(send)
    answers = asyncio.run(_ask(settings, clock, todo, run, journal, send, progress, book))
    for ask, events in answers.items():
        if events is None:
            run.pending.append(ask)
            continue
        for event in events:
            send(event)
        run.published[ask[0]] += len(events)
        if ask[0] == "vi" and (cut := _vis_left_out(events)):
            run.vi_cut[ask[1]] = cut
    answered = len(answers)
    run.failed_over = bool(todo) and (
        100 * run.missing / len(todo) > settings.flows.max_failed_pct or not answered
    )
    _alerts(run, book)
    _vi_cut_alert(run, book)
    return run


def _vis_left_out(events: list[Event]) -> int:
    """How many of a stock's VIs a list of `VI_ROWS` left out: its VI count less the rows.

    KIS lists a day's latest 30; the latest row's count says how many the day had.
    """
    vis = [e for e in events if isinstance(e, VolatilityInterruption)]
    if len(vis) < VI_ROWS:
        return 0
    return max(0, max(vi.count for vi in vis) - len(vis))


async def _ask(
    settings: Settings,
    clock: Clock,
    todo: list[Ask],
    run: FlowsRun,
    journal: Journal | None,
    send: Send,
    progress: Callable[[int, int], None],
    alerts: AlertBook,
) -> dict[Ask, list[Event] | None]:
    """Each question's events (None: no row of the day yet), over every account.

    KIS's rate-limit refusals of the calls are judged at the end (`RateWatch`).
    """
    flows = settings.flows
    limits = rate_limits(settings.kis, flows.share_of)
    accounts = [
        open_account(settings.kis, a.alias, clock, limits, alerts=send, journal=journal)
        for a in settings.kis.accounts
    ]
    asked = run.day.strftime("%Y%m%d")

    async def ask(client: KisClient, item: Ask) -> list[Event] | None:
        kind, symbol, venue = item
        event: Event | None
        if kind == "vi":
            vis = await client.vi_status(symbol, asked)
            return list(volatility_interruptions(symbol, run.day, vis, clock.now_ns()))
        if kind == "investor":
            rows = await client.investor_flows(symbol, asked, venue, flows.investor_etc_cls_code)
            event = investor_flow(symbol, run.day, venue, rows, clock.now_ns())
        else:
            program = await client.program_trades_daily(symbol, asked, venue)
            event = program_trade_daily(symbol, run.day, venue, program, clock.now_ns())
        return None if event is None else [event]

    try:
        got = await fan_out(accounts, todo, ask, flows.requests_per_account, progress)
    finally:
        for account in accounts:
            await account.aclose()
        RateWatch(settings.kis, accounts, "flows").judge(alerts)
    run.failed, run.calls = got.failed, got.calls
    return got.answered


def _vi_cut_alert(run: FlowsRun, alerts: AlertBook) -> None:
    """`VI_CUT` of the day when a stock had more VIs than KIS lists: lost to REST for good.

    Nothing asked later gives them back: it stays open until a person acknowledges it. The
    VI feed (`[track_b] vi_feed`), where it was on, stored each as it happened.
    """
    if not run.vi_cut:
        return
    subject = run.day.isoformat()
    lost = sum(run.vi_cut.values())
    sample = ", ".join(f"{s} {n}" for s, n in sorted(run.vi_cut.items())[:5])
    alerts.raise_(
        VI_CUT,
        subject,
        "warning",
        (
            f"{len(run.vi_cut)} stocks had more VIs on {subject} than KIS lists ({VI_ROWS} "
            f"each): {lost} of their VIs are not stored from it ({sample}); the VI feed "
            "([track_b] vi_feed), where it was on, kept each as it happened"
        )[:2000],
        {"stocks": str(len(run.vi_cut)), "vis": str(lost)},
    )


def _alerts(run: FlowsRun, alerts: AlertBook) -> None:
    """`INCOMPLETE` of the day while members fail or are pending; its resolution when none."""
    subject = run.day.isoformat()
    if not run.missing:
        alerts.resolve(INCOMPLETE, subject, f"the flows of {subject} are all in")
        return
    sample = "; ".join(
        [f"{s} {v} {k}: {why}" for (k, s, v), why in list(run.failed.items())[:2]]
        + [f"{s} {v} {k}: no row of the day" for k, s, v in run.pending[:2]]
    )
    alerts.raise_(
        INCOMPLETE,
        subject,
        "error" if run.failed_over else "warning",
        (
            f"{len(run.failed)} failed and {len(run.pending)} pending of {run.asked} flows "
            f"asked for {subject} on {', '.join(run.venues)}; the next run asks again: "
            f"{sample}"
        )[:2000],
        {"failed": str(len(run.failed)), "pending": str(len(run.pending))},
    )
