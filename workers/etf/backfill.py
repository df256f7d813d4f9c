"""The ``etf_backfill`` job (weekly): the last ``repair_sessions`` sessions' NAVs, repaired.

From each completed session's own KRX table, else KIS's series (`workers.etf.collect.repair`):
rows whose NAV, net assets, high or low are missing or revised are sent again
(`workers.etf.rows.repaired`), never a live quote. A session under way is never read
(`last_repairable`). Failed series are ``etf_repair_failures`` (an error above ``[etf]
max_failed_pct``: ``failed_over_limit``, exit 1), resolved by a run in which none failed;
KIS refusing an account's calls of the series as over its rate limit too often,
``kis_rate_limited`` (`observer.kis.rate_alert.rate_alerts`), over once a run's calls as that
account are not (a run on KRX's tables alone judges no account).
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta

import msgspec

from bus.events import Alert, EtfDaily, EtfRun
from bus.producer import Producer
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.config.tree import Settings
from observer.db.etf_queries import etf_history
from observer.kis.rate_alert import KIS_RATE_LIMITED, judged, rate_alerts
from observer.process.heartbeat import Heartbeat
from workers.etf.collect import Collected, repair
from workers.etf.jobs import beat, portal, read, resolve, symbols_of
from workers.etf.rows import repaired
from workers.etf.sessions import calendar_of, target_session

__all__ = ["CODES", "RepairSummary", "last_repairable", "run_repair"]

CODES = ("etf_repair_failures", KIS_RATE_LIMITED)


class RepairSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``observer etf backfill`` prints (``--json``: these keys, in this order)."""

    sessions: int
    repaired_rows: int
    kis_calls: int
    krx_calls: int
    krx_error: str
    failures: int
    failed_over_limit: bool  # more than ``max_failed_pct`` failed: the command exits 1
    resolved: int


def last_repairable(settings: Settings, now_kst: datetime) -> date:
    """The newest session a repair may read at ``now_kst``: the last completed one.

    While a session is under way that is the previous session (`target_session` says
    None then): the open session's table holds its prices so far, not its close.
    """
    done = target_session(settings, now_kst)
    return done if done is not None else calendar_of(settings).previous_session(now_kst.date())


def run_repair(
    settings: Settings, clock: Clock, until: date, producer: Producer, notifier: Heartbeat
) -> RepairSummary:
    """The ``etf_backfill`` job: the ``repair_sessions`` completed sessions up to ``until``."""
    started = time.monotonic()
    send = producer.send
    last = min(until, last_repairable(settings, now_utc(clock).astimezone(KST)))
    sessions = calendar_of(settings).sessions_before(
        last + timedelta(days=1), settings.etf.repair_sessions
    )
    _, symbols = symbols_of(settings, send)
    history: dict[str, dict[date, EtfDaily]] = read(
        settings, lambda conn: etf_history(conn, sessions[0], sessions[-1])
    )
    krx = portal(settings, clock, send)

    async def go() -> Collected:
        try:
            progress = beat(notifier)
            return await repair(
                settings, clock, symbols, sessions, history, krx, progress, alerts=send
            )
        finally:
            if krx is not None:
                await krx.aclose()

    got = asyncio.run(go())
    for row in got.backfilled:
        send(repaired(history.get(row.symbol, {}).get(row.trade_date), row))
    if got.krx_error:
        send(
            Alert(
                severity="warning",
                code="etf_krx_table_failed",
                message=f"KRX's ETF table: {got.krx_error}; repaired through KIS",
            )
        )
    failed_pct = 100 * len(got.failed) / max(len(symbols), 1)
    over = failed_pct > settings.etf.max_failed_pct
    present: set[tuple[str, str]] = set()
    if got.failed:
        present.add(("etf_repair_failures", ""))
        sample = "; ".join(f"{s}: {e}" for s, e in list(got.failed.items())[:3])
        send(
            Alert(
                severity="error" if over else "warning",
                code="etf_repair_failures",
                message=f"{len(got.failed)} of {len(symbols)} ETFs could not be repaired "
                f"for {sessions[0]}..{sessions[-1]} (their stored rows stay): {sample}"[:2000],
            )
        )
    present |= rate_alerts(settings.kis, send, "etf_backfill", got.refusals)
    aliases = {a.alias for a in settings.kis.accounts}
    resolved = resolve(
        settings, send, CODES, present, clock, unjudged=aliases - judged(got.refusals)
    )
    send(
        EtfRun(
            job="etf_backfill",
            trade_date=sessions[-1],
            applied=True,
            listed=len(symbols),
            collected=len(got.backfilled),
            calls=got.kis_calls + got.krx_calls,
            failures=len(got.failed),
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    )
    return RepairSummary(
        sessions=len(sessions),
        repaired_rows=len(got.backfilled),
        kis_calls=got.kis_calls,
        krx_calls=got.krx_calls,
        krx_error=got.krx_error,
        failures=len(got.failed),
        failed_over_limit=over,
        resolved=resolved,
    )
