"""The one msgpack codec of the bus.

A *frame* (one ZeroMQ message body, one outbox record, one capture record) is a msgpack
array of envelopes. Everything that crosses a process boundary goes through this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from bus.envelope import Ack, Envelope
from bus.errors import FrameError

__all__ = ["decode_ack", "decode_frame", "encode_ack", "encode_frame"]

_encoder = msgspec.msgpack.Encoder()
_frame_decoder = msgspec.msgpack.Decoder(list[Envelope])
_ack_decoder = msgspec.msgpack.Decoder(Ack)


def encode_frame(envelopes: Sequence[Envelope]) -> bytes:
    """Encode envelopes as one frame."""
    return _encoder.encode(envelopes)


def decode_frame(data: bytes | memoryview) -> list[Envelope]:
    """Decode one frame; any malformed input raises `FrameError` and nothing else."""
    try:
        envelopes = _frame_decoder.decode(data)
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise FrameError(f"undecodable frame of {len(data)} bytes: {exc}") from exc
    for env in envelopes:
        if env.seq < 1 or not env.source:
            raise FrameError(f"envelope with invalid identity {env.source!r}/{env.seq}")
    return envelopes


def encode_ack(ack: Ack) -> bytes:
    """Encode a writer acknowledgement."""
    return _encoder.encode(ack)


def decode_ack(data: bytes) -> Ack:
    """Decode a writer acknowledgement; malformed input raises `FrameError`."""
    try:
        return _ack_decoder.decode(data)
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise FrameError(f"undecodable ack: {exc}") from exc
