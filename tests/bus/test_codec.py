"""The codec: every event round-trips; garbage raises one typed error."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.codec import decode_ack, decode_frame, decode_parts, encode_ack, encode_frame, join_parts
from bus.envelope import Ack, Envelope
from bus.errors import FrameError
from bus.events import EVENT_TYPES, Alert, OrderBook, TradeTick, event_tag
from tests.strategies import ENVELOPES, struct_of


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
# A hundred drawings of each event type (the CI profile's count took two minutes in all);
# the frames of many envelopes below mix every type at the profile's full count.
@settings(max_examples=min(100, settings.default.max_examples))
@given(data=st.data())
def test_every_event_type_round_trips(cls: type, data: st.DataObject) -> None:
    event = data.draw(struct_of(cls))
    envelope = Envelope("track_b.acct1", 7, 1_700_000_000_000_000_000, event)
    frame = encode_frame([envelope])
    assert decode_frame(frame) == [envelope]
    decoded = decode_parts(frame)
    assert decoded.envelopes == [envelope]
    assert join_parts(decoded.parts) == frame


@given(st.lists(ENVELOPES, max_size=40))
def test_frames_of_many_envelopes_round_trip(envelopes: list[Envelope]) -> None:
    frame = encode_frame(envelopes)
    assert decode_frame(frame) == envelopes
    assert join_parts(decode_parts(frame).parts) == frame


@given(st.binary(max_size=300))
def test_garbage_raises_only_frame_error(data: bytes) -> None:
    for decode in (decode_frame, decode_parts, decode_ack):
        with contextlib.suppress(FrameError):  # anything else escaping fails the test
            decode(data)


def test_tags_are_unique_and_stable() -> None:
    tags = [cls.__struct_config__.tag for cls in EVENT_TYPES]
    assert len(set(tags)) == len(tags)
    assert event_tag(Alert(severity="info", code="X", message="m")) == "alert"


def test_an_older_reader_skips_a_newer_field() -> None:
    newer = msgspec.msgpack.encode(
        [
            [
                "src",
                1,
                0,
                {
                    "type": "alert",
                    "severity": "info",
                    "code": "X",
                    "message": "m",
                    "added_later": 42,
                },
            ]
        ]
    )
    assert decode_frame(newer)[0].event == Alert(severity="info", code="X", message="m")


def test_ticks_and_books_of_an_older_writer_read_without_the_newer_layout_fields() -> None:
    """Events encoded before the session and mid-point fields existed read as None."""
    tick = {"type": "trade_tick", "symbol": "005930", "exchange_ns": 1, "received_ns": 2}
    tick |= {"price": 70000, "qty": 1, "cum_volume": 1, "cum_value": 70000, "change_rate": "0"}
    book = {"type": "order_book", "symbol": "005930", "exchange_ns": 1, "received_ns": 2}
    book |= {f"{side}_{kind}": [1] * 10 for side in ("ask", "bid") for kind in ("prices", "qtys")}
    book |= {"total_ask_qty": 10, "total_bid_qty": 10}
    older = msgspec.msgpack.encode([["src", 1, 0, tick], ["src", 2, 0, book]])
    read_tick, read_book = (envelope.event for envelope in decode_frame(older))
    assert isinstance(read_tick, TradeTick) and read_tick.market_session is None
    assert isinstance(read_book, OrderBook)
    newer = (read_book.mid_price, read_book.mid_qty, read_book.mid_side, read_book.market_session)
    assert newer == (None, None, None, None)


def test_unknown_event_type_and_bad_identity_are_rejected() -> None:
    unknown = msgspec.msgpack.encode([["src", 1, 0, {"type": "no_such_event"}]])
    with pytest.raises(FrameError):
        decode_frame(unknown)
    zero_seq = encode_frame([Envelope("src", 1, 0, Alert(severity="info", code="X", message=""))])
    zero_seq = zero_seq.replace(b"\xa3src\x01", b"\xa3src\x00")
    with pytest.raises(FrameError, match="invalid identity"):
        decode_parts(zero_seq)


@given(st.text(min_size=1), st.integers(min_value=0, max_value=2**63 - 1), st.booleans())
def test_acks_round_trip(source: str, seq: int, resend: bool) -> None:
    assert decode_ack(encode_ack(Ack(source, seq, resend))) == Ack(source, seq, resend)
