"""Host rosters: what each host's supervisor runs, its history and the latest per host."""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of the models' import, which is on the writer's path to READY.

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bus.envelope import MAX_SOURCE_LENGTH
from observer.db.models.base import Audited, Base


class HostRosterRow(Audited, Base):
    """Every roster a supervisor published (append-only; no app key, only fingerprints)."""

    __tablename__ = "host_roster_events"
    host: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    whole_market: Mapped[list[Any]]  # program names
    accounts: Mapped[list[Any]]  # [[alias, fingerprint], ...]
    track_b_shard: Mapped[str] = mapped_column(String(200))  # "" without Track B


class HostRosterState(Base):
    """The latest roster of each supervisor (updated in place), by its bus source.

    Keyed by the source, not the host name: a store host and a collectors host without
    names are ``supervisor`` and ``supervisor_collectors``, both of host "".
    """

    __tablename__ = "host_rosters"
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    seq: Mapped[int]
    host: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    whole_market: Mapped[list[Any]]
    accounts: Mapped[list[Any]]
    track_b_shard: Mapped[str] = mapped_column(String(200))
    published_ns: Mapped[int]  # the roster's envelope time: its age decides if it counts
