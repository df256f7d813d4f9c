"""Events of the wrong type, and values one database would keep and the other not, are
rejected events.

An event whose values do not match its type must never jam its source: `Producer.send`
refuses it before it uses a seq, and an envelope that still arrives that way (a producer of
another release, a foreign one) is kept in ``rejected_events`` under its seq while the rest
of its frame and its source go on, alerted once. A value SQLite would store but PostgreSQL
refuses (or that PostgreSQL stores but no archive can hold: a NaN) is a rejected event on
both databases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bus.codec import decode_ack, decode_parts, encode_frame, frame_header
from bus.envelope import Envelope
from bus.errors import EventError, FrameError
from bus.events import Alert, EtfListing, GapDetected, TradeTick
from bus.producer import Producer
from observer.db import models as m
from observer.db.audit_queries import audit_sources
from observer.writer.store import Store
from tests.samples import SAMPLES, T0
from tests.support import WriterProcess, audit, db_rows, wait_until

MakeWriter = Callable[..., WriterProcess]
TICK: TradeTick = SAMPLES[2]  # type: ignore[assignment]
LISTING = next(e for e in SAMPLES if isinstance(e, EtfListing))


def raw_envelope(source: str, seq: int, event: Any) -> bytes:
    """One envelope's bytes as any producer could send them, whatever the event's values."""
    return msgspec.msgpack.encode(Envelope(source, seq, T0 + seq, event))


def raw_frame(*parts: bytes) -> bytes:
    return frame_header(len(parts)) + b"".join(parts)


def rejected(store: Store) -> dict[tuple[str, int], m.RejectedEvent]:
    with Session(store.engine) as session:
        return {(r.source, r.seq): r for r in session.scalars(select(m.RejectedEvent))}


# --------------------------------------------------------------------------- the producer


@pytest.mark.parametrize(
    ("event", "where"),
    [
        (msgspec.structs.replace(TICK, price=73200.0), "price"),  # a float into an int
        (msgspec.structs.replace(TICK, symbol=None), "symbol"),  # None into a str
        (msgspec.structs.replace(TICK, halted=1), "halted"),  # 1 into a bool
        (
            GapDetected(gap_id="g", symbol="005930", start_ns=1, end_ns=2, reason="bogus"),  # type: ignore[arg-type]
            "reason",  # a value outside its Literal
        ),
    ],
)
def test_an_event_of_the_wrong_type_is_refused_at_send_without_a_seq(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter, event: Any, where: str
) -> None:
    """msgpack encodes these without complaint; only the writer's typed decode saw them, and
    it refused the whole frame, every later frame of the source waiting behind the hole."""
    writer = writer_factory(sqlite_url).start()
    with Producer("p", writer.ingest, tmp_path / "ob", linger_s=10.0) as producer:
        for _ in range(3):
            producer.send(TICK)  # buffered in the same frame: the linger is long
        with pytest.raises(EventError, match=f"does not match the bus contract: .*{where}"):
            producer.send(event)
        for _ in range(3):
            producer.send(TICK)
        assert producer.wait_acked(30)
        assert producer.last_seq == 6
    found = audit(sqlite_url)["p"]
    assert found.complete and found.max_seq == 6 and found.rows == 6


# --------------------------------------------------------------------------- the store


def test_an_event_that_does_not_decode_is_a_rejected_event_under_its_seq(store: Store) -> None:
    """The frame is decoded envelope by envelope: the good ones commit, each bad one is kept
    whole under its seq, and its source's next frame follows without a hole."""
    parts = [
        raw_envelope("old", 1, TICK),
        raw_envelope("old", 2, msgspec.structs.replace(TICK, price=73200.5)),
        raw_envelope("old", 3, msgspec.structs.replace(TICK, side=None)),
        raw_envelope("old", 4, TICK),
    ]
    frame = decode_parts(raw_frame(*parts))
    assert frame.undecodable == (1, 2)
    accepted = store.apply([frame])
    assert accepted.published() == [(frame, [0, 3])]  # the feed's subscribers decode whole
    store.apply([decode_parts(raw_frame(raw_envelope("old", 5, TICK)))])
    assert store.marks == {"old": 5}
    found = rejected(store)
    assert set(found) == {("old", 2), ("old", 3)}
    for seq, where in ((2, "price"), (3, "side")):
        row = found["old", seq]
        assert row.event_type == "trade_tick" and row.produced_ns == T0 + seq
        assert "does not decode" in row.reason and where in row.reason
        assert row.envelope == raw_frame(parts[seq - 1])  # the bytes as they came
    assert store.rejected == store.undecodable == 2
    with Session(store.engine) as session:
        ticks = session.scalars(select(m.TradeTickRow.seq).order_by(m.TradeTickRow.seq)).all()
    assert ticks == [1, 4, 5]
    with store.engine.connect() as conn:
        (audited,) = audit_sources(conn)
    assert audited.complete and audited.max_seq == 5
    again = store.apply([decode_parts(raw_frame(*parts))])  # a resend: the same bytes
    assert (again.duplicates, again.conflicts, again.count) == (4, 0, 0)


def test_a_frame_with_an_unreadable_identity_is_still_refused_whole() -> None:
    good = raw_envelope("old", 1, TICK)
    for bad in (msgspec.msgpack.encode([1, 2, 3]), msgspec.msgpack.encode(["old", "2", 0, {}])):
        with pytest.raises(FrameError, match="envelope 2 of 2 has no readable source and seq"):
            decode_parts(raw_frame(good, bad))


BAD_DECIMALS = [
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "1E+30",
    "1E+16",
    "-10000000000000000",
    "9999999999999999.999999995",  # rounds to 10^16: one digit too many
]
GOOD_DECIMALS = {  # as sent -> as stored, on both databases
    "9999999999999999.99999999": "9999999999999999.99999999",
    "-1234567890123456.5": "-1234567890123456.5",
    "1.123456789012": "1.12345679",
    "0.000000005": "0.00000001",
    "-0.54": "-0.54",
}


def test_decimals_are_kept_or_refused_alike_on_both_databases(store: Store) -> None:
    """SQLite stored NaN, infinities, 1E+30 and 12 places as given; PostgreSQL stored NaN
    (which breaks the day's archive) and refused the others as a rejected event."""
    events: list[Any] = [
        msgspec.structs.replace(TICK, change_rate=Decimal(v)) for v in BAD_DECIMALS
    ]
    events.append(msgspec.structs.replace(LISTING, fee_pct=Decimal("NaN")))  # kept in place too
    bad = len(events)
    events += [msgspec.structs.replace(TICK, change_rate=Decimal(v)) for v in GOOD_DECIMALS]
    envelopes = [Envelope("w", seq, T0, e) for seq, e in enumerate(events, 1)]
    store.apply([decode_parts(encode_frame(envelopes))])
    assert store.marks == {"w": len(events)}
    found = rejected(store)
    assert set(found) == {("w", seq) for seq in range(1, bad + 1)}
    assert all("NUMERIC" in r.reason or "finite" in r.reason for r in found.values())
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT change_rate FROM trade_ticks ORDER BY seq")).scalars()
        assert [Decimal(str(v)) for v in stored] == [Decimal(v) for v in GOOD_DECIMALS.values()]
        if store.engine.dialect.name == "sqlite":  # the text itself, as ExactDecimal stores it
            texts = conn.execute(text("SELECT change_rate FROM trade_ticks ORDER BY seq"))
            assert list(texts.scalars()) == list(GOOD_DECIMALS.values())
        assert conn.execute(text("SELECT count(*) FROM etfs")).scalar_one() == 0
    with store.engine.connect() as conn:
        (audited,) = audit_sources(conn)
    assert audited.complete


def test_a_nul_in_a_string_is_refused_on_sqlite_as_on_postgresql(store: Store) -> None:
    events = [
        msgspec.structs.replace(TICK, symbol="00\x005930"),
        Alert(severity="info", code="x", message="a\x00b"),
        msgspec.structs.replace(LISTING, name="KODEX\x00200"),
        TICK,
    ]
    envelopes = [Envelope("w", seq, T0, e) for seq, e in enumerate(events, 1)]
    store.apply([decode_parts(encode_frame(envelopes))])
    assert store.marks == {"w": 4}
    assert set(rejected(store)) == {("w", 1), ("w", 3)}
    with store.engine.connect() as conn:
        assert list(conn.execute(text("SELECT seq FROM trade_ticks")).scalars()) == [4]
        # An alert is made storable instead (`bus.events.Alert`): its NUL written out.
        assert conn.execute(text("SELECT message FROM alerts")).scalar_one() == "a\\x00b"


def test_an_event_the_database_refuses_is_alerted_once_per_source(store: Store) -> None:
    """Kept in rejected_events, it was only logged: its tick or bar was missing from its
    table with nothing to say so. Now the first of each source in a run is an error for the
    writer to commit; a later one of the same source is only counted."""
    long_symbol = msgspec.structs.replace(TICK, symbol="X" * 17)  # beyond its column
    frames = [
        [Envelope("track_b", 1, T0, long_symbol), Envelope("track_b", 2, T0, TICK)],
        [Envelope("track_b", 3, T0, long_symbol), Envelope("track_a", 1, T0, long_symbol)],
    ]
    for envelopes in frames:
        store.apply([decode_parts(encode_frame(envelopes))])
    assert store.marks == {"track_b": 3, "track_a": 1} and store.rejected == 3
    alerts = store.take_alerts()
    assert [(a.code, a.severity, a.subject) for a in alerts] == [  # type: ignore[attr-defined]
        ("bus_event_rejected", "error", "track_b"),
        ("bus_event_rejected", "error", "track_a"),
    ]
    first = alerts[0]
    assert isinstance(first, Alert) and first.context == {"source": "track_b", "seq": "1"}
    assert first.message.startswith("track_b/1 (trade_tick) was refused by the database")
    assert "kept in rejected_events" in first.message
    assert store.take_alerts() == []  # taken once
    store.commit_own(alerts)  # as the writer does: an alert of its own is storable
    with store.engine.connect() as conn:
        codes = conn.execute(text("SELECT code FROM alerts WHERE source = 'writer'")).scalars()
        assert list(codes) == ["bus_event_rejected", "bus_event_rejected"]


# --------------------------------------------------------------------------- a real writer


def test_an_undecodable_event_neither_jams_its_source_nor_passes_unseen(
    db_url: str, writer_factory: MakeWriter
) -> None:
    """A frame of an older producer with one bad event: the writer refused it whole with a
    log warning, acked nothing, and the producer resent it forever behind a hole."""
    writer = writer_factory(db_url).start()
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(writer.ingest)
    bad_price = msgspec.structs.replace(TICK, price=73200.5)
    try:
        dealer.send(
            raw_frame(*(raw_envelope("old", s, bad_price if s == 2 else TICK) for s in (1, 2, 3)))
        )
        dealer.send(raw_frame(raw_envelope("old", 4, TICK), raw_envelope("old", 5, bad_price)))
        dealer.send(msgspec.msgpack.encode([[1, 2, 3]]))  # no identity: refused whole
        dealer.send(b"\xc1 garbage")
        acked = 0
        deadline = time.monotonic() + 30
        while acked < 5 and dealer.poll(int(max(deadline - time.monotonic(), 0) * 1000)):
            acked = max(acked, decode_ack(dealer.recv()).seq)
        assert acked == 5, writer.log.read_text()
    finally:
        dealer.close()
        context.term()
    assert {tuple(r) for r in db_rows(db_url, "SELECT source, seq FROM rejected_events")} == {
        ("old", 2),
        ("old", 5),
    }
    assert [r[0] for r in db_rows(db_url, "SELECT seq FROM trade_ticks ORDER BY seq")] == [1, 3, 4]
    alerts = "SELECT severity, subject FROM alerts WHERE code = 'bus_frame_rejected'"
    wait_until(lambda: len(db_rows(db_url, alerts)) == 2, 30, "the writer's alerts")
    assert sorted(map(tuple, db_rows(db_url, alerts))) == [
        ("warning", "old"),  # once for the source, not once per event
        ("warning", "unknown source"),  # once for the frames no source can be read from
    ]
    assert audit(db_url)["old"].complete
    assert writer.terminate() == 0
    assert "undecodable_events=2" in writer.log.read_text()
