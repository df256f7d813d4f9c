"""The one msgpack codec of the bus.

A *frame* (one ZeroMQ message body, one outbox record, one capture record) is a msgpack
array of envelopes. Everything that crosses a process boundary goes through this module.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from bus.envelope import MAX_SOURCE_LENGTH, Ack, Envelope
from bus.errors import FrameError

__all__ = [
    "DecodedFrame",
    "decode_ack",
    "decode_frame",
    "decode_parts",
    "encode_ack",
    "encode_frame",
    "join_parts",
]

_encoder = msgspec.msgpack.Encoder()
_frame_decoder = msgspec.msgpack.Decoder(list[Envelope])
_parts_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_envelope_decoder = msgspec.msgpack.Decoder(Envelope)
_ack_decoder = msgspec.msgpack.Decoder(Ack)
_DECODE_ERRORS = (msgspec.DecodeError, ValueError, TypeError)


class DecodedFrame(NamedTuple):
    """A frame with each envelope decoded and its exact bytes (``parts``) kept.

    The writer republishes and captures subsets of a frame by joining parts, without
    encoding anything again.
    """

    raw: bytes
    envelopes: list[Envelope]
    parts: list[msgspec.Raw]


def encode_frame(envelopes: Sequence[Envelope]) -> bytes:
    """Encode envelopes as one frame."""
    return _encoder.encode(envelopes)


def decode_frame(data: bytes | memoryview) -> list[Envelope]:
    """Decode one frame; any malformed input raises `FrameError` and nothing else."""
    try:
        envelopes = _frame_decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise FrameError(f"undecodable frame of {len(data)} bytes: {exc}") from exc
    _check_identities(envelopes)
    return envelopes


def decode_parts(data: bytes) -> DecodedFrame:
    """Decode one frame keeping each envelope's bytes; malformed input raises `FrameError`."""
    try:
        parts = _parts_decoder.decode(data)
        envelopes = [_envelope_decoder.decode(part) for part in parts]
    except _DECODE_ERRORS as exc:
        raise FrameError(f"undecodable frame of {len(data)} bytes: {exc}") from exc
    _check_identities(envelopes)
    return DecodedFrame(data, envelopes, parts)


def join_parts(parts: Sequence[msgspec.Raw]) -> bytes:
    """Build a frame from envelope parts (a msgpack array header, then the parts)."""
    count = len(parts)
    if count < 16:
        header = bytes((0x90 | count,))
    elif count < 0x10000:
        header = b"\xdc" + struct.pack(">H", count)
    else:
        header = b"\xdd" + struct.pack(">I", count)
    return header + b"".join(parts)


def _check_identities(envelopes: list[Envelope]) -> None:
    for env in envelopes:
        if env.seq < 1 or not 0 < len(env.source) <= MAX_SOURCE_LENGTH:
            raise FrameError(f"envelope with invalid identity {env.source!r}/{env.seq}")


def encode_ack(ack: Ack) -> bytes:
    """Encode a writer acknowledgement."""
    return _encoder.encode(ack)


def decode_ack(data: bytes) -> Ack:
    """Decode a writer acknowledgement; malformed input raises `FrameError`."""
    try:
        return _ack_decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise FrameError(f"undecodable ack: {exc}") from exc
