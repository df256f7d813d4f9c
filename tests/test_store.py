"""The writer's persistence on SQLite and PostgreSQL: rows per event, exactly once, in place."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bus.codec import DecodedFrame, decode_parts, encode_frame
from bus.envelope import Envelope
from observer.db import migrate
from observer.db.engine import make_engine
from observer.db.models import (
    Base,
    Gap,
    Instrument,
    MasterFileState,
    TrackACycleRow,
    TradeTickRow,
)
from observer.db.queries import audit_sources
from observer.errors import StoreError
from observer.writer.store import Store, accept
from tests.samples import EXPECTED_ROWS, SAMPLES, T0


def frames_of(
    events: list, source: str = "w1", first: int = 1, per_frame: int = 3
) -> list[DecodedFrame]:
    envelopes = [Envelope(source, first + i, T0 + i, e) for i, e in enumerate(events)]
    return [
        decode_parts(encode_frame(envelopes[i : i + per_frame]))
        for i in range(0, len(envelopes), per_frame)
    ]


@pytest.fixture
def store(db_url: str):
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    store = Store(engine)
    store.load_marks()
    yield store
    engine.dispose()


def table_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


def test_every_event_type_leaves_its_rows_and_an_audit_trail(store: Store) -> None:
    accepted = store.apply(frames_of(SAMPLES))
    assert accepted.count == len(SAMPLES)
    counts = table_counts(store)
    assert {k: v for k, v in counts.items() if k != "alembic_version"} == EXPECTED_ROWS
    with store.engine.connect() as conn:
        (audit,) = audit_sources(conn)
        assert audit.complete and audit.max_seq == len(SAMPLES)
    with Session(store.engine) as session:
        gap = session.scalars(select(Gap)).one()
        assert (gap.state, gap.bars, gap.symbol) == ("recovered", 2, "005930")
        instrument = session.scalars(select(Instrument)).one()
        assert (instrument.symbol, instrument.active) == ("NEWCO", False)
        assert instrument.name_en == "NewCo Inc"
        state = session.scalars(select(MasterFileState)).one()
        assert (state.size, state.records) == (1_204_331, 3813)
        tick = session.scalars(select(TradeTickRow)).one()
        assert tick.change_rate == Decimal("-0.54") and tick.strength == Decimal("98.73")
        cycle = session.scalars(select(TrackACycleRow)).one()
        assert cycle.missing == ["900110"] and cycle.trade_date == date(2026, 11, 20)


def test_applying_the_same_frames_again_changes_nothing(store: Store) -> None:
    frames = frames_of(SAMPLES)
    store.apply(frames)
    before = table_counts(store)
    again = store.apply(frames)
    assert again.count == 0 and again.duplicates == len(SAMPLES)
    assert table_counts(store) == before


def test_a_frame_past_a_hole_waits_for_the_missing_one(store: Store) -> None:
    frames = frames_of(SAMPLES[:6], per_frame=2)
    result = store.apply([frames[0], frames[2]])
    assert result.count == 2 and result.holes == {"w1"}
    assert store.marks == {"w1": 2}
    store.apply([frames[1], frames[2]])
    assert store.marks == {"w1": 6}


def test_accept_is_pure_and_orders_by_mark() -> None:
    frames = frames_of(SAMPLES[:4], per_frame=4)
    result = accept(frames, {"w1": 2})
    assert [e.seq for e in result.envelopes] == [3, 4]
    assert result.duplicates == 2 and result.marks == {"w1": 4}


def test_marks_are_reread_after_a_failed_transaction(store: Store) -> None:
    tick = SAMPLES[2]
    store.apply(frames_of([tick] * 3))
    columns = [c.name for c in TradeTickRow.__table__.columns if c.name != "seq"]
    with store.engine.begin() as conn:  # a row behind the writer's back: seq 5 will clash
        conn.execute(
            text(
                f"INSERT INTO trade_ticks ({', '.join(columns)}, seq) "
                f"SELECT {', '.join(columns)}, 5 FROM trade_ticks WHERE seq = 3"
            )
        )
    with pytest.raises(StoreError, match="commit of 3 events failed"):
        store.apply(frames_of([tick] * 3, first=4))
    assert store.marks == {"w1": 3}  # re-read from the database, not assumed
    assert table_counts(store)["trade_ticks"] == 4


def test_unreachable_database_is_a_clear_store_error(tmp_path) -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="database unreachable"):
        Store(engine).check_schema()
    with pytest.raises(StoreError, match="cannot read bus offsets"):
        Store(engine).load_marks()
