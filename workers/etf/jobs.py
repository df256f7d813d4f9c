"""The ETF jobs' work, once READY: read what the writer keeps, fetch, send, alert.

Every failure is sent as an `Alert` with a stable code and, once its condition is gone, an
`AlertResolved` (``(code, subject)``): the KRX list refused (``etf_list_refused``,
``krx_login_failed``: the held list stays), the KRX table unusable (``etf_krx_table_failed``:
the KIS rows stand alone), ETFs whose KIS calls failed (``etf_daily_failures``, subject
the session: their earlier rows stay; the next run asks the day again through KIS's
series, and the alert ends once the day is filled), NAVs not yet published
(``etf_nav_pending``, subject the session: the rows say ``nav_final=False``, later runs ask
the series for the recent sessions' NAVs, and the alert ends once that session's rows have
them; a stored final NAV of the day stands and is not sent again), sessions missing from
the stored history that the series could not give (``etf_history_gaps``), no KRX list held
(``etf_list_missing``: open while the KIS masters' ETFs stand in for it), premiums off
KIS's ``dprt`` (``etf_premium_mismatch``: one for the run, its count and worst ETFs),
rows of the KRX list dropped for a blank, invalid or repeated code
(``etf_list_rows_dropped``), the per-ETF figures of `workers.etf.details.flags_of`, and
the health of `workers.etf.health`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from bus.events import Alert, AlertResolved, EtfDaily, EtfListing, EtfRun, Event, Severity
from bus.producer import Producer
from observer.alerts.states import alert_states, parse_alert_id
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.cluster.hosts import program_of
from observer.config.tree import Settings
from observer.db.etf_queries import etf_history, held_etfs, kis_etf_symbols
from observer.db.queries import alert_records
from observer.db.readers import reader_engine
from observer.errors import ConfigError
from observer.krx.client import KrxClient, open_krx
from observer.process.heartbeat import Notifier
from workers.etf.collect import Collected, backfills, collect_daily
from workers.etf.details import detail_of, flags_of, premium_mismatches
from workers.etf.gaps import holes, missing_on, pending_days, pending_start
from workers.etf.health import CODES, Health, health, is_due, session_of, settle
from workers.etf.listing import collect_list
from workers.etf.metrics import chart_start
from workers.etf.report import judged
from workers.etf.run_alerts import gaps_alert, pending_alert, run_alerts
from workers.etf.sessions import calendar_of, target_session

__all__ = [
    "beat",
    "calendar_of",
    "open_alerts",
    "portal",
    "read",
    "resolve",
    "run_daily",
    "run_list",
    "send_health",
    "symbols_of",
    "target_session",
]

_FLAG_CODES = ("etf_premium_high", "etf_aum_jump", "etf_aum_mismatch")
_RUN_CODES = (
    "etf_krx_table_failed",
    "etf_daily_failures",
    "etf_nav_pending",
    "etf_chart_failures",
    "etf_premium_mismatch",
    "etf_history_gaps",
    "etf_list_missing",
)
_SOURCES = ("etf", "etf_check")  # the ETF jobs' two sources (on any host: etf@c1)
FIELDS = ("close", "nav", "premium_pct", "net_assets_krw", "listed_units", "holdings")


def read(settings: Settings, read: Callable[[Any], Any]) -> Any:
    """``read(conn)`` on a read-only connection to the database (the readers' pool)."""
    engine = reader_engine(settings.database, "etf")
    try:
        with engine.connect() as conn:
            return read(conn)
    finally:
        engine.dispose()


def portal(settings: Settings, clock: Clock, send: Callable[[Event], object]) -> KrxClient | None:
    """The portal's client, or None with a warning when no KRX login is configured."""
    try:
        return open_krx(settings.krx, settings.kis, clock)
    except ConfigError as exc:
        send(Alert(severity="warning", code="krx_login_failed", message=str(exc)[:500]))
        return None


def resolve(
    settings: Settings,
    send: Callable[[Event], object],
    codes: Iterable[str],
    present: set[tuple[str, str]],
    clock: Clock,
    subjects: set[str] | None = None,
    unjudged: Collection[str] = (),
) -> int:
    """Resolve the ETF jobs' open alerts of ``codes`` whose condition is gone.

    ``subjects``: only alerts about these (a run over some ETFs judges only those);
    ``unjudged``: never alerts about these (listed, but not judged by this run).
    """
    open_ = open_alerts(settings, clock, codes)
    gone = {
        c: sev
        for c, sev in open_.items()
        if c not in present and (subjects is None or c[1] in subjects) and c[1] not in unjudged
    }
    return _resolved(send, gone)


def open_alerts(
    settings: Settings, clock: Clock, codes: Iterable[str]
) -> dict[tuple[str, str], Severity]:
    """The ETF jobs' open alerts of ``codes`` (of the last 30 days): (code, subject) -> severity."""
    since = clock.now_ns() - 30 * 86_400 * 10**9
    records = read(settings, lambda conn: alert_records(conn, since))
    wanted = set(codes)
    return {
        (s.notice.code, s.notice.subject): s.notice.severity
        for s in alert_states(records)
        if s.state == "open"
        and program_of(parse_alert_id(s.notice.id)[0]) in _SOURCES
        and s.notice.code in wanted
    }


def _resolved(send: Callable[[Event], object], gone: Mapping[tuple[str, str], Severity]) -> int:
    """An `AlertResolved` for each of ``gone``; how many."""
    for (code, subject), severity in gone.items():
        send(
            AlertResolved(
                code=code,
                severity=severity,
                subject=subject,
                message=f"{code} {subject} is over".replace("  ", " "),
            )
        )
    return len(gone)


def run_list(settings: Settings, clock: Clock, producer: Producer) -> dict[str, object]:
    """The ``etf_list`` job: the KRX list judged and diffed against the held one."""
    day = now_utc(clock).astimezone(KST).date()
    previous: dict[str, EtfListing] = read(settings, held_etfs)
    krx = portal(settings, clock, producer.send)
    if krx is None:
        producer.send(
            EtfRun(
                job="etf_list",
                trade_date=day,
                applied=False,
                reason="no KRX login configured",
                listed=len(previous),
                failures=1,
            )
        )
        return {"applied": False, "listed": len(previous), "reason": "no KRX login"}

    async def go() -> Any:
        try:
            return await collect_list(
                krx, previous, day, producer.send, min_ratio=settings.etf.min_list_ratio
            )
        finally:
            await krx.aclose()

    outcome = asyncio.run(go())
    if outcome.run.applied:
        dropped = {("etf_list_rows_dropped", "")} if outcome.dropped else set()
        codes = (
            "etf_list_refused",
            "krx_login_failed",
            "etf_list_rows_dropped",
            "etf_list_missing",
        )
        resolve(settings, producer.send, codes, dropped, clock)
    run = outcome.run
    return {
        "applied": run.applied,
        "listed": run.listed,
        "new": outcome.new,
        "changed": outcome.changed,
        "removed": outcome.removed,
        "dropped": outcome.dropped,
        "calls": run.calls,
        "reason": run.reason,
    }


def symbols_of(
    settings: Settings, send: Callable[[Event], object]
) -> tuple[dict[str, EtfListing], list[str]]:
    """The held KRX list, and the ETFs to collect (the KIS masters' when no list is held).

    An empty list says it fell back (and sent ``etf_list_missing``): a daily run keeps that
    alert open while it does.
    """
    listings: dict[str, EtfListing] = read(settings, held_etfs)
    if listings:
        return listings, sorted(listings)
    fallback = sorted(read(settings, kis_etf_symbols))
    send(
        Alert(
            severity="warning",
            code="etf_list_missing",
            message=f"no KRX ETF list held; collecting the {len(fallback)} ETFs of the KIS masters",
        )
    )
    return listings, fallback


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


def _have(rows: Mapping[str, EtfDaily]) -> dict[str, int]:
    return {f: sum(getattr(r, f) is not None for r in rows.values()) for f in FIELDS}


def beat(notifier: Notifier) -> Callable[[int, int], None]:
    """A progress callback that beats the heartbeat."""
    return lambda done, total: notifier.beat()


def run_daily(
    settings: Settings, clock: Clock, day: date, producer: Producer, notifier: Notifier
) -> dict[str, object]:
    """The ``etf_daily`` job for session ``day``; see the module docstring for its alerts."""
    started = time.monotonic()
    send = producer.send
    calendar = calendar_of(settings)
    etf = settings.etf
    # 52 weeks hold at most 260 sessions (weekdays): the range's span and every window.
    sessions = calendar.sessions_before(day + timedelta(days=1), max(etf.backfill_sessions, 260))
    since = min(sessions[0], day - timedelta(days=364))
    listings, symbols = symbols_of(settings, send)
    history: dict[str, dict[date, EtfDaily]] = read(
        settings, lambda conn: etf_history(conn, since, day)
    )
    krx = portal(settings, clock, send) if etf.krx_table else None
    backfill_from = sessions[-etf.backfill_sessions]
    window = [d for d in sessions if backfill_from <= d < day]
    listed_on = {s: x.listed_on for s, x in listings.items()}
    starts = backfills(symbols, history, window, listed_on)
    charts = _chart_from(symbols, history, day, starts)
    # The recent sessions' rows still without a NAV: KIS's series has it by now.
    asked = dict(starts)
    for symbol in symbols:
        first = pending_start(history.get(symbol, {}), window[-etf.repair_sessions :])
        if first is not None:
            asked[symbol] = min(first, asked.get(symbol, first))

    async def go() -> Collected:
        try:
            return await collect_daily(
                settings,
                clock,
                symbols,
                day,
                backfill_from,
                history,
                krx,
                beat(notifier),
                charts,
                asked,
                alerts=send,
            )
        finally:
            if krx is not None:
                await krx.aclose()

    got = asyncio.run(go())
    for row in got.backfilled:
        send(row)
    for symbol, row in got.rows.items():
        if symbol not in got.kept:  # a stored final NAV is not sent again, nor replaced
            send(row)
    for row in [*got.backfilled, *got.rows.values()]:
        history.setdefault(row.symbol, {})[row.trade_date] = row
    present: set[tuple[str, str]] = set()
    details = {}
    for symbol in got.rows:
        detail = detail_of(history[symbol], sessions, listings.get(symbol))
        if detail is None:
            continue
        details[symbol] = detail
        send(detail)
        before = [d for d in history[symbol] if d < day]
        previous = history[symbol][max(before)] if before else None
        for flag in flags_of(
            detail,
            previous,
            premium_pct=etf.premium_alert_pct,
            aum_jump_pct=etf.aum_jump_pct,
            aum_check_pct=etf.aum_check_pct,
            net_assets_unit_krw=etf.net_assets_unit_krw,
        ):
            present.add((flag.code, flag.symbol))
            send(
                Alert(
                    severity="warning",
                    code=flag.code,
                    subject=flag.symbol,
                    message=flag.message,
                    context={"day": day.isoformat()},
                )
            )
    failed_pct = 100 * len(got.failed) / max(len(symbols), 1)
    present |= run_alerts(settings, send, day, symbols, got)
    if not listings:  # the KIS masters' ETFs stand in for the list: still missing
        present.add(("etf_list_missing", ""))
    recent = [*window[-etf.repair_sessions :], day]
    pending = pending_days(symbols, history, [d for d in sessions if d >= since])
    for session in recent:
        if pending.get(session):
            present.add(("etf_nav_pending", session.isoformat()))
            send(pending_alert(session, pending[session], day))
    left = {s: h for s in symbols if (h := holes(history.get(s, {}), window, listed_on.get(s)))}
    if left:
        present.add(("etf_history_gaps", ""))
        unfilled = sorted(s for s in left if s in starts and s not in got.failed)
        if unfilled:  # asked this run, and KIS's series had no row for them
            send(gaps_alert(left, unfilled, window, etf.repair_sessions))
    kis = read(settings, kis_etf_symbols)
    shifted = timeline_from(settings.phases, settings.calendar).schedule.close_shifts()
    due = is_due(day, now_utc(clock).astimezone(KST), etf.stale_at, shifted)
    judged = health(day, due, listings, kis, got.rows, details, etf)
    open_ = open_alerts(settings, clock, (*_FLAG_CODES, *_RUN_CODES, *CODES))
    stale_days = {session_of(s) for c, s in open_ if c == "etf_stale"}
    past = [
        health(d, True, listings, kis, _rows_on(history, d), {}, etf)
        for d in sorted(x for x in stale_days if x is not None and since <= x < day)
    ]
    conditions, healed = settle(judged, [p for p in open_ if p[0] in CODES], past)
    for c in conditions:
        present.add((c.code, c.subject))
        context = {"day": day.isoformat()}
        send(
            Alert(
                severity=c.severity,
                code=c.code,
                subject=c.subject,
                message=c.message,
                context=context,
            )
        )
    # A per-ETF flag is over only for an ETF judged now: one whose KIS call failed, or
    # whose NAV is not out, keeps its flags until a run judges it; an ETF no longer listed
    # is never judged again, so its flags end here.
    unjudged = set(symbols) - details.keys()

    def over(code: str, subject: str) -> bool:
        if code in CODES:  # judged by `settle`: a session not due judges nothing
            return (code, subject) in healed
        if (code, subject) in present:
            return False
        if code in _FLAG_CODES:
            return subject not in unjudged
        named = session_of(subject)
        if code == "etf_daily_failures":  # only once the day is filled
            if named is None:  # an older alert, without its session: as it was judged
                return not got.failed
            return since <= named <= day and not missing_on(named, symbols, history, listed_on)
        if code == "etf_nav_pending":  # only once that session's rows have a NAV
            if named is None:
                return not any(pending.get(d) for d in recent)
            return since <= named <= day and not pending.get(named)
        return True

    resolved = _resolved(send, {c: sev for c, sev in open_.items() if over(*c)})
    have = _have(got.rows)
    send(
        EtfRun(
            job="etf_daily",
            trade_date=day,
            applied=True,
            listed=len(symbols),
            collected=len(got.rows),
            calls=got.kis_calls + got.krx_calls,
            failures=len(got.failed),
            have=have,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    )
    return {
        "date": day.isoformat(),
        "listed": len(symbols),
        "collected": len(got.rows),
        "backfill_asked": len(asked),
        "backfilled_rows": len(got.backfilled),
        "charted_rows": got.charted,
        "chart_failures": len(got.chart_failed),
        "details": len(details),
        "failures": len(got.failed),
        "failed_over_limit": failed_pct > etf.max_failed_pct,
        "nav_pending": len(pending.get(day, [])),
        "nav_pending_sessions": sum(1 for d in recent if pending.get(d)),
        "history_gaps": sum(len(h) for h in left.values()),
        "premium_mismatch": len(premium_mismatches(got.rows.values())),
        "kis_calls": got.kis_calls,
        "krx_calls": got.krx_calls,
        "krx_rows": got.krx_rows,
        "krx_error": got.krx_error,
        "elapsed_s": round(got.elapsed_s, 3),
        "rate_limit_per_s": got.rate_limit_per_s,
        "achieved_fraction": round(got.achieved_fraction, 4),
        "stale": judged.stale,
        "resolved": resolved,
        "have": have,
    }


def _rows_on(history: Mapping[str, Mapping[date, EtfDaily]], day: date) -> dict[str, EtfDaily]:
    """Each ETF's stored row of ``day``."""
    return {s: days[day] for s, days in history.items() if day in days}


def send_health(settings: Settings, clock: Clock, day: date | None, producer: Producer) -> Health:
    """The ``etf_check`` job: the health's conditions as alerts, cleared ones resolved.

    Besides the session judged, each session an open ``etf_stale`` alert names is judged
    again: its rows may have been filled since (that ends the alert, and only that does).
    """
    now_kst = now_utc(clock).astimezone(KST)
    verdict: Health = read(settings, lambda conn: judged(settings, conn, now_kst, day))
    open_ = open_alerts(settings, clock, CODES)
    stale_days = {session_of(s) for c, s in open_ if c == "etf_stale"} - {verdict.session}
    days = sorted(d for d in stale_days if d is not None)
    past: list[Health] = read(
        settings, lambda conn: [judged(settings, conn, now_kst, d) for d in days]
    )
    conditions, healed = settle(verdict, open_, past)
    for c in conditions:
        producer.send(
            Alert(
                severity=c.severity,
                code=c.code,
                subject=c.subject,
                message=c.message,
                context={"day": verdict.session.isoformat()},
            )
        )
    _resolved(producer.send, {c: sev for c, sev in open_.items() if c in healed})
    return verdict
