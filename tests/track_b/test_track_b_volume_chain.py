"""Track B proves its trades by KIS's cumulative-volume chain: a silent loss (the session up,
trades never sent) is a volume_chain gap the moment the next trade arrives, measured to the
share, where the silence detector and the connection saw nothing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.gap_recovery.test_reconciliation import (
    LOSS,
    MINUTE,
    S,
    lossy_morning,
    lost_volume,
    stop,
)
from tests.support import (
    db_rows,
    start_on_sim_clock,
    timing_over,
    wait_until,
)
from tests.track_b.test_track_b import NINE


@pytest.mark.timed  # Track B must be streaming by 09:31, 6 wall seconds after the start
def test_a_silent_loss_is_a_volume_chain_gap_at_once_to_the_share(tmp_path: Path) -> None:
    # The chain on, as shipped; gap recovery with bars alone (test_gap_recovery_trades: the
    # exchange's trades first)
    with lossy_morning(tmp_path, "", "trades = false\n") as morning:
        url, sim, config, procs = morning.url, morning.sim, morning.config, morning.procs
        track_b = procs[0]
        # Found while the stream runs, before 09:34: no reconciliation has run
        before = int((NINE + timedelta(minutes=34)).timestamp()) * S
        found = "select count(*) from gaps where reason = 'volume_chain'"
        wait_until(lambda: db_rows(url, found)[0][0] > 0, 60, "a volume_chain gap")
        assert sim.sim.clock.now_ns() < before
        until = int((NINE + timedelta(minutes=34, seconds=10)).timestamp()) * S
        wait_until(lambda: sim.sim.clock.now_ns() > until, 60, "09:34:10")
        stop(track_b)
        assert track_b.returncode == 0, (tmp_path / "b.log").read_text()[-2000:]
        timing_over()  # what follows is not timed against the simulated clock
        withheld = sum(sim.sim.realtime.records_withheld.values())
        assert withheld > 0, "Track B streamed nothing in 09:31-09:33: it started late"
        gaps = db_rows(
            url,
            "select symbol, start_ns, end_ns, missing_volume, cum_before, cum_after, venue "
            "from gaps where reason = 'volume_chain'",
        )
        missing: Counter[str] = Counter()
        for symbol, start, end, volume, cum_before, cum_after, venue in gaps:
            assert venue == "KRX" and volume > 0 and cum_after - cum_before == volume
            assert LOSS.start_ns - MINUTE <= start <= end < LOSS.end_ns + MINUTE
            missing[symbol] += volume
        # Every share the server withheld, per symbol: the chain's figure, to the share
        during = (
            "select distinct symbol from trade_ticks where exchange_ns >= "
            f"{LOSS.start_ns} and exchange_ns < {LOSS.end_ns}"
        )
        streamed = {s for (s,) in db_rows(url, during)}
        lost = Counter(
            {
                symbol: lost_volume(symbol, LOSS.start_ns)
                + lost_volume(symbol, LOSS.start_ns + MINUTE)
                for symbol in streamed
            }
        )
        assert missing == +lost
        # No other gap: the session stayed up, and no silence was long enough to be one
        others = "select reason from gaps where reason not in ('volume_chain', 'silence')"
        assert not db_rows(url, others)

        # Gap recovery: each symbol-minute's final bar asked once, however many gaps it holds
        calls = sim.sim.calls["FHKST03010200"]
        recovery = start_on_sim_clock(
            ["gap-recovery", "run", "--config", str(config)], sim, tmp_path / "g.log"
        )
        procs.append(recovery)
        left = "select count(*) from gaps where reason = 'volume_chain' and state != 'recovered'"
        wait_until(lambda: db_rows(url, left)[0][0] == 0, 90, "the chain's gaps recovered")
        stop(recovery)
        asked = sim.sim.calls["FHKST03010200"] - calls
        # per symbol at most the minutes its gaps reach (09:30:59-09:33:00: four), however
        # many gaps each holds (two recoveries in flight may ask one minute twice)
        assert 0 < asked <= 4 * len(missing) < len(gaps)
        recovered = "select distinct symbol from minute_bars where quality = 'recovered'"
        assert {s for (s,) in db_rows(url, recovered)} == set(missing)
