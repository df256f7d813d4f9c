"""Operations: phases, tokens, alerts and their fate, stream states, workers, rejected events."""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of the models' import, which is on the writer's path to READY.

from datetime import date
from typing import Any

from sqlalchemy import (
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from bus.envelope import MAX_SOURCE_LENGTH
from bus.events import Alert
from observer.db.models.base import Audited, Base


class PhaseChangedRow(Audited, Base):
    """Operation phases entered."""

    __tablename__ = "phases"
    phase: Mapped[str] = mapped_column(String(32))
    trade_date: Mapped[date]
    scheduled_ns: Mapped[int]


class TokenRefreshedRow(Audited, Base):
    """Token and approval-key issuances (no secret is ever stored)."""

    __tablename__ = "token_refreshes"
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    issued_ns: Mapped[int]
    expires_ns: Mapped[int]


class AlertRow(Audited, Base):
    """Alerts raised by any process."""

    __tablename__ = "alerts"
    severity: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(Alert.CODE_LENGTH), index=True)
    message: Mapped[str] = mapped_column(String(Alert.MESSAGE_LENGTH))
    context: Mapped[dict[str, Any]]
    subject: Mapped[str] = mapped_column(String(Alert.SUBJECT_LENGTH), server_default="")


class AlertResolvedRow(Audited, Base):
    """Conditions that ended: they close the alerts of the same code and subject."""

    __tablename__ = "alert_resolutions"
    code: Mapped[str] = mapped_column(String(Alert.CODE_LENGTH), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(Alert.MESSAGE_LENGTH))
    subject: Mapped[str] = mapped_column(String(Alert.SUBJECT_LENGTH))


class AlertAckedRow(Audited, Base):
    """Operators' acknowledgements of alerts (``alert_source``, ``alert_seq``)."""

    __tablename__ = "alert_acks"
    alert_source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH))
    alert_seq: Mapped[int]
    by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(500))


class AlertDeliveryRow(Audited, Base):
    """Every attempt to deliver an alert message to a channel (named, never its URL)."""

    __tablename__ = "alert_deliveries"
    channel: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int]
    code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    alerts: Mapped[list[Any]]  # the "source:seq" of every alert the message covers
    subject: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500))
    error: Mapped[str] = mapped_column(String(2000))


class StreamStateChangedRow(Audited, Base):
    """Real-time session states per account (disconnects bound the gaps)."""

    __tablename__ = "stream_states"
    account: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    registrations: Mapped[int]


class WorkerLifecycleRow(Audited, Base):
    """Process lifecycle recorded by the supervisor."""

    __tablename__ = "worker_events"
    worker: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))
    pid: Mapped[int]
    exit_code: Mapped[int | None]
    detail: Mapped[str] = mapped_column(String(500))


class RejectedEvent(Audited, Base):
    """Events the database refused for their content, kept whole (a frame of one envelope)."""

    __tablename__ = "rejected_events"
    event_type: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
