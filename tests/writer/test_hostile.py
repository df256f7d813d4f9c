"""Hostile input: deep nesting, integers out of range, oversized frames, strings and sources.

Each input must end as a clear refusal (a frame error, a protocol error, a rejected event)
and never as a dead writer, a dead stream, a stalled producer or a lost event. The writer
scenarios run a real writer process with a legitimate producer beside it, on SQLite and
PostgreSQL; afterwards the legitimate source audits complete and the writer is the same
process.
"""

from __future__ import annotations

import asyncio
import json
import typing
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec
import psutil
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import String, event, select
from sqlalchemy.orm import Session

from bus.codec import decode_ack, decode_frame, decode_parts, encode_frame
from bus.envelope import Envelope
from bus.errors import EventError, FrameError
from bus.events import Alert, OrderBook, PriceSnapshot, TradeTick
from bus.outbox import Outbox
from bus.producer import Producer
from observer.calendar.clock import SimulatedClock
from observer.db import models as m
from observer.db.audit_queries import audit_sources
from observer.db.engine import make_engine
from observer.errors import KisProtocolError, KisServerError
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits, classify
from observer.kis.credentials import Credentials, Secret
from observer.kis.parse import kst_to_utc_ns, parse_control, price_snapshot
from observer.kis.realtime import RealtimeDecoder, decode_order_book, decode_trade, parse_frame
from observer.kis.schemas import H0STASP0_FIELDS, H0STCNT0_FIELDS, CurrentPriceOutput
from observer.kis.stream import KisStream, Registration
from observer.writer.store import Store
from tests.kis.test_kis_parse import BOOK, TRADE
from tests.kis.test_kis_stream import FakeSession, serve, until
from tests.samples import SAMPLES, T0
from tests.support import ProducerProcess, WriterProcess, audit, db_rows, wait_until

MakeWriter = Callable[..., WriterProcess]
TICK: TradeTick = SAMPLES[2]  # type: ignore[assignment]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NESTED_MSGPACK = b"\x91" * 1000 + b"\xc0"  # 1,001 bytes: 1,000 nested one-element arrays
NESTED_JSON = "[" * 100_000 + "]" * 100_000


def nested_in(key: str) -> bytes:
    """A KIS-shaped JSON object whose ``key`` holds 100,000 nested arrays."""
    return f'{{"rt_cd":"0","{key}":{NESTED_JSON}}}'.encode()


# --------------------------------------------------------------------------- deep nesting


@pytest.mark.parametrize("decode", [decode_parts, decode_frame, decode_ack])
def test_a_deeply_nested_frame_is_a_frame_error(decode: Callable[[bytes], Any]) -> None:
    with pytest.raises(FrameError):
        decode(NESTED_MSGPACK)
    with pytest.raises(FrameError):
        decode(b"\x91\x94\xa1s\x01\x00" + b"\x91" * 5000 + b"\xc0")  # nested inside an envelope


@pytest.mark.parametrize("status", [200, 500])
def test_a_deeply_nested_rest_answer_is_a_protocol_error(status: int) -> None:
    for body in (NESTED_JSON.encode(), nested_in("output"), nested_in("unknown_field")):
        answer, failure = classify(status, body, "FHKST01010100")
        assert answer is None
        assert type(failure) is (KisServerError if status >= 500 else KisProtocolError)


def kis_client(tmp_path: Path, token_body: bytes, rest_body: bytes) -> KisClient:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/tokenP":
            return httpx.Response(200, content=token_body)
        return httpx.Response(200, content=rest_body)

    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(route))
    creds = Credentials("hostile", Secret("k" * 36), Secret("s" * 180))
    clock = SimulatedClock(start_ns=0, speed=1e6)
    tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim", min_issue_interval_s=0)
    return KisClient(
        http, creds, tokens, clock, RateLimits({"hostile": 1000}).for_account("hostile")
    )


def test_deeply_nested_token_and_rest_answers_are_protocol_errors(tmp_path: Path) -> None:
    good_token = json.dumps({"access_token": "tok", "expires_in": 86400}).encode()
    good_price = json.dumps({"rt_cd": "0", "output": {"stck_prpr": "73100"}}).encode()
    cases = [
        (nested_in("access_token"), good_price),  # the token answer
        (nested_in("unknown_field"), good_price),
        (good_token, nested_in("output")),  # the REST answer's envelope
        (good_token, json.dumps({"rt_cd": "0"}).encode()[:-1] + b',"output":' + b"[" * 9999),
    ]
    for n, (token_body, rest_body) in enumerate(cases):
        client = kis_client(tmp_path / str(n), token_body, rest_body)
        with pytest.raises(KisProtocolError):
            asyncio.run(client.current_price("005930"))


def test_a_token_answer_with_an_absurd_lifetime_is_a_protocol_error(tmp_path: Path) -> None:
    token = json.dumps({"access_token": "tok", "expires_in": 2**70}).encode()
    client = kis_client(
        tmp_path, token, json.dumps({"rt_cd": "0", "output": {"stck_prpr": "1"}}).encode()
    )
    with pytest.raises(KisProtocolError):
        asyncio.run(client.current_price("005930"))


def test_the_stream_survives_nested_control_frames_and_approval_answers(tmp_path: Path) -> None:
    """A nested control frame is dropped; a nested approval answer costs one reconnect."""
    session = FakeSession()
    frames: list[Any] = []
    approvals = iter([nested_in("approval_key"), nested_in("approval_key")])

    def answer(request: httpx.Request) -> httpx.Response:
        body = next(approvals, b'{"approval_key": "approval-key-36-chars-xxxxxxxxxxxxxx"}')
        return httpx.Response(200, content=body)

    async def scenario() -> KisStream:
        clock = SimulatedClock(0, speed=1000.0)  # backoff seconds pass in milliseconds
        http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(answer))
        creds = Credentials("acct1", Secret("k"), Secret("s"))
        tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim", min_issue_interval_s=0)
        async with serve(session) as url:
            stream = KisStream(url, tokens, clock, lambda frame, _: frames.append(frame))
            await stream.subscribe("H0STCNT0", "005930")
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: Registration("H0STCNT0", "005930") in stream.registered)
            ws = session.connections[-1]
            await ws.send_str('{"header":{"tr_id":"H0STCNT0"},"body":{"output":' + NESTED_JSON)
            await ws.send_str(f"0|H0STCNT0|001|{TRADE}")
            await until(lambda: frames)
            assert not runner.done()
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert stream.reconnects >= 1 and frames[0].ticks[0].symbol == "005930"


def test_a_nested_control_frame_is_a_protocol_error() -> None:
    with pytest.raises(KisProtocolError):
        parse_control('{"header":{"tr_id":"x"},"body":{"output":' + NESTED_JSON + "}}")
    with pytest.raises(KisProtocolError):
        parse_control(NESTED_JSON)


# --------------------------------------------------------------------------- the KIS parsers
#
# Every integer may have any size and every field may be any string: a parser (the
# real-time decoder by fields, the REST parsers) either gives values its columns can hold,
# or raises KisProtocolError, never anything else.

ANY_INT = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([INT64_MAX, 2**63, INT64_MIN, INT64_MIN - 1, 2**64, 10**16, -(10**16)]),
)
DECIMAL_TEXT = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1e16", "-9999999999999999.99999999", "0.000000001", "1E+999999", "NaN"]),
)
FIELD = st.one_of(ANY_INT.map(str), DECIMAL_TEXT, st.text(max_size=24))


def mutated(base: list[str]) -> st.SearchStrategy[list[str]]:
    """``base`` with some fields replaced by hostile values (the others stay valid)."""
    replacements = st.dictionaries(st.integers(0, len(base) - 1), FIELD, min_size=1, max_size=6)
    return replacements.map(lambda r: [r.get(i, value) for i, value in enumerate(base)])


MODEL_OF = {TradeTick: m.TradeTickRow, OrderBook: m.OrderBookRow, PriceSnapshot: m.PriceSnapshotRow}


def assert_storable(event: TradeTick | OrderBook | PriceSnapshot) -> None:
    """Every value fits its column: BIGINT, NUMERIC(24,8), VARCHAR(n) without NUL."""
    table = MODEL_OF[type(event)].__table__
    for name, value in msgspec.structs.asdict(event).items():
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            if isinstance(item, bool):
                continue
            if isinstance(item, int):
                assert INT64_MIN <= item <= INT64_MAX, (name, item)
            elif isinstance(item, Decimal):
                assert item.is_finite() and abs(item) < 10**16, (name, item)
                assert item == item.quantize(Decimal("1E-8")), (name, item)
            elif isinstance(item, str):
                column = table.c[name].type
                assert isinstance(column, String) and column.length is not None
                assert len(item) <= column.length and "\x00" not in item, (name, item)


@given(mutated(TRADE.split("^")))
def test_decode_trade_stays_in_range_or_refuses(record: list[str]) -> None:
    try:
        tick = decode_trade(record, received_ns=T0, account="acct1")
    except KisProtocolError:
        return
    assert_storable(tick)


@given(mutated(BOOK.split("^")))
def test_decode_order_book_stays_in_range_or_refuses(record: list[str]) -> None:
    try:
        book = decode_order_book(record, "20261120", received_ns=T0, account="acct1")
    except KisProtocolError:
        return
    assert_storable(book)


@given(mutated(TRADE.split("^")), mutated(BOOK.split("^")))
def test_a_decoded_frame_holds_storable_events_or_one_refusal_per_record(
    trade: list[str], book: list[str]
) -> None:
    """Hostile records among good ones: each is an event or an error, the others go on."""
    decoder = RealtimeDecoder("acct1")
    for tr_id, good, record in (("H0STCNT0", TRADE, trade), ("H0STASP0", BOOK, book)):
        hostile = "^".join(value.replace("^", "") for value in record)  # the same fields
        frame = decoder.decode(f"0|{tr_id}|003|{good}^{hostile}^{good}", T0)
        events = [*frame.ticks, *frame.books]
        assert len(events) + len(frame.errors) == 3 and len(events) >= 2
        for decoded in events:
            assert decoded.account == "acct1"
            assert_storable(decoded)


PRICE_FIELDS = [f.name for f in msgspec.structs.fields(CurrentPriceOutput)]
PRICE = [
    "73100",
    "-400",
    "5",
    "-0.54",
    "8123456",
    "594000000000",
    "73500",
    "73800",
    "72900",
    "95500",
    "51500",
    "73500",
    "4360000",
    "5969782",
    "N",
    "55",
    "KOSPI",
    "00",
]


@given(mutated(PRICE))
def test_price_snapshot_stays_in_range_or_refuses(values: list[str]) -> None:
    out = CurrentPriceOutput(**dict(zip(PRICE_FIELDS, values, strict=True)))
    try:
        snapshot = price_snapshot(out, "005930", "KOSPI", "20261120-0910", T0)
    except KisProtocolError:
        return
    assert_storable(snapshot)


@given(st.text(max_size=12), st.text(max_size=8), ANY_INT)
def test_frames_and_times_parse_or_refuse(count: str, hhmmss: str, day: int) -> None:
    for call in (
        lambda: parse_frame(f"0|H0STCNT0|{count}|{TRADE}"),
        lambda: parse_frame(f"0|H0STCNT0|{day}|{TRADE}"),
        lambda: kst_to_utc_ns(str(day), hhmmss),
        lambda: kst_to_utc_ns("99991231", hhmmss or "235959"),
    ):
        try:
            result = call()
        except KisProtocolError:
            continue
        if isinstance(result, int):
            assert INT64_MIN <= result <= INT64_MAX


def test_parsers_name_the_field_out_of_range() -> None:
    fields = TRADE.split("^")
    fields[14] = str(2**63)  # ACML_TR_PBMN: accumulated traded value
    with pytest.raises(KisProtocolError, match="ACML_TR_PBMN"):
        decode_trade(fields, received_ns=T0)
    fields = TRADE.split("^")
    fields[33] = "99991231"  # a date whose nanoseconds do not fit a BIGINT
    with pytest.raises(KisProtocolError):
        decode_trade(fields, received_ns=T0)
    assert len(H0STCNT0_FIELDS) == 46 and len(H0STASP0_FIELDS) == 59


# --------------------------------------------------------------------------- the producer


def test_an_unencodable_event_is_refused_at_send_and_nothing_buffered_is_lost(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(sqlite_url).start()
    with Producer("p", writer.ingest, tmp_path / "ob", linger_s=10.0) as producer:
        for _ in range(5):
            producer.send(TICK)  # buffered: the linger is long
        for value in (2**64, INT64_MIN - 1):
            with pytest.raises(EventError, match="cannot be encoded"):
                producer.send(msgspec.structs.replace(TICK, cum_value=value))
        for _ in range(5):
            producer.send(TICK)
        assert producer.wait_acked(30)
        assert producer.last_seq == 10
    assert audit(sqlite_url)["p"].complete and audit(sqlite_url)["p"].max_seq == 10


def test_frames_are_cut_below_the_size_limit_and_a_larger_event_is_refused(
    tmp_path: Path,
) -> None:
    limit = 4096
    producer = Producer(
        "p",
        "ipc://" + str(tmp_path / "nobody.sock"),
        tmp_path / "ob",
        max_frame_bytes=limit,
        linger_s=10.0,
    )
    try:
        with pytest.raises(EventError, match="bytes"):
            producer.send(msgspec.structs.replace(TICK, symbol="X" * limit))
        for _ in range(200):
            producer.send(TICK)
        producer.flush()
        assert producer.last_seq == 200
    finally:
        producer.close(drain_timeout=0)
    outbox = Outbox(tmp_path / "ob")
    try:
        payloads = [outbox.payload(r) for r in outbox.records]
    finally:
        outbox.close()
    assert len(payloads) > 1 and max(map(len, payloads)) <= limit
    envelopes = [env for payload in payloads for env in decode_frame(payload)]
    assert [env.seq for env in envelopes] == list(range(1, 201))
    assert all(env.event == TICK for env in envelopes)


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


# --------------------------------------------------------------- numbers outside the parsers

digits = st.one_of(
    st.integers(0, 10**6).map(str),
    st.integers(2**62, 10**30).map(str),
    st.text("0123456789-x", min_size=0, max_size=25),
)


@given(st.lists(digits, min_size=5, max_size=5))
def test_a_recovered_bar_is_storable_or_refused(values: list[str]) -> None:
    """One absurd number from KIS fails its bar, never the event of all the gap's bars."""
    from observer.kis.schemas import MinuteBarRow
    from workers.gap_recovery.bars import bar_of

    o, h, low, c, v = values
    try:
        bar = bar_of(MinuteBarRow("20261120", "100100", c, o, h, low, v, "1"))
    except KisProtocolError:
        return
    for value in msgspec.structs.asdict(bar).values():
        assert INT64_MIN <= value <= INT64_MAX


@given(st.lists(digits, min_size=4, max_size=4))
def test_universe_metrics_are_storable_or_refused(values: list[str]) -> None:
    """A symbol with absurd bars fails alone (a KisError the build counts), never the build."""
    from observer.kis.schemas import DailyBarRow
    from workers.universe.build import metrics

    close, high, low, volume = values
    bars = [DailyBarRow(f"202611{d:02d}", close, close, high, low, volume) for d in range(1, 22)]
    try:
        found = metrics(bars, date(2026, 11, 21))
    except KisProtocolError:
        return
    assert found is not None
    assert INT64_MIN <= found.prev_close <= INT64_MAX
    assert INT64_MIN <= found.avg_volume_20d <= INT64_MAX
