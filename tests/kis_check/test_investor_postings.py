"""`observer kis check` says which way KIS answered today's investor postings: each due or
another day's, and against what the investor job stored, as stored or revised (KIS's staff
revising a posting is UNCONFIRMED: the simulator does either, `SimConfig.investor_revised_from`)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bus.events import Event, InvestorEstimate
from bus.producer import Producer
from observer.calendar.phases import KST
from observer.db.settings import DatabaseSettings
from observer.kis.schemas import InvestorEstimateRow
from observer.kis_check.investor import (
    NONE_STORED,
    StoredPostings,
    postings_finding,
    stored_postings,
)
from tests.investor.test_investor_job import _day_at
from tests.support import db_rows, sim_client, wait_until
from tests.track_b.test_track_b import DAY, UNIVERSE
from workers.investor.job import run_postings

_NS = 1_000_000_000


def _at(hh: int, mm: int) -> int:
    return int(datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=KST).timestamp()) * _NS


def _row(posting: int, foreign: int, institution: int) -> InvestorEstimateRow:
    return InvestorEstimateRow(
        str(posting), str(foreign), str(institution), str(foreign + institution)
    )


def test_an_answer_holding_a_posting_not_due_is_another_day_s_and_held_against_nothing() -> None:
    rows = [_row(1, 10, 0), _row(2, 10, 5)]
    stored = StoredPostings({1: [(99, 0, 99)]})
    found = postings_finding("005930", rows, _at(9, 40), stored)
    assert found == (
        "postings [1, 2] answered at 09:40 KST: [2] not due yet, so another day's "
        "(the job stores none of them)"
    )


def test_each_posting_answered_is_as_stored_revised_or_not_stored_yet() -> None:
    rows = [_row(1, 10, 0), _row(2, 12, 5), _row(3, 7, 7)]
    stored = StoredPostings({1: [(10, 0, 10)], 2: [(11, 5, 16)]})
    found = postings_finding("005930", rows, _at(11, 40), stored)
    assert found == (
        "postings [1, 2, 3] answered at 11:40 KST: each due, today's; against the database: "
        "[1] as stored, 2 otherwise (stored (11, 5, 16), now (12, 5, 17)): revised, "
        "[3] not stored yet"
    )
    # Figures among those stored are as stored, as the investor job judges them (nothing new
    # to store): the revision, and the first figures answered again after it
    revised = StoredPostings({1: [(10, 0, 10)], 2: [(11, 5, 16), (12, 5, 17)], 3: [(7, 7, 14)]})
    assert postings_finding("005930", rows, _at(11, 40), revised).endswith(
        "against the database: [1, 2, 3] as stored"
    )
    back = [_row(1, 10, 0), _row(2, 11, 5), _row(3, 7, 7)]
    assert postings_finding("005930", back, _at(11, 40), revised).endswith(
        "against the database: [1, 2, 3] as stored"
    )
    assert postings_finding("005930", rows, _at(11, 40), StoredPostings()).endswith(
        "each due, today's; none of 005930 stored today to hold them against"
    )
    assert postings_finding("005930", rows, _at(11, 40), NONE_STORED).endswith(
        "each due, today's; no database asked"
    )


FIGURES = st.tuples(st.integers(-5, 5), st.integers(-5, 5), st.integers(-5, 5))


@given(
    st.dictionaries(st.integers(1, 5), FIGURES, min_size=1),
    st.dictionaries(st.integers(1, 5), st.lists(FIGURES, min_size=1, max_size=3)),
)
def test_each_posting_answered_is_said_once_as_stored_revised_or_new(
    answered: dict[int, tuple[int, int, int]], stored: dict[int, list[tuple[int, int, int]]]
) -> None:
    rows = [_row(p, f, i) for p, (f, i, _) in sorted(answered.items())]
    found = postings_finding("005930", rows, _at(15, 0), StoredPostings(stored))
    if not stored:
        assert found.endswith("none of 005930 stored today to hold them against")
        return
    said = found.split("; against the database: ")[1]
    same = [p for p, (f, i, _) in answered.items() if (f, i, f + i) in stored.get(p, [])]
    new = [p for p in answered if p not in stored]
    revised = sorted(set(answered) - set(same) - set(new))
    assert (f"{sorted(same)} as stored" in said) == bool(same)
    assert (f"{sorted(new)} not stored yet" in said) == bool(new)
    assert said.count(": revised") == len(revised)
    for p in revised:
        f, i, _ = answered[p]
        assert f"{p} otherwise (stored {stored[p][-1]}, now {(f, i, f + i)}): revised" in said


def test_a_database_that_does_not_read_is_said_and_holds_nothing(tmp_path: Path) -> None:
    missing = DatabaseSettings(url=f"sqlite:///{tmp_path / 'absent' / 'observer.db'}")
    stored = stored_postings(missing, "005930", DAY)
    assert stored.unread == "no database where [database] url says" and not stored.figures
    found = postings_finding("005930", [_row(1, 10, 0)], _at(10, 0), stored)
    assert found.endswith("each due, today's; no database where [database] url says")
    # A file that is no database: read, refused
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    junk = DatabaseSettings(url=f"sqlite:///{tmp_path / 'junk.db'}")
    assert stored_postings(junk, "005930", DAY).unread == "the database not read: DatabaseError"


def test_kis_s_answer_held_against_the_investor_job_s_stored_postings_both_ways(
    tmp_path: Path,
) -> None:
    with _day_at(tmp_path, 11, 45) as (sim, writer, settings):
        sent: list[Event] = []
        run_postings(settings, sim.sim.clock, sent.append)
        estimates = [e for e in sent if isinstance(e, InvestorEstimate)]
        with Producer("investor", writer.ingest, writer.workdir / "outbox-investor") as producer:
            for event in estimates:
                producer.send(event)
            assert producer.wait_acked(30)
        count = "select count(*) from investor_estimates"
        wait_until(lambda: db_rows(writer.url, count) == [(len(estimates),)], 30, "stored")
        symbol = UNIVERSE[0]
        stored = stored_postings(settings.database, symbol, DAY)
        assert not stored.unread and sorted(stored.figures) == [1, 2, 3]
        client = sim_client(sim, tmp_path, "acct1")

        async def finding() -> str:
            rows = await client.investor_estimates(symbol)
            return postings_finding(symbol, rows, sim.sim.clock.now_ns(), stored)

        async def both() -> tuple[str, str]:
            try:
                kept = await finding()
                sim.sim.config.investor_revised_from = "11:00"  # KIS's staff revise them
                return kept, await finding()
            finally:
                await client._http.aclose()  # type: ignore[attr-defined]

        kept, revised = asyncio.run(both())
    assert kept.endswith("against the database: [1, 2, 3] as stored"), kept
    # The simulator's revision moves the foreigners' figure of each posting (none is 0 here)
    moved = [p for p in (1, 2, 3) if f"{p} otherwise (stored (" in revised]
    assert moved and revised.count(": revised") == len(moved), revised
