"""The host rosters' read query (a part of `observer.db.queries`): the latest per supervisor.

``host_rosters`` holds each supervisor's latest roster in place, keyed by its bus source
(`observer.db.models.HostRosterState`); what the rosters mean is `observer.cluster.rosters`'.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from observer.db.models import HostRosterState

__all__ = ["StoredRoster", "latest_rosters"]


@dataclass(frozen=True, slots=True)
class StoredRoster:
    """One supervisor's latest roster as stored: accounts as ``(alias, fingerprint)``."""

    source: str
    host: str
    role: str
    whole_market: tuple[str, ...]
    accounts: tuple[tuple[str, str], ...]
    published_ns: int
    track_b_shard: str = ""  # "" on a host without Track B

    @property
    def label(self) -> str:
        """How alerts and listings name the host: its name, else its supervisor's source."""
        return self.host or self.source


def latest_rosters(conn: Connection, since_ns: int = 0) -> list[StoredRoster]:
    """Each supervisor's latest roster published at or after ``since_ns``, by source."""
    s = HostRosterState
    query = (
        select(
            s.source, s.host, s.role, s.whole_market, s.accounts, s.published_ns, s.track_b_shard
        )
        .where(s.published_ns >= since_ns)
        .order_by(s.source)
    )
    return [
        StoredRoster(
            source=row.source,
            host=row.host,
            role=row.role,
            whole_market=tuple(str(name) for name in row.whole_market),
            accounts=tuple((str(alias), str(print_)) for alias, print_ in row.accounts),
            published_ns=row.published_ns,
            track_b_shard=row.track_b_shard,
        )
        for row in conn.execute(query)
    ]
