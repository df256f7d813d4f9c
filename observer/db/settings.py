"""``[database]``: the writer's database, the readers' pool and an optional read replica.

Only the writer writes, through its own single connection. Every other process reads
through a pool (`observer.db.readers`) of at most ``reader_pool_max`` connections, waiting at
most ``reader_pool_timeout_s`` for one. Reports read from ``replica_url`` when it is set and
the replica is within ``replica_max_lag_s`` of the primary (`observer.db.replica`).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from observer.setting_types import Positive, Seconds, Strict

__all__ = ["REPLICA_PASSWORD_ENV", "DatabaseSettings", "url_shape_problem"]

# The replica's password, when its server asks for one and libpq's own password file
# (~/.pgpass, which libpq ignores unless it is owner-only) does not hold it.
REPLICA_PASSWORD_ENV = "OBSERVER_DB_REPLICA_PASSWORD"  # noqa: S105 - a variable's name


class DatabaseSettings(Strict, frozen=True):
    """The writer's database, how readers connect to it, and the reports' replica."""

    url: str = "sqlite:///var/observer.db"
    # PostgreSQL readers, per process: connections kept open (min) and at most (max); a
    # read waits this long for one before it fails naming the pool.
    reader_pool_min: Annotated[int, Meta(ge=0, le=100)] = 1
    reader_pool_max: Annotated[Positive, Meta(le=100)] = 4
    reader_pool_timeout_s: Seconds = 10.0
    # A streaming standby of ``url`` for reports; empty: reports read the primary. No
    # password here: it comes from $OBSERVER_DB_REPLICA_PASSWORD or ~/.pgpass.
    replica_url: str = ""
    replica_max_lag_s: Seconds = 60.0  # a replica further behind is passed over, with a warning
    replica_timeout_s: Seconds = 5.0  # an unreachable replica is passed over after this long

    def __post_init__(self) -> None:
        for name, url in (("url", self.url), ("replica_url", self.replica_url)):
            problem = url_shape_problem(url) if url else None
            if problem is not None:
                raise ValueError(f"database.{name}: {problem}")
        if self.reader_pool_min > self.reader_pool_max:
            raise ValueError(
                f"reader_pool_min {self.reader_pool_min} > reader_pool_max {self.reader_pool_max}"
            )
        if not self.replica_url:
            return
        # Here, not at the top: every process loads the settings, and a worker is READY
        # before it loads the database layer (tests/cli/test_startup.py).
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            replica, primary = make_url(self.replica_url), make_url(self.url)
        except ArgumentError:
            raise ValueError("url or replica_url is not a database URL") from None  # a secret
        if replica.get_backend_name() != "postgresql":
            raise ValueError("replica_url must be a PostgreSQL URL (a streaming standby)")
        if replica.password is not None:
            raise ValueError(
                f"replica_url must not carry a password: set ${REPLICA_PASSWORD_ENV} or "
                "use ~/.pgpass (owner-only)"
            )
        if primary.get_backend_name() != "postgresql":
            raise ValueError("replica_url needs a PostgreSQL url: a replica of what?")


def url_shape_problem(url: str) -> str | None:
    """Why ``url`` is no database URL, never quoting it (it may hold a password); else None.

    Only its shape: the driver and the server are judged on use. An ``@`` inside the
    password would end it early, and the rest would be taken for the host and shown in
    every error as such.
    """
    scheme, found, rest = url.partition("://")
    if not found or not scheme.replace("+", "").replace("_", "").isalnum():
        return "not a database URL (dialect://...)"
    if scheme.split("+", 1)[0] == "sqlite":
        if rest and not rest.startswith("/"):
            return "a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path"
        return None
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    if netloc.count("@") > 1:
        return "an @ in the user name or password must be written %40"
    after_address = netloc.rpartition("@")[2].rpartition("]")[2]  # [::1]:5432 -> :5432
    _, colon, port = after_address.partition(":")
    if colon and not (port.isdigit() and 0 < int(port) < 65536):
        return f"the port {port[:8]!r} is not a number from 1 to 65535"
    return None
