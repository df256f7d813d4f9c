"""The day's gap-recovery report read from a database: what it reads, its chart, a day
with nothing watched."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text
from typer.testing import CliRunner

from observer.calendar.phases import KST
from observer.db import models as m
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.db.retention_queries import ARCHIVED_TABLES
from observer.writer.partitions import Partitions
from workers.gap_recovery.cli import app as gaps_app
from workers.gap_recovery.report import chart_html, day_report

S = 1_000_000_000
DAY = date(2026, 11, 19)  # the CSAT: a late day in config/observer.toml, 10:00-16:30
SLOT = {
    "account": "a1",
    "slot": 0,
    "trigger": "volume",
    "score": Decimal("1"),
    "reason": "",
    "replaced_symbol": "",
    "expires_ns": 0,
}


def at(hour: int, minute: int = 0, day: date = DAY) -> int:
    return int(datetime.combine(day, time(hour, minute), tzinfo=KST).timestamp()) * S


def ticks(symbol: str, first: int, n: int, seq: int) -> list[dict[str, Any]]:
    """``n`` ticks a second apart from ``first``, received 50 ms after their trade."""
    return [
        {
            "source": "track_b",
            "seq": seq + i,
            "produced_ns": first + i * S,
            "symbol": symbol,
            "exchange_ns": first + i * S,
            "received_ns": first + i * S + 50_000_000,
            "price": 100,
            "qty": 1,
            "cum_volume": i,
            "cum_value": 100 * i,
            "change_rate": Decimal("0"),
            "ask1": 101,
            "bid1": 100,
            "strength": Decimal("0"),
            "side": "1",
            "session": "2",
            "halted": False,
            "account": "a1",
        }
        for i in range(n)
    ]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":  # each day in its own partition, as the writer does
        for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
            Partitions(engine, 0).ensure(ARCHIVED_TABLES["trade_ticks"], day)
    yield engine
    engine.dispose()


def _plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    """The plan of each statement, one line a step."""
    explain = "explain query plan " if engine.dialect.name == "sqlite" else "explain "
    with engine.connect() as conn:
        return [
            str(row[-1])
            for statement, parameters in statements
            for row in conn.exec_driver_sql(explain + statement, parameters)
        ]


def test_the_day_s_ticks_are_read_from_that_day_alone(engine: Engine) -> None:
    """Only the day's index entries (SQLite) or partition (PostgreSQL), not every tick kept."""
    with engine.begin() as conn:
        seq = 1
        for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
            for symbol in ("005930", "000660"):
                conn.execute(insert(m.TradeTickRow), ticks(symbol, at(10, day=day), 30, seq))
                seq += 30
        conn.execute(insert(m.TradeTickRow), ticks("035420", at(11), 5, seq))
    statements: list[tuple[str, Any]] = []

    def seen(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "trade_ticks" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.connect() as conn:
            report = day_report(conn, DAY)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert {s.symbol: s.ticks for s in report.symbols} == {"005930": 30, "000660": 30, "035420": 5}
    assert statements
    plans = _plans(engine, statements)
    if engine.dialect.name == "sqlite":  # a seek per symbol, then its range of the day
        assert not [p for p in plans if p.startswith("SCAN trade_ticks")], plans
        assert any("(symbol=? AND exchange_ns>? AND exchange_ns<?)" in p for p in plans), plans
    else:
        scanned = {name for p in plans for name in re.findall(r" on (trade_ticks\w*)", p)}
        assert scanned == {f"trade_ticks_{DAY:%Y%m%d}"}, plans


def _late_day(url: str) -> None:
    """005930 watched 10:00-16:30 (the CSAT's session), a gap 16:00-16:05 not recovered."""
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(m.SlotDecisionRow),
            [
                {"source": "track_b", "seq": 1, "produced_ns": at(10), "action": "allocate"}
                | {"symbol": "005930", **SLOT},
                {"source": "track_b", "seq": 2, "produced_ns": at(16, 30), "action": "release"}
                | {"symbol": "005930", **SLOT},
            ],
        )
        conn.execute(
            insert(m.Gap),
            [
                {
                    "gap_id": "g1",
                    "symbol": "005930",
                    "account": "a1",
                    "start_ns": at(16),
                    "end_ns": at(16, 5),
                    "reason": "disconnect",
                    "state": "unrecoverable",
                    "bars": 0,
                    "detail": "",
                    "detected_ns": at(16, 5),
                    "updated_ns": at(16, 6),
                }
            ],
        )
    engine.dispose()


def test_the_chart_shows_a_late_day_whole(sqlite_url: str) -> None:
    _late_day(sqlite_url)
    with make_engine(sqlite_url, read_only=True).connect() as conn:
        report = day_report(conn, DAY)
    page = chart_html(report)
    hours = re.findall(r">(\d\d:\d\d)</text>", page)
    assert hours == [f"{h}:00" for h in range(10, 18)]
    position = {
        h: float(x) for x, h in re.findall(r'<text x="([\d.]+)" y="14"[^>]*>([\d:]+)<', page)
    }
    watched = re.findall(r'<rect x="([\d.]+)" y="\d+" width="([\d.]+)" height="6"', page)
    gap = re.findall(r'<rect x="([\d.]+)" y="\d+" width="([\d.]+)" height="12"', page)
    (start, width), (gap_x, gap_width) = watched[0], gap[0]
    assert float(start) == pytest.approx(position["10:00"], abs=0.1)
    half_past_four = (position["16:00"] + position["17:00"]) / 2
    assert float(start) + float(width) == pytest.approx(half_past_four, abs=0.1)
    five_minutes = (position["17:00"] - position["16:00"]) / 12
    assert float(gap_x) == pytest.approx(position["16:00"], abs=0.1)
    assert float(gap_width) == pytest.approx(five_minutes, abs=0.1)


def test_a_day_with_nothing_watched_has_no_completeness(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:  # a symbol's ticks, but no slot held: nothing watched
        conn.execute(insert(m.TradeTickRow), ticks("005930", at(10, day=DAY), 3, 1))
    engine.dispose()
    for day, symbols in (("2026-11-20", 0), ("2026-11-19", 1)):
        args = ["report", "--date", day, "--config", str(config)]
        shown = CliRunner().invoke(gaps_app, args)
        assert shown.exit_code == 0, shown.output  # no data is no failure, as in other reports
        (line,) = [x for x in shown.output.splitlines() if x.startswith("completeness:")]
        assert "nothing was watched" in line and "100.0%" not in line, line
        assert "100.0%" not in "".join(shown.output.splitlines()[2:])
        as_json = CliRunner().invoke(gaps_app, [*args, "--json"])
        assert as_json.exit_code == 0, as_json.output
        summary = json.loads(as_json.output.splitlines()[-1])
        assert summary["completeness_pct"] is None
        assert [r["completeness_pct"] for r in summary["symbols"]] == [None] * symbols
    _late_day(url)  # watched: the figure is back
    with make_engine(url, read_only=True).connect() as conn:
        summary = day_report(conn, DAY).summary()
    assert summary.completeness_pct == round(100 * (1 - 300 / 23_400), 3)


def test_the_report_counts_what_the_tick_query_reads(engine: Engine) -> None:
    """A slot still held at the end closes with the day's last tick, as received."""
    with engine.begin() as conn:
        conn.execute(
            insert(m.SlotDecisionRow),
            [
                {"source": "track_b", "seq": 1, "produced_ns": at(10), "action": "allocate"}
                | {"symbol": "005930", **SLOT}
            ],
        )
        conn.execute(insert(m.TradeTickRow), ticks("005930", at(10), 60, 1))
        conn.execute(insert(m.TradeTickRow), ticks("005930", at(10, day=DAY + timedelta(1)), 9, 61))
    with engine.connect() as conn:
        (row,) = day_report(conn, DAY).symbols
        rows = conn.execute(text("select count(*) from trade_ticks")).scalar_one()
    assert rows == 69 and row.ticks == 60
    assert row.watched == [(at(10), at(10) + 59 * S + 50_000_000)]


def test_detection_latency_leaves_the_reconciliations_gaps_out(engine: Engine) -> None:
    """150 gaps seen within a second; 3 found by the reconciliation after the close."""
    rows = [
        {
            "gap_id": f"a1:005930:{n}",
            "symbol": "005930",
            "start_ns": at(10, n % 60) + n,
            "end_ns": at(10, n % 60) + n + 3 * S,
            "reason": "silence",
            "detected_ns": at(10, n % 60) + n + 3 * S + S // 2,
        }
        for n in range(150)
    ] + [
        {
            "gap_id": f"reconciliation:000660:{n}",
            "symbol": "000660",
            "start_ns": at(11, n),
            "end_ns": at(11, n) + 59 * S,
            "reason": "reconciliation",
            "detected_ns": at(16, 31),
        }
        for n in range(3)
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(m.Gap),
            [
                row
                | {
                    "account": "a1",
                    "state": "recovered",
                    "bars": 1,
                    "detail": "",
                    "updated_ns": row["detected_ns"] + 2 * S,
                }
                for row in rows
            ],
        )
    with engine.connect() as conn:
        summary = day_report(conn, DAY).summary()
    assert summary.gaps == 153
    assert summary.detection_p99_s == 0.5
