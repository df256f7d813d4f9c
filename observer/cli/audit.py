"""``observer audit``: every source's seqs against the database's marks and this host's outboxes.

Per source the stored seqs must be exactly 1..max, max its committed mark
(`observer.db.audit_queries`); a range declared lost (``LOST``, failing until its alert is
acknowledged) and a committed seq claimed with other content (``CONFLICT``) are named. An outbox
recording more acknowledged than the database holds (``BEHIND``) shows acknowledged events the
database lost, which the database alone cannot (a lost tail leaves no hole).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bus.segments import OutboxState, outbox_state
from observer.db.audit_queries import Loss, SourceAudit, StoredConflict

__all__ = ["AuditReport", "outbox_states"]


def outbox_states(run_dir: Path) -> dict[str, OutboxState]:
    """Each outbox under ``run_dir/outbox`` by source (none when the folder is missing)."""
    folder = run_dir / "outbox"
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir() and (state := outbox_state(path)) is not None:
            found[path.name] = state
    return found


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What the audit found; `lines` says it, `ok` is its verdict (exit 0 or 1)."""

    sources: Sequence[SourceAudit]
    conflicts: Sequence[StoredConflict]
    losses: Sequence[Loss]
    outboxes: Mapping[str, OutboxState]  # this host's, by source

    @property
    def behind(self) -> dict[str, tuple[int, OutboxState]]:
        """Sources whose outbox recorded more acknowledged than the database holds."""
        marks = {s.source: s.committed for s in self.sources}
        return {
            source: (marks.get(source, 0), state)
            for source, state in self.outboxes.items()
            if state.acked > marks.get(source, 0)
        }

    @property
    def ok(self) -> bool:
        """Every source whole, every loss acknowledged, no conflict, no outbox ahead."""
        return (
            all(s.complete for s in self.sources)
            and all(loss.alert_acked for loss in self.losses)
            and not self.conflicts
            and not self.behind
        )

    def lines(self) -> Iterator[str]:
        """The report, a line per source, then per loss, conflict and outbox ahead."""
        for r in self.sources:
            verdict = "INCOMPLETE" if not r.complete else f"LOST {r.lost}" if r.lost else "ok"
            yield (
                f"{r.source:30} seq {r.min_seq}..{r.max_seq} distinct {r.distinct} "
                f"rows {r.rows} committed {r.committed} {verdict}"
            )
        for loss in self.losses:
            alert = f"{loss.source}:{loss.last_seq}"
            yield (
                f"LOST {loss.source} seq {loss.first_seq}..{loss.last_seq} "
                f"({loss.last_seq - loss.first_seq + 1} events), declared {_when(loss.declared_ns)}"
                f" by its producer: the writer had acknowledged them (the producer saw up to "
                f"{loss.acknowledged}) and its database no longer held them; "
                + (
                    f"alert {alert} acknowledged"
                    if loss.alert_acked
                    else f"`observer alerts ack {alert}` once understood"
                )
            )
        for c in self.conflicts:
            yield (
                f"CONFLICT {c.source}/{c.seq} ({c.event_type}) received {_when(c.received_ns)}: "
                "other content than the committed envelope"
            )
        if self.conflicts:
            yield f"{len(self.conflicts)} conflicting envelopes, kept in bus_conflicts"
        for source, (mark, state) in self.behind.items():
            yield (
                f"BEHIND {source}: its outbox on this host recorded the writer acknowledging "
                f"seq {state.acked}, the database holds {mark}: seqs {mark + 1}..{state.acked} "
                "were acknowledged and are missing; "
                + (
                    "the outbox still holds them (sent again when its producer runs)"
                    if state.held_from <= mark + 1
                    else f"the outbox holds from {state.held_from}, so {mark + 1}.."
                    f"{state.held_from - 1} are lost (its producer declares them when it runs)"
                )
            )


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")
