"""The declarative base, the audit columns every event row carries, and the bus's own tables."""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of the models' import, which is on the writer's path to READY.

from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from bus.codec import DIGEST_BYTES
from bus.envelope import MAX_SOURCE_LENGTH

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ExactDecimal(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC(24, 8) on PostgreSQL, text on SQLite (whose NUMERIC is a float).

    A value with more than ``SCALE`` places is rounded to ``SCALE`` places as PostgreSQL's
    numeric rounds it (half away from zero), on SQLite too: when it is stored, and when a
    value stored before is read (SQLite's text kept every place), so both databases hold
    and return the same value and a day archives as decimal128(24, 8). A value with
    ``SCALE`` places or fewer is stored and read as it is, its text unchanged.
    """

    impl = Numeric(24, 8)
    cache_ok = True
    SCALE = 8

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Text on SQLite, NUMERIC(24, 8) elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(24, 8))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        """A decimal as its exact text on SQLite, rounded to the column's places."""
        if value is None or dialect.name != "sqlite":
            return value
        return self.sqlite_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """The stored value as a decimal (on SQLite rounded to the column's places).

        A text of ``SCALE + 1`` characters or fewer, with no exponent, cannot have more
        places: most values skip `rounded` (reading a day's ticks takes one per decimal
        column and row).
        """
        if value is None:
            return None
        number = Decimal(value)
        if type(value) is not str or dialect.name != "sqlite":
            return number
        if len(value) <= self.SCALE + 1 and "E" not in value and "e" not in value:
            return number
        return self.rounded(number)

    @classmethod
    def rounded(cls, value: Decimal) -> Decimal:
        """``value`` with at most ``SCALE`` places, rounded as PostgreSQL's numeric rounds.

        Half away from zero (``ROUND_HALF_UP`` in `decimal`): 0.123456785 -> 0.12345679,
        -0.123456785 -> -0.12345679; a negative value rounded to zero is zero. Others, and
        NaN or infinities, are returned as they are.
        """
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or exponent >= -cls.SCALE:
            return value
        digits = max(value.adjusted(), 0) + cls.SCALE + 2  # enough for any magnitude
        rounded = value.quantize(
            Decimal(1).scaleb(-cls.SCALE), rounding=ROUND_HALF_UP, context=Context(prec=digits)
        )
        return rounded.copy_abs() if rounded.is_zero() else rounded

    @classmethod
    def sqlite_text(cls, value: Decimal) -> str:
        """The text SQLite stores: ``value`` itself, or rounded and written out in full."""
        rounded = cls.rounded(value)
        return str(value) if rounded is value else format(rounded, "f")


class Base(DeclarativeBase):
    """Declarative base with constraint names alembic can rely on."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        int: BigInteger(),
        str: String(200),
        Decimal: ExactDecimal(),
        date: Date(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Audited:
    """Columns of every append-only row: who produced it, its seq, and when."""

    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    produced_ns: Mapped[int]


class AuditedMany(Audited):
    """Append-only rows of events that yield several rows; ``idx`` orders them."""

    idx: Mapped[int] = mapped_column(primary_key=True)


class BusOffset(Base):
    """Per-source high-water mark, committed with the rows it covers."""

    __tablename__ = "bus_offsets"
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    seq: Mapped[int]
    updated_ns: Mapped[int]


class BusDigest(Base):
    """Digests of committed envelopes: one row per source and commit, in seq order.

    A resend must be byte-identical to what was committed at its seq; the writer compares
    each repeated envelope with the digest stored here (see `observer.writer.store`).
    """

    __tablename__ = "bus_digests"
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    first_seq: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int]
    digests: Mapped[bytes] = mapped_column(LargeBinary)  # DIGEST_BYTES per seq, in seq order


class SeqsLostRow(Audited, Base):
    """Seqs a producer declared lost (`bus.events.SeqsLost`), kept at the seq ``last_seq``.

    The writer had acknowledged them and its database lost them since; the audit reports
    each range.
    """

    __tablename__ = "bus_losses"
    first_seq: Mapped[int]
    last_seq: Mapped[int]
    acknowledged: Mapped[int]  # the highest seq the producer's outbox had seen acknowledged


class BusConflict(Base):
    """An envelope whose seq was committed with other content: kept, never dropped."""

    __tablename__ = "bus_conflicts"
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(DIGEST_BYTES), primary_key=True)
    committed_digest: Mapped[bytes] = mapped_column(LargeBinary(DIGEST_BYTES))
    received_ns: Mapped[int]
    event_type: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)  # a frame of the one envelope
