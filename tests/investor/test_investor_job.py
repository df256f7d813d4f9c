"""The investor job: each posting published once, a missed one alerted and resolved."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert, AlertResolved, Event, InvestorEstimate
from bus.producer import Producer
from harness.sim.config import SimConfig
from observer.alerts.book import AlertBook
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.errors import KisProtocolError
from observer.kis.investor import INVESTOR_POSTINGS, estimates_of, investor_posting_due
from observer.kis.rate_alert import KIS_RATE_LIMITED
from observer.kis.schemas import InvestorEstimateRow
from tests.support import SimThread, WriterProcess, db_rows, wait_until
from tests.track_b.test_track_b import DAY, MARKET, UNIVERSE, universe
from workers.investor.job import (
    FAILURES,
    NOT_TODAY,
    POSTING_MISSED,
    REVISED,
    missed_postings,
    run_postings,
)

NUMBER = st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=12))


@given(st.lists(st.tuples(NUMBER, NUMBER, NUMBER, NUMBER), max_size=6))
def test_an_answer_is_estimates_of_known_postings_or_refused(rows: list[tuple[str, ...]]) -> None:
    answer = [InvestorEstimateRow(*row) for row in rows]
    try:
        estimates = estimates_of("005930", DAY, answer, 1)
    except KisProtocolError:
        return
    assert len(estimates) == len(answer)
    for estimate in estimates:
        assert estimate.posting in INVESTOR_POSTINGS
        assert all(
            -(2**63) <= v < 2**63
            for v in (estimate.foreign_qty, estimate.institution_qty, estimate.total_qty)
        )


def test_a_posting_is_missed_once_its_grace_is_over_and_only_if_members_answered() -> None:
    grace = timedelta(minutes=30)
    at = datetime(2026, 11, 20, 11, 50, tzinfo=KST)  # 11:20's grace ends now
    assert missed_postings({1: 5, 2: 5}, at, grace, 5) == [3]
    assert missed_postings({1: 5, 2: 5}, at - timedelta(seconds=1), grace, 5) == []
    assert missed_postings({1: 5, 2: 5, 3: 1}, at, grace, 5) == []
    assert missed_postings({}, at, grace, 0) == []  # every call failed: no verdict


@pytest.fixture
def day(tmp_path: Path) -> Iterator[tuple[SimThread, WriterProcess, Settings]]:
    """The simulator at 11:45 (its 11:20 posting made), a writer holding the day's universe."""
    with _day_at(tmp_path, 11, 45) as found:
        yield found


@contextmanager
def _day_at(
    tmp_path: Path, hh: int, mm: int, config: SimConfig | None = None
) -> Iterator[tuple[SimThread, WriterProcess, Settings]]:
    """The simulator at ``hh:mm`` of the day, a writer holding the day's universe."""
    writer = WriterProcess(tmp_path, f"sqlite:///{tmp_path / 'observer.db'}").start()
    start = datetime.combine(DAY, datetime.min.time(), KST) + timedelta(hours=hh, minutes=mm)
    try:  # a test that fails leaves no writer behind
        with SimThread(MARKET, start, config, speed=1) as sim:
            with Producer("universe", writer.ingest, tmp_path / "outbox") as producer:
                producer.send(universe(UNIVERSE))
                assert producer.wait_acked(30)
            config = tmp_path / "observer.toml"
            config.write_text(
                f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path}"\n'
                f'[database]\nurl = "{writer.url}"\n[investor]\ngrace_min = 20.0\n'
                "[kis.process_share]\njobs = 0.9\n"  # this test's alone: the whole budget
            )
            yield sim, writer, load_settings(config)
    finally:
        writer.terminate()


def test_each_posting_is_published_once_and_a_missed_one_alerted_until_found(
    day: tuple[SimThread, WriterProcess, Settings],
) -> None:
    sim, writer, settings = day
    sim.sim.faults.missed_postings.add(3)  # KIS's staff did not post 11:20's
    sent: list[Event] = []
    book = AlertBook(sent.append, "investor")
    run = run_postings(settings, sim.sim.clock, sent.append, alerts=book)
    estimates = [e for e in sent if isinstance(e, InvestorEstimate)]
    assert run.members == len(UNIVERSE) == run.answered and not run.failed
    assert {(e.symbol, e.posting) for e in estimates} == {(s, p) for s in UNIVERSE for p in (1, 2)}
    assert all(e.institution_qty == 0 for e in estimates if e.posting == 1)  # 09:30: foreigners'
    (alert,) = [e for e in sent if isinstance(e, Alert)]
    assert (alert.code, alert.subject, alert.severity) == (
        POSTING_MISSED,
        f"{DAY} 11:20",
        "warning",
    )
    assert run.missed == [3] and "missed: 11:20" in run.summary()
    # Stored, the next run publishes nothing again; the posting made late is found and its
    # alert resolved.
    with Producer("investor", writer.ingest, writer.workdir / "outbox-investor") as producer:
        for event in estimates:
            producer.send(event)
        assert producer.wait_acked(30)
    wait_until(
        lambda: (
            db_rows(writer.url, "select count(*) from investor_estimates") == [(2 * len(UNIVERSE),)]
        ),
        30,
        "the estimates stored",
    )
    sim.sim.faults.missed_postings.clear()
    again: list[Event] = []
    book.publish = again.append
    later = run_postings(settings, sim.sim.clock, again.append, alerts=book)
    assert {(e.symbol, e.posting) for e in again if isinstance(e, InvestorEstimate)} == {
        (s, 3) for s in UNIVERSE
    }
    assert later.missed == [] and later.published == len(UNIVERSE)
    (resolved,) = [e for e in again if isinstance(e, AlertResolved)]
    assert (resolved.code, resolved.subject) == (POSTING_MISSED, alert.subject)


def test_members_that_fail_are_a_warning_an_error_past_the_limit_and_resolved_when_all_answer(
    day: tuple[SimThread, WriterProcess, Settings],
) -> None:
    """Every call failing is no verdict on KIS's staff, but an error of the run's own."""
    sim, _, settings = day
    sent: list[Event] = []
    book = AlertBook(sent.append, "investor")
    sim.sim.faults.no_data_symbols.update(UNIVERSE)
    run = run_postings(settings, sim.sim.clock, sent.append, alerts=book)
    assert run.answered == 0 and len(run.failed) == len(UNIVERSE) and run.failed_over
    assert run.missed == []  # no answer: no posting judged
    (alert,) = [e for e in sent if isinstance(e, Alert)]
    assert (alert.code, alert.subject, alert.severity) == (FAILURES, str(DAY), "error")
    assert f"{len(UNIVERSE)} of {len(UNIVERSE)} members" in alert.message
    # One member failing of many: under the limit, a warning, and the error stays open.
    sim.sim.faults.no_data_symbols.clear()
    sim.sim.faults.no_data_symbols.add(UNIVERSE[0])
    sent.clear()
    some = run_postings(settings, sim.sim.clock, sent.append, alerts=book)
    assert len(some.failed) == 1 and some.failed_over == (
        100 / len(UNIVERSE) > settings.investor.max_failed_pct
    )
    assert not [e for e in sent if isinstance(e, Alert | AlertResolved)]
    sim.sim.faults.no_data_symbols.clear()
    sent.clear()
    run_postings(settings, sim.sim.clock, sent.append, alerts=book)
    (resolved,) = [e for e in sent if isinstance(e, AlertResolved)]
    assert (resolved.code, resolved.subject, resolved.severity) == (FAILURES, str(DAY), "error")


def test_kis_refusing_calls_as_over_the_rate_limit_is_alerted_and_a_run_within_it_resolves_it(
    tmp_path: Path,
) -> None:
    """The account configured at KIS's 18/s where KIS allows its key 8/s: every member still
    answers, the refused calls retried at a slower pace, and the run alerts the account's
    budget; a run KIS refuses nothing of resolves it."""
    with _day_at(tmp_path, 11, 45, SimConfig(calls_per_second=8)) as (sim, _, settings):
        sent: list[Event] = []
        book = AlertBook(sent.append, "investor")
        run = run_postings(settings, sim.sim.clock, sent.append, alerts=book)
        assert run.answered == len(UNIVERSE) and not run.failed
        (alert,) = [e for e in sent if isinstance(e, Alert)]
        alias = settings.kis.accounts[0].alias
        assert (alert.code, alert.subject, alert.severity) == (KIS_RATE_LIMITED, alias, "warning")
        refused = int(alert.context["refused"])
        assert refused >= 3 and f"KIS answered {refused} of investor's {run.calls} calls" in (
            alert.message
        )
        assert "rest_per_second (18/s)" in alert.message
        sim.sim.config.calls_per_second = 18
        sent.clear()
        run_postings(settings, sim.sim.clock, sent.append, alerts=book)
        (resolved,) = [e for e in sent if isinstance(e, AlertResolved)]
        assert (resolved.code, resolved.subject) == (KIS_RATE_LIMITED, alias)
        assert not [e for e in sent if isinstance(e, Alert)]


def test_a_posting_is_due_ten_minutes_before_its_time() -> None:
    def at(hh: int, mm: int) -> datetime:
        return datetime.combine(DAY, datetime.min.time(), KST) + timedelta(hours=hh, minutes=mm)

    assert not investor_posting_due(1, at(9, 19)) and investor_posting_due(1, at(9, 20))
    assert not investor_posting_due(5, at(14, 19)) and investor_posting_due(5, at(14, 20))


@pytest.mark.parametrize("before", ["today", "last_session"])
def test_an_answer_holding_postings_not_due_is_not_today_s_and_nothing_of_it_is_stored(
    tmp_path: Path, before: str
) -> None:
    """09:00, before any posting: KIS answering the last session's postings (it asks and
    answers no date) is no figure of today's; answering none is none."""
    config = SimConfig(investor_before_postings=before)  # type: ignore[arg-type]
    with _day_at(tmp_path, 9, 0, config) as (sim, _writer, settings):
        sent: list[Event] = []
        run = run_postings(settings, sim.sim.clock, sent.append)
    assert run.answered == len(UNIVERSE) and run.published == 0 and not run.held
    assert not [e for e in sent if isinstance(e, InvestorEstimate)]
    alerts = [e for e in sent if isinstance(e, Alert)]
    if before == "today":
        assert not run.not_today and not alerts
        return
    assert run.not_today == {s: [1, 2, 3, 4, 5] for s in UNIVERSE}
    (alert,) = alerts
    assert (alert.code, alert.subject, alert.severity) == (NOT_TODAY, str(DAY), "warning")
    assert "none of them is stored" in alert.message


def test_a_stored_posting_answered_otherwise_later_is_kept_with_its_revision_and_alerted(
    day: tuple[SimThread, WriterProcess, Settings],
) -> None:
    sim, writer, settings = day
    sent: list[Event] = []
    run_postings(settings, sim.sim.clock, sent.append)
    estimates = [e for e in sent if isinstance(e, InvestorEstimate)]

    def store(events: list[Event], outbox: str) -> None:
        with Producer("investor", writer.ingest, writer.workdir / outbox) as producer:
            for event in events:
                producer.send(event)
            assert producer.wait_acked(30)

    store(list(estimates), "outbox-investor")
    stored = "select count(*), sum(foreign_qty) from investor_estimates"
    wait_until(lambda: db_rows(writer.url, stored)[0][0] == len(estimates), 30, "stored")
    before = db_rows(writer.url, stored)
    sim.sim.config.investor_revised_from = "11:00"  # KIS's staff revise the figures
    again: list[Event] = []
    later = run_postings(settings, sim.sim.clock, again.append)
    moved = {k for k, (was, now) in later.revised.items() if was != now}
    assert moved and moved == set(later.revised)  # foreigners' figures that are not 0
    revisions = [e for e in again if isinstance(e, InvestorEstimate)]
    assert {(e.symbol, e.posting) for e in revisions} == moved == set(later.revised)
    assert later.published == len(revisions)
    (alert,) = [e for e in again if isinstance(e, Alert)]
    assert (alert.code, alert.severity) == (REVISED, "warning")
    assert "each revision is stored beside the first" in alert.message
    # Stored beside the first: nothing overwritten, the first figures still there
    store(list(revisions), "outbox-investor")  # the same source: its seq runs on
    total = len(estimates) + len(revisions)
    wait_until(lambda: db_rows(writer.url, stored)[0][0] == total, 30, "revisions stored")
    firsts = "select count(*) from investor_estimates where seq <= " + str(len(estimates))
    assert db_rows(writer.url, firsts)[0][0] == before[0][0]
    # A run that sees the same revision again stores nothing more
    third: list[Event] = []
    same = run_postings(settings, sim.sim.clock, third.append)
    assert same.published == 0 and not [e for e in third if isinstance(e, InvestorEstimate)]
