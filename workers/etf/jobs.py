"""What the ETF jobs share once READY, and the ``etf_list`` and ``etf_check`` jobs.

Reads go through the readers' pool (`read`); KRX through `portal`, None without a login
(``krx_login_failed``). Every failure is an `Alert` with a stable ``(code, subject)``; an
open alert of the ETF jobs' sources whose condition is gone gets one `AlertResolved`
(`resolve`, `end_alerts`). The daily job is `workers.etf.daily`'s, the repair
`workers.etf.backfill`'s, the constituents `workers.etf.holdings`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import date
from typing import Any

import msgspec

from bus.events import Alert, AlertResolved, EtfListing, EtfRun, Event, Severity
from bus.producer import Producer
from observer.alerts.states import alert_states, parse_alert_id
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.cluster.hosts import program_of
from observer.config.tree import Settings
from observer.db.etf_queries import held_etfs, kis_etf_symbols
from observer.db.queries import alert_records
from observer.db.readers import reader_engine
from observer.errors import ConfigError
from observer.krx.client import KrxClient, open_krx
from observer.process.heartbeat import Heartbeat
from workers.etf.health import CODES, Health, session_of, settle
from workers.etf.listing import ListOutcome, collect_list
from workers.etf.report import judged

__all__ = [
    "ListSkipped",
    "ListSummary",
    "beat",
    "end_alerts",
    "open_alerts",
    "portal",
    "read",
    "resolve",
    "run_list",
    "send_health",
    "symbols_of",
]

_SOURCES = ("etf", "etf_check")  # the ETF jobs' two sources (on any host: etf@c1)
_LIST_CODES = ("etf_list_refused", "krx_login_failed", "etf_list_rows_dropped", "etf_list_missing")


class ListSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``observer etf list`` prints of a list read (``--json``: these keys, this order)."""

    applied: bool
    listed: int
    new: int
    changed: int
    removed: int
    dropped: int
    calls: int
    reason: str


class ListSkipped(msgspec.Struct, frozen=True, kw_only=True):
    """What ``observer etf list`` prints when no KRX login is configured: nothing was read."""

    applied: bool = False
    listed: int
    reason: str = "no KRX login"


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
    return end_alerts(send, gone)


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


def end_alerts(send: Callable[[Event], object], gone: Mapping[tuple[str, str], Severity]) -> int:
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


def run_list(settings: Settings, clock: Clock, producer: Producer) -> ListSummary | ListSkipped:
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
        return ListSkipped(listed=len(previous))

    async def go() -> ListOutcome:
        try:
            return await collect_list(
                krx, previous, day, producer.send, min_ratio=settings.etf.min_list_ratio
            )
        finally:
            await krx.aclose()

    outcome = asyncio.run(go())
    if outcome.run.applied:
        dropped = {("etf_list_rows_dropped", "")} if outcome.dropped else set()
        resolve(settings, producer.send, _LIST_CODES, dropped, clock)
    run = outcome.run
    return ListSummary(
        applied=run.applied,
        listed=run.listed,
        new=outcome.new,
        changed=outcome.changed,
        removed=outcome.removed,
        dropped=outcome.dropped,
        calls=run.calls,
        reason=run.reason,
    )


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


def beat(notifier: Heartbeat) -> Callable[[int, int], None]:
    """A progress callback that beats the heartbeat."""
    return lambda done, total: notifier.beat()


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
    end_alerts(producer.send, {c: sev for c, sev in open_.items() if c in healed})
    return verdict
