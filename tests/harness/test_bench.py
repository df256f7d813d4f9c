"""The benchmark commands run end to end and report what they promise (numbers not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from observer.kis.pacing import PACING_S
from tests.conftest import PG_ADMIN_URL
from tests.support import ROOT


def run(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "observer", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# 4,000 events, and a latency run of 1 s at 500 events/s: every figure, quickly.
SMALL_BUS = (
    *("bus", "--events", "4000", "--producers", "2"),
    *("--rate", "500", "--latency-seconds", "1"),
)


def test_bench_bus_reports_its_keys_over_ipc_and_tcp() -> None:
    # One run over tcp: it measures ipc first and reports tcp beside it, so it also carries
    # every key of an ipc-only run.
    result = run(*SMALL_BUS, "--endpoint", "tcp")
    assert {
        "events_per_s",
        "p99_ms",
        "baseline_per_s",
        "ratio",
        "cpu_ratio",
        "lost",
        "duplicated",
        "machine_bound_per_s",
        "bound_ratio",
        "alone_ratio",
    } <= set(result)
    assert result["lost"] == 0 and result["duplicated"] == 0
    # The bound counts the writer's and the producers' CPU (SQLite has no server process).
    assert float(result["writer_cpu_us"]) > 0 and float(result["producers_cpu_us"]) > 0  # type: ignore[arg-type]
    assert result["server_cpu_us"] == 0
    parts = sum(float(result[k]) for k in ("writer_cpu_us", "producers_cpu_us"))  # type: ignore[arg-type]
    assert abs(float(result["bus_cpu_us"]) - parts) < 0.02  # type: ignore[arg-type]
    assert result["endpoint"] == "tcp"
    assert {"tcp_events_per_s", "tcp_p99_ms", "tcp_to_ipc_ratio"} <= set(result)
    assert float(result["tcp_events_per_s"]) > 0  # type: ignore[arg-type]


def test_bench_bus_on_postgres_copies_into_the_day_partitioned_table(pg_url: str) -> None:
    """The raw COPY baseline writes into ``trade_ticks`` as the writer keeps it (partitions)."""
    del pg_url  # only its skip when PostgreSQL is not reachable; the bench makes its own
    result = run(*SMALL_BUS, "--db", "postgres", env={"OBSERVER_BENCH_PG": PG_ADMIN_URL})
    assert result["db"] == "postgres"
    assert float(result["storage_baseline_per_s"]) > 0  # type: ignore[arg-type]
    # PostgreSQL's server processes do the insert work: the bound counts their CPU too.
    assert float(result["server_cpu_us"]) > 0  # type: ignore[arg-type]
    assert float(result["storage_total_cpu_us"]) > 0  # type: ignore[arg-type]
    assert result["lost"] == 0 and result["duplicated"] == 0


def test_bench_kis_reports_its_keys() -> None:
    result = run("kis", "--frames", "500", "--requests", "20", "--client-calls", "100")
    assert {"parser_ratio", "rest_ratio", "egw00201"} <= set(result)
    assert result["egw00201"] == 0
    assert result["client_cpu_us_per_call"] > 0 and result["bare_get_cpu_us_per_call"] > 0
    assert result["client_cpu_ratio"] == pytest.approx(
        result["bare_get_cpu_us_per_call"] / result["client_cpu_us_per_call"], rel=0.01
    )
    assert result["read_us_per_message"] > 0 and result["read_bare_us_per_message"] > 0


# The shipped programs the supervisor bench times below, as config/observer.toml declares them:
# the bench runs every configured program, and the shipped configuration's others (Track B,
# gap recovery, the notifier) would only load the machine while these are timed.
TIMED_PROGRAMS = """
[programs.writer]
kind = "daemon"
command = ["observer", "writer"]
[programs.universe]
kind = "job"
command = ["observer", "universe", "build"]
depends_on = ["writer"]
[programs.track_a]
kind = "session"
command = ["observer", "track-a", "run"]
depends_on = ["writer"]
phases = ["warmup", "track_a_only", "full_operation", "track_a_closing", "shutdown"]
"""


def test_bench_supervisor_reports_its_keys(tmp_path: Path) -> None:
    # The timings' quality aside; every configured program runs, a job and a worker are timed.
    config = tmp_path / "observer.toml"
    config.write_text(TIMED_PROGRAMS)
    timed = ("--program", "universe", "--program", "track_a")
    result = run(
        "supervisor",
        "--rounds",
        "1",
        "--settle",
        "0.5",
        *timed,
        env={"OBSERVER_CONFIG": str(config)},
    )
    assert {"restart_to_ready_s", "start_baseline_s", "kill_detect_s", "kill_to_ready_s"} <= set(
        result
    )
    assert 0 < result["kill_detect_s"] < result["kill_to_ready_s"]
    assert set(result["programs"]) == {"writer", "universe", "track_a"}  # type: ignore[arg-type]
    assert result["ctl_program"] == "track_a"


def test_bench_supervisor_refuses_a_program_the_configuration_does_not_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "observer", "bench", "supervisor", "--program", "nonesuch"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not an enabled program of the configuration" in done.stderr  # (boxed, wrapped)
    assert "nonesuch" in done.stderr


def test_bench_masterfile_reports_its_keys() -> None:
    result = run("master-file", "--repeats", "1")
    assert {"records", "parse_diff_s", "tickers_us_ms", "parse_diff_ratio"} <= set(result)
    assert result["records"] > 20_000 and result["changes"] == 10  # 5 delisted, 5 renamed
    assert result["tickers_us"] > 5_000


def test_bench_journal_reads_every_record_beside_zstd() -> None:
    result = run("journal", "--records", "20000", "--rounds", "1")
    assert result["records"] == 20_000
    assert result["raw_bytes"] > result["compressed_bytes"] > 0  # type: ignore[operator]
    mb = result["raw_bytes"] / 1e6  # type: ignore[operator]
    assert result["reader_mb_per_s"] == pytest.approx(mb / result["read_s"], rel=0.1, abs=0.1)  # type: ignore[operator]
    assert result["ratio_to_zstd"] == pytest.approx(
        result["reader_mb_per_s"] / result["zstd_mb_per_s"],  # type: ignore[operator]
        rel=0.05,
        abs=0.01,
    )


def test_bench_data_reports_each_read_beside_its_floor() -> None:
    result = run(
        "data",
        *("--ticks", "20000", "--symbols", "20", "--busiest", "4000"),
        *("--rounds", "1", "--books", "5000"),
    )
    reads = result["reads"]
    assert isinstance(reads, dict) and set(reads) == {
        f"{where}, {which} symbol"
        for where in ("database", "archive")
        for which in ("median", "busiest")
    }
    assert (
        reads["database, busiest symbol"]["rows"]
        == reads["archive, busiest symbol"]["rows"]
        == 4000
    )
    for read in reads.values():
        assert read["ratio"] == pytest.approx(read["ms"] / read["floor_ms"], rel=0.05)
    assert 0 < result["archive_bytes_per_tick"] < 200  # type: ignore[operator]
    spread = result["spread"]  # books: the same spreads over columns and over JSON text
    assert isinstance(spread, dict) and spread["books"] == 5000 and spread["migration_s"] > 0
    for where in ("database", "archive"):
        ratio = spread[f"{where}_json_ms"] / spread[f"{where}_columns_ms"]
        # The speedup is printed to one decimal: 0.644 reads 0.6, 7 % off under 1x.
        assert spread[f"{where}_speedup"] == pytest.approx(ratio, rel=0.05, abs=0.05)


def test_bench_track_a_reports_each_cycle_against_its_bound() -> None:
    result = run("track-a", "--symbols", "30,60", "--rate", "100")
    cycles = result["cycles"]
    assert isinstance(cycles, list) and [c["symbols"] for c in cycles] == [30, 60]
    for cycle in cycles:
        assert {"duration_s", "bound_s", "ratio", "rate_per_s", "limit_per_s"} <= set(cycle)
        assert cycle["succeeded"] == cycle["symbols"]
        assert cycle["limit_per_s"] == pytest.approx(100 * 0.95 * 0.55)  # less the headroom
        # The limiter's bucket (PACING_S of calls, at least one) goes at once: n calls take
        # n - burst intervals.
        n, burst = cycle["symbols"], max(1, int(cycle["limit_per_s"] * PACING_S))
        assert cycle["rate_per_s"] <= cycle["limit_per_s"] * n / (n - burst)
    assert result["egw00201"] == 0


def test_bench_track_b_reports_the_evaluation_against_a_bare_sort() -> None:
    result = run("track-b", "--candidates", "500", "--accounts", "2", "--repeats", "1")
    assert {"evaluate_ms", "baseline_ms", "ratio", "triggers_ms"} <= set(result)
    # Every slot was held by a stronger candidate: the rest overflow, none is lost.
    assert result["outcome"] == {"overflow": 500 - 82}


def test_bench_etf_reports_the_run_against_its_bound_and_the_krx_saving() -> None:
    result = run("etf", "--etfs", "40", "--rate", "100")
    assert result["collected"] == result["etfs"] == 40 and result["failed"] == 0
    assert result["kis_calls"] == 40
    assert result["limit_per_s"] == pytest.approx(100 * 0.95 * 0.15)  # the jobs' share, less
    assert {"duration_s", "bound_s", "ratio"} <= set(result)
    # One KRX table for every ETF's NAV and net assets, where KIS needs one call each.
    assert result["kis_calls_saved_by_krx"] == 39 and result["with_nav"] == 40
    assert result["egw00201"] == 0 and result["krx_error"] == ""


def test_bench_enrich_runs_from_the_command_line() -> None:
    result = run("enrich", "--stocks", "10", "--rate", "1000", "--fallback-rate", "40")
    assert result["stocks"] == result["published"] == 50 and result["failed"] == 0
    assert result["kis_limit_per_s"] == pytest.approx(1000 * 0.95 * 0.15)  # less the headroom
    assert result["fallback_limit_per_s"] == 40.0
    assert {"duration_s", "bound_s", "ratio", "egw00201", "http_429"} <= set(result)


def test_bench_etf_series_serves_a_year_batched_and_per_day_alike() -> None:
    result = run("etf-series", "--etfs", "3")
    assert result["etfs"] == 3 and result["answers"] == 18 and result["identical"] is True
    assert result["rows"] == 3 * 2 * result["sessions"] and result["sessions"] > 240  # a year
    assert {"batched_s", "per_day_s", "ratio", "cpu_ratio"} <= set(result)


def test_bench_month_stores_archives_prunes_and_reads_every_day() -> None:
    """Four days kept one day in the database: from the third night each night prunes the
    day before's ticks, and the journal's day before yesterday (its bytes on disk flat from
    the second); the symbol's month reads back whole across the database and the archive,
    every day's rows once."""
    result = run(
        "month",
        *("--days", "4", "--ticks", "6000", "--symbols", "10", "--busiest", "2000"),
        *("--snapshots", "400", "--universe", "100", "--keep-days", "1", "--rounds", "1"),
    )
    per_day = result["day_rows"]
    assert isinstance(per_day, int) and per_day > 0
    assert result["month_rows"] == 4 * per_day
    pruned = result["pruned_rows"]
    assert isinstance(pruned, list) and pruned[:2] == [0, 0]
    assert pruned[2] == pruned[3] > 5000  # a whole day's ticks, the day before yesterday's
    assert result["archive_bytes_per_day"] > 0  # type: ignore[operator]
    journaled, kept = result["journal_bytes_per_day"], result["journal_kept_bytes"]
    assert isinstance(journaled, int) and isinstance(kept, list) and journaled > 6000 * 20
    assert kept[0] < kept[1] and max(kept[2:]) < 2.5 * journaled < 2 * kept[1]
    assert len(result["db_bytes"]) == len(result["month_ms"]) == 4  # type: ignore[arg-type]
