"""``observer kis check`` against the simulator: its default mode, then each deviation it has.

One simulator for the module (300 stocks at 10:00, 120x), the check run once per mode. Its
PINGPONG comes every 60 s, under the client's 90 s silence limit; the simulator's own default
(110 s) is one of the deviations.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.sim.config import SimConfig
from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.cli.main import app
from observer.conformance.report import MISMATCH, NOT_MEASURED, OK, Report
from observer.conformance.rest import Targets
from observer.conformance.run import run_check
from observer.kis.settings import AccountSettings, KisSettings
from observer.kis.token_cache import cached_validity
from tests.support import SimThread

KEY, SECRET = "PSchkTestAppKey000000000000000000000", "c" * 180
MARKET = Market(3, TradingCalendar(), stocks=300, etfs=50)
TEN = datetime(2026, 11, 20, 10, 0, tzinfo=KST)
ABROAD = MARKET.overseas["nas"][0].symbol
TARGETS = Targets(symbol="005930", etf="069500", exchange="NAS", overseas=ABROAD)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(
        MARKET, TEN, SimConfig(app_keys={KEY: SECRET}, pingpong_s=60.0), speed=120
    ) as thread:
        yield thread


@pytest.fixture(scope="module")
def kis(sim: SimThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KisSettings]:
    tokens = tmp_path_factory.mktemp("tokens")
    saved = {
        k: os.environ.get(k)
        for k in ("OBSERVER_KIS_ACCT1_APP_KEY", "OBSERVER_KIS_ACCT1_APP_SECRET")
    }
    os.environ["OBSERVER_KIS_ACCT1_APP_KEY"], os.environ["OBSERVER_KIS_ACCT1_APP_SECRET"] = (
        KEY,
        SECRET,
    )
    yield KisSettings(
        environment="sim",
        sim_url=sim.url,
        token_dir=str(tokens),
        accounts=(AccountSettings(alias="acct1"),),
    )
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def check(sim: SimThread, kis: KisSettings, seconds: float) -> Report:
    return asyncio.run(run_check(kis, "acct1", TARGETS, seconds, sim.sim.clock, share=1.0))


def secrets(kis: KisSettings) -> list[str]:
    """The app key and secret, and every token and approval key the cache holds."""
    cached = [json.loads(p.read_bytes())["value"] for p in Path(kis.token_dir).glob("*.json")]
    assert cached  # the scan looks for something
    return [KEY, SECRET, *cached]


def outcomes(report: Report) -> dict[str, str]:
    return {f.item: f.outcome for f in report.findings}


@pytest.fixture(scope="module")
def default(sim: SimThread, kis: KisSettings) -> Report:
    return check(sim, kis, 2.5)


def test_the_default_simulator_passes_every_item(default: Report, kis: KisSettings) -> None:
    found = outcomes(default)
    assert not default.mismatches, default.mismatches
    assert found["H0STCNT0"] == OK and found["H0STASP0"] == OK
    layouts = {f.item: f.layout for f in default.findings}
    assert layouts["H0STCNT0"] == "2026-05 (46 fields)"
    assert layouts["H0STASP0"] == "2026-05 (59 fields)"
    assert found["PINGPONG"] == OK
    assert found["token expiry format"] == OK  # the first run issued the token
    assert found["minute-bar label"] == OK  # the simulator labels bars by their start
    assert found["master host kospi_code.mst.zip"] == OK
    assert sum(f.item.startswith(("FH", "HH", "CT")) for f in default.findings) == 13
    text = default.to_json().decode()
    assert not [s for s in secrets(kis) if s in text]


def test_a_cached_token_is_used_and_no_issuance_spent(
    sim: SimThread, kis: KisSettings, default: Report
) -> None:
    issued = cached_validity(Path(kis.token_dir), "acct1", "sim")
    report = check(sim, kis, 0.5)
    token = next(f for f in report.findings if f.item == "token")
    assert "cached token was used" in token.finding
    assert outcomes(report)["token expiry format"] == NOT_MEASURED
    assert issued is not None and cached_validity(Path(kis.token_dir), "acct1", "sim") == issued


def test_a_master_host_without_validators_is_named(sim: SimThread, kis: KisSettings) -> None:
    sim.sim.config.master_validators = False
    try:
        report = check(sim, kis, 0.5)
    finally:
        sim.sim.config.master_validators = True
    master = next(f for f in report.findings if f.item.startswith("master host"))
    assert master.outcome == MISMATCH and "no ETag or Last-Modified" in master.finding
    assert len(report.mismatches) == 1


def test_a_pingpong_interval_beyond_the_silence_limit_is_named(
    sim: SimThread, kis: KisSettings
) -> None:
    sim.sim.config.pingpong_s = SimConfig().pingpong_s  # 110 s
    try:
        report = check(sim, kis, 2.0)
    finally:
        sim.sim.config.pingpong_s = 60.0
    ping = next(f for f in report.findings if f.item == "PINGPONG")
    assert ping.outcome == MISMATCH and "not under the 90 s silence limit" in ping.finding


def test_records_the_decoder_refuses_are_named(sim: SimThread, kis: KisSettings) -> None:
    sim.sim.faults.garbled_records = 3
    try:
        report = check(sim, kis, 2.0)
    finally:
        sim.sim.faults.garbled_records = 0
    trades = next(f for f in report.findings if f.item == "H0STCNT0")
    assert trades.outcome == MISMATCH and "ACML_TR_PBMN" in trades.finding


def test_a_refusing_gateway_is_named_per_tr(sim: SimThread, kis: KisSettings) -> None:
    sim.sim.faults.http_5xx = 5  # the client's five tries of the first TR
    try:
        report = check(sim, kis, 0.5)
    finally:
        sim.sim.faults.http_5xx = 0
    first = next(f for f in report.findings if f.item.startswith("FHKST01010100"))
    assert first.item.startswith("FHKST01010100") and first.outcome == MISMATCH
    assert "EGW00002" in first.finding
    assert outcomes(report)["FHKST03010100 daily_chart"] == OK


def test_the_table_and_the_exit_code(
    sim: SimThread, kis: KisSettings, tmp_path: Path, default: Report
) -> None:
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{kis.token_dir}"\n'
        "[kis.process_share]\nmanual = 1.0\n"
    )
    sim.sim.config.master_validators = False  # one mismatch: exit 1
    try:
        result = CliRunner().invoke(
            app,
            [
                "kis",
                "check",
                "--config",
                str(config),
                "--seconds",
                "0.5",
                "--overseas",
                f"NAS:{ABROAD}",
            ],
            env={"OBSERVER_CLOCK": sim.sim.clock.spec, "COLUMNS": "200"},
        )
    finally:
        sim.sim.config.master_validators = True
    assert result.exit_code == 1, result.output
    assert "FHKST01010100" in result.output and "mismatch" in result.output
    assert not [s for s in secrets(kis) if s in result.output]
