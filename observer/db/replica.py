"""Where a report reads: the read replica when it is configured, reachable and fresh enough.

Reports (`observer.cli.support.report_reading`) only look at what was stored, so they can read a
streaming standby and spare the primary. `report_engine` measures the standby's replay lag first
and says where it read (`ReportSource.note`): a replica that does not answer within
``replica_timeout_s``, is more than ``replica_max_lag_s`` behind, or is no standby at all is
passed over for the primary with a warning, never silently and never with an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from observer.db.engine import display_url, normalize_url
from observer.db.readers import reader_engine
from observer.db.settings import REPLICA_PASSWORD_ENV, DatabaseSettings
from observer.errors import StoreError

__all__ = ["ReportSource", "replay_lag_s", "report_engine"]

_LAG = text(
    "SELECT pg_is_in_recovery(),"
    " pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(),"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()),"
    " (SELECT status FROM pg_stat_wal_receiver)"
)


@dataclass(frozen=True, slots=True)
class ReportSource:
    """The engine a report reads from, which server that is, and a line saying so."""

    engine: Engine
    where: Literal["primary", "replica"]
    lag_s: float | None  # the replica's replay lag, when it was measured
    note: str  # empty when no replica is configured: nothing to tell


def replay_lag_s(conn: Connection) -> float | None:
    """How far behind the primary this standby is, in seconds; None if it never replayed.

    0.0 for a server that is not a standby, and for one streaming with nothing left to replay;
    otherwise the time since the last transaction it replayed was committed. It is the
    standby's own view: measuring against the primary's WAL position would need the primary,
    which the replica is there to spare.
    """
    return _standby_lag(conn)[1]


def _standby_lag(conn: Connection) -> tuple[bool, float | None]:
    """Whether the server is a standby (in recovery), and its lag as `replay_lag_s` says."""
    in_recovery, caught_up, since_replay, receiver = conn.execute(_LAG).one()
    if not in_recovery:
        return False, 0.0
    if caught_up and receiver == "streaming":
        return True, 0.0
    return True, None if since_replay is None else max(0.0, float(since_replay))


@contextmanager
def report_engine(settings: DatabaseSettings, name: str) -> Iterator[ReportSource]:
    """The replica's engine when it serves, else the primary's; disposed of on exit."""
    if not settings.replica_url:
        source = ReportSource(reader_engine(settings, name), "primary", None, "")
    else:
        source = _choose(settings, name)
    try:
        yield source
    finally:
        source.engine.dispose()


def _choose(settings: DatabaseSettings, name: str) -> ReportSource:
    url = replica_url(settings)
    replica = reader_engine(settings, name, url=url, timeout_s=settings.replica_timeout_s)
    lag: float | None = None
    try:
        with replica.connect() as conn:
            standby, lag = _standby_lag(conn)
    except (StoreError, SQLAlchemyError) as exc:
        reason = f"the replica {display_url(url)} is unreachable: {getattr(exc, 'orig', exc)}"
    else:
        if not standby:
            # A promoted or detached copy replays nothing: "lag 0.0 s" would pass off rows
            # frozen at the moment it left the primary as current.
            lag = None
            reason = f"the replica {display_url(url)} is not a standby (promoted?)"
        elif lag is not None and lag <= settings.replica_max_lag_s:
            note = f"read from the replica {display_url(url)}: replay lag {lag:.1f} s"
            return ReportSource(replica, "replica", lag, note)
        else:
            behind = "has replayed nothing yet" if lag is None else f"is {lag:.1f} s behind"
            reason = (
                f"the replica {display_url(url)} {behind} "
                f"(replica_max_lag_s {settings.replica_max_lag_s:g})"
            )
    replica.dispose()
    note = f"warning: read from the primary: {reason}"
    return ReportSource(reader_engine(settings, name), "primary", lag, note)


def replica_url(settings: DatabaseSettings) -> URL:
    """``replica_url`` with its password from the environment, when one is set there."""
    url = normalize_url(settings.replica_url)
    password = os.environ.get(REPLICA_PASSWORD_ENV)
    return url.set(password=password) if password else url
