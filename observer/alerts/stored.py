"""The alerts a process's earlier runs left open, read back for its `AlertBook` to take over.

Whatever their age, as ``observer alerts --open`` lists them
(`observer.db.queries.open_alert_records`), of the process's own source as stored: the book's
``source``, which a named host qualifies (`observer.cluster.hosts`).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection

from observer.alerts.book import AlertBook
from observer.alerts.states import Notice, alert_states, open_notices, parse_alert_id
from observer.cluster.hosts import host_of
from observer.db.queries import open_alert_records

__all__ = ["load", "open_alerts", "open_on_host"]


def open_alerts(
    conn: Connection,
    source: str,
    codes: Collection[str] | None = None,
    through_seq: int | None = None,
) -> list[Notice]:
    """``source``'s open alerts of ``codes`` (None: any), oldest first.

    ``through_seq``: those raised at that seq or before (a run that reads after it has sent
    its own leaves them out).
    """
    found = open_notices(open_alert_records(conn, deliveries=False), source, codes)
    if through_seq is None:
        return found
    return [n for n in found if parse_alert_id(n.id)[1] <= through_seq]


def open_on_host(conn: Connection, host: str, codes: Collection[str]) -> list[Notice]:
    """The open alerts of ``codes`` any process of ``host`` ("": hosts unnamed) raised.

    For a condition another process raised and one on its host can end: a resolution ends
    the alerts of its code and subject from its own host (`observer.alerts.states`).
    """
    return [
        state.notice
        for state in alert_states(open_alert_records(conn, deliveries=False))
        if state.state == "open"
        and state.notice.code in codes
        and host_of(parse_alert_id(state.notice.id)[0]) == host
    ]


def load(
    book: AlertBook,
    conn: Connection,
    codes: Collection[str] | None = None,
    through_seq: int | None = None,
) -> list[Notice]:
    """`open_alerts` of the book's source, taken over by ``book``; those taken."""
    return book.take_over(open_alerts(conn, book.source, codes, through_seq))
