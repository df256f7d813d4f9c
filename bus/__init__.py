"""The bus: event contract, codec, durable producer, ingest, feed, capture.

Imports only the standard library, msgspec and pyzmq.
"""

from bus.codec import decode_ack, decode_frame, encode_ack, encode_frame
from bus.envelope import Ack, Envelope
from bus.errors import BusError, CaptureError, FrameError, OutboxError
from bus.events import EVENT_TYPES, Event, event_tag

__all__ = [
    "EVENT_TYPES",
    "Ack",
    "BusError",
    "CaptureError",
    "Envelope",
    "Event",
    "FrameError",
    "OutboxError",
    "decode_ack",
    "decode_frame",
    "encode_ack",
    "encode_frame",
    "event_tag",
]
