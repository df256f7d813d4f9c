"""Track A's and the flows and investor jobs' REST answers in the journal, replayed into the
rows they stored.

A live run against the simulator journals every answer; the day replayed from the journal into
a scratch database holds the same rows, but for ``fetched_ns`` (the answer's receipt, which
the job stamped a moment later) and the audit columns (the journal's source).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from pathlib import Path

import msgspec
from typer.testing import CliRunner

from bus.capture import CaptureReader
from bus.codec import decode_frame
from bus.events import Event, InvestorEstimate, InvestorFlow, PriceSnapshot, ProgramTradeDaily
from bus.events import VolatilityInterruption as Vi
from bus.producer import Producer
from observer.calendar.phases import KST
from observer.cli.main import app
from observer.kis.endpoints import ENDPOINTS
from observer.kis.journal import Journal, rest_request
from observer.kis.journal_replay import TrackARun, capture_journal
from observer.writer.replay import replay_into_db
from tests.flows.test_flows_job import day_at
from tests.investor.test_investor_job import _day_at
from tests.support import WriterProcess, db_rows, wait_until
from tests.track_b.test_track_b import DAY, UNIVERSE
from workers.flows.job import run_flows
from workers.investor.job import run_postings

_NS = 1_000_000_000
PRICE = ENDPOINTS["current_price"].path
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
        request = rest_request(ENDPOINTS["investor_estimate"].path, {"MKSC_SHRN_ISCD": symbol})
        journal.answer("acct1", "HHPTJ04160200", request, 200, body, at + later_s * _NS)

    posting = {"bsop_hour_gb": "1", "frgn_fake_ntby_qty": "100", "sum_fake_ntby_qty": "100"}
    answer("005930", [posting], 0)  # 09:30's, at 09:05: not today's
    answer("000660", [{**posting, "bsop_hour_gb": "9"}], 1)  # no such posting
    answer("035420", [], 2)  # none yet: nothing, no refusal
    journal.close()
    parsed = capture_journal(tmp_path / "journal", DAY, tmp_path / "replayed.cap")
    assert (parsed.answers, parsed.events, parsed.refused_answers) == (3, 0, 1)
    assert parsed.first_refusal.startswith("HHPTJ04160200") and "posting 9" in parsed.first_refusal
    assert "3 REST answers" in parsed.summary() and "1 answers" in parsed.summary()


def test_track_a_s_answers_go_to_the_cycle_holding_their_receipt_or_are_counted_unplaced(
    tmp_path: Path,
) -> None:
    """Four prices of Track A's journal: two in the 09:00 cycle's window, one after it ended
    (its run killed, the cycle never summarised), one of a symbol outside the universe; and
    without the live run's cycles none is placed."""
    nine = int(datetime.combine(DAY, time(9), KST).timestamp()) * _NS
    journal = Journal(tmp_path / "journal", "track_a")

    def price(symbol: str, at_s: int) -> None:
        body = msgspec.json.encode({"rt_cd": "0", "output": {"stck_prpr": "70000"}})
        request = rest_request(PRICE, {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol})
        journal.answer("acct1", "FHKST01010100", request, 200, body, nine + at_s * _NS)

    for symbol, at_s in (("005930", 1), ("000660", 2), ("005930", 700), ("999999", 3)):
        price(symbol, at_s)
    journal.close()
    run = TrackARun(
        {"KRX": [(nine, nine + 90 * _NS, "20261120-0900")]},
        {"005930": "KOSPI", "000660": "KOSPI"},
    )
    out = tmp_path / "placed.cap"
    parsed = capture_journal(tmp_path / "journal", DAY, out, track_a=run)
    assert (parsed.answers, parsed.events, parsed.unplaced) == (4, 2, 2)
    assert "no stored KRX cycle" in parsed.first_unplaced
    assert "2 answers not placed" in parsed.summary()
    with CaptureReader(out) as reader:
        events = [env.event for raw in reader for env in decode_frame(raw)]
    snapshots = [e for e in events if isinstance(e, PriceSnapshot)]
    assert len(snapshots) == len(events)
    assert [(s.cycle_id, s.symbol, s.market, s.observed_ns) for s in snapshots] == [
        ("20261120-0900", "005930", "KOSPI", nine + _NS),
        ("20261120-0900", "000660", "KOSPI", nine + 2 * _NS),
    ]
    blind = capture_journal(tmp_path / "journal", DAY, tmp_path / "blind.cap")
    assert (blind.events, blind.unplaced) == (0, 4)
    assert "not read from the live database" in blind.first_unplaced


def test_a_replay_without_the_live_database_stops_checked_and_says_what_it_cannot_place(
    tmp_path: Path,
) -> None:
    """The live database unreadable: Track B's checks cannot run as they ran (exit 2, naming
    --unchecked); unchecked, the day replays and Track A's answers are counted unplaced."""
    data = tmp_path / "data"
    config = tmp_path / "observer.toml"
    missing = tmp_path / "gone" / "observer.db"
    config.write_text(f'[paths]\ndata_dir = "{data}"\n[database]\nurl = "sqlite:///{missing}"\n')
    journal = Journal(data / "journal", "track_a")
    at = int(datetime.combine(DAY, time(9, 0, 1), KST).timestamp()) * _NS
    request = rest_request(PRICE, {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})
    body = msgspec.json.encode({"rt_cd": "0", "output": {"stck_prpr": "70000"}})
    journal.answer("acct1", "FHKST01010100", request, 200, body, at)
    journal.close()
    scratch = f"sqlite:///{tmp_path / 'replayed.db'}"
    replay = ["journal", "replay", "--date", DAY.isoformat(), "--db", scratch]
    checked = CliRunner().invoke(app, [*replay, "--config", str(config)])
    assert checked.exit_code == 2 and "cannot read the live database" in checked.output
    assert "--unchecked" in checked.output
    unchecked = CliRunner().invoke(app, [*replay, "--unchecked", "--config", str(config)])
    assert unchecked.exit_code == 0, unchecked.output
    assert "1 REST answers, 0 events" in unchecked.output
    assert "1 answers not placed" in unchecked.output and "0 events stored" in unchecked.output
