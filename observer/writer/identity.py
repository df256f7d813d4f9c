"""Source identity: a seq committed once cannot be claimed again with other content.

Any process that reaches the ingest socket can send as any source, so every commit keeps the
digest of each envelope it takes (`BusDigest`), and a repeated seq (a resend) must be
byte-identical to what was committed. One that is not is a *conflict* (another process claimed
the source, or a producer lost its outbox): kept whole in ``bus_conflicts`` and alerted once
under the writer's own source (`WRITER_SOURCE`), never dropped as a duplicate.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import TypedDict

import msgspec
from sqlalchemy import Connection, select

from bus.codec import DIGEST_BYTES, envelope_digest, join_parts
from bus.envelope import Envelope
from bus.events import Alert, event_tag
from observer.db.models import BusConflict, BusDigest

__all__ = [
    "DIGEST_SPAN",
    "WRITER_SOURCE",
    "Conflict",
    "Repeat",
    "conflict_alert",
    "digest_rows",
    "find_conflicts",
    "new_conflicts",
]

# The source of the events the writer raises itself.
WRITER_SOURCE = "writer"
# At most this many seqs per digest row, so the rows that can hold a seq are one index range
# on ``first_seq`` away.
DIGEST_SPAN = 65_536

Repeat = tuple[Envelope, msgspec.Raw]  # an envelope at or below its source's mark, its bytes


class ConflictRow(TypedDict):
    """A ``bus_conflicts`` row, as the writer's batch inserts it."""

    source: str
    seq: int
    digest: bytes
    committed_digest: bytes
    received_ns: int
    event_type: str
    envelope: bytes


class DigestRow(TypedDict):
    """A ``bus_digests`` row: one source's digests of seqs ``first_seq..last_seq``, joined."""

    source: str
    first_seq: int
    last_seq: int
    digests: bytes


@dataclass(frozen=True, slots=True)
class Conflict:
    """A repeated seq whose bytes differ from the envelope committed at it."""

    envelope: Envelope
    frame: bytes  # a frame of the envelope's exact bytes
    digest: bytes
    committed: bytes  # the digest of what was committed at this seq

    @property
    def key(self) -> tuple[str, int, bytes]:
        """What makes a conflict new: the same bytes sent again are the same conflict."""
        return (self.envelope.source, self.envelope.seq, self.digest)

    def row(self, received_ns: int) -> ConflictRow:
        """Its ``bus_conflicts`` row."""
        return {
            "source": self.envelope.source,
            "seq": self.envelope.seq,
            "digest": self.digest,
            "committed_digest": self.committed,
            "received_ns": received_ns,
            "event_type": event_tag(self.envelope.event),
            "envelope": self.frame,
        }


def digest_rows(envelopes: list[Envelope], digests: list[bytes]) -> list[DigestRow]:
    """The ``bus_digests`` rows of one commit: per source, runs of at most `DIGEST_SPAN`.

    A commit takes each source's envelopes in consecutive seqs (see `accept`), so the
    digests of one source are its run's in seq order.
    """
    if len(digests) != len(envelopes):
        raise ValueError(f"{len(digests)} digests for {len(envelopes)} envelopes")
    runs: dict[str, list[bytes]] = {}
    firsts: dict[str, int] = {}
    start = 0
    # Per run of one source (a frame, mostly) rather than per envelope.
    for source, group in itertools.groupby(map(attrgetter("source"), envelopes)):
        end = start + len(list(group))
        run = runs.get(source)
        if run is None:
            runs[source] = run = []
            firsts[source] = envelopes[start].seq
        run += digests[start:end]
        start = end
    rows: list[DigestRow] = []
    for source, run in runs.items():
        first = firsts[source]
        for start in range(0, len(run), DIGEST_SPAN):
            chunk = run[start : start + DIGEST_SPAN]
            rows.append(
                {
                    "source": source,
                    "first_seq": first + start,
                    "last_seq": first + start + len(chunk) - 1,
                    "digests": b"".join(chunk),
                }
            )
    return rows


def find_conflicts(conn: Connection, repeats: list[Repeat]) -> tuple[list[Conflict], int]:
    """The repeats that differ from what was committed, and how many had no digest to check.

    Seqs committed before digests were kept (migration 0007) cannot be checked.
    """
    by_source: dict[str, list[Repeat]] = {}
    for repeat in repeats:
        by_source.setdefault(repeat[0].source, []).append(repeat)
    conflicts: list[Conflict] = []
    unverified = 0
    for source, items in by_source.items():
        seqs = [env.seq for env, _ in items]
        committed = _committed_digests(conn, source, min(seqs), max(seqs))
        for env, part in items:
            known = committed(env.seq)
            if known is None:
                unverified += 1
            elif (digest := envelope_digest(part)) != known:
                conflicts.append(Conflict(env, join_parts([part]), digest, known))
    return conflicts, unverified


def new_conflicts(conn: Connection, conflicts: list[Conflict]) -> list[Conflict]:
    """The conflicts not recorded yet, each once.

    The same bytes sent again, or a commit whose answer was lost, are not new.
    """
    seqs: dict[str, list[int]] = {}
    for conflict in conflicts:
        seqs.setdefault(conflict.envelope.source, []).append(conflict.envelope.seq)
    known: set[tuple[str, int, bytes]] = set()
    for source, numbers in seqs.items():
        found = conn.execute(
            select(BusConflict.seq, BusConflict.digest).where(
                BusConflict.source == source,
                BusConflict.seq.between(min(numbers), max(numbers)),
            )
        )
        known.update((source, seq, bytes(digest)) for seq, digest in found)
    return list({c.key: c for c in conflicts if c.key not in known}.values())


def conflict_alert(conflicts: list[Conflict], seq: int, now_ns: int) -> Envelope:
    """The writer's alert, at its own ``seq`` and time, for conflicts just found."""
    first = conflicts[0].envelope
    return Envelope(
        WRITER_SOURCE,
        seq,
        now_ns,
        Alert(
            severity="critical",
            code="bus_conflict",
            message=(
                f"{len(conflicts)} envelopes repeat a committed seq with other content "
                f"(first {first.source}/{first.seq}): another process may be sending as this "
                "source; the conflicting envelopes are kept in bus_conflicts"
            ),
            context={"source": first.source, "seq": str(first.seq), "count": str(len(conflicts))},
        ),
    )


def _committed_digests(
    conn: Connection, source: str, low: int, high: int
) -> Callable[[int], bytes | None]:
    """A lookup of the committed digest of ``source``'s seqs in ``low..high``."""
    table = BusDigest.__table__
    rows = conn.execute(
        select(table.c.first_seq, table.c.last_seq, table.c.digests)
        .where(
            table.c.source == source,
            table.c.first_seq.between(low - DIGEST_SPAN + 1, high),
            table.c.last_seq >= low,
        )
        .order_by(table.c.first_seq)
    ).all()
    firsts = [row.first_seq for row in rows]

    def lookup(seq: int) -> bytes | None:
        at = bisect.bisect_right(firsts, seq) - 1
        if at < 0 or seq > rows[at].last_seq:
            return None
        offset = (seq - rows[at].first_seq) * DIGEST_BYTES
        return bytes(rows[at].digests[offset : offset + DIGEST_BYTES])

    return lookup
