"""The producer's counterpart in these tests: a bare ROUTER played by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from bus.codec import decode_parts, encode_ack
from bus.envelope import Ack
from bus.events import Alert
from bus.producer import Producer

ALERT = Alert(severity="info", code="T", message="m")


class Router:
    """A bare ROUTER standing in for the writer: records frames, acks on request."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.bind(endpoint)
        self.peer = b""
        self.seqs: list[int] = []

    def receive(self, timeout_ms: int = 100) -> int:
        got = 0
        while self.socket.poll(timeout_ms):
            self.peer, raw = self.socket.recv_multipart()
            self.seqs += [env.seq for env in decode_parts(raw).envelopes]
            got += 1
            timeout_ms = 0
        return got

    def has(self, count: int) -> bool:
        """Receive what is waiting; True once ``count`` envelopes arrived in all."""
        self.receive(10)
        return len(self.seqs) >= count

    def ack(self, seq: int, resend: bool = False, source: str = "p") -> None:
        self.socket.send_multipart([self.peer, encode_ack(Ack(source, seq, resend))])

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    router = Router(f"ipc://{tmp_path / 'ingest.sock'}")
    yield router
    router.close()


def make(tmp_path: Path, **kwargs: object) -> Producer:
    """A producer ``p`` to the router of ``tmp_path``, quick to send its batches."""
    options: dict[str, object] = {"linger_s": 0.001, "batch_events": 10, **kwargs}
    return Producer("p", f"ipc://{tmp_path / 'ingest.sock'}", tmp_path / "ob", **options)  # type: ignore[arg-type]
