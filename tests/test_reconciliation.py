"""Reconciliation against the simulator: trades the server silently never sent are found.

Real processes on loopback: the writer, the simulator, Track B streaming six slots, and
later the gap-recovery daemon; ``observer gap-recovery verify`` and ``report`` run as the
operator runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.sim.config import TickLoss
from harness.sim.market import KST
from harness.sim.realtime import trade_ns
from harness.sim.server import SimConfig
from tests.support import ROOT, SimThread, WriterProcess, db_rows, wait_until
from tests.test_track_b import DAY, MARKET, NINE, publish_morning
from workers.gap_recovery.cli import app as gaps_app

S = 1_000_000_000
MINUTE = 60 * S
LOSS = TickLoss(
    start_ns=int((NINE + timedelta(minutes=31)).timestamp()) * S,
    end_ns=int((NINE + timedelta(minutes=33)).timestamp()) * S,
    share=0.3,
)


def lost_volume(symbol: str, minute_ns: int) -> int:
    """What the server withheld of ``symbol``'s trades in the minute opening at ``minute_ns``."""
    bar = datetime.fromtimestamp(minute_ns / S, KST)
    index = (bar.hour * 60 + bar.minute) - 9 * 60
    return sum(
        tick.qty
        for nth, tick in enumerate(MARKET.ticks(symbol, DAY, index))
        if LOSS.withholds(symbol, trade_ns(bar, tick), nth)
    )


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "observer", *args], stdout=out, stderr=out, cwd=ROOT, env=env
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def command(args: list[str], config: Path, env: dict[str, str]) -> dict[str, Any]:
    result = CliRunner().invoke(gaps_app, [*args, "--json", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return found


@pytest.mark.slow
def test_a_silent_loss_is_found_by_reconciliation_and_recovered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    # 09:29:00 at 20x: Track B's slots stream from 09:30; the server withholds 30 % of the
    # trades of 09:31-09:33 with the session up.
    sim = SimThread(MARKET, NINE + timedelta(minutes=29), SimConfig(), speed=20)
    sim.sim.faults.tick_loss.append(LOSS)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        publish_morning(writer, tmp_path / "outbox")
        config = tmp_path / "observer.toml"
        config.write_text(
            f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{writer.run_dir}"\n'
            f'[database]\nurl = "{url}"\n'
            f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path}"\n'
            '[[kis.accounts]]\nalias = "acct1"\n[[kis.accounts]]\nalias = "acct2"\n'
            "[track_b]\nregistrations_per_account = 3\n"
            # 20x: a registration's round trip of 0.1 wall seconds is 2 simulated seconds
            "[gap_recovery]\nverify_edge_s = 6.0\n"
        )
        env = {**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec}
        track_b = start(["track-b", "run", "--config", str(config)], env, tmp_path / "b.log")
        procs.append(track_b)
        until = int((NINE + timedelta(minutes=35, seconds=10)).timestamp()) * S
        wait_until(lambda: sim.sim.clock.now_ns() > until, 60, "09:35:10")
        stop(track_b)
        assert track_b.returncode == 0, (tmp_path / "b.log").read_text()[-2000:]
        withheld = sum(sim.sim.realtime.records_withheld.values())
        assert withheld > 0
        detected = db_rows(url, "select count(*) from gaps")[0][0]

        calls_before = sim.sim.calls["FHKST03010200"]
        verified = command(["verify", "--date", DAY.isoformat()], config, env)
        # One call per symbol: its watched minutes fit in one page of 30 bars.
        assert verified["calls"] == verified["symbols"] == 6
        assert sim.sim.calls["FHKST03010200"] - calls_before == verified["calls"]
        minutes = db_rows(
            url,
            "select symbol, minute_ns, status, stored_volume, bar_volume, gap_id "
            "from reconciliation_minutes",
        )
        assert len(minutes) == verified["watched_minutes"] >= 12
        # The stream and the bars agree to the share, except for what the server withheld.
        for symbol, minute, _, stored, bar, _ in minutes:
            assert bar - stored == lost_volume(symbol, minute), (symbol, minute)
        short = [m for m in minutes if m[2] == "short"]
        assert short and {m[1] for m in short} <= {LOSS.start_ns, LOSS.start_ns + MINUTE}
        assert verified["short"] == len(short) and verified["recovered"] == 0
        assert verified["missing_volume"] == sum(bar - stored for _, _, _, stored, bar, _ in short)
        # Track B's detectors saw none (or few) of it: the rest became reconciliation gaps.
        misses = [m for m in short if m[5].startswith("reconciliation:")]
        assert misses and verified["misses"] == len(misses)
        assert all(m[5] for m in short)  # every short minute now has a gap
        gaps = db_rows(url, "select gap_id, reason, state, end_ns - start_ns from gaps")
        ours = {g[0]: g for g in gaps if g[1] == "reconciliation"}
        assert set(ours) == {m[5] for m in misses} and len(gaps) == detected + len(misses)
        assert {(g[2], g[3]) for g in ours.values()} == {("detected", MINUTE)}
        print(f"reconciliation: {verified}; Track B's gaps: {detected}")
        alerts = dict(db_rows(url, "select code, severity from alerts"))
        assert alerts["reconciliation_misses"] == "warning" and "reconciliation_done" in alerts

        # The two figures differ: the detected gaps cannot see the loss, the bars can.
        report = command(["report", "--date", DAY.isoformat()], config, env)
        figures = report["reconciliation"]
        assert figures["short"] == len(short) and figures["misses"] == len(misses)
        assert figures["completeness_pct"] < report["completeness_pct"]
        assert figures["stream_pct"] == figures["completeness_pct"] < 100.0

        # Gap recovery fills the reconciliation's gaps with the exchange's bars.
        recovery = start(["gap-recovery", "run", "--config", str(config)], env, tmp_path / "g.log")
        procs.append(recovery)
        wait_until(
            lambda: db_rows(
                url, "select count(*) from gaps where reason = 'reconciliation' and state = "
                "'recovered'"
            )[0][0] == len(misses),
            90, "the reconciliation's gaps recovered",
        )  # fmt: skip
        stop(recovery)
        after = command(["report", "--date", DAY.isoformat()], config, env)["reconciliation"]
        assert after["recovered"] == len(misses) and after["misses"] == len(misses)
        explained = len(short) - len(misses)  # by Track B's own gaps, recovered or not
        assert after["short"] + after["recovered"] == len(short) and after["short"] <= explained
        assert after["stream_pct"] == figures["stream_pct"] < after["completeness_pct"]

        # Reconciled again, the day has nothing left to publish.
        again = command(["verify", "--date", DAY.isoformat()], config, env)
        assert again["recovered"] >= len(misses) and again["misses"] == len(misses)
        assert db_rows(url, "select count(*) from gaps")[0][0] == len(gaps)
        statuses = Counter(s for (s,) in db_rows(url, "select status from reconciliation_minutes"))
        assert statuses["short"] == len(short) + again["short"]  # the first run's, and any left
    finally:
        for proc in procs:
            stop(proc)
        writer.kill()
        sim.close()
