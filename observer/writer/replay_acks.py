"""What a live writer's acks tell `observer replay --as-producer`, and its socket's waits.

The ack to a source's first frame, sent alone, gives the source's mark before the replay
(`AckTally.probes`); the capture's events above it and up to the last ack are the committed
ones, whatever was sent twice. `ReplayLink` sends without letting acks pile up unread and
waits until a second has passed without an ack or a send.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import zmq

from bus.codec import BusFrame, decode_ack
from bus.envelope import Ack
from observer.errors import BusError

__all__ = ["QUIET_S", "AckTally", "ReplayLink"]

# No ack and no send for this long: what is unacknowledged is sent again.
QUIET_S = 1.0


class AckTally:
    """Per source: the writer's mark before the replay, the last ack, the conflicts counted."""

    def __init__(self, frames: list[BusFrame]) -> None:
        self.frames = frames
        self.want: dict[str, int] = {}  # the capture's last seq of each source
        self.events: Counter[str] = Counter()
        for frame in frames:
            for env in frame.envelopes:
                self.want[env.source] = max(self.want.get(env.source, 0), env.seq)
                self.events[env.source] += 1
        # Envelopes the acks account for (taken, duplicates, conflicts) once the base is known.
        self.processed: Counter[str] = Counter()
        self.acked: dict[str, int] = {}
        self.base: dict[str, int] = {}  # the writer's mark before the replay
        self.conflicts: Counter[str] = Counter()
        self._probed: dict[str, tuple[int, int]] = {}  # first seq and count in its probe
        self._round: set[str] = set()  # the sources probed in this round

    def probes(self) -> list[BusFrame]:
        """The first frame of each source not probed yet; a source in one of them only.

        The writer sees nothing else of those sources before it acks them: their envelopes
        in a probe are its batch of them, and its ack's duplicates and conflicts are theirs.
        """
        chosen: list[BusFrame] = []
        seen: set[str] = set(self._probed)
        self._round = set()
        for frame in self.frames:
            new = frame.sources - seen
            if new and not frame.sources & self._round:
                chosen.append(frame)
                self._round |= frame.sources
                for source in new:
                    seqs = [env.seq for env in frame.envelopes if env.source == source]
                    self._probed[source] = (min(seqs), len(seqs))
            seen |= frame.sources  # a source's later frame is never its probe
        self._round &= set(self._probed)
        return chosen

    def unbased(self) -> set[str]:
        """The sources probed in this round whose mark before the replay is not known yet."""
        return self._round - set(self.base)

    def done(self) -> bool:
        """Every seq of the capture acknowledged."""
        return all(self.acked.get(s, 0) >= seq for s, seq in self.want.items())

    def finished(self) -> bool:
        """Acknowledged, and the acks account for every envelope (so for every conflict)."""
        return self.done() and all(self.processed[s] >= n for s, n in self.events.items())

    def unacknowledged(self, frame: BusFrame) -> bool:
        """Whether a seq of ``frame`` is above its source's last ack."""
        return any(env.seq > self.acked.get(env.source, 0) for env in frame.envelopes)

    def missing(self) -> dict[str, tuple[int, int]]:
        """Per source not acknowledged in full: its last ack and the capture's last seq."""
        return {
            s: (self.acked.get(s, 0), q) for s, q in self.want.items() if self.acked.get(s, 0) < q
        }

    def ack(self, ack: Ack) -> None:
        """Take in one ack of the writer."""
        source = ack.source
        if source not in self.want:
            return  # not the capture's: a writer answering another sender of this socket
        before = self.acked.get(source, 0)
        self.acked[source] = max(before, ack.seq)
        self.conflicts[source] += ack.conflicts
        if source in self.base:
            taken = max(0, ack.seq - before)
            self.processed[source] += taken + ack.duplicates + ack.conflicts
            return
        probe = self._probed.get(source)
        if probe is None:
            return
        first, count = probe
        if ack.resend and first <= ack.seq:
            return  # the writer asks for it again (it dropped it): wait for its own ack
        # The probe's envelopes at or below the mark were counted; the rest, up to the ack's
        # seq, were taken (none when the probe started past the mark).
        taken = max(0, min(count - ack.duplicates - ack.conflicts, ack.seq - first + 1))
        self.base[source] = ack.seq - taken
        self.processed[source] += taken + ack.duplicates + ack.conflicts

    def counts(self) -> tuple[int, int, int]:
        """Committed, duplicates, conflicts of the envelopes sent: each is one of them."""
        new: set[tuple[str, int]] = set()
        repeats: Counter[str] = Counter()
        sent = 0
        for frame in self.frames:
            for env in frame.envelopes:
                sent += 1
                if env.seq <= self.base.get(env.source, 0):
                    repeats[env.source] += 1
                elif env.seq <= self.acked.get(env.source, 0):
                    new.add((env.source, env.seq))
        # A conflicting envelope sent twice is counted twice by the writer: once here.
        conflicts = sum(min(self.conflicts[s], n) for s, n in repeats.items())
        return len(new), sent - len(new) - conflicts, conflicts


class ReplayLink:
    """The replay's DEALER: sends that read acks while they wait, waits bounded by a deadline."""

    def __init__(
        self, dealer: zmq.Socket[bytes], tally: AckTally, deadline: float, timeout_s: float
    ) -> None:
        self.dealer = dealer
        self.tally = tally
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.sent = 0
        self.last = time.monotonic()  # of the last ack or send

    def send(self, frame: BusFrame) -> None:
        """Send, reading acks while the writer's queue is full (so that none is dropped)."""
        while True:
            try:
                self.dealer.send(frame.raw, zmq.NOBLOCK)
            except zmq.Again:
                self._check_deadline()
                self.dealer.poll(100, zmq.POLLIN | zmq.POLLOUT)
                self._read()
                continue
            self.sent += 1
            self.last = time.monotonic()
            return

    def wait(self, done: Callable[[], bool]) -> None:
        """Read acks until ``done`` or until a second passes without an ack or a send."""
        while not done():
            self._check_deadline()
            left = self.last + QUIET_S - time.monotonic()
            if left <= 0:
                return
            if self.dealer.poll(max(1, int(left * 1000)), zmq.POLLIN):
                self._read()

    def _read(self) -> None:
        while True:
            try:
                raw = self.dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.tally.ack(decode_ack(raw))
            self.last = time.monotonic()

    def _check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise BusError(
                f"replay not acknowledged within {self.timeout_s}s: {self.tally.missing()}"
            )
