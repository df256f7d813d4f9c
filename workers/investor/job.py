"""The investor job: the universe's intraday investor estimates, after each posting.

KIS's staff post foreigners' and institutions' estimated net buying of each stock through
the session (`INVESTOR_POSTINGS`: 09:30, 10:00, 11:20, 13:20, 14:30), and KIS answers today's
alone (HHPTJ04160200 has no date): missed, they are gone. Run a few minutes after each
posting, the job asks every member of the day's universe, at the jobs' REST share, and
publishes each posting not stored yet (`InvestorEstimate`), and each answered later with
other figures than any stored as a revision beside them (a row of its own, `REVISED`
alerted: never overwritten, never silent). Then it judges each posting
due: one that no member's answer holds ``grace_min`` after its time is missed
(`POSTING_MISSED`, a warning per day and posting), resolved once a later run finds it.
Members whose call failed are `FAILURES` (a warning per day; an error past
``max_failed_pct``, or when none answered), resolved by a run in which every one answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bus.events import Event, InvestorEstimate
from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.db.queries import investor_postings_stored, universe_references
from observer.db.readers import read_once
from observer.kis.client import KisClient
from observer.kis.fanout import fan_out
from observer.kis.investor import INVESTOR_POSTINGS, early_postings, estimates_of, figures_of
from observer.kis.journal import Journal
from observer.kis.rate_alert import KIS_RATE_LIMITED, RateWatch
from observer.kis.session import open_account, rate_limits

__all__ = [
    "CODES",
    "FAILURES",
    "NOT_TODAY",
    "POSTING_MISSED",
    "REVISED",
    "InvestorRun",
    "missed_postings",
    "run_postings",
]

log = logging.getLogger(__name__)

POSTING_MISSED = "investor_posting_missed"
FAILURES = "investor_failures"  # members whose call failed in a run
# Answers holding a posting not due yet: not today's (KIS answers no date); nothing stored.
NOT_TODAY = "investor_answers_not_today"
REVISED = "investor_postings_revised"  # a stored posting's figures answered otherwise later
CODES = (POSTING_MISSED, FAILURES, NOT_TODAY, REVISED, KIS_RATE_LIMITED)
Send = Callable[[Event], object]


@dataclass
class InvestorRun:
    """What a run did: members asked, answers, estimates published, postings judged."""

    day: date
    members: int = 0
    answered: int = 0
    published: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> why
    held: dict[int, int] = field(default_factory=dict)  # posting -> members whose answer has it
    missed: list[int] = field(default_factory=list)  # postings due and held by none
    # symbol -> the postings its answer held before they were due: not today's, not stored
    not_today: dict[str, list[int]] = field(default_factory=dict)
    # (symbol, posting) -> (stored last, answered) figures that differ: stored as a revision
    revised: dict[tuple[str, int], tuple[tuple[int, int, int], tuple[int, int, int]]] = field(
        default_factory=dict
    )
    calls: int = 0
    skipped: str = ""  # why nothing was asked ("" when the run asked)
    failed_over: bool = False  # more failed than ``max_failed_pct``, or none answered

    @property
    def failed_pct(self) -> float:
        """The share of the members asked whose call failed."""
        return 100 * len(self.failed) / self.members if self.members else 0.0

    def summary(self) -> str:
        """One line for a person."""
        if self.skipped:
            return f"investor estimates of {self.day}: {self.skipped}"
        held = ", ".join(f"{INVESTOR_POSTINGS[p]:%H:%M} {n}" for p, n in sorted(self.held.items()))
        missed = ", ".join(f"{INVESTOR_POSTINGS[p]:%H:%M}" for p in self.missed) or "none"
        return (
            f"investor estimates of {self.day}: {self.answered} of {self.members} members "
            f"answered ({len(self.failed)} failed, {self.calls} calls); postings held: "
            f"{held or 'none yet'}; {self.published} estimates published; missed: {missed}"
        )


def missed_postings(
    held: dict[int, int], now: datetime, grace: timedelta, answered: int
) -> list[int]:
    """The postings due by ``now`` (their time plus ``grace``) that no answer held.

    Judged only when members answered: a run whose every call failed says nothing of KIS's
    staff.
    """
    if not answered:
        return []
    day = now.date()
    return [
        posting
        for posting, at in INVESTOR_POSTINGS.items()
        if now >= datetime.combine(day, at, KST) + grace and not held.get(posting)
    ]


def run_postings(
    settings: Settings,
    clock: Clock,
    send: Send,
    journal: Journal | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    alerts: AlertBook | None = None,
) -> InvestorRun:
    """One run on today's session: ask, publish what is new, judge the postings due.

    ``alerts``: the run's alert book, holding what earlier runs left open of `CODES` (the
    days and postings, ``YYYY-MM-DD HH:MM``, of `POSTING_MISSED`; the days of `FAILURES`);
    None: a book of its own, publishing through ``send``.
    """
    now = now_utc(clock).astimezone(KST)
    run = InvestorRun(now.date())
    calendar = TradingCalendar(settings.calendar.extra_closed, settings.calendar.extra_open)
    if not calendar.is_session(run.day):
        run.skipped = "not a session"
        return run
    if settings.kis.paper:
        run.skipped = "KIS offers paper accounts no investor estimates (HHPTJ04160200)"
        return run
    references, stored = read_once(
        settings.database,
        "investor",
        lambda conn: (universe_references(conn, run.day), investor_postings_stored(conn, run.day)),
    )
    if references is None:
        run.skipped = "no universe of the day"
        return run
    symbols = [r[0] for r in references]
    run.members = len(symbols)
    book = alerts or AlertBook(send)
    answers = asyncio.run(_ask(settings, clock, symbols, run, journal, send, progress, book))
    for symbol, estimates in answers.items():
        if early := early_postings(estimates):  # judged at the answer's receipt
            run.not_today[symbol] = early
            continue
        for estimate in estimates:
            run.held[estimate.posting] = run.held.get(estimate.posting, 0) + 1
            key = (symbol, estimate.posting)
            figures = figures_of(estimate)
            known = stored.get(key, [])
            if figures in known:
                continue
            send(estimate)  # the first, or a revision beside what is stored
            run.published += 1
            if known:
                run.revised[key] = (known[-1], figures)
    grace = timedelta(minutes=settings.investor.grace_min)
    run.missed = missed_postings(run.held, now, grace, run.answered)
    run.failed_over = run.failed_pct > settings.investor.max_failed_pct or not run.answered
    _posting_alerts(run, book)
    _failure_alerts(run, book)
    _answer_alerts(run, book)
    return run


def _answer_alerts(run: InvestorRun, alerts: AlertBook) -> None:
    """Answers not today's, and stored postings answered otherwise: a warning each per day.

    The first ends once a run's answers are all today's; a revision stays open until
    acknowledged: the day's figures changed after they were first stored.
    """
    subject = str(run.day)
    if run.not_today:
        symbol, early = next(iter(run.not_today.items()))
        postings = ", ".join(f"{INVESTOR_POSTINGS[p]:%H:%M}" for p in early)
        alerts.raise_(
            NOT_TODAY,
            subject,
            "warning",
            f"{len(run.not_today)} members' investor estimates answered postings not due yet "
            f"on {run.day} (e.g. {symbol}: {postings}): KIS answers no date, so they are "
            "taken for another day's and none of them is stored",
            {"members": str(len(run.not_today))},
        )
    elif run.answered:
        alerts.resolve(NOT_TODAY, subject, "every answer holds today's postings alone")
    if run.revised:
        (symbol, posting), (was, now) = next(iter(run.revised.items()))
        alerts.raise_(
            REVISED,
            subject,
            "warning",
            f"{len(run.revised)} stored investor postings of {run.day} are answered with other "
            f"figures now (e.g. {symbol} {INVESTOR_POSTINGS[posting]:%H:%M}: foreigners, "
            f"institutions, both {was} stored, {now} now): each revision is stored beside "
            "the first, which is kept",
            {"postings": str(len(run.revised))},
        )


async def _ask(
    settings: Settings,
    clock: Clock,
    symbols: list[str],
    run: InvestorRun,
    journal: Journal | None,
    send: Send,
    progress: Callable[[int, int], None],
    alerts: AlertBook,
) -> dict[str, list[InvestorEstimate]]:
    """Every symbol's answer, over every account at the job's share.

    KIS's rate-limit refusals of the calls are judged at the end (`RateWatch`).
    """
    limits = rate_limits(settings.kis, settings.investor.share_of)
    accounts = [
        open_account(settings.kis, a.alias, clock, limits, alerts=send, journal=journal)
        for a in settings.kis.accounts
    ]

    async def ask(client: KisClient, symbol: str) -> list[InvestorEstimate]:
        rows = await client.investor_estimates(symbol)
        return estimates_of(symbol, run.day, rows, clock.now_ns())

    try:
        got = await fan_out(
            accounts, symbols, ask, settings.investor.requests_per_account, progress
        )
    finally:
        for account in accounts:
            await account.aclose()
        RateWatch(settings.kis, accounts, "investor").judge(alerts)
    run.answered, run.failed, run.calls = len(got.answered), got.failed, got.calls
    return got.answered


def _failure_alerts(run: InvestorRun, alerts: AlertBook) -> None:
    """`FAILURES` of the day when members failed; its resolution when every one answered."""
    subject = run.day.isoformat()
    if not run.failed:
        message = f"every one of {run.members} members' investor estimates answered"
        alerts.resolve(FAILURES, subject, message)
        return
    sample = "; ".join(f"{s}: {why}" for s, why in list(run.failed.items())[:3])
    alerts.raise_(
        FAILURES,
        subject,
        "error" if run.failed_over else "warning",
        (
            f"{len(run.failed)} of {run.members} members' investor estimates of {run.day} "
            f"failed ({run.answered} answered); the next run asks again, and KIS keeps "
            f"today's alone: {sample}"
        )[:2000],
        {"failed": str(len(run.failed)), "members": str(run.members)},
    )


def _posting_alerts(run: InvestorRun, alerts: AlertBook) -> None:
    """A warning per posting missed; the resolution of one open and found now."""
    for posting in run.missed:
        at = f"{INVESTOR_POSTINGS[posting]:%H:%M}"
        alerts.raise_(
            POSTING_MISSED,
            f"{run.day} {at}",
            "warning",
            f"the investor estimates posted at {at} are missing from every one of "
            f"{run.answered} answers of {run.day}: KIS keeps today's alone",
            {"posting": str(posting), "trade_date": str(run.day)},
        )
    for posting in run.held:
        subject = f"{run.day} {INVESTOR_POSTINGS[posting]:%H:%M}"
        alerts.resolve(POSTING_MISSED, subject, f"the investor estimates of {subject} are in")
