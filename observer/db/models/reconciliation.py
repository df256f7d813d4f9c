"""The day's reconciliation: each watched minute's stream against the exchange's bar."""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of the models' import, which is on the writer's path to READY.

from datetime import date

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from observer.db.models.base import Audited, AuditedMany, Base


class ReconciliationRow(Audited, Base):
    """One symbol's reconciliation of one day (its minutes in ``reconciliation_minutes``).

    A day reconciled again (``observer gap-recovery verify``) adds rows; the newest per
    symbol and day is the one in force.
    """

    __tablename__ = "reconciliations"
    trade_date: Mapped[date]
    symbol: Mapped[str] = mapped_column(String(16))
    minute_count: Mapped[int]
    missing_volume: Mapped[int]
    misses: Mapped[int]
    calls: Mapped[int]
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")

    __table_args__ = (Index(None, "trade_date", "symbol"),)


class MinuteCheckRow(AuditedMany, Base):
    """One watched minute: the stream's volume and trades against the bar's volume."""

    __tablename__ = "reconciliation_minutes"
    trade_date: Mapped[date]
    symbol: Mapped[str] = mapped_column(String(16))
    minute_ns: Mapped[int]
    status: Mapped[str] = mapped_column(
        String(16)
    )  # complete | short | recovered | excess | shifted
    stored_volume: Mapped[int]
    bar_volume: Mapped[int]
    stored_trades: Mapped[int]
    gap_id: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (Index(None, "trade_date", "symbol"),)
