"""What became of each alert: open, acknowledged or resolved, and where it was delivered.

An alert is known by its envelope's identity, ``source:seq``. One of severity warning or
above is *open* until an operator acknowledges it (`bus.events.AlertAcked`) or an
`bus.events.AlertResolved` with the same ``code`` and ``subject`` comes after it (from the
same host, when both hosts are named: `observer.cluster.hosts`); an info
alert is a note and never open. The notifier, ``observer alerts`` and anyone counting open
alerts read the same records (`observer.db.queries.alert_records`) through this module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from bus.events import Severity
from observer.cluster.hosts import host_of, own_source

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from observer.config.tree import Settings
    from observer.db.queries import AlertRecords

__all__ = [
    "SEVERITY_RANK",
    "AlertState",
    "Notice",
    "alert_id",
    "alert_states",
    "delivered_channels",
    "ends",
    "notices_of",
    "open_notices",
    "open_notices_of",
    "open_subjects_of",
    "parse_alert_id",
]

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2, "critical": 3}

State = Literal["open", "acked", "resolved", "info"]


def alert_id(source: str, seq: int) -> str:
    """The identity of an alert (or a resolution) as operators write it: ``source:seq``."""
    return f"{source}:{seq}"


def parse_alert_id(text: str) -> tuple[str, int]:
    """``(source, seq)`` of an alert id; `ValueError` if it is not ``source:seq``."""
    source, _, seq = text.rpartition(":")
    if not source or not seq.isdigit():
        raise ValueError(f"{text!r} is not an alert id (source:seq, as `observer alerts` shows)")
    return source, int(seq)


@dataclass(frozen=True, slots=True)
class Notice:
    """An alert, or a resolution of one, as it is routed and sent."""

    id: str  # "source:seq"
    kind: Literal["alert", "resolved"]
    produced_ns: int
    severity: Severity
    code: str
    subject: str
    message: str

    @property
    def condition(self) -> tuple[str, str]:
        """What a resolution clears: ``(code, subject)``."""
        return (self.code, self.subject)

    @property
    def host(self) -> str:
        """The named host it came from (`observer.cluster.hosts`); empty for an unnamed one."""
        return host_of(self.id.rpartition(":")[0])


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert and what became of it."""

    notice: Notice
    state: State
    acked_by: str = ""
    delivered: tuple[str, ...] = ()  # channels that were sent a message covering it


def notices_of(rows: Iterable[Sequence[Any]], kind: Literal["alert", "resolved"]) -> list[Notice]:
    """Notices from rows of ``source, seq, produced_ns, severity, code, subject, message``."""
    return [
        Notice(alert_id(source, seq), kind, at, cast(Severity, severity), code, subject, message)
        for source, seq, at, severity, code, subject, message in rows
    ]


def delivered_channels(records: AlertRecords) -> dict[str, set[str]]:
    """For each alert or resolution id, the channels a sent message covered it on."""
    sent: dict[str, set[str]] = defaultdict(set)
    for channel, _kind, outcome, ids, _at in records.deliveries:
        if outcome == "sent":
            for each in ids:
                sent[each].add(channel)
    return sent


def alert_states(records: AlertRecords) -> list[AlertState]:
    """Every alert of ``records`` with its state, oldest first."""
    resolved_at: dict[tuple[str, str], list[tuple[int, str, int]]] = defaultdict(list)
    for source, seq, at, _severity, code, subject, _message in records.resolutions:
        resolved_at[(code, subject)].append((at, source, seq))
    acked = {alert_id(source, seq): by for source, seq, _at, by in records.acks}
    sent = delivered_channels(records)
    states = []
    for notice in notices_of(records.alerts, "alert"):
        state: State
        if notice.severity == "info":
            state = "info"
        elif notice.id in acked:
            state = "acked"
        elif any(_after(r, notice) for r in resolved_at.get(notice.condition, ())):
            state = "resolved"
        else:
            state = "open"
        states.append(
            AlertState(notice, state, acked.get(notice.id, ""), tuple(sorted(sent[notice.id])))
        )
    return states


def ends(resolution: Notice, alert: Notice) -> bool:
    """True if ``resolution`` ends ``alert``: its condition, after it, and the host rule."""
    if resolution.condition != alert.condition:
        return False
    source, seq = parse_alert_id(resolution.id)
    return _after((resolution.produced_ns, source, seq), alert)


def _after(resolution: tuple[int, str, int], alert: Notice) -> bool:
    """True if the resolution came after the alert (the same instant: only within a source).

    Between two named hosts (`observer.cluster.hosts`) a resolution is only its own host's: host
    c2's ``program_fatal`` of ``track_b`` over does not end host c1's. A source of a host
    without a name resolves and is resolved as before, whatever the other's host.
    """
    at, source, seq = resolution
    alert_source, alert_seq = parse_alert_id(alert.id)
    here, there = host_of(source), host_of(alert_source)
    if here and there and here != there:
        return False
    if at != alert.produced_ns:
        return at > alert.produced_ns
    return source == alert_source and seq > alert_seq


def open_notices(records: AlertRecords, source: str, codes: Collection[str]) -> list[Notice]:
    """The alerts of ``codes`` that ``source`` raised and are open in ``records``, oldest first.

    A job that mends what an earlier run alerted resolves it only then: a resolution of
    nothing open would still be sent to every channel.
    """
    return [
        state.notice
        for state in alert_states(records)
        if state.state == "open"
        and state.notice.code in codes
        and parse_alert_id(state.notice.id)[0] == source
    ]


def open_notices_of(
    conn: Connection,
    settings: Settings,
    source: str,
    codes: Collection[str],
    through_seq: int | None = None,
) -> list[Notice]:
    """The open alerts of ``codes`` that this host's ``source`` raised, oldest first.

    Whatever their age, as ``observer alerts --open`` lists them: a restarted worker or a
    job takes over what an earlier run of its source left open. ``through_seq``: those
    raised at that seq or before (a run that reads after it has sent its own leaves them out).
    """
    # deferred: the database layer (SQLAlchemy and the models, about 0.5 s) loads after READY
    from observer.db.queries import open_alert_records

    records = open_alert_records(conn, deliveries=False)
    found = open_notices(records, own_source(settings.supervisor, source), codes)
    if through_seq is None:
        return found
    return [n for n in found if parse_alert_id(n.id)[1] <= through_seq]


def open_subjects_of(
    conn: Connection,
    settings: Settings,
    source: str,
    codes: Sequence[str],
    through_seq: int | None = None,
) -> dict[str, set[str]]:
    """Per code, the subjects of this host's ``source``'s open alerts of that code."""
    found: dict[str, set[str]] = {code: set() for code in codes}
    for notice in open_notices_of(conn, settings, source, codes, through_seq):
        found[notice.code].add(notice.subject)
    return found
