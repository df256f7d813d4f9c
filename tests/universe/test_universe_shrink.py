"""A universe that shrinks for no market reason is not written: the previous one is reused.

The previous session's daily bars missing (the market was closed on a day the calendar
counts as a session, or the chart source answered without them) made every candidate
"not traded": a universe of 0 stocks, kept for the day. Damaged masters reuse it too.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from harness.sim import master_host
from harness.sim.market import Market
from harness.sim.quotes import Quotes
from harness.sim.server import SimConfig
from observer.calendar.trading import TradingCalendar
from observer.config.load import load_settings
from tests.kis.test_master_zip import inflate_error_copy
from tests.support import SimThread
from tests.universe.conftest import START, Harness, expected
from workers.universe.build import Built, market_shortfall, shortfall
from workers.universe.snapshot import Metadata, Symbol, UniverseFile, candidates_by_market

HOLIDAY = date(2026, 11, 19)  # closed at the simulated exchange, a session to the observer
SHIPPED = Path(__file__).resolve().parents[2] / "config" / "observer.toml"


def test_the_shortfall_thresholds(tmp_path: Path) -> None:
    limits = load_settings(SHIPPED).universe
    assert (limits.max_failed_pct, limits.max_not_traded_pct) == (5.0, 20.0)

    def built(not_traded: int, failed: int = 0) -> Built:
        b = Built(date(2026, 11, 20), HOLIDAY, [], 1000, not_traded=not_traded)
        b.failed = {f"{n:06d}": "KisServerError: EGW00002" for n in range(failed)}
        return b

    assert shortfall(built(200), limits) is None  # 20 %: a bad day, still a universe
    reason = shortfall(built(201), limits)
    assert reason is not None and "201 of 1000 candidates have no daily bar on 2026-11-19" in reason
    assert "20.1% > 20%" in reason
    assert shortfall(built(0, failed=50), limits) is None
    assert "51 of 1000 candidates failed" in (shortfall(built(0, failed=51), limits) or "")
    # Configurable, like max_failed_pct.
    config = tmp_path / "observer.toml"
    config.write_text(f'extends = "{SHIPPED}"\n[universe]\nmax_not_traded_pct = 50.0\n')
    assert shortfall(built(400), load_settings(config).universe) is None


def test_a_market_without_candidates_or_with_half_as_many_is_a_shortfall() -> None:
    before = {"KOSPI": 900, "KOSDAQ": 1600}
    assert market_shortfall({"KOSPI": 880, "KOSDAQ": 1610}, before) is None
    assert market_shortfall({"KOSPI": 450, "KOSDAQ": 800}, before) is None  # half: kept
    assert market_shortfall({"KOSPI": 1, "KOSDAQ": 1}, {}) is None  # no baseline: any
    reason = market_shortfall({"KOSPI": 0, "KOSDAQ": 1600}, {})
    assert reason is not None and "the KOSPI master lists no stock" in reason
    reason = market_shortfall({"KOSPI": 900, "KOSDAQ": 799}, before)
    assert reason is not None and "KOSDAQ master lists 799 candidates" in reason
    assert "fewer than 50% of the previous universe's 1600" in reason
    assert market_shortfall({"KOSDAQ": 1600}, before) is not None  # absent is none


def test_the_baseline_of_a_universe_from_before_candidates_per_market() -> None:
    """An older file (or one rewritten from the database) has its members instead."""

    def symbol(code: str, market: str) -> Symbol:
        return Symbol(code, code, market, 1, 1, 4000, 1, Decimal(1))

    meta = Metadata("20261119", "20261118", "", 3, "")
    old = UniverseFile(meta, (symbol("1", "KOSPI"), symbol("2", "KOSDAQ"), symbol("3", "KOSDAQ")))
    assert candidates_by_market(old) == {"KOSPI": 1, "KOSDAQ": 2}
    counted = msgspec.structs.replace(meta, candidates_by_market={"KOSPI": 9, "KOSDAQ": 7})
    assert candidates_by_market(UniverseFile(counted, old.symbols)) == {"KOSPI": 9, "KOSDAQ": 7}


# ---------------------------------------------------------------- against the simulator


@pytest.fixture(scope="module")
def holiday_sim() -> Iterator[SimThread]:
    market = Market(13, TradingCalendar(extra_closed=[HOLIDAY]), stocks=300, etfs=30)
    with SimThread(market, START, SimConfig(calls_per_second=200)) as sim:
        yield sim


@pytest.fixture
def holiday(
    universe_jobs: Callable[..., Harness], holiday_sim: SimThread, token_dir: Path
) -> Harness:
    tokens = token_dir / "holiday"  # a cache of its own: another simulator's tokens
    tokens.mkdir(exist_ok=True)
    return universe_jobs(holiday_sim, tokens)


def alerts(h: Harness) -> list[Any]:
    return h.rows("select severity, code, message from alerts order by seq")


def test_a_closed_day_counted_as_a_session_makes_no_universe(holiday: Harness) -> None:
    h = holiday
    out = h.build("2026-11-20", code=1)["out"]
    assert "no daily bar on 2026-11-19 (100.0% > 20%)" in out and "no earlier universe" in out
    ((severity, code, message),) = alerts(h)
    assert (severity, code) == ("critical", "universe_failed") and "bars are missing" in message
    assert not (h.data / "universe" / "20261120_kr_stocks.json").exists()  # nothing kept
    assert h.rows("select count(*) from universe_snapshots") == [(0,)]

    h.build("2026-11-18")  # based on 11-17, which the exchange had
    summary = h.build("2026-11-20")  # a rerun tries again, and reuses
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261118"
    assert summary["symbol_count"] > 100
    reused = alerts(h)[-1]
    assert reused[:2] == ("critical", "universe_reused")
    assert "no daily bar on 2026-11-19" in reused[2] and "reusing 20261118" in reused[2]


def drop_bars(monkeypatch: pytest.MonkeyPatch, share: int) -> None:
    """The chart source answers nothing for about ``share`` in 10 symbols."""
    rows = Quotes._daily_rows

    def some_missing(self: Quotes, symbol: str, *args: Any) -> list[dict[str, str]]:
        if zlib.crc32(symbol.encode()) % 10 < share:
            return []
        return rows(self, symbol, *args)

    monkeypatch.setattr(Quotes, "_daily_rows", some_missing)


def test_a_partial_loss_of_bars_reuses_the_previous_universe(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    h.build("2026-11-19")
    drop_bars(monkeypatch, 4)
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261119"
    severity, code, message = alerts(h)[-1]
    assert (severity, code) == ("critical", "universe_reused")
    assert "candidates have no daily bar on 2026-11-19" in message and "> 20%" in message
    snapshots = h.rows("select trade_date, member_count from universe_snapshots order by seq")
    assert [(str(d), n) for d, n in snapshots] == [
        ("2026-11-19", len(expected(date(2026, 11, 19)))),
        ("2026-11-20", len(expected(date(2026, 11, 19)))),
    ]


def test_a_few_stocks_without_a_bar_still_make_the_universe(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    drop_bars(monkeypatch, 1)
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "built"
    missing = {s for s in expected(date(2026, 11, 20)) if zlib.crc32(s.encode()) % 10 < 1}
    assert 0 < summary["excluded"]["not_traded"] < 0.2 * summary["candidates"]
    file = json.loads((h.data / "universe" / "20261120_kr_stocks.json").read_text())
    codes = [s["code"] for s in file["symbols"]]
    assert codes == [s for s in expected(date(2026, 11, 20)) if s not in missing]
    assert [c for _, c, _ in alerts(h)] == []


def test_masters_that_fail_to_inflate_reuse_the_previous_universe(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    h.build("2026-11-19")
    monkeypatch.setattr(
        master_host, "damaged", lambda data, member, how: inflate_error_copy(data, member)
    )
    h.sim.faults.master_damage = {"kospi_code.mst.zip": "crc"}
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261119"
    severity, code, message = alerts(h)[-1]
    assert (severity, code) == ("critical", "universe_reused")
    assert "damaged zip archive: Error -3 while decompressing data" in message
    assert [p.name for p in (h.data / "universe").iterdir() if "download" in p.name] == []


def damage_kospi(monkeypatch: pytest.MonkeyPatch, every: int | None) -> None:
    """The KOSPI master read with a shifted layout: its group code one column off, so no
    row is a stock (``every``: but 1 row in ``every``)."""
    from observer.kis.master import parse_domestic
    from workers.universe import build

    def shifted(data: bytes, market: Any) -> list[Any]:
        rows = parse_domestic(data, market)
        if market != "KOSPI":
            return rows
        return type(rows)(
            r if every and n % every == 0 else dataclasses.replace(r, security_group="t")
            for n, r in enumerate(rows)
        )

    monkeypatch.setattr(build, "parse_domestic", shifted)


def test_a_market_lost_to_its_master_reuses_the_previous_universe(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every KOSPI row garbled made a KOSDAQ-only universe, above the 100-symbol floor, and
    no alert; a third of them left is no universe either."""
    h = harness
    recorded = h.build("2026-11-19")
    damage_kospi(monkeypatch, None)
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261119"
    severity, code, message = alerts(h)[-1]
    assert (severity, code) == ("critical", "universe_reused")
    assert "the KOSPI master lists no stock" in message
    damage_kospi(monkeypatch, 3)  # the 07:00 rerun: a third of KOSPI's stocks
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261119"
    severity, code, message = alerts(h)[-1]
    assert (severity, code) == ("critical", "universe_reused") and "failed again" in message
    kospi = recorded["candidates_by_market"]["KOSPI"]  # the baseline, in the file
    assert f"fewer than 50% of the previous universe's {kospi}" in message and kospi > 30
    assert h.rows("select code from alert_resolutions") == []
