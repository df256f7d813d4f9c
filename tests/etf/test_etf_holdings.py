"""ETF constituents, daily highs and lows, and the KRX list against the masters.

The parsers against independent statements; then the jobs against the real simulator and a
real writer process: the weekly holdings (one answer per ETF, cash and futures lines, the
count cross-checked, a cut-short answer alerted, a constituent listed twice refused), and the
KRX list disagreeing with the KIS masters' ``EF`` rows by more than 1 % (a listing change
the list has not caught up with) raising ``etf_universe_mismatch`` through
``observer etf check``, resolved once they agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bus.events import EtfDaily, EtfHolding, EtfHoldings
from harness.sim.etf import multiple
from harness.sim.server import SimConfig
from observer.kis.etf import holdings_of, kind_of, with_bars
from observer.kis.schemas import DailyBarRow, EtfComponentRow, EtfComponentSummary
from tests.etf.conftest import DAY, ETFS, MARKET, Harness, running
from workers.etf.holdings import count_problem
from workers.master_file.cli import app as master_file

CAP = 20  # FHKST121600C0 lines a capped answer holds: most ETFs have more
LEVERAGED = next(s for s in ETFS if multiple(MARKET.listings[s].name) != 1)
DAY_ = date(2026, 11, 20)
codes = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=14)


@given(codes)
def test_a_line_kind_follows_its_code(code: str) -> None:
    kind = kind_of(code)
    if code.startswith(("KRD", "CASH")):
        assert kind == "cash"
    elif len(code) == 12 and code[:3] == "KR4":
        assert kind == "futures"
    elif len(code) == 6 or (len(code) == 12 and code[:3] == "KR7"):
        assert kind == "stock"
    else:
        assert kind == "other"


def test_known_lines() -> None:
    assert [kind_of(c) for c in ("005930", "KRD010010001", "CASH00000001", "KR4101V30005")] == [
        "stock",
        "cash",
        "cash",
        "futures",
    ]
    assert kind_of("0091C0") == "stock"  # alphanumeric short codes (KRX since 2024)


@given(
    value=st.integers(min_value=-(10**15), max_value=10**15),
    weight=st.decimals(min_value=-200, max_value=200, places=2),
    grouped=st.booleans(),
)
def test_a_short_line_keeps_its_negative_value(value: int, weight: Decimal, grouped: bool) -> None:
    """An inverse ETF's short futures line is worth less than nothing: a value, not missing."""
    text = f"{value:,}" if grouped else str(value)
    rows = [
        EtfComponentRow(
            stck_shrn_iscd="KR4101V30005",
            hts_kor_isnm="코스피200 F 202612",
            etf_cnfg_issu_rlim=str(weight),
            etf_vltn_amt=text,
        ),
        EtfComponentRow(stck_shrn_iscd="KRD010010001", etf_vltn_amt="-"),  # not given
        EtfComponentRow(stck_shrn_iscd="CASH00000001", etf_vltn_amt=""),
    ]
    found = holdings_of("114800", DAY_, EtfComponentSummary(etf_cnfg_issu_cnt="3"), rows, None)
    assert [(x.kind, x.value_krw) for x in found.lines] == [
        ("futures", value),
        ("cash", None),
        ("cash", None),
    ]
    assert found.lines[0].weight_pct == weight


def test_counts_that_disagree_are_told() -> None:
    lines = tuple(EtfHolding(code=f"{n:06d}", kind="stock") for n in range(3))
    agree = EtfHoldings(
        trade_date=date(2026, 11, 20),
        symbol="069500",
        lines=lines,
        reported_count=3,
        quote_count=3,
    )
    assert count_problem(agree) is None
    unknown = EtfHoldings(trade_date=agree.trade_date, symbol="069500", lines=lines)
    assert count_problem(unknown) is None  # nothing to compare
    cut = EtfHoldings(
        trade_date=agree.trade_date,
        symbol="069500",
        lines=lines[:2],
        reported_count=3,
        quote_count=3,
    )
    problem = count_problem(cut)
    assert problem is not None and "2 holdings" in problem and "counts 3" in problem


@given(
    st.dictionaries(
        st.integers(0, 30),
        st.tuples(st.integers(1, 1000), st.booleans(), st.integers(1, 1000), st.booleans()),
        max_size=20,
    )
)
def test_daily_bars_fill_only_what_rows_lack(
    days: dict[int, tuple[int, bool, int, bool]],
) -> None:
    base = date(2026, 10, 1)
    rows, bars = {}, []
    for n, (close, has_high, bar_close, charted) in days.items():
        day = date.fromordinal(base.toordinal() + n)
        high = close + 5 if has_high else None
        rows[day] = EtfDaily(trade_date=day, symbol="069500", close=close, high=high, low=high)
        if charted:
            bars.append(
                DailyBarRow(
                    stck_bsop_date=day.strftime("%Y%m%d"),
                    stck_clpr=str(bar_close),
                    stck_oprc=str(bar_close),
                    stck_hgpr=str(bar_close + 9),
                    stck_lwpr=str(max(bar_close - 1, 1)),
                    acml_vol="10",
                )
            )
    changed = with_bars(rows, bars)
    for day, row in rows.items():
        bar = next((b for b in bars if b.stck_bsop_date == day.strftime("%Y%m%d")), None)
        fills = bar is not None and row.high is None and int(bar.stck_clpr) == row.close
        assert (day in changed) == fills
        if fills:
            assert bar is not None
            assert changed[day].high == int(bar.stck_hgpr) and changed[day].close == row.close
            assert changed[day].nav == row.nav  # nothing else moves


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    config = SimConfig(calls_per_second=400)
    with running(tmp_path_factory, config) as h:
        yield h


def _masters(h: Harness) -> None:
    result = CliRunner().invoke(master_file, ["update", "--all", "--config", str(h.config)])
    assert result.exit_code == 0, result.output


def test_the_first_load_has_highs_and_lows_then_the_week_s_holdings(harness: Harness) -> None:
    h = harness
    assert h.etf("list", "--json")["applied"]
    first = h.etf("daily", "--date", DAY, "--json")
    assert first["failures"] == 0 and first["chart_failures"] == 0
    # The quote, three NAV-series pages and three daily-chart pages (52 weeks) per ETF.
    assert first["kis_calls"] == 7 * len(ETFS)
    assert first["charted_rows"] >= 240 * len(ETFS)
    basis = h.rows("SELECT DISTINCT range_52w_basis, range_52w_close_days FROM etf_details")
    assert basis == [("high_low", 0)]
    # The simulator's daily chart and its path agree: the stored 52-week high is the path's.
    symbol = ETFS[0]
    high, high_date = h.rows(
        f"SELECT high_52w, high_52w_date FROM etf_details WHERE symbol = '{symbol}'"
    )[0]
    span = [d for d in MARKET.sessions if date(2025, 11, 21) <= d <= date(2026, 11, 20)]
    assert high == max(MARKET.daily_bar(symbol, d).high for d in span)
    assert str(high_date) in {d.isoformat() for d in span}

    got = h.etf("holdings", "--date", DAY, "--json")
    assert got["collected"] == len(ETFS) and got["failures"] == 0
    assert got["count_mismatches"] == 0 and got["unchecked"] == 0 and got["cut_short"] == 0
    assert got["most_lines"] > CAP and got["kis_calls"] == len(ETFS)  # one answer each
    kinds = dict(
        h.rows(
            f"SELECT kind, COUNT(*) FROM etf_holdings WHERE symbol = '{LEVERAGED}' GROUP BY kind"
        )
    )
    assert kinds["cash"] == 2 and kinds["futures"] == 1 and kinds["stock"] >= 10
    report = h.etf("holdings-report", LEVERAGED, "--date", DAY, "--json")
    assert report["date"] == DAY and len(report["lines"]) == report["quote_count"]
    weights = [Decimal(str(x["weight_pct"])) for x in report["lines"]]
    assert sum(weights) != 100 and weights == sorted(weights, key=abs, reverse=True)


def test_a_cut_short_answer_is_alerted_then_resolved(harness: Harness, tmp_path: Path) -> None:
    h = harness
    many = next(s for s in ETFS if len(h.etf("holdings-report", s, "--json")["lines"]) > CAP)
    before = h.rows("SELECT COUNT(*) FROM etf_holdings")[0][0]
    h.sim.config.etf_component_max_rows = CAP  # KIS capping the answer (UNCONFIRMED)
    try:
        cut = h.etf("holdings", "--date", DAY, "--symbols", many, "--json")
    finally:
        h.sim.config.etf_component_max_rows = None
    assert cut["count_mismatches"] == 1 and cut["lines"] == CAP and cut["cut_short"] == 1
    severity, subject, message = h.alerts("etf_holdings_count_mismatch")[-1]
    assert (severity, subject) == ("warning", many) and f"{CAP} holdings" in message
    assert f"cut short at {CAP} lines" in message
    # Nothing stored was touched: the cut set is one more set, the full ones are intact.
    assert h.rows("SELECT COUNT(*) FROM etf_holdings")[0][0] == before + CAP
    again = h.etf("holdings", "--date", DAY, "--symbols", many, "--json")
    assert again["count_mismatches"] == 0 and again["resolved"] == 1
    assert h.resolved("etf_holdings_count_mismatch") == 1


def test_a_constituent_listed_twice_is_refused_and_nothing_stored(harness: Harness) -> None:
    h = harness
    stored = "SELECT COUNT(*) FROM etf_holdings"
    before, failed = h.rows(stored)[0][0], len(h.alerts("etf_holdings_failures"))
    h.sim.config.etf_component_repeat = True
    try:
        got = h.etf("holdings", "--date", DAY, "--symbols", ETFS[0], "--json", code=1)
    finally:
        h.sim.config.etf_component_repeat = False
    assert got["failures"] == 1 and got["collected"] == 0 and got["failed_over_limit"]
    assert h.rows(stored)[0][0] == before  # the ETF's earlier set stays current
    alerts = h.alerts("etf_holdings_failures")
    assert len(alerts) == failed + 1
    assert "KisProtocolError" in alerts[-1][2] and "listed twice" in alerts[-1][2]


def test_the_list_and_the_masters_disagreeing_by_over_1pct_is_alerted(harness: Harness) -> None:
    h = harness
    _masters(h)
    h.etf("check", "--date", DAY)
    assert h.alerts("etf_universe_mismatch") == []  # they agree
    h.sim.faults.delisted = {ETFS[0]}  # the masters drop it first; the KRX list still has it
    try:
        _masters(h)
        h.etf("check", "--date", DAY)
        alerts = h.alerts("etf_universe_mismatch")
        assert len(alerts) == 1 and alerts[0][0] == "warning"
        assert f"({len(ETFS)})" in alerts[0][2] and "differ in 1 symbols" in alerts[0][2]
        assert h.resolved("etf_universe_mismatch") == 0
        assert h.etf("list", "--json")["removed"] == 1  # the KRX list catches up
        h.etf("check", "--date", DAY)
        assert h.resolved("etf_universe_mismatch") == 1
    finally:
        h.sim.faults.delisted = set()
