"""Each KIS account's functional health for ``ctl status``: stream, token, REST errors.

The figures come from Track B's heartbeat (`observer.kis.account_health`), the running REST
workers' heartbeats (errors of the last five minutes, summed) and the owner-only token cache
(issue and expiry times; the token itself is never read). An unhealthy account makes
``observer ctl status`` exit 1 (`accounts_status` states the rules). A store host calls no
KIS: it has no account rows (`ctl status` and ``/metrics`` alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from observer.alerts.states import parse_alert_id
from observer.calendar.phases import Phase
from observer.cluster.hosts import own_source
from observer.kis.account_health import READINESS_FAILED, REST_ERRORS, by_account, state_name
from observer.kis.settings import KisSettings
from observer.supervisor.program import Program, State
from observer.supervisor.settings import SupervisorSettings

if TYPE_CHECKING:
    from observer.alerts.states import Notice

__all__ = ["CHECKER", "STREAMER", "STREAMING_PHASES", "accounts_status", "readiness_of"]

STREAMER = "track_b"  # the program that streams every account's WebSocket session
CHECKER = "readiness"  # the 08:10 job: its last heartbeat holds each account's last check
STREAMING_PHASES = frozenset({Phase.FULL_OPERATION})  # 09:30-15:00: its slots stream
_KIS_PHASES = frozenset(  # when workers call KIS (Track A from warmup to its closing cycle)
    {Phase.WARMUP, Phase.TRACK_A_ONLY, Phase.FULL_OPERATION, Phase.TRACK_A_CLOSING, Phase.SHUTDOWN}
)
_NS = 1_000_000_000


def accounts_status(
    kis: KisSettings,
    supervisor: SupervisorSettings,
    programs: Mapping[str, Program],
    phase: Phase | None,
    now_ns: int,
    open_alerts: Sequence[Notice] = (),
) -> list[dict[str, Any]]:
    """One row per configured account (none on a store host); ``ok``: it passes these rules.

    While Track B should stream (`STREAMING_PHASES`) an account that does not is unhealthy; so
    is an expired token, in every phase in which a program calls KIS, and an account whose
    last readiness check failed (the ``readiness`` job's last heartbeat; before one since the
    supervisor's start, this host's open ``readiness_failed`` alert), until a later one passes.
    ``open_alerts``: the open alerts of the supervisor's last database read.
    """
    # deferred: the KIS layer (httpx, about 0.13 s) on a status request only
    from observer.kis.auth import cached_validity

    if supervisor.role == "store":
        return []
    streamer = programs.get(STREAMER)
    streaming = streamer is not None and streamer.state is State.RUNNING
    reports = by_account(streamer.counters) if streaming and streamer else {}
    required = phase in STREAMING_PHASES and streamer is not None and not streamer.held
    errors: dict[str, float] = {}
    for program in programs.values():
        if program.state is not State.RUNNING:  # its last figure is history, not the last 5 min
            continue
        for alias, figures in by_account(program.counters).items():
            errors[alias] = errors.get(alias, 0.0) + figures.get(REST_ERRORS, 0.0)
    checker = programs.get(CHECKER)
    checks = by_account(checker.counters) if checker is not None else {}
    alerted = _readiness_alerted(supervisor, open_alerts, now_ns)
    rows = []
    for account in kis.accounts:
        alias = account.alias
        figures = reports.get(alias, {})
        folder, environment = Path(kis.token_dir), kis.environment
        validity = cached_validity(folder, alias, environment)
        approval = cached_validity(folder, alias, environment, "approval_key")
        expires_in = (validity[1] - now_ns) / _NS if validity else None
        stream = state_name(figures["stream_state"]) if "stream_state" in figures else "unknown"
        problems = []
        if required and figures.get("healthy") != 1.0:
            problems.append(f"not streaming ({stream})")
        if expires_in is not None and expires_in <= 0 and phase in _KIS_PHASES:
            problems.append("access token expired")
        readiness = readiness_of(checks.get(alias, {}), now_ns) or alerted.get(alias)
        if readiness is not None and not readiness["ok"]:  # until a later check passes
            problems.append(f"not ready ({', '.join(readiness['failed'])}): degraded")
        rows.append(
            {
                "account": alias,
                "ok": not problems,
                "problems": problems,
                "stream": stream,
                "streaming_required": required,
                "state_age_s": figures.get("state_age_s"),
                "registered": int(figures.get("registered", 0)),
                "wanted": int(figures.get("wanted", 0)),
                "last_tick_age_s": figures.get("last_tick_age_s"),
                "delivery_lag_s": figures.get("delivery_lag_s"),
                "lag_alert_s": figures.get("lag_alert_s"),
                "reconnects_1h": int(figures.get("reconnects_1h", 0)),
                "reconnect_budget": int(figures.get("reconnect_budget", 0)),
                "token_age_s": round((now_ns - validity[0]) / _NS, 1) if validity else None,
                "token_expires_in_s": round(expires_in, 1) if expires_in is not None else None,
                "approval_key_age_s": round((now_ns - approval[0]) / _NS, 1) if approval else None,
                "rest_errors_5m": int(errors.get(alias, 0.0)),
                "readiness": readiness,
            }
        )
    return rows


def _readiness_alerted(
    supervisor: SupervisorSettings, open_alerts: Sequence[Notice], now_ns: int
) -> dict[str, dict[str, Any]]:
    """A verdict per account whose ``readiness_failed`` from this host's job is open.

    It stands for the job's last check when no check was heard since the supervisor started.
    """
    source = own_source(supervisor, CHECKER)
    return {
        notice.subject: {
            "ok": False,
            "failed": [READINESS_FAILED],  # which checks failed is in the alert's message
            "attempts": 0,
            "age_s": round((now_ns - notice.produced_ns) / _NS, 1),
        }
        for notice in open_alerts
        if notice.code == READINESS_FAILED and parse_alert_id(notice.id)[0] == source
    }


def readiness_of(figures: Mapping[str, float], now_ns: int) -> dict[str, Any] | None:
    """The readiness job's last check of an account (None before the first)."""
    if "ready" not in figures:
        return None
    failed = [name for name in ("token", "rest", "ws") if figures.get(f"ready_{name}") != 1.0]
    return {
        "ok": figures["ready"] == 1.0,
        "failed": failed,  # of token, rest, ws
        "attempts": int(figures.get("ready_attempts", 0)),
        "age_s": round(now_ns / _NS - figures.get("ready_at_s", 0.0), 1),
    }
