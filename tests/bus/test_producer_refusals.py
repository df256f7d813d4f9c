"""The producer refuses, at send, an event it cannot encode or one larger than a frame:
nothing it buffered is lost and no seq is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from bus.codec import decode_frame
from bus.errors import EventError
from bus.events import TradeTick
from bus.outbox import Outbox
from bus.producer import Producer
from tests.samples import SAMPLES
from tests.support import WriterProcess, audit

MakeWriter = Callable[..., WriterProcess]
TICK: TradeTick = SAMPLES[2]  # type: ignore[assignment]
INT64_MIN = -(2**63)


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
