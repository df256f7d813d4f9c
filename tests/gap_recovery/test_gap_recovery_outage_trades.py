"""A Track B session cut for 40 s, its gaps filled with the exchange's own trades, to the trade.

Real processes on loopback: the writer, the simulator cutting every session at 09:31 and
refusing new ones for 40 s, Track B (each symbol's volume chain runs on across the outage, so
the first trade after it measures its gap in shares), then the gap-recovery daemon. On each
venue's feed and on the combined feed, every outage gap measured is recovered with
FHPST01060000's trades, and they are exactly the trades the simulator printed in it: the same
count, the same shares, each stored once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from harness.sim.tape import prints_before
from tests.gap_recovery.test_reconciliation import S, lossy_morning, stop
from tests.support import db_rows, start_on_sim_clock, timing_over, wait_until
from tests.track_b.test_track_b import DAY, MARKET, NINE, UNIVERSE

CUT_NS = int((NINE + timedelta(minutes=31)).timestamp()) * S
CUT_S = 40
NXT_NAMES = [s for s in UNIVERSE if s in MARKET.nxt_eligible(DAY)]
CODES = {"KRX": "J", "NXT": "NX", "combined": "UN"}  # FHPST01060000's market codes
OUTAGE_GAPS = (
    "select symbol, venue, end_ns, missing_volume, cum_before, cum_after, state, trades, "
    "trade_volume, bars, detail from gaps where reason = 'disconnect'"
)


def _kst_second(ns: int) -> int:
    return (ns // S + 9 * 3600) % 86_400


@pytest.mark.timed  # the cut must fall while Track B streams, 12 wall seconds after the start
@pytest.mark.parametrize(
    ("trades", "venues"), [("venues", {"KRX", "NXT"}), ("combined", {"KRX", "combined"})]
)
def test_a_session_cut_for_40_s_is_filled_with_the_trades_the_exchange_printed(
    tmp_path: Path, trades: str, venues: set[str]
) -> None:
    # Its slots stay on their accounts through the cut and the reconnection's backoff, which
    # after 40 s of refused sessions may wait 45 s more (an account down longer than
    # unhealthy_after_s fails over: a new registration, a new chain, the outage's bars)
    track_b = f'trades = "{trades}"\nunhealthy_after_s = 600\n'
    # A busy name's 40 s on the combined feed is some 700 trades, 24 pages: all asked here
    # (the shipped 10 gives such a gap its bars after one call)
    calls = "trade_calls_max = 60\n"
    with lossy_morning(tmp_path, track_b, calls, loss=False, nxt=NXT_NAMES) as morning:
        url, sim = morning.url, morning.sim
        wait_until(lambda: sim.sim.clock.now_ns() >= CUT_NS, 60, "09:31")
        realtime = sim.sim.realtime
        keys = list(realtime._sessions)
        assert keys, "no session up at 09:31"
        for key in keys:
            sim.sim.faults.ws_down_until[key] = CUT_NS + CUT_S * S
        assert asyncio.run_coroutine_threadsafe(realtime.drop_websockets(), sim.loop).result(10)
        until = CUT_NS + 4 * 60 * S  # every gap out: measured, or a minute on unmeasured
        wait_until(lambda: sim.sim.clock.now_ns() > until, 60, "09:35")
        stop(morning.procs[0])
        assert morning.procs[0].returncode == 0, (tmp_path / "b.log").read_text()[-2000:]
        timing_over()  # what follows is not timed against the simulated clock
        assert db_rows(url, OUTAGE_GAPS), "no outage gap"
        recovery = start_on_sim_clock(
            ["gap-recovery", "run", "--config", str(morning.config)], sim, tmp_path / "g.log"
        )
        morning.procs.append(recovery)
        left = "select count(*) from gaps where reason = 'disconnect' and state != 'recovered'"
        wait_until(lambda: db_rows(url, left)[0][0] == 0, 90, "the outage's gaps recovered")
        stop(recovery)
        gaps = db_rows(url, OUTAGE_GAPS)

    assert {g[1] for g in gaps} == venues, gaps
    measured = [g for g in gaps if g[3] is not None]
    busy = {g[1] for g in measured if g[7]}
    assert busy == venues, f"not every feed had a busy symbol's outage repaired: {gaps}"
    for symbol, venue, end_ns, missing, before, after, _, count, volume, bars, detail in measured:
        printed = prints_before(
            MARKET,
            sim.sim.faults,
            sim.sim.config,
            CODES[venue],  # type: ignore[arg-type]
            symbol,
            DAY,
            _kst_second(end_ns) + 1,
            86_400,
            100_000,
        )
        lost = [p for p in printed if before < p.volume <= after]
        assert (count, volume, missing, bars) == (
            len(lost),
            sum(p.qty for p in lost),
            after - before,
            0,
        ), detail
        assert str(detail).startswith("recovered_trades: "), detail
        stored = db_rows(
            url,
            "select cum_volume, qty, exchange_ns from trade_ticks where source = 'gap_recovery' "
            f"and symbol = '{symbol}' and venue = '{venue}' and cum_volume > {before} "
            f"and cum_volume <= {after} order by cum_volume",
        )
        assert [(c, q) for c, q, _ in stored] == [(p.volume, p.qty) for p in lost]
        assert all(_kst_second(ns) == p.stamp for (_, _, ns), p in zip(stored, lost, strict=True))
        if (
            lost
        ):  # in the outage: from the cut (a second's grace) to its end and the re-registration
            assert _kst_second(CUT_NS) - 1 <= lost[0].stamp
    # Nothing stored twice on any feed
    twice = (
        "select count(*) from (select symbol, venue, cum_volume from trade_ticks "
        "group by symbol, venue, cum_volume having count(*) > 1)"
    )
    assert db_rows(url, twice) == [(0,)]
