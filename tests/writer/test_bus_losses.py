"""Seqs a producer declared lost: taken by the writer in one envelope, kept, alerted,
audited, and keeping ``ctl status`` unhealthy until an operator acknowledges them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bus.codec import BusFrame, decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import EVENTS_LOST, Alert, AlertAcked, SeqsLost
from bus.segments import OutboxState
from observer.alerts.states import Notice
from observer.cli.audit import AuditReport
from observer.db.audit_queries import audit_sources, conflicts, losses
from observer.supervisor.commands import alerted_problems, problems
from observer.writer.accepting import accept
from observer.writer.store import Store
from tests.support import beating
from tests.writer.test_store import T0

TICK = Alert(severity="info", code="T", message="m")


def frame(*envelopes: Envelope) -> BusFrame:
    return decode_parts(encode_frame(list(envelopes)))


def lost(first: int, last: int, acknowledged: int = 0) -> Envelope:
    """The producer's declaration, in the envelope of the range's last seq."""
    return Envelope(
        "p", last, T0, SeqsLost(first_seq=first, last_seq=last, acknowledged=acknowledged)
    )


def test_a_declaration_from_the_mark_takes_the_whole_range_and_what_follows() -> None:
    after = frame(*(Envelope("p", seq, T0, TICK) for seq in (21, 22)))
    accepted = accept([frame(lost(4, 20)), after], {"p": 3})
    assert accepted.marks == {"p": 22} and accepted.count == 3 and not accepted.holes


def test_a_declaration_that_does_not_start_at_the_mark_is_a_hole() -> None:
    accepted = accept([frame(lost(5, 20))], {"p": 3})  # seq 4 is not declared
    assert accepted.marks == {} and accepted.holes == {"p"}
    inconsistent = Envelope("p", 4, T0, SeqsLost(first_seq=2, last_seq=9, acknowledged=0))
    accepted = accept([frame(inconsistent)], {"p": 3})  # an event at the next seq: stored
    assert accepted.marks == {"p": 4}


def test_one_lost_seq_is_declared_in_the_usual_frame() -> None:
    accepted = accept([frame(lost(4, 4))], {"p": 3})
    assert accepted.marks == {"p": 4} and accepted.count == 1


def test_the_writer_keeps_alerts_and_audits_a_declared_loss(store: Store) -> None:
    store.apply([frame(*(Envelope("p", seq, T0, TICK) for seq in (1, 2, 3)))])
    store.apply([frame(lost(4, 20, acknowledged=25)), frame(Envelope("p", 21, T0, TICK))])
    with store.engine.connect() as conn:
        rows = list(conn.execute(text("SELECT first_seq, last_seq, seq FROM bus_losses")))
        alerts = list(
            conn.execute(
                text(
                    "SELECT source, seq, severity, code, subject, message FROM alerts "
                    "WHERE code <> 'T'"
                )
            )
        )
    assert rows == [(4, 20, 20)]
    # In the declaration's own transaction, under its source and seq: no crash between them.
    ((source, seq, severity, code, subject, message),) = alerts
    assert (source, seq, severity, code, subject) == ("p", 20, "critical", EVENTS_LOST, "p")
    assert message.startswith("p seqs 4..20 are lost (17 events)")
    assert "the producer saw up to 25" in message
    report = _report(store)
    (source_audit,) = report.sources
    assert (source_audit.max_seq, source_audit.distinct, source_audit.lost) == (21, 5, 16)
    assert source_audit.complete and not report.ok  # accounted for, not yet acknowledged
    lines = list(report.lines())
    assert lines[0].endswith("LOST 16")
    assert lines[1].startswith("LOST p seq 4..20 (17 events), declared ")
    assert lines[1].endswith("`observer alerts ack p:20` once understood")
    store.apply([frame(Envelope("operator", 1, T0, AlertAcked(alert_source="p", alert_seq=20)))])
    acked = _report(store)
    assert acked.ok and "alert p:20 acknowledged" in list(acked.lines())[2]


def test_a_loss_from_the_first_seq_is_accounted_for(store: Store) -> None:
    """A new source's first commits lost: no row below the declaration's own seq."""
    store.apply([frame(lost(1, 5)), frame(Envelope("p", 6, T0, TICK))])
    (source,) = _report(store).sources
    assert (source.min_seq, source.max_seq, source.distinct, source.lost) == (1, 6, 2, 4)
    assert source.complete  # a backup's verification takes it (`observer.db.backup`)


def _report(store: Store) -> AuditReport:
    with store.engine.connect() as conn:
        sources = audit_sources(conn)
        return AuditReport(sources, conflicts(conn), losses(conn), {})


def test_a_hole_nobody_declared_stays_incomplete(store: Store) -> None:
    store.apply([frame(lost(1, 1))])
    with store.engine.begin() as conn:  # a row lost behind the writer's back
        conn.execute(text("UPDATE bus_offsets SET seq = 3"))
    with store.engine.connect() as conn:
        (source,) = audit_sources(conn)
    assert not source.complete


def test_the_audit_reads_an_outbox_ahead_of_the_database(store: Store) -> None:
    store.apply([frame(*(Envelope("p", seq, T0, TICK) for seq in (1, 2, 3)))])
    with store.engine.connect() as conn:
        sources = audit_sources(conn)
    held = AuditReport(sources, [], [], {"p": OutboxState(acked=9, held_from=4, high=12)})
    gone = AuditReport(sources, [], [], {"p": OutboxState(acked=9, held_from=7, high=12)})
    fine = AuditReport(sources, [], [], {"p": OutboxState(acked=3, held_from=2, high=12)})
    assert not held.ok and not gone.ok and fine.ok
    (line,) = [line for line in held.lines() if line.startswith("BEHIND")]
    assert "seqs 4..9 were acknowledged and are missing" in line and "still holds them" in line
    (line,) = [line for line in gone.lines() if line.startswith("BEHIND")]
    assert "so 4..6 are lost" in line


def test_a_loss_keeps_the_status_unhealthy_until_acknowledged() -> None:
    notice = Notice(
        id="writer:7",
        kind="alert",
        produced_ns=T0,
        severity="critical",
        code=EVENTS_LOST,
        subject="p",
        message="p seqs 4..20 are lost (17 events): ...",
    )
    other = Notice("writer:8", "alert", T0, "critical", "disk_critical", "data", "full")
    (line,) = alerted_problems([notice, other])
    assert line.startswith("bus: p seqs 4..20 are lost") and "observer alerts ack writer:7" in line
    producer = beating("track_b", {"bus_lost_events": 17.0})
    (found,) = problems([producer], lambda _: True)
    assert "declared 17 events lost" in found


def test_an_outbox_folder_is_read_without_its_producer(tmp_path: Path) -> None:
    from bus.outbox import Outbox
    from observer.cli.audit import outbox_states

    outbox = Outbox(tmp_path / "outbox" / "p", segment_bytes=256)
    for seq in range(1, 5):
        outbox.append(seq, seq, b"\x91" + b"x" * 100)
    outbox.ack(3)  # the segment of 1..3 deleted
    assert outbox_states(tmp_path) == {"p": OutboxState(acked=3, held_from=4, high=4)}
    outbox.close()
    assert outbox_states(tmp_path / "nothing") == {}
