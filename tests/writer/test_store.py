"""The writer's persistence on SQLite and PostgreSQL: rows per event, exactly once, in place."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from bus.codec import BusFrame, decode_frame, decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import ListingChanged
from observer.db import migrate
from observer.db.audit_queries import SourceAudit, audit_sources
from observer.db.engine import make_engine
from observer.db.models import (
    Base,
    BusOffset,
    Gap,
    Instrument,
    MasterFileState,
    PrunedChunk,
    RejectedEvent,
    TrackACycleRow,
    TradeTickRow,
)
from observer.errors import StoreError
from observer.writer.store import Store, accept
from tests.samples import EXPECTED_ROWS, SAMPLES, T0
from tests.support import database_down


def frames_of(
    events: list, source: str = "w1", first: int = 1, per_frame: int = 3
) -> list[BusFrame]:
    envelopes = [Envelope(source, first + i, T0 + i, e) for i, e in enumerate(events)]
    return [
        decode_parts(encode_frame(envelopes[i : i + per_frame]))
        for i in range(0, len(envelopes), per_frame)
    ]


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


def test_every_marked_source_is_audited_rows_or_none(store: Store) -> None:
    """A source whose committed events left no row is listed, incomplete; one whose rows
    were all pruned is complete (its chunks stand for them)."""
    store.apply(frames_of(SAMPLES[:3]))
    with store.engine.begin() as conn:
        conn.execute(
            insert(BusOffset),
            [
                {"source": "gone", "seq": 3, "updated_ns": 1},
                {"source": "pruned", "seq": 2, "updated_ns": 1},
            ],
        )
        day = {"table_name": "trade_ticks", "trade_date": date(2026, 3, 2), "source": "pruned"}
        seqs = {"rows": 2, "seqs": 2, "min_seq": 1, "max_seq": 2, "pruned_ns": 1}
        conn.execute(insert(PrunedChunk), [day | seqs | {"chunk": 1}])
    with store.engine.connect() as conn:
        audits = {a.source: a for a in audit_sources(conn)}
    assert audits["gone"] == SourceAudit("gone", 0, 0, 0, 0, 3)
    assert not audits["gone"].complete
    assert audits["pruned"] == SourceAudit("pruned", 1, 2, 2, 0, 2)
    assert audits["pruned"].complete and audits["w1"].complete
    assert set(audits) == {"gone", "pruned", "w1"}


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


def test_a_refused_event_is_kept_whole_and_the_rest_commits(store: Store) -> None:
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
    result = store.apply(frames_of([tick] * 8, first=4))
    assert result.count == 8 and store.marks == {"w1": 11}
    with Session(store.engine) as session:
        (rejected,) = session.scalars(select(RejectedEvent)).all()
        ticks = session.scalars(select(TradeTickRow.seq).order_by(TradeTickRow.seq)).all()
    assert (rejected.seq, rejected.event_type) == (5, "trade_tick")
    assert decode_frame(rejected.envelope)[0].event == tick  # kept whole, for a human
    assert ticks == list(range(1, 12))  # 5 is the row that was already there
    with store.engine.connect() as conn:
        assert audit_sources(conn)[0].complete


def test_a_value_the_database_refuses_is_isolated(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    store = Store(engine)
    good = SAMPLES[2]
    bad = msgspec.structs.replace(good, symbol="X" * 40)  # symbol is VARCHAR(16)
    store.apply(frames_of([good, good, bad, good, good], per_frame=5))
    assert store.marks == {"w1": 5}
    with Session(engine) as session:
        assert session.scalars(select(RejectedEvent.seq)).all() == [3]
        assert "too long" in session.scalars(select(RejectedEvent.reason)).one()
    engine.dispose()


def test_an_unavailable_database_is_retried_and_marks_reread(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    store = Store(engine)
    store.apply(frames_of([SAMPLES[2]] * 3))
    with database_down(pg_url):
        with pytest.raises(StoreError, match="commit of 3 events failed"):
            store.apply(frames_of([SAMPLES[2]] * 3, first=4))
        with pytest.raises(StoreError, match="cannot read bus offsets"):
            store.apply(frames_of([SAMPLES[2]] * 3, first=4))  # marks must be re-read first
    assert store.apply(frames_of([SAMPLES[2]] * 3, first=4)).count == 3
    assert store.marks == {"w1": 6}
    engine.dispose()


def test_unreachable_database_is_a_clear_store_error(tmp_path) -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="database unreachable"):
        Store(engine).check_schema()
    with pytest.raises(StoreError, match="cannot read bus offsets"):
        Store(engine).load_marks()


def test_runs_of_upserts_apply_in_seq_order(store: Store) -> None:
    """Same-shaped upserts go as one executemany; later events still win."""

    def new(symbol: str, name: str) -> ListingChanged:
        return ListingChanged(change="new", market="NAS", symbol=symbol, name=name, region="US")

    events = [new(f"S{n}", f"first {n}") for n in range(50)]
    events += [new("S7", "second"), new("S7", "third")]  # the same key twice in one run
    events += [ListingChanged(change="removed", market="NAS", symbol="S8", name="first 8")]
    assert store.apply(frames_of(events)).count == len(events)
    with store.engine.connect() as conn:
        rows = dict(conn.execute(text("select symbol, name from instruments where active")).all())
    assert len(rows) == 49 and rows["S7"] == "third" and "S8" not in rows
