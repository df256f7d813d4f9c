"""The ``etf_daily`` job for one session: plan, collect, send, judge, resolve.

`run_daily` runs the named steps below in order, each sending its events as it goes. Every
condition found is an `Alert` with a stable ``(code, subject)``; an open alert of the ETF
jobs whose condition this run finds gone gets its `AlertResolved` (`over`). A day's rows
are sent once: a stored final NAV stands and is not sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import msgspec

from bus.events import Alert, EtfDaily, EtfDetail, EtfListing, EtfRun, Event, Severity
from bus.producer import Producer
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.config.tree import Settings
from observer.config.workers import EtfSettings
from observer.db.etf_queries import etf_history, kis_etf_symbols
from observer.kis.rate_alert import KIS_RATE_LIMITED
from observer.process.heartbeat import Heartbeat
from workers.etf.collect import Collected, backfills, collect_daily
from workers.etf.details import detail_of, flags_of, premium_mismatches
from workers.etf.gaps import holes, missing_on, pending_days, pending_start
from workers.etf.health import CODES, Health, health, is_due, session_of, settle
from workers.etf.jobs import beat, end_alerts, open_alerts, portal, read, symbols_of
from workers.etf.metrics import chart_start
from workers.etf.run_alerts import gaps_alert, pending_alert, run_alerts
from workers.etf.sessions import calendar_of

__all__ = ["FIELDS", "DailySummary", "Found", "Plan", "run_daily"]

FLAG_CODES = ("etf_premium_high", "etf_aum_jump", "etf_aum_mismatch")  # per ETF
RUN_CODES = (
    "etf_krx_table_failed",
    "etf_daily_failures",
    "etf_nav_pending",
    "etf_chart_failures",
    "etf_premium_mismatch",
    "etf_history_gaps",
    "etf_list_missing",
    KIS_RATE_LIMITED,  # subject: the account alias
)
FIELDS = ("close", "nav", "premium_pct", "net_assets_krw", "listed_units", "holdings")
_WEEKS_52 = 260  # 52 weeks hold at most 260 sessions (weekdays)

Key = tuple[str, str]  # an alert's (code, subject)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run of ``day`` read before asking anything, and what it will ask."""

    day: date
    sessions: list[date]  # up to ``day``: the 52 weeks' or the backfill's, whichever longer
    since: date  # the first day of the history read
    listings: dict[str, EtfListing]  # the held KRX list; empty: the KIS masters' ETFs instead
    symbols: list[str]  # the ETFs to collect
    history: dict[str, dict[date, EtfDaily]]  # stored rows; `store` adds the run's own
    backfill_from: date
    window: list[date]  # the sessions before ``day`` that a backfill covers
    recent: list[date]  # the last ``repair_sessions`` of the window, and ``day``
    listed_on: dict[str, date | None]
    backfill: dict[str, date]  # ETFs with sessions missing in the window, each from when
    charts: dict[str, date]  # ETFs whose 52 weeks lack daily highs and lows, since when
    asked: dict[str, date]  # the series asked per ETF from when: backfill and NAVs pending


@dataclass(slots=True)
class Found:
    """What the run found once it collected: judged ETFs, NAVs pending, history gaps."""

    details: dict[str, EtfDetail] = field(default_factory=dict)  # the ETFs judged
    pending: dict[date, list[str]] = field(default_factory=dict)  # session -> ETFs, no NAV
    gaps: dict[str, list[date]] = field(default_factory=dict)  # ETF -> sessions missing
    present: set[Key] = field(default_factory=set)  # every alert sent: its condition holds


class DailySummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``observer etf daily`` prints (``--json``: these keys, in this order)."""

    date: str
    listed: int
    collected: int
    backfill_asked: int
    backfilled_rows: int
    charted_rows: int
    chart_failures: int
    details: int
    failures: int
    failed_over_limit: bool  # more than ``max_failed_pct`` failed: the command exits 1
    nav_pending: int
    nav_pending_sessions: int
    history_gaps: int
    premium_mismatch: int
    kis_calls: int
    krx_calls: int
    krx_rows: int
    krx_error: str
    elapsed_s: float
    rate_limit_per_s: float
    achieved_fraction: float
    stale: bool
    resolved: int
    have: dict[str, int]  # per field of `FIELDS`: the day's rows that have it


def run_daily(
    settings: Settings, clock: Clock, day: date, producer: Producer, notifier: Heartbeat
) -> DailySummary:
    """The ``etf_daily`` job for session ``day``: the steps below, in order."""
    started = time.monotonic()
    send = producer.send
    plan = plan_run(settings, day, send)
    got = collect(settings, clock, plan, notifier, send)
    store(plan, got, send)
    found = judge_etfs(settings.etf, plan, got, send)
    run_conditions(settings, plan, got, found, send)
    verdict, open_, healed = judge_health(settings, clock, plan, got, found, send)
    gone = {key: sev for key, sev in open_.items() if over(key, plan, got, found, healed)}
    ended = end_alerts(send, gone)
    have = {f: sum(getattr(r, f) is not None for r in got.rows.values()) for f in FIELDS}
    send(
        EtfRun(
            job="etf_daily",
            trade_date=day,
            applied=True,
            listed=len(plan.symbols),
            collected=len(got.rows),
            calls=got.kis_calls + got.krx_calls,
            failures=len(got.failed),
            have=have,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    )
    return summary(settings.etf, plan, got, found, verdict, ended, have)


def plan_run(settings: Settings, day: date, send: Callable[[Event], object]) -> Plan:
    """The ETFs, their stored history, and what the run asks KIS's series for.

    Sends ``etf_list_missing`` when no KRX list is held (`workers.etf.jobs.symbols_of`).
    """
    etf = settings.etf
    count = max(etf.backfill_sessions, _WEEKS_52)  # the range's span and every window
    sessions = calendar_of(settings).sessions_before(day + timedelta(days=1), count)
    since = min(sessions[0], day - timedelta(days=364))
    listings, symbols = symbols_of(settings, send)
    history: dict[str, dict[date, EtfDaily]] = read(
        settings, lambda conn: etf_history(conn, since, day)
    )
    backfill_from = sessions[-etf.backfill_sessions]
    window = [d for d in sessions if backfill_from <= d < day]
    listed_on = {s: x.listed_on for s, x in listings.items()}
    starts = backfills(symbols, history, window, listed_on)
    # The recent sessions' rows still without a NAV: KIS's series has it by now.
    asked = dict(starts)
    for symbol in symbols:
        first = pending_start(history.get(symbol, {}), window[-etf.repair_sessions :])
        if first is not None:
            asked[symbol] = min(first, asked.get(symbol, first))
    return Plan(
        day=day,
        sessions=sessions,
        since=since,
        listings=listings,
        symbols=symbols,
        history=history,
        backfill_from=backfill_from,
        window=window,
        recent=[*window[-etf.repair_sessions :], day],
        listed_on=listed_on,
        backfill=starts,
        charts=_chart_from(symbols, history, day, starts),
        asked=asked,
    )


def _chart_from(
    symbols: Iterable[str],
    history: Mapping[str, Mapping[date, EtfDaily]],
    day: date,
    backfilled: Mapping[str, date],
) -> dict[str, date]:
    """The ETFs whose 52 weeks lack daily highs and lows (``backfilled`` ones too), since when.

    ``backfilled``: the ETFs whose series is asked for missing days, each from when (its
    rows have no high or low).
    """
    found = {}
    for symbol in symbols:
        stored = history.get(symbol, {})
        highs_lows = {d: (r.high, r.low) for d, r in stored.items()}
        start = chart_start(highs_lows, day, backfilled.get(symbol))
        if start is not None:
            found[symbol] = start
    return found


def collect(
    settings: Settings,
    clock: Clock,
    plan: Plan,
    notifier: Heartbeat,
    send: Callable[[Event], object],
) -> Collected:
    """KIS's answers for ``plan`` (and KRX's table when ``[etf] krx_table``), nothing sent.

    Without a KRX login the table is skipped with ``krx_login_failed`` (`jobs.portal`).
    """
    krx = portal(settings, clock, send) if settings.etf.krx_table else None

    async def go() -> Collected:
        try:
            return await collect_daily(
                settings,
                clock,
                plan.symbols,
                plan.day,
                plan.backfill_from,
                plan.history,
                krx,
                beat(notifier),
                plan.charts,
                plan.asked,
                alerts=send,
            )
        finally:
            if krx is not None:
                await krx.aclose()

    return asyncio.run(go())


def store(plan: Plan, got: Collected, send: Callable[[Event], object]) -> None:
    """Send the rows collected, and add them to ``plan.history`` for the judging steps.

    A stored final NAV of the day (``got.kept``) is neither sent again nor replaced.
    """
    for row in got.backfilled:
        send(row)
    for symbol, row in got.rows.items():
        if symbol not in got.kept:
            send(row)
    for row in [*got.backfilled, *got.rows.values()]:
        plan.history.setdefault(row.symbol, {})[row.trade_date] = row


def judge_etfs(
    etf: EtfSettings, plan: Plan, got: Collected, send: Callable[[Event], object]
) -> Found:
    """Each collected ETF's `EtfDetail` sent, and its figures worth a warning alerted.

    An ETF without a close and NAV for the day is not judged (no detail, no flag).
    """
    found = Found()
    for symbol in got.rows:
        days = plan.history[symbol]
        detail = detail_of(days, plan.sessions, plan.listings.get(symbol))
        if detail is None:
            continue
        found.details[symbol] = detail
        send(detail)
        before = [d for d in days if d < plan.day]
        previous = days[max(before)] if before else None
        for flag in flags_of(
            detail,
            previous,
            premium_pct=etf.premium_alert_pct,
            aum_jump_pct=etf.aum_jump_pct,
            aum_check_pct=etf.aum_check_pct,
            net_assets_unit_krw=etf.net_assets_unit_krw,
        ):
            found.present.add((flag.code, flag.symbol))
            send(
                Alert(
                    severity="warning",
                    code=flag.code,
                    subject=flag.symbol,
                    message=flag.message,
                    context={"day": plan.day.isoformat()},
                )
            )
    return found


def run_conditions(
    settings: Settings, plan: Plan, got: Collected, found: Found, send: Callable[[Event], object]
) -> None:
    """The run's own alerts: its calls and tables, the list missing, NAVs pending, gaps.

    ``etf_nav_pending`` names each recent session with rows still without a NAV (the rows
    say ``nav_final=False``); ``etf_history_gaps`` counts the sessions missing from the
    window, and is sent when the series, asked, did not give them.
    """
    found.present |= run_alerts(settings, send, plan.day, plan.symbols, got)
    if not plan.listings:  # the KIS masters' ETFs stand in for the list: still missing
        found.present.add(("etf_list_missing", ""))
    found.pending = pending_days(
        plan.symbols, plan.history, [d for d in plan.sessions if d >= plan.since]
    )
    for session in plan.recent:
        if found.pending.get(session):
            found.present.add(("etf_nav_pending", session.isoformat()))
            send(pending_alert(session, found.pending[session], plan.day))
    found.gaps = {
        s: h
        for s in plan.symbols
        if (h := holes(plan.history.get(s, {}), plan.window, plan.listed_on.get(s)))
    }
    if found.gaps:
        found.present.add(("etf_history_gaps", ""))
        unfilled = sorted(s for s in found.gaps if s in plan.backfill and s not in got.failed)
        if unfilled:  # asked this run, and KIS's series had no row for them
            repair = settings.etf.repair_sessions
            send(gaps_alert(found.gaps, unfilled, plan.window, repair))


def judge_health(
    settings: Settings,
    clock: Clock,
    plan: Plan,
    got: Collected,
    found: Found,
    send: Callable[[Event], object],
) -> tuple[Health, dict[Key, Severity], set[Key]]:
    """The day's health (`workers.etf.health`), its conditions sent.

    Returns the verdict, the ETF jobs' open alerts of every code this run judges, and the
    health alerts among them that `settle` found over. Each session an open ``etf_stale``
    names is judged again on the rows stored for it.
    """
    etf, day = settings.etf, plan.day
    kis = read(settings, kis_etf_symbols)
    shifted = timeline_from(settings.phases, settings.calendar).schedule.close_shifts()
    due = is_due(day, now_utc(clock).astimezone(KST), etf.stale_at, shifted)
    verdict = health(day, due, plan.listings, kis, got.rows, found.details, etf)
    open_ = open_alerts(settings, clock, (*FLAG_CODES, *RUN_CODES, *CODES))
    stale_days = {session_of(s) for c, s in open_ if c == "etf_stale"}
    past = [
        health(d, True, plan.listings, kis, _rows_on(plan.history, d), {}, etf)
        for d in sorted(x for x in stale_days if x is not None and plan.since <= x < day)
    ]
    conditions, healed = settle(verdict, [p for p in open_ if p[0] in CODES], past)
    for c in conditions:
        found.present.add((c.code, c.subject))
        send(
            Alert(
                severity=c.severity,
                code=c.code,
                subject=c.subject,
                message=c.message,
                context={"day": day.isoformat()},
            )
        )
    return verdict, open_, healed


def _rows_on(history: Mapping[str, Mapping[date, EtfDaily]], day: date) -> dict[str, EtfDaily]:
    """Each ETF's stored row of ``day``."""
    return {s: days[day] for s, days in history.items() if day in days}


def over(key: Key, plan: Plan, got: Collected, found: Found, healed: set[Key]) -> bool:
    """Whether the open alert ``key`` is over after this run.

    A per-ETF flag is over only for an ETF judged now: one whose KIS call failed, or whose
    NAV is not out, keeps its flags until a run judges it; an ETF no longer listed is never
    judged again, so its flags end here. ``etf_daily_failures`` ends once its session is
    filled, ``etf_nav_pending`` once its session's rows have a NAV, ``kis_rate_limited`` once
    its account's calls of a run were not refused too often.
    """
    code, subject = key
    if code in CODES:  # judged by `settle`: a session not due judges nothing
        return key in healed
    if key in found.present:
        return False
    if code in FLAG_CODES:
        return subject in found.details or subject not in plan.symbols
    named = session_of(subject)
    in_range = named is not None and plan.since <= named <= plan.day
    if code == "etf_daily_failures":
        if named is None:  # an older alert, without its session: as it was judged
            return not got.failed
        return in_range and not missing_on(named, plan.symbols, plan.history, plan.listed_on)
    if code == "etf_nav_pending":
        if named is None:
            return not any(found.pending.get(d) for d in plan.recent)
        return in_range and not found.pending.get(named)
    if code == KIS_RATE_LIMITED:  # over once the account sent calls KIS did not refuse so
        return got.refusals.get(subject, (0, 0))[0] > 0
    return True


def summary(
    etf: EtfSettings,
    plan: Plan,
    got: Collected,
    found: Found,
    verdict: Health,
    ended: int,
    have: dict[str, int],
) -> DailySummary:
    """The run's summary: counts, calls and time, and what it ended (``ended`` alerts)."""
    failed_pct = 100 * len(got.failed) / max(len(plan.symbols), 1)
    return DailySummary(
        date=plan.day.isoformat(),
        listed=len(plan.symbols),
        collected=len(got.rows),
        backfill_asked=len(plan.asked),
        backfilled_rows=len(got.backfilled),
        charted_rows=got.charted,
        chart_failures=len(got.chart_failed),
        details=len(found.details),
        failures=len(got.failed),
        failed_over_limit=failed_pct > etf.max_failed_pct,
        nav_pending=len(found.pending.get(plan.day, [])),
        nav_pending_sessions=sum(1 for d in plan.recent if found.pending.get(d)),
        history_gaps=sum(len(h) for h in found.gaps.values()),
        premium_mismatch=len(premium_mismatches(got.rows.values())),
        kis_calls=got.kis_calls,
        krx_calls=got.krx_calls,
        krx_rows=got.krx_rows,
        krx_error=got.krx_error,
        elapsed_s=round(got.elapsed_s, 3),
        rate_limit_per_s=got.rate_limit_per_s,
        achieved_fraction=round(got.achieved_fraction, 4),
        stale=verdict.stale,
        resolved=ended,
        have=have,
    )
