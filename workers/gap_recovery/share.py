"""The REST share a hand-run ``observer gap-recovery verify`` takes of each account's budget.

The daemon paces its calls at the ``gap_recovery`` share all day; a verify beside it at that
share would take the account past KIS's budget (EGW00201). So while the daemon runs on this
host (found by its outbox's flock, `bus.outbox`, held from start to exit, kill -9 included),
verify takes ``kis.process_share.manual``, or what the configured shares leave, refused if
nothing; with no daemon it takes the ``gap_recovery`` share.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bus.lock import holder
from observer.cluster.hosts import own_source
from observer.errors import ConfigError
from observer.kis.session import rate_limits
from workers.gap_recovery import SOURCE

if TYPE_CHECKING:
    from observer.config.tree import Settings
    from observer.kis.client import RateLimits

__all__ = ["MANUAL", "daemon_lock", "daemon_pid", "verify_limits"]

log = logging.getLogger(__name__)

MANUAL = "manual"  # the kis.process_share entry of a hand-run verify beside the daemon
_NOTHING = 1e-9  # shares adding up to 1 within this leave nothing (config_checks' tolerance)


def daemon_lock(settings: Settings) -> Path:
    """The flock the daemon's producer holds on this host (`observer.runtime.producer_for`)."""
    return settings.paths.run / "outbox" / own_source(settings.supervisor, SOURCE) / "LOCK"


def daemon_pid(settings: Settings) -> str | None:
    """The pid of the gap-recovery daemon running on this host; None if none runs."""
    return holder(daemon_lock(settings))


def verify_limits(settings: Settings) -> RateLimits:
    """Each account's limiter for a hand-run verify (see the module's docstring).

    Raises
    ------
    ConfigError
        The daemon runs and the configured shares leave nothing for verify.
    """
    shares = settings.kis.process_share
    pid = daemon_pid(settings)
    if pid is None:
        log.info(
            "verify takes the %s share (%g): no gap-recovery daemon holds %s",
            SOURCE,
            shares.get(SOURCE, 0.0),
            daemon_lock(settings),
        )
        return rate_limits(settings.kis, SOURCE)
    if MANUAL in shares:
        share, why = shares[MANUAL], f"kis.process_share.{MANUAL}"
    else:
        share, why = 1.0 - sum(shares.values()), "what the configured shares leave"
    if share <= _NOTHING:
        raise ConfigError(
            f"the gap-recovery daemon (pid {pid}) holds the {SOURCE} share and "
            "kis.process_share leaves none for verify: stop the daemon, or give "
            f"kis.process_share a {MANUAL} entry the other shares leave room for"
        )
    log.info(
        "verify takes the %s share (%g, %s): the gap-recovery daemon (pid %s) holds the %s one",
        MANUAL,
        share,
        why,
        pid,
        SOURCE,
    )
    return rate_limits(settings.kis, MANUAL, share=share)
