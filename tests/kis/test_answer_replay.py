"""The flows and investor jobs' REST answers in the journal, replayed into the rows they stored.

A live run against the simulator journals every answer; the day replayed from the journal into
a scratch database holds the same rows, but for ``fetched_ns`` (the answer's receipt, which
the job stamped a moment later) and the audit columns (the journal's source).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from pathlib import Path

import msgspec

from bus.events import Event, InvestorEstimate, InvestorFlow, ProgramTradeDaily
from bus.events import VolatilityInterruption as Vi
from bus.producer import Producer
from observer.calendar.phases import KST
from observer.kis.journal import Journal, rest_request
from observer.kis.journal_replay import capture_journal
from observer.writer.replay import replay_into_db
from tests.flows.test_flows_job import day_at
from tests.investor.test_investor_job import _day_at
from tests.support import WriterProcess, db_rows, wait_until
from tests.track_b.test_track_b import DAY, UNIVERSE
from workers.flows.job import run_flows
from workers.investor.job import run_postings

_NS = 1_000_000_000
# Each table's columns but the audit's and fetched_ns, and the order its rows compare in.
COLUMNS = {
    "investor_estimates": "symbol, trade_date, posting, foreign_qty, institution_qty, total_qty",
    "investor_flows": "symbol, trade_date, venue, individual_qty, foreign_qty, institution_qty, "
    "other_corp_qty, individual_value, foreign_value, institution_value, other_corp_value, volume",
    "program_trades_daily": "symbol, trade_date, venue, sell_qty, buy_qty, net_qty, sell_value, "
    "buy_value, net_value",
    "volatility_interruptions": "symbol, trade_date, started_ns, ended_ns, kind, price, "
    "static_base, static_move_pct, dynamic_base, dynamic_move_pct, count",
}


def store(writer: WriterProcess, events: Sequence[Event], tables: Sequence[str]) -> None:
    """``events`` committed by the live writer into ``tables`` under the job's source (its
    seq runs on from one call to the next)."""
    count = " + ".join(f"(select count(*) from {t})" for t in tables)
    before = db_rows(writer.url, f"select {count}")[0][0]
    with Producer("job", writer.ingest, writer.workdir / "outbox-job") as producer:
        for event in events:
            producer.send(event)
        assert producer.wait_acked(30)
    wait_until(
        lambda: db_rows(writer.url, f"select {count}")[0][0] == before + len(events), 30, "stored"
    )


def replayed(tmp_path: Path, tables: Sequence[str], live_url: str) -> dict[str, int]:
    """The day replayed from the journal into a scratch database, compared table by table
    with the live one; the events per TR."""
    parsed = capture_journal(tmp_path / "journal", DAY, tmp_path / "replayed.cap")
    assert parsed.refused_answers == 0 and parsed.first_refusal == "", parsed.summary()
    scratch = f"sqlite:///{tmp_path / 'replayed.db'}"
    result = replay_into_db(tmp_path / "replayed.cap", scratch, upgrade=True)
    assert not result.not_stored() and result.committed == parsed.events
    for table in tables:
        sql = f"select {COLUMNS[table]}, fetched_ns from {table} order by {COLUMNS[table]}"
        live, again = db_rows(live_url, sql), db_rows(scratch, sql)
        assert live and [r[:-1] for r in again] == [r[:-1] for r in live], table
        # fetched_ns: the journal's stamp of the receipt, the job's a moment after it
        assert all(0 <= b[-1] - a[-1] < _NS for a, b in zip(again, live, strict=True)), table
    return dict(parsed.by_tr)


def test_the_investor_job_s_day_replays_into_its_rows_revisions_included(tmp_path: Path) -> None:
    """11:45: three runs (the postings made; KIS's staff revise them; nothing new), each
    answer journaled: the replay publishes the first figures and the revisions, once."""
    with _day_at(tmp_path, 11, 45) as (sim, writer, settings):
        journal = Journal(tmp_path / "journal", "investor")
        stored = 0
        for revised in (None, "11:00", "11:00"):
            sim.sim.config.investor_revised_from = revised
            sent: list[Event] = []
            run_postings(settings, sim.sim.clock, sent.append, journal=journal)
            estimates = [e for e in sent if isinstance(e, InvestorEstimate)]
            store(writer, estimates, ["investor_estimates"])
            stored += len(estimates)
        journal.close()
        assert stored > 3 * len(UNIVERSE)  # the revisions among them
        by_tr = replayed(tmp_path, ["investor_estimates"], writer.url)
    assert by_tr == {"HHPTJ04160200": stored}


def test_the_flows_job_s_day_replays_into_its_rows_and_a_refused_answer_into_none(
    tmp_path: Path,
) -> None:
    """20:10, both venues' days final: KRX's and Nextrade's flows and program trading, and
    the day's VIs; one symbol KIS answers no data for gives no row, live or replayed."""
    with day_at(tmp_path, datetime.combine(DAY, time(20, 10), KST)) as (sim, writer, settings):
        sim.sim.faults.no_data_symbols.add(UNIVERSE[5])
        journal = Journal(tmp_path / "journal", "flows")
        sent: list[Event] = []
        run = run_flows(settings, sim.sim.clock, sent.append, journal=journal)
        journal.close()
        assert run.venues == ("KRX", "NXT") and run.failed
        kinds = (InvestorFlow, ProgramTradeDaily, Vi)
        events = [e for e in sent if isinstance(e, kinds)]
        tables = ["investor_flows", "program_trades_daily", "volatility_interruptions"]
        store(writer, events, tables)
        by_tr = replayed(tmp_path, tables, writer.url)
    assert by_tr == {
        "FHPTJ04160001": sum(isinstance(e, InvestorFlow) for e in events),
        "FHPPG04650201": sum(isinstance(e, ProgramTradeDaily) for e in events),
        "FHPST01390000": sum(isinstance(e, Vi) for e in events),
    }
    assert UNIVERSE[5] not in {e.symbol for e in events}


def test_an_answer_not_of_today_gives_nothing_and_one_that_does_not_read_is_counted(
    tmp_path: Path,
) -> None:
    """At 09:05 an answer holding the 09:30 posting is the last session's: nothing of it is
    replayed (the job stored nothing of it); an answer today's parser refuses is counted and
    named, and the replay goes on."""
    at = int(datetime.combine(DAY, time(9, 5), KST).timestamp()) * _NS
    journal = Journal(tmp_path / "journal", "investor")

    def answer(symbol: str, rows: list[dict[str, str]] | str, later_s: int) -> None:
        body = msgspec.json.encode({"rt_cd": "0", "msg_cd": "MCA00000", "output2": rows})
        request = rest_request("/uapi/domestic-stock/v1/quotations/investor-trend-estimate", {
            "MKSC_SHRN_ISCD": symbol})  # fmt: skip
        journal.answer("acct1", "HHPTJ04160200", request, 200, body, at + later_s * _NS)

    posting = {"bsop_hour_gb": "1", "frgn_fake_ntby_qty": "100", "orgn_fake_ntby_qty": "0",
               "sum_fake_ntby_qty": "100"}  # fmt: skip
    answer("005930", [posting], 0)  # 09:30's, at 09:05: not today's
    answer("000660", [{**posting, "bsop_hour_gb": "9"}], 1)  # no such posting
    answer("035420", [], 2)  # none yet: nothing, no refusal
    journal.close()
    parsed = capture_journal(tmp_path / "journal", DAY, tmp_path / "replayed.cap")
    assert (parsed.answers, parsed.events, parsed.refused_answers) == (3, 0, 1)
    assert parsed.first_refusal.startswith("HHPTJ04160200") and "posting 9" in parsed.first_refusal
    assert "3 REST answers" in parsed.summary() and "1 answers" in parsed.summary()
