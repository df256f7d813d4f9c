"""Source identity: a seq committed once cannot be claimed again with other content.

Any process that reaches the ingest socket can send as any source. Whichever of two
different envelopes at one seq arrives first is committed; the other must be kept as a
conflict and alerted, never dropped as a duplicate, and `observer audit` must fail.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bus.codec import BusFrame, decode_frame, decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import TradeTick
from observer.db import migrate
from observer.db import models as m
from observer.db.audit_queries import audit_sources, conflicts
from observer.db.engine import make_engine
from observer.writer import identity
from observer.writer.identity import WRITER_SOURCE
from observer.writer.store import Store
from tests.samples import SAMPLES, T0
from tests.support import ROOT, ProducerProcess, WriterProcess, db_rows, wait_until

TICK: TradeTick = SAMPLES[2]  # type: ignore[assignment]


def tick(n: int, qty: int = 1) -> TradeTick:
    return msgspec.structs.replace(TICK, qty=qty, cum_volume=n)


def frame(*envelopes: Envelope) -> BusFrame:
    return decode_parts(encode_frame(list(envelopes)))


def writer_alerts(store: Store) -> list[m.AlertRow]:
    with Session(store.engine) as session:
        query = select(m.AlertRow).where(m.AlertRow.source == WRITER_SOURCE)
        return list(session.scalars(query.order_by(m.AlertRow.seq)))


def test_a_forgery_committed_first_makes_the_genuine_envelopes_conflicts(store: Store) -> None:
    forged = [Envelope("victim", n, T0, tick(n, qty=666)) for n in (1, 2, 3)]
    genuine = [Envelope("victim", n, T0 + n, tick(n)) for n in (1, 2, 3, 4)]
    store.apply([frame(*forged)])
    accepted = store.apply([frame(*genuine)])
    assert [env.seq for env in accepted.envelopes if env.source == "victim"] == [4]
    assert accepted.conflicts == 3 and store.conflicts == 3
    with Session(store.engine) as session:
        kept = session.scalars(select(m.BusConflict).order_by(m.BusConflict.seq)).all()
        assert [row.seq for row in kept] == [1, 2, 3]
        assert [decode_frame(row.envelope)[0] for row in kept] == genuine[:3]  # kept whole
        assert all(row.digest != row.committed_digest for row in kept)
    (alert,) = writer_alerts(store)
    assert (alert.severity, alert.code, alert.seq) == ("critical", "bus_conflict", 1)
    assert "victim/1" in alert.message
    # The alert reaches the feed: it is an accepted frame of the writer's own source.
    assert accepted.frames[-1][0].envelopes[0].source == WRITER_SOURCE

    again = store.apply([frame(*genuine)])  # the same bytes again: already kept, no new alert
    assert again.conflicts == 3 and store.conflicts == 3 and len(writer_alerts(store)) == 1
    assert store.apply([frame(*forged)]).conflicts == 0  # what was committed, resent
    with store.engine.connect() as conn:
        assert all(a.complete for a in audit_sources(conn))  # every seq once, the alert's too
        assert [(c.source, c.seq) for c in conflicts(conn)] == [("victim", n) for n in (1, 2, 3)]


def test_the_writers_own_alerts_are_stamped_by_its_clock(store: Store) -> None:
    """The writer runs on the supervisor's clock (``$OBSERVER_CLOCK``): a simulated day's
    alerts carry simulated times like every other source's."""
    simulated = Store(store.engine, now_ns=lambda: T0 + 42)
    simulated.load_marks()
    simulated.apply([frame(Envelope("victim", 1, T0, tick(1, qty=666)))])
    simulated.apply([frame(Envelope("victim", 1, T0, tick(1)))])  # a conflict: alerted
    (alert,) = writer_alerts(simulated)
    assert alert.code == "bus_conflict" and alert.produced_ns == T0 + 42


def test_two_envelopes_at_one_seq_in_one_batch_are_a_conflict(store: Store) -> None:
    first, second = Envelope("w", 1, T0, tick(1)), Envelope("w", 1, T0, tick(1, qty=2))
    accepted = store.apply([frame(first), frame(second)])
    assert accepted.count == 1 + 1  # seq 1 and the writer's alert
    assert accepted.conflicts == 1
    with store.engine.connect() as conn:
        (found,) = [c for c in conflicts(conn)]
    assert (found.source, found.seq, found.event_type) == ("w", 1, "trade_tick")


def test_repeats_of_seqs_committed_without_digests_are_unverified(store: Store) -> None:
    store.apply([frame(*(Envelope("old", n, T0, tick(n)) for n in (1, 2)))])
    with store.engine.begin() as conn:  # as a database upgraded from before digests
        conn.execute(delete(m.BusDigest))
    accepted = store.apply([frame(Envelope("old", 2, T0, tick(2, qty=9)))])
    assert (accepted.duplicates, accepted.conflicts, store.unverified) == (1, 0, 1)


def test_a_rejected_event_keeps_its_digest(store: Store) -> None:
    too_long = msgspec.structs.replace(TICK, symbol="X" * 17)  # symbol is VARCHAR(16)
    store.apply([frame(Envelope("r", 1, T0, too_long))])
    assert store.rejected == 1
    accepted = store.apply([frame(Envelope("r", 1, T0, TICK))])
    assert accepted.conflicts == 1  # the rejected envelope was committed at seq 1


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy: migrating per example would take a minute in CI."""
    path = tmp_path_factory.mktemp("template") / "observer.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@given(
    st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=60),
    st.integers(1, 7),
)
def test_conflicts_are_exactly_the_differing_resends(
    tmp_path_factory: pytest.TempPathFactory,
    migrated: Path,
    resends: list[tuple[int, bool]],
    per_frame: int,
) -> None:
    """Resend any committed seqs in any framing, some altered: exactly the altered conflict."""
    path = tmp_path_factory.mktemp("identity") / "observer.db"
    shutil.copyfile(migrated, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        store = Store(engine)
        store.load_marks()
        committed = [Envelope("p", n, T0 + n, tick(n)) for n in range(1, 41)]
        store.apply([frame(*committed[i : i + 9]) for i in range(0, 40, 9)])
        sent = [
            msgspec.structs.replace(committed[n - 1], ts=T0 - 1) if altered else committed[n - 1]
            for n, altered in resends
        ]
        store.apply([frame(*sent[i : i + per_frame]) for i in range(0, len(sent), per_frame)])
        expected = {n for n, altered in resends if altered}
        with engine.connect() as conn:
            assert all(a.complete for a in audit_sources(conn))
            assert {c.seq for c in conflicts(conn)} == expected
        assert store.conflicts == len(expected)
        assert len(writer_alerts(store)) == (1 if expected else 0)  # one alert per batch
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- a real writer


def run_audit(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", "audit", "--db", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_a_process_claiming_another_source_is_caught(
    tmp_path: Path, db_url: str, writer_factory: Callable[..., WriterProcess]
) -> None:
    """A forger sends as a source before and after its genuine producer: both are caught."""
    writer = writer_factory(db_url).start()
    assert writer.proc is not None
    pid = writer.proc.pid
    context = zmq.Context()
    forger = context.socket(zmq.DEALER)
    forger.connect(writer.ingest)
    try:
        # Ahead of the genuine producer: seqs 1..50 of "early" are the forger's.
        forger.send(encode_frame([Envelope("early", n, T0, tick(n, 666)) for n in range(1, 51)]))
        wait_until(lambda: writer.offsets().get("early") == 50, 60, "the forgery committed")
        early = ProducerProcess(tmp_path, "early", writer.ingest).start(events=200, rate=100)
        # Behind it: "late" is committed by its producer, then the forger replays its seqs.
        late = ProducerProcess(tmp_path, "late", writer.ingest).start(events=200)
        assert late.result()["drained"]
        forger.send(encode_frame([Envelope("late", n, T0, tick(n, 666)) for n in range(1, 21)]))
        wait_until(
            lambda: (
                {s for s, _ in db_rows(db_url, "SELECT source, seq FROM bus_conflicts")}
                >= {"early", "late"}
            ),
            60,
            "both conflicts recorded",
        )
        assert early.proc is not None
        _, err = early.proc.communicate(timeout=120)
    finally:
        forger.close(linger=0)
        context.term()

    # The genuine "early" producer either learns that the writer holds seqs it has not
    # written yet and stops, or had written them all and sees its later seqs committed.
    if early.proc.returncode != 0:
        assert b"source name is used twice" in err, err
    else:
        assert writer.offsets()["early"] == 200
    found = {tuple(row) for row in db_rows(db_url, "SELECT source, seq FROM bus_conflicts")}
    assert {("late", n) for n in range(1, 21)} <= found
    assert {seq for source, seq in found if source == "early"} <= set(range(1, 51))
    # Each conflict's alert is the writer's own event, committed after the conflict's row
    # (a full CI run read one of two right after both rows were there).
    alerted = f"SELECT code FROM alerts WHERE source = '{WRITER_SOURCE}'"

    def both_alerted() -> list[tuple[object, ...]] | None:
        rows = db_rows(db_url, alerted)
        return rows if len(rows) >= 2 else None

    alerts = wait_until(both_alerted, 30, "both conflicts alerted")
    assert {code for (code,) in alerts} == {"bus_conflict"}
    result = run_audit(db_url)
    assert result.returncode == 1, result.stdout
    assert "CONFLICT late/1 (trade_tick)" in result.stdout
    assert writer.proc.poll() is None and writer.proc.pid == pid  # still serving
    assert writer.terminate() == 0


def test_the_audit_passes_without_conflicts(store: Store) -> None:
    store.apply([frame(Envelope("w", 1, T0, TICK))])
    result = run_audit(store.engine.url.render_as_string(hide_password=False))
    assert result.returncode == 0, result.stdout
    assert "CONFLICT" not in result.stdout


def test_digest_runs_longer_than_the_span_are_split_and_found(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity, "DIGEST_SPAN", 4)
    committed = [Envelope("s", n, T0, tick(n)) for n in range(1, 11)]
    store.apply([frame(*committed)])
    with Session(store.engine) as session:
        runs = session.execute(select(m.BusDigest.first_seq, m.BusDigest.last_seq)).all()
    assert sorted(runs) == [(1, 4), (5, 8), (9, 10)]
    altered = {1, 4, 5, 10}
    resent = [
        msgspec.structs.replace(env, ts=T0 + 1) if env.seq in altered else env for env in committed
    ]
    assert store.apply([frame(*resent)]).conflicts == len(altered)
    with store.engine.connect() as conn:
        assert {c.seq for c in conflicts(conn)} == altered
