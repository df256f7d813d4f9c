"""Each account's functional health, carried in heartbeat counters.

A worker reports ``account.<alias>.<figure>`` counters in its heartbeats, numbers only, so they
are Prometheus figures too: Track B the stream (`STREAM_FIGURES`), every process with a KIS REST
client its recent errors (`REST_ERRORS`). The supervisor gathers them per account for ``observer
ctl status``. After a supervisor's restart, until the readiness job checks again, its open
`READINESS_FAILED` alert stands for its verdict.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "READINESS_FAILED",
    "REST_ERRORS",
    "STREAM_FIGURES",
    "STREAM_STATES",
    "by_account",
    "counter",
    "state_code",
    "state_name",
]

PREFIX = "account."

# A session's states: the stream's own, "idle" before it was started (Track B streams from
# 09:30) and "down" while its hourly reconnect budget is spent (it retries when it reopens).
STREAM_STATES = ("idle", "connecting", "connected", "disconnected", "refused", "stopped", "down")

STREAM_FIGURES = (
    "stream_state",  # index in STREAM_STATES
    "state_age_s",  # clock seconds in that state
    "registered",  # registrations KIS acknowledged on the current session
    "wanted",  # registrations the slots call for
    "healthy",  # 1: up, or down for less than unhealthy_after_s; 0: its slots fail over
    "identified",  # 1: KIS took the approval key on the current session (it is the key's)
    "last_tick_age_s",  # clock seconds since the last data frame (absent before the first)
    "delivery_lag_s",  # the last data frame's receive time less its newest trade stamp
    "lag_alert_s",  # the delivery lag beyond which Track B alerts ([track_b]; 0: none)
    "dropped_frames",  # data frames that did not parse (logged and skipped), since the start
    "dropped_records",  # records of parsed frames the decoder refused (a trade's: a gap)
    # Records the checks refused (not asked for, or a price, quantity or time that cannot
    # be); each kind of refusal, frames' too, is also "rejected.<kind>".
    "rejected_records",
    "reconnects_1h",  # reconnects spent of the hourly budget
    "reconnect_budget",
)
REST_ERRORS = "rest_errors_5m"  # REST calls that failed within the last five minutes
READINESS_FAILED = "readiness_failed"  # the readiness job's alert (subject: the account)


def counter(alias: str, figure: str) -> str:
    """The heartbeat counter of ``figure`` for account ``alias`` (aliases hold no dot)."""
    return f"{PREFIX}{alias}.{figure}"


def state_code(state: str) -> float:
    """A stream state as its counter value."""
    return float(STREAM_STATES.index(state))


def state_name(code: float) -> str:
    """The stream state a counter value stands for."""
    index = int(code)
    return STREAM_STATES[index] if 0 <= index < len(STREAM_STATES) else "unknown"


def by_account(counters: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The ``account.<alias>.<figure>`` counters of one heartbeat, by alias then figure."""
    found: dict[str, dict[str, float]] = {}
    for key, value in counters.items():
        if key.startswith(PREFIX):
            alias, dot, figure = key[len(PREFIX) :].partition(".")
            if dot:
                found.setdefault(alias, {})[figure] = value
    return found
