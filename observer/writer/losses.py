"""A producer's declaration of lost seqs (`bus.events.SeqsLost`): its rows and its alert.

Both are committed with the declaration, so no crash keeps the loss and loses its alert: the loss
in ``bus_losses``, a critical ``bus_events_lost`` in ``alerts`` under the declaration's own
source and seq (``observer alerts ack <source>:<seq>``; ``observer ctl status`` is unhealthy
while it is open). A `SeqsLost` that declares no range (its ``last_seq`` is not its own seq) is
kept and raises nothing.
"""

from __future__ import annotations

import msgspec

from bus.envelope import Envelope
from bus.events import EVENTS_LOST, SeqsLost
from observer.db import models as m
from observer.writer.batch import Batch

__all__ = ["lost_message", "seqs_lost"]


def seqs_lost(env: Envelope, batch: Batch) -> None:
    """The declaration's row, and its alert when it declares a range ending at its seq."""
    event = env.event
    assert isinstance(event, SeqsLost)
    audit = {"source": env.source, "seq": env.seq, "produced_ns": env.ts}
    batch.insert(m.SeqsLostRow, audit | msgspec.structs.asdict(event))
    if event.last_seq != env.seq or event.first_seq > event.last_seq:
        return
    batch.insert(
        m.AlertRow,
        audit
        | {
            "severity": "critical",
            "code": EVENTS_LOST,
            "message": lost_message(env.source, event),
            "context": {
                "source": env.source,
                "first_seq": str(event.first_seq),
                "last_seq": str(event.last_seq),
            },
            "subject": env.source,
        },
    )


def lost_message(source: str, event: SeqsLost) -> str:
    """What the alert says: which seqs, how many, and how a database comes to lose them."""
    count = event.last_seq - event.first_seq + 1
    return (
        f"{source} seqs {event.first_seq}..{event.last_seq} are lost ({count} events): the "
        f"writer had acknowledged them (the producer saw up to {event.acknowledged} "
        "acknowledged), its database no longer holds them, and the producer's outbox had let "
        "them go (a database restored from a backup, or a power cut under [bus] fsync = "
        "false); see `observer audit`"
    )
