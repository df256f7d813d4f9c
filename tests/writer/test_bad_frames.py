"""Values no column holds and hostile frames end as rejected events, never as a dead writer.

On SQLite and PostgreSQL: a value beyond BIGINT, a string longer than its column or with a
NUL is kept in ``rejected_events`` under its seq. A real writer with a legitimate producer
beside it takes a run of hostile frames and stays the same process, its source auditing
complete; the audit reads rows and marks in one snapshot.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import psutil
import zmq
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from bus.codec import decode_frame, decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, OrderBook, TradeTick
from observer.db import models as m
from observer.db.audit_queries import audit_sources
from observer.db.engine import make_engine
from observer.writer.store import Store
from tests.samples import SAMPLES, T0
from tests.support import ProducerProcess, WriterProcess, audit, db_rows, wait_until

MakeWriter = Callable[..., WriterProcess]
TICK: TradeTick = SAMPLES[2]  # type: ignore[assignment]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NESTED_MSGPACK = b"\x91" * 1000 + b"\xc0"  # 1,001 bytes: 1,000 nested one-element arrays


# --------------------------------------------------------------------------- the store


def frame(*envelopes: Envelope) -> Any:
    return decode_parts(encode_frame(list(envelopes)))


def rejected(store: Store) -> dict[tuple[str, int], m.RejectedEvent]:
    with Session(store.engine) as session:
        rows = session.scalars(select(m.RejectedEvent)).all()
        return {(r.source, r.seq): r for r in rows}


def test_values_beyond_bigint_are_rejected_events_not_crashes(store: Store) -> None:
    huge = msgspec.structs.replace(TICK, cum_value=2**63)
    store.apply([frame(*(Envelope("w", n, T0, e) for n, e in enumerate([TICK, huge, TICK], 1)))])
    store.apply([frame(Envelope("ts", 1, 2**63, TICK))])  # the audit row itself cannot hold it
    store.apply([frame(Envelope("w", 4, T0, TICK))])
    assert store.marks == {"w": 4, "ts": 1}
    found = rejected(store)
    assert set(found) == {("w", 2), ("ts", 1)}
    assert decode_frame(found["w", 2].envelope)[0].event == huge  # kept whole
    reduced = found["ts", 1]
    assert reduced.produced_ns == 0 and decode_frame(reduced.envelope)[0].ts == 2**63
    with store.engine.connect() as conn:
        from observer.db.audit_queries import audit_sources

        assert all(a.complete for a in audit_sources(conn))


def test_strings_longer_than_their_column_are_rejected_on_every_database(store: Store) -> None:
    long_symbol = msgspec.structs.replace(TICK, symbol="X" * 17)  # symbol is VARCHAR(16)
    nul = msgspec.structs.replace(TICK, symbol="00\x005930")
    store.apply([frame(Envelope("w", 1, T0, long_symbol), Envelope("w", 2, T0, nul))])
    store.apply([frame(Envelope("w", 3, T0, TICK))])
    assert store.marks == {"w": 3}
    found = rejected(store)
    assert ("w", 1) in found and "16" in found["w", 1].reason
    with Session(store.engine) as session:
        symbols = session.scalars(select(m.TradeTickRow.symbol)).all()
    assert "X" * 17 not in symbols


# --------------------------------------------------------------------------- a real writer

HOSTILE_SETTINGS = "[writer]\nmax_sources = 64\n"
# The writer's resident memory after every hostile input, measured at 69 MiB on SQLite and
# 78 MiB on PostgreSQL here: the bound leaves room for the allocator, not for a held frame.
WRITER_RSS_BOUND = 200 * 2**20


def send_raw(dealer: zmq.Socket[bytes], *envelopes: Envelope) -> None:
    dealer.send(encode_frame(list(envelopes)))


def test_hostile_frames_leave_the_writer_serving(
    tmp_path: Path, db_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(db_url, extra=HOSTILE_SETTINGS).start()
    assert writer.proc is not None
    pid = writer.proc.pid
    legit = ProducerProcess(tmp_path, "legit", writer.ingest).start(events=3000, rate=1500)
    context = zmq.Context()
    dealers = []

    def dealer() -> zmq.Socket[bytes]:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.connect(writer.ingest)
        dealers.append(sock)
        return sock

    def alive(case: str) -> None:
        assert writer.proc is not None and writer.proc.poll() is None, (
            case,
            writer.log.read_text(),
        )
        assert writer.proc.pid == pid

    try:
        big = dealer()  # a 50 MB symbol in one frame: ZMQ_MAXMSGSIZE drops it
        send_raw(
            big, Envelope("h-big", 1, T0, msgspec.structs.replace(TICK, symbol="X" * 50_000_000))
        )
        hostile = dealer()
        hostile.send(NESTED_MSGPACK)
        send_raw(
            hostile,
            *(
                Envelope("h-value", n, T0, e)
                for n, e in enumerate(
                    [TICK, msgspec.structs.replace(TICK, cum_value=2**63), TICK], 1
                )
            ),
        )
        send_raw(hostile, Envelope("h-ts", 1, 2**63, TICK))
        send_raw(hostile, Envelope("h-nul\x00", 1, T0, TICK))
        send_raw(hostile, Envelope("h-seq", 2**63, T0, TICK))
        send_raw(hostile, Envelope("h-long", 1, T0, msgspec.structs.replace(TICK, symbol="X" * 17)))
        send_raw(hostile, Envelope("h-nulfield", 1, T0, msgspec.structs.replace(TICK, side="\x00")))
        alert = Alert(severity="info", code="X", message="")
        for block in range(100):  # 100,000 distinct sources
            send_raw(hostile, *(Envelope(f"h-src-{block}-{n}", 1, T0, alert) for n in range(1000)))
        send_raw(hostile, Envelope("h-last", 1, T0, TICK))
        wait_until(
            lambda: writer.offsets().get("h-last") or writer.proc.poll() is not None,  # type: ignore[union-attr]
            60,
            "the hostile frames served",
        )
        alive("after the hostile frames")
        # The 50 MB frame was never held whole, the 100,000 sources were never tracked.
        rss = psutil.Process(pid).memory_info().rss
        assert rss < WRITER_RSS_BOUND, f"writer RSS {rss / 2**20:.0f} MiB"
        assert legit.result()["drained"]
        alive("after the legitimate producer")
    finally:
        for sock in dealers:
            sock.close(linger=0)
        context.term()

    found = audit(db_url)
    assert found["legit"].complete and found["legit"].max_seq == 3000
    assert found["legit"].rows == 3000
    offsets = writer.offsets()
    assert len(offsets) <= 64  # the source limit held
    for source, seq in {"h-value": 3, "h-ts": 1, "h-long": 1, "h-nulfield": 1, "h-last": 1}.items():
        assert offsets.get(source) == seq and found[source].complete, source
    for source in ("h-big", "h-nul\x00", "h-seq"):
        assert source not in offsets, source
    rejected_seqs = db_rows(db_url, "SELECT source, seq FROM rejected_events")
    assert {("h-value", 2), ("h-ts", 1), ("h-long", 1)} <= {tuple(r) for r in rejected_seqs}
    log = writer.log.read_text()
    assert "max_sources" in log
    assert writer.terminate() == 0
    # Each alerted, once: the first refused event of a source, the frames beyond the limit.
    alerts = db_rows(db_url, "SELECT code, subject FROM alerts WHERE source = 'writer'")
    refused = [subject for code, subject in alerts if code == "bus_event_rejected"]
    assert len(refused) == len(set(refused))
    assert {"h-value", "h-ts", "h-long"} <= set(refused)
    beyond = [subject for code, subject in alerts if code == "bus_frame_rejected"]
    assert beyond.count("max_sources") == 1


def hostile_variants(event: Any) -> Iterator[Any]:
    """``event`` with one value at a time made hostile: out of BIGINT, too long, a NUL."""
    for field in msgspec.structs.fields(event):
        value = getattr(event, field.name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            bad: list[Any] = [2**63, 2**64 - 1, INT64_MIN]
        elif isinstance(value, str) and typing.get_origin(field.type) is not Literal:
            bad = ["X" * 2100, "a\x00b"]  # longer than any VARCHAR (alerts' 2,000)
        elif isinstance(value, tuple) and value and isinstance(value[0], msgspec.Struct):
            bad = [(variant, *value[1:]) for variant in hostile_variants(value[0])]
        else:
            continue
        for item in bad:
            yield msgspec.structs.replace(event, **{field.name: item})


def test_every_per_event_failure_is_a_rejected_event(store: Store) -> None:
    """Whatever value an event carries, its seq is committed, as rows or as a rejection."""
    seq = 0
    for sample in SAMPLES:
        envelopes = []
        for variant in [sample, *hostile_variants(sample), sample]:
            seq += 1
            envelopes.append(Envelope("w", seq, T0, variant))
        store.apply([decode_parts(encode_frame(envelopes))])
        assert store.marks == {"w": seq}
    with store.engine.connect() as conn:
        from observer.db.audit_queries import audit_sources

        (found,) = audit_sources(conn)
    assert found.complete and found.max_seq == seq
    assert store.rejected > 0


# --------------------------------------------------------------- audit of a live database


def test_the_audit_reads_rows_and_marks_in_one_snapshot(store: Store) -> None:
    """A commit between the audit's reads of the marks and of the rows is no false hole."""
    store.apply([frame(Envelope("w", 1, T0, TICK))])
    audit_engine = make_engine(store.engine.url)
    commits: list[int] = []

    @event.listens_for(audit_engine, "after_cursor_execute")
    def writer_commits_meanwhile(
        _conn: object, _cursor: object, statement: str, *_: object
    ) -> None:
        if not commits and "seq" in statement:  # after the audit's first read: seq 2 commits
            commits.append(store.apply([frame(Envelope("w", 2, T0 + 1, TICK))]).count)

    try:
        with audit_engine.connect() as conn:
            (found,) = audit_sources(conn)
    finally:
        audit_engine.dispose()
    assert commits == [1]
    assert found.complete, found
    assert found.max_seq == found.committed  # one snapshot: before seq 2 or after it


def test_a_book_of_more_than_ten_levels_a_side_is_a_rejected_event(store: Store) -> None:
    book = next(s for s in SAMPLES if isinstance(s, OrderBook))
    deep = msgspec.structs.replace(book, bid_prices=tuple(range(73_000, 71_900, -100)))  # 11
    store.apply([frame(*(Envelope("w", n, T0, e) for n, e in enumerate([book, deep, book], 1)))])
    assert store.marks == {"w": 3}
    found = rejected(store)
    assert set(found) == {("w", 2)}
    assert decode_frame(found["w", 2].envelope)[0].event == deep  # kept whole, never cut
    with store.engine.connect() as conn:
        levels = conn.execute(select(m.OrderBookRow.bid_price_1, m.OrderBookRow.bid_price_10))
        assert [tuple(r) for r in levels] == [(book.bid_prices[0], None)] * 2
