"""A silent loss repaired with the exchange's own trades (FHPST01060000), proven by the chain.

Real processes on loopback: the writer, the simulator withholding 30 % of the trades of
09:31-09:33 with the session up, Track B (its volume chain finds each loss at once), then the
gap-recovery daemon. With KIS answering as believed (a row per trade), every lost trade is
stored once and each symbol's stored trades chain from the first to the last without a
break; with KIS's cumulative volumes not the stream's (the other belief), no chain closes and
the minute bars fill the gaps, each gap saying why.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bus.events import Alert, AlertResolved, Event
from harness.sim.server import SimConfig
from observer.alerts.book import AlertBook
from observer.db.reconciliation_queries import RECOVERED_BY
from observer.kis.time_trades import TimeTrade, TradesBack, within
from tests.gap_recovery.test_reconciliation import (
    LOSS,
    MINUTE,
    LossyMorning,
    S,
    command,
    lossy_morning,
    stop,
)
from tests.support import db_rows, start_on_sim_clock, timing_over, wait_until
from tests.track_b.test_track_b import DAY, NINE
from workers.gap_recovery import SOURCE
from workers.gap_recovery.trades import NOT_CLOSING_ALERT, ChainMisses, capped, why_not

NINE_NS = int(NINE.timestamp()) * S

NOT_CLOSING = f"select subject, severity from alerts where code = '{NOT_CLOSING_ALERT}'"
CHAIN_GAPS = (
    "select gap_id, symbol, missing_volume, state, trades, trade_volume, bars, detail "
    "from gaps where reason = 'volume_chain'"
)


def _stream_then_recover(tmp_path: Path, morning: LossyMorning) -> list[tuple[object, ...]]:
    """Track B to 09:34:10, then gap recovery until every volume-chain gap is recovered."""
    url, sim, procs = morning.url, morning.sim, morning.procs
    track_b = procs[0]
    until = int((NINE + timedelta(minutes=34, seconds=10)).timestamp()) * S
    wait_until(lambda: sim.sim.clock.now_ns() > until, 60, "09:34:10")
    stop(track_b)
    assert track_b.returncode == 0, (tmp_path / "b.log").read_text()[-2000:]
    timing_over()  # what follows is not timed against the simulated clock
    assert sum(sim.sim.realtime.records_withheld.values()) > 0, "Track B started late"
    assert db_rows(url, CHAIN_GAPS), "no volume_chain gap"
    recovery = start_on_sim_clock(
        ["gap-recovery", "run", "--config", str(morning.config)], sim, tmp_path / "g.log"
    )
    procs.append(recovery)
    left = "select count(*) from gaps where reason = 'volume_chain' and state != 'recovered'"
    wait_until(lambda: db_rows(url, left)[0][0] == 0, 90, "the chain's gaps recovered")
    stop(recovery)
    return db_rows(url, CHAIN_GAPS)


@pytest.mark.timed  # Track B must be streaming by 09:31, 12 wall seconds after the start
def test_a_silent_loss_is_filled_with_the_exchanges_trades_and_the_chain_closes(
    tmp_path: Path,
) -> None:
    with lossy_morning(tmp_path, "") as morning:  # the chain and trade recovery on, as shipped
        url, sim = morning.url, morning.sim
        gaps = _stream_then_recover(tmp_path, morning)
        # Every gap closed by trades alone: no bar asked for one, each gap's shares to the
        # share (a loaded machine may see the feed behind at Track B's stop: those
        # delivery_lag gaps get their bars, none of these)
        for _, _, missing, _, trades, volume, bars, detail in gaps:
            assert trades > 0 and volume == missing and bars == 0, detail
            assert str(detail).startswith("recovered_trades: "), detail
        ids = ", ".join(f"'{g[0]}'" for g in gaps)
        assert db_rows(url, f"select count(*) from minute_bars where gap_id in ({ids})") == [(0,)]
        assert db_rows(url, NOT_CLOSING) == []
        trade_calls = sim.sim.calls["FHPST01060000"]
        assert 0 < trade_calls <= 2 * len(gaps)  # a gap's trades are within a page or two

        # The proof: within each slot's span, each symbol's stored trades, stream and recovered,
        # chain without a break (each cumulative volume its predecessor's plus its own
        # quantity) and none twice. Between two slots nobody watched: no chain is claimed.
        rows = db_rows(
            url,
            "select symbol, cum_volume, qty, source, trading_session, exchange_ns "
            "from trade_ticks where venue = 'KRX' order by symbol, cum_volume",
        )
        spans = db_rows(
            url,
            "select a.symbol, a.produced_ns, min(r.produced_ns) from slot_events a join "
            "slot_events r on r.symbol = a.symbol and r.action = 'release' and r.produced_ns > "
            "a.produced_ns where a.action = 'allocate' and a.venue = 'KRX' group by a.seq",
        )
        lossy = {str(g[1]) for g in gaps}
        assert lossy <= {str(symbol) for symbol, _, _ in spans}
        for symbol, lo, hi in spans:
            chain = [(int(r[1]), int(r[2])) for r in rows if r[0] == symbol and lo <= r[5] <= hi]
            cums = [cum for cum, _ in chain]
            # (a quiet name: 10 trades in 09:30:44-09:34:10, its slot placed late on a busy machine)
            assert len(chain) > 5, f"{symbol}: {len(chain)} trades, too few to prove a chain"
            assert len(set(cums)) == len(cums), f"{symbol}: stored twice"
            breaks = [(a, b) for (a, _), (b, q) in itertools.pairwise(chain) if b - q != a]
            assert not breaks, f"{symbol}: the chain breaks at {breaks[:3]}"
        recovered = [r for r in rows if r[3] == "gap_recovery"]
        assert len(recovered) == sum(int(g[4]) for g in gaps)
        assert sum(int(r[2]) for r in recovered) == sum(int(g[2]) for g in gaps)
        assert {r[4] for r in recovered} == {"regular"}
        assert all(LOSS.start_ns - MINUTE <= int(r[5]) < LOSS.end_ns + MINUTE for r in recovered)

        # The day's reconciliation: every watched minute whole, the lost ones by the trades
        env = {**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec}
        verified = command(["verify", "--date", DAY.isoformat()], morning.config, env)
        assert verified["short"] == 0 and verified["excess"] == 0, verified
        minutes = db_rows(
            url, "select status, count(*) from reconciliation_minutes group by status"
        )
        statuses = dict(minutes)
        assert statuses.get("recovered", 0) > 0 and set(statuses) <= {"complete", "recovered"}
        # The day's figure: the volume proven by the chain, every watched span whole
        chain = command(["report", "--date", DAY.isoformat()], morning.config, env)["chain"]
        assert chain["spans"] == len(spans) and chain["proven"] == chain["spans"], chain
        assert chain["proven_pct"] == 100.0 and chain["chain_volume"] > 0


@pytest.mark.timed
def test_trades_whose_chain_is_not_the_streams_leave_the_gaps_to_the_bars(tmp_path: Path) -> None:
    # The other belief about FHPST01060000: its cumulative volumes are not the stream's
    sim_config = SimConfig(time_trades_cum_offset=10**9)
    misses = "trade_misses_alert = 2\n"
    with lossy_morning(tmp_path, "", misses, sim_config=sim_config) as morning:
        bar_calls = morning.sim.sim.calls["FHKST03010200"]
        gaps = _stream_then_recover(tmp_path, morning)
        assert morning.sim.sim.calls["FHKST03010200"] > bar_calls
        for _, _, _, _, trades, volume, _, detail in gaps:
            assert trades == volume == 0, detail
            assert "; not by trades: " in str(detail), detail
        # Gap after gap not closed by its trades: KIS's answer changed, and an operator is told
        assert len(gaps) >= 2 and db_rows(morning.url, NOT_CLOSING) == [("KRX", "warning")]
        stored = "select count(*) from trade_ticks where source = 'gap_recovery'"
        assert db_rows(morning.url, stored) == [(0,)]
        # The bars make the minutes whole, not the trades: the chain proves less
        env = {**os.environ, "OBSERVER_CLOCK": morning.sim.sim.clock.spec}
        chain = command(["report", "--date", DAY.isoformat()], morning.config, env)["chain"]
        lossy = {str(g[1]) for g in gaps}
        assert chain["spans"] - chain["proven"] == len(lossy) and chain["proven_pct"] < 100.0


def test_a_chain_closed_by_trades_of_other_seconds_is_not_the_gaps() -> None:
    # 09:31:04.2 to 09:31:09: the missing trades traded in 09:31:04-09:31:09
    start, end = NINE_NS + 64 * S + 200_000_000, NINE_NS + 69 * S

    def at(second: int) -> TimeTrade:
        return TimeTrade(NINE_NS + second * S, 70000, 37, 1037, 0, 0, Decimal(0), Decimal(0))

    assert within([at(64), at(69)], start, end)
    assert not within([at(63)], start, end) and not within([at(70)], start, end)


@pytest.mark.timed
def test_kis_refusing_the_trades_leaves_the_gaps_to_the_bars(tmp_path: Path) -> None:
    # KIS answering FHPST01060000 with an error (not offered to the account, withdrawn): not a
    # failed try of the gap, whose bars KIS still gives
    with lossy_morning(tmp_path, "") as morning:
        morning.sim.sim.faults.refused_trs["FHPST01060000"] = "OPSQ0002"
        gaps = _stream_then_recover(tmp_path, morning)
        for _, _, _, state, trades, _, _, detail in gaps:
            assert state == "recovered" and trades == 0, detail
            assert "; not by trades: KIS refused them (" in str(detail), detail
        assert morning.sim.sim.calls["FHPST01060000"] == len(gaps)  # once each, not retried
        assert len(gaps) >= 5 and db_rows(morning.url, NOT_CLOSING) == [("KRX", "warning")]


def test_the_recovered_trades_source_is_gap_recoverys() -> None:
    # Two literals (the command line loads no database module before it is ready): one name
    assert RECOVERED_BY == SOURCE


def test_a_venue_s_gaps_not_closed_by_their_trades_in_a_row_warn_until_one_closes() -> None:
    """``limit`` in a row warn once per venue; a gap closed by its trades resolves it; each
    venue counts its own."""
    sent: list[Event] = []
    misses = ChainMisses(AlertBook(sent.append, "gap_recovery"), limit=3)
    for _ in range(2):
        misses.missed("KRX", "KIS's trades do not close the chain")
    misses.missed("NXT", "garbled")
    assert sent == []
    misses.missed("KRX", "KIS refused them (OPSQ0002)")
    misses.missed("KRX", "KIS refused them (OPSQ0002)")  # open: not again
    (alert,) = sent
    assert isinstance(alert, Alert) and (alert.code, alert.subject) == (NOT_CLOSING_ALERT, "KRX")
    assert alert.severity == "warning"
    assert "the last 3 of KRX's" in alert.message and "OPSQ0002" in alert.context["last"]
    misses.closed("NXT")  # nothing open there: nothing sent, its run over
    misses.missed("NXT", "garbled")
    misses.missed("NXT", "garbled")
    assert len(sent) == 1
    misses.closed("KRX")
    resolved = sent[-1]
    assert isinstance(resolved, AlertResolved) and resolved.subject == "KRX"
    misses.missed("KRX", "again")  # a new run starts from one
    assert len(sent) == 2


def test_the_call_limit_is_no_miss_a_short_answer_is() -> None:
    def back(reached: bool, pages: int) -> TradesBack:
        return TradesBack(trades=(), pages=pages, reached=reached, stuck=False)

    assert capped(back(False, 10), 10) and not capped(back(True, 10), 10)
    assert not capped(back(False, 3), 10)  # KIS came no further back: a miss
    # The first page said 14 calls: cut there, the policy's, and the gap's detail says so
    estimated = TradesBack(trades=(), pages=1, reached=False, stuck=False, needed=14)
    assert capped(estimated, 10)
    assert why_not(estimated, [], 5_000, 10) == "about 14 calls, more than 10 (trade_calls_max)"
