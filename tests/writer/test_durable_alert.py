"""``bus_not_durable``: a PostgreSQL server that does not flush the writer's commits is
alerted at each start, and the first start that finds it flushing again ends the alert."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved
from observer.db import migrate
from observer.db.engine import make_engine
from observer.writer.identity import WRITER_SOURCE
from observer.writer.startup import NOT_DURABLE, _check_durable
from observer.writer.store import Store


def test_a_server_flushing_again_ends_an_earlier_start_s_alert(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    try:
        store = Store(engine)
        store.load_marks()
        # This server flushes (fsync and synchronous_commit on): no alert, nothing to end
        _check_durable(engine, make_url(pg_url), store)
        assert store.take_alerts() == []
        # An earlier start's alert, left open (the server had fsync off then)
        left = Alert(
            severity="warning", code=NOT_DURABLE, message="fsync = off", subject="database"
        )
        store.apply([decode_parts(encode_frame([Envelope(WRITER_SOURCE, 1, 1, left)]))])
        _check_durable(engine, make_url(pg_url), store)
        [ended] = store.take_alerts()
        assert isinstance(ended, AlertResolved)
        assert (ended.code, ended.subject, ended.severity) == (NOT_DURABLE, "database", "warning")
    finally:
        engine.dispose()
