"""The flows job: each venue's final flows once its day is final, each stored once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from bus.events import (
    Alert,
    AlertResolved,
    Event,
    InvestorFlow,
    ProgramTradeDaily,
    VolatilityInterruption,
)
from bus.producer import Producer
from harness.sim.flows import NXT_SHARE_PCT
from observer.alerts.book import AlertBook
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.errors import KisProtocolError
from observer.kis.flows import investor_flow, program_trade_daily, volatility_interruptions
from observer.kis.schemas import InvestorFlowRow, ProgramDailyRow, ViStatusRow
from tests.support import SimThread, WriterProcess, db_rows, wait_until
from tests.track_b.test_track_b import DAY, MARKET, UNIVERSE, universe
from workers.flows.job import INCOMPLETE, VI_CUT, due_kinds, due_venues, run_flows

NXT = UNIVERSE[:4]  # the universe's Nextrade names here
NUMBER = st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=12))


@given(st.lists(st.tuples(st.sampled_from(["20261120", "20261119", "x"]), NUMBER), max_size=4))
def test_the_day_s_row_is_read_or_the_answer_refused(rows: list[tuple[str, str]]) -> None:
    flows = [InvestorFlowRow(day, frgn_ntby_qty=n) for day, n in rows]
    programs = [ProgramDailyRow(day, whol_smtn_ntby_qty=n) for day, n in rows]
    for read, answer in ((investor_flow, flows), (program_trade_daily, programs)):
        try:
            event = read("005930", DAY, "KRX", answer, 1)  # type: ignore[operator]
        except KisProtocolError:
            continue
        has_day = any(day == "20261120" for day, _ in rows)
        assert (event is not None) == has_day
        if event is not None:
            assert event.trade_date == DAY and event.venue == "KRX"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["101500", "000000", "", "2460xx"]),
            st.sampled_from(["", "20261120", "20261119"]),
            NUMBER,
        ),
        max_size=4,
    )
)
def test_a_vi_list_reads_its_day_s_rows_in_order_or_is_refused(
    rows: list[tuple[str, str, str]],
) -> None:
    answer = [
        ViStatusRow(at, bsop_date=day, vi_cncl_hour="000000", vi_dprt=n) for at, day, n in rows
    ]
    try:
        vis = volatility_interruptions("005930", DAY, answer, 1)
    except KisProtocolError:
        return
    assert len(vis) == sum(day in ("", "20261120") for _, day, _ in rows)
    assert [v.started_ns for v in vis] == sorted(v.started_ns for v in vis)
    assert all(v.ended_ns == 0 and v.trade_date == DAY for v in vis)


def test_a_venue_is_due_once_its_day_is_final(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, "http://127.0.0.1:1", "sqlite://"))

    def at(hh: int, mm: int, day: date = DAY) -> datetime:
        return datetime.combine(day, time(hh, mm), KST)

    # KRX's day runs to its after-market's 20:00 close: nothing of it is final at 15:40.
    assert due_venues(settings, at(15, 40), DAY) == ()
    assert due_venues(settings, at(20, 4), DAY) == ()
    assert due_venues(settings, at(20, 5), DAY) == ("KRX", "NXT")
    assert due_venues(settings, at(8, 0, DAY + timedelta(days=3)), DAY) == ("KRX", "NXT")
    assert due_kinds(settings, at(18, 5), DAY, "KRX") == ("investor", "program")
    assert due_kinds(settings, at(20, 5), DAY, "KRX") == ("investor", "program", "vi")
    assert due_kinds(settings, at(20, 5), DAY, "NXT") == ("investor", "program")
    # A configuration of KRX's day ending at 15:40 (before its after-market) says so.
    early = _krx_final_at(settings, "15:40", "18:05")
    assert due_venues(early, at(15, 40), DAY) == ("KRX",)
    assert due_kinds(early, at(18, 5), DAY, "KRX") == ("investor", "program", "vi")


def _config(folder: Path, sim_url: str, db_url: str) -> Path:
    config = folder / "observer.toml"
    config.write_text(
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim_url}"\ntoken_dir = "{folder}"\n'
        f'[database]\nurl = "{db_url}"\n'
        "[kis.process_share]\njobs = 0.9\n"  # this test's alone: the whole budget
    )
    return config


@contextmanager
def day_at(tmp_path: Path, clock: datetime) -> Iterator[tuple[SimThread, WriterProcess, Settings]]:
    """The simulator at ``clock``, a writer holding the day's universe (four Nextrade names)."""
    writer = WriterProcess(tmp_path, f"sqlite:///{tmp_path / 'observer.db'}").start()
    try:
        with SimThread(MARKET, clock, speed=1) as sim:
            with Producer("universe", writer.ingest, tmp_path / "outbox") as producer:
                producer.send(universe(UNIVERSE, nxt=NXT))
                assert producer.wait_acked(30)
            yield sim, writer, load_settings(_config(tmp_path, sim.url, writer.url))
    finally:
        writer.terminate()


def test_krx_s_flows_after_its_close_nextrade_s_after_its_own_each_stored_once(
    tmp_path: Path,
) -> None:
    """KRX's day runs to its after-market's 20:00 close (the simulator's, as KIS's since
    2026-09-14): configured final at 15:40 (the belief before), a run at 16:15 finds no KRX
    row of the day (pending, nothing stored early); at 20:15 KRX's are final, the
    after-market's volume in them, and the day's VIs; Nextrade's (configured final from
    21:00) the next morning."""
    with day_at(tmp_path, datetime.combine(DAY, time(16, 15), KST)) as (sim, writer, settings):
        early: list[Event] = []
        run = run_flows(_krx_final_at(settings, "15:40", "18:05"), sim.sim.clock, early.append)
        assert run.venues == ("KRX",) and not run.failed
        assert sorted(run.pending) == sorted(
            (k, s, "KRX") for s in UNIVERSE for k in ("investor", "program")
        )
        assert not [e for e in early if isinstance(e, InvestorFlow | ProgramTradeDaily)]
        sent: list[Event] = []
        with SimThread(MARKET, datetime.combine(DAY, time(20, 15), KST), speed=1) as evening:
            config = load_settings(_config(tmp_path, evening.url, writer.url))
            run = run_flows(_with_nxt_from(config, "21:00"), evening.sim.clock, sent.append)
        assert run.venues == ("KRX",) and not run.failed and not run.pending
        flows = [e for e in sent if isinstance(e, InvestorFlow)]
        programs = [e for e in sent if isinstance(e, ProgramTradeDaily)]
        assert {(e.symbol, e.venue) for e in flows} == {(s, "KRX") for s in UNIVERSE}
        assert {(e.symbol, e.venue) for e in programs} == {(s, "KRX") for s in UNIVERSE}
        bar = MARKET.daily_bar(UNIVERSE[0], DAY)
        after = MARKET.krx_after_day(UNIVERSE[0], DAY)
        assert after is not None and len(after.qty)
        volume = bar.volume + int(after.qty.sum())
        first = next(e for e in programs if e.symbol == UNIVERSE[0])
        assert (first.sell_qty, first.buy_qty) == (volume * 7 // 100, volume * 6 // 100)
        assert first.net_qty == first.buy_qty - first.sell_qty and first.net_value < 0
        flow = next(e for e in flows if e.symbol == UNIVERSE[0])
        assert flow.volume == volume
        groups = flow.individual_qty + flow.foreign_qty + flow.institution_qty
        assert groups + flow.other_corp_qty == 0  # the simulator's: individuals the rest
        assert not [e for e in sent if isinstance(e, Alert)]
        # The day's VIs, asked of every member once KRX's day is over: the simulator's, KRX's
        # after-market's among them (one after 18:05, when they were read before 2026-09-14).
        vis = [e for e in sent if isinstance(e, VolatilityInterruption)]
        with_vi = {s: w for s in UNIVERSE if (w := MARKET.vi_window(s, DAY)) is not None}
        assert with_vi and {e.symbol for e in vis} == set(with_vi)
        assert any(w[0] > datetime.combine(DAY, time(18, 5), KST) for w in with_vi.values())
        for vi in vis:
            start, end = with_vi[vi.symbol]
            assert (vi.started_ns, vi.ended_ns) == (
                int(start.timestamp()) * 10**9,
                int(end.timestamp()) * 10**9,
            )
            assert vi.kind == "1" and vi.count == 1 and vi.trade_date == DAY
        with Producer("flows", writer.ingest, tmp_path / "outbox-flows") as producer:
            for event in sent:
                producer.send(event)
            assert producer.wait_acked(30)
        stored = "select count(*) from investor_flows"
        wait_until(lambda: db_rows(writer.url, stored) == [(len(UNIVERSE),)], 30, "stored")
        # Asked again the next session's morning (a past day: both venues): KRX's stored
        # are not asked again, Nextrade's four names are, on NX; the VIs stored are not.
        morning = datetime.combine(DAY + timedelta(days=3), time(8), KST)
        with SimThread(MARKET, morning, speed=1) as next_day:
            settings = load_settings(_config(tmp_path, next_day.url, writer.url))
            again: list[Event] = []
            last = run_flows(settings, next_day.sim.clock, again.append, day=DAY)
        assert last.venues == ("KRX", "NXT")
        assert last.already_stored == 2 * len(UNIVERSE) + len(with_vi)
        assert not [e for e in again if isinstance(e, VolatilityInterruption)]
        nxt = [e for e in again if isinstance(e, InvestorFlow)]
        assert {(e.symbol, e.venue) for e in nxt} == {(s, "NXT") for s in NXT}
        nx_bar = MARKET.daily_bar(NXT[0], DAY)
        assert next(e for e in nxt if e.symbol == NXT[0]).volume == (
            nx_bar.volume * NXT_SHARE_PCT // 100
        )


def test_what_fails_or_is_not_posted_is_alerted_until_a_run_finds_it(tmp_path: Path) -> None:
    """16:15, both venues' days taken as final from 16:00 (neither is: each runs to 20:00):
    their rows are not posted (pending), and one symbol answers no data: past max_failed_pct,
    an error; a run at 20:10 finds everything and resolves it."""
    with day_at(tmp_path, datetime.combine(DAY, time(16, 15), KST)) as (sim, writer, settings):
        sent: list[Event] = []
        book = AlertBook(sent.append, "flows")
        early = _with_nxt_from(_krx_final_at(settings, "16:00", "18:05"), "16:00")
        sim.sim.faults.no_data_symbols.add(UNIVERSE[5])
        run = run_flows(early, sim.sim.clock, sent.append, alerts=book)
        assert set(run.failed) == {
            ("investor", UNIVERSE[5], "KRX"),
            ("program", UNIVERSE[5], "KRX"),
        }
        assert sorted(run.pending) == sorted(
            (k, s, v)
            for v, names in (("KRX", UNIVERSE), ("NXT", NXT))
            for s in names
            if s != UNIVERSE[5]
            for k in ("investor", "program")
        )
        assert run.failed_over  # 68 of 68 missing
        (alert,) = [e for e in sent if isinstance(e, Alert)]
        assert (alert.code, alert.subject, alert.severity) == (INCOMPLETE, str(DAY), "error")
        assert "2 failed and 66 pending of 68" in alert.message
        evening = datetime.combine(DAY, time(20, 10), KST)
        with SimThread(MARKET, evening, speed=1) as later:
            settings = load_settings(_config(tmp_path, later.url, writer.url))
            sent.clear()
            again = run_flows(settings, later.sim.clock, sent.append, alerts=book)
        # Nothing was stored meanwhile: all asked again, and the VIs, due from 18:05.
        assert not again.missing and again.asked == 68 + len(UNIVERSE)
        (resolved,) = [e for e in sent if isinstance(e, AlertResolved)]
        assert (resolved.code, resolved.subject, resolved.severity) == (
            INCOMPLETE,
            str(DAY),
            "error",
        )


def test_a_stock_with_more_vis_than_kis_lists_is_alerted_one_with_all_listed_is_not(
    tmp_path: Path,
) -> None:
    """20:10: one member had 33 VIs (KIS lists its latest 30, the count saying 33), another
    exactly 30: the 30 rows of each are stored, and one warning says 3 VIs of one stock are
    not; it stays open (nothing asked later gives them back)."""
    with day_at(tmp_path, datetime.combine(DAY, time(20, 10), KST)) as (sim, _writer, settings):
        sim.sim.faults.busy_vis.update({UNIVERSE[1]: 33, UNIVERSE[2]: 30})
        sent: list[Event] = []
        run = run_flows(settings, sim.sim.clock, sent.append, alerts=AlertBook(sent.append))
        assert run.vi_cut == {UNIVERSE[1]: 3} and not run.missing
        vis = [e for e in sent if isinstance(e, VolatilityInterruption)]
        for busy in UNIVERSE[1:3]:
            counts = sorted(e.count for e in vis if e.symbol == busy)
            assert counts == list(range(1, 31)) if busy == UNIVERSE[2] else list(range(4, 34))
        (alert,) = [e for e in sent if isinstance(e, Alert)]
        assert (alert.code, alert.subject, alert.severity) == (VI_CUT, str(DAY), "warning")
        assert alert.context == {"stocks": "1", "vis": "3"}
        assert f"({UNIVERSE[1]} 3)" in alert.message and "[track_b] vi_feed" in alert.message
        assert not [e for e in sent if isinstance(e, AlertResolved)]
        assert "3 VIs of 1 stocks past KIS's 30" in run.summary()


def _krx_final_at(settings: Settings, at: str, vis: str) -> Settings:
    """``settings`` with KRX's day final from ``at`` and its VIs from ``vis``."""
    flows = msgspec.structs.replace(settings.flows, krx_from=at, vi_from=vis)
    return msgspec.structs.replace(settings, flows=flows)


def _with_nxt_from(settings: Settings, at: str) -> Settings:
    return msgspec.structs.replace(
        settings, flows=msgspec.structs.replace(settings.flows, nxt_from=at)
    )
