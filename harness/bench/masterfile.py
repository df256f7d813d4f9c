"""``observer bench master-file``: parse and diff all fourteen master files; ``tickers("US")``.

On the simulator's masters for two consecutive sessions (the second with new, removed and renamed
listings) and a SQLite database of the first: parsing and diffing every file against a raw unzip,
cp949 decode, split and ``sqlite3`` read, and ``tickers("US")`` against a bare ``sqlite3`` fetch
of the same rows.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from harness.bench.timing import best_seconds
from harness.sim.market import Market
from harness.sim.masters import master_files
from observer.calendar.trading import TradingCalendar
from observer.db import migrate
from observer.db.engine import make_engine
from observer.db.models import Instrument
from observer.kis.master import extract_single
from observer.reference.instruments import MASTER_FILES, tickers
from workers.master_file.diff import diff, known_listings
from workers.master_file.reading import read_listings

__all__ = ["MasterFileBenchReport", "run_masterfile_bench"]


@dataclass
class MasterFileBenchReport:
    """Numbers of one run (best of ``repeats``)."""

    records: int = 0
    changes: int = 0
    parse_diff_s: float = 0.0
    baseline_s: float = 0.0
    tickers_us: int = 0
    tickers_us_ms: float = 0.0
    tickers_baseline_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        return {
            "records": self.records,
            "changes": self.changes,
            "parse_diff_s": round(self.parse_diff_s, 4),
            "baseline_s": round(self.baseline_s, 4),
            "parse_diff_ratio": round(self.parse_diff_s / self.baseline_s, 2),
            "tickers_us": self.tickers_us,
            "tickers_us_ms": round(self.tickers_us_ms, 2),
            "tickers_baseline_ms": round(self.tickers_baseline_ms, 2),
            "tickers_ratio": round(self.tickers_us_ms / self.tickers_baseline_ms, 2),
        }

    def lines(self) -> list[str]:
        """Human-readable report."""
        s = self.summary()
        return [
            "masterfile bench",
            f"  parse + diff, 14 files   {s['parse_diff_s']:.3f} s for {s['records']:,} "
            f"records ({s['changes']} changes)  target < 1 s",
            f"  raw unzip+split+select   {s['baseline_s']:.3f} s  ratio {s['parse_diff_ratio']}",
            f"  tickers('US')            {s['tickers_us_ms']:.1f} ms for {s['tickers_us']:,} "
            f"stocks  target < 50 ms (the earlier system: 239 ms)",
            f"  raw sqlite3 fetch        {s['tickers_baseline_ms']:.1f} ms  "
            f"ratio {s['tickers_ratio']}",
        ]


def run_masterfile_bench(seed: int = 1, repeats: int = 3) -> MasterFileBenchReport:
    """Build the files and the database, then time the work and its baselines."""
    market = Market(seed, TradingCalendar())
    day, next_day = market.sessions[-3], market.sessions[-2]
    before = master_files(market, {s: market.close(s, day) for s in market.listings})
    kosdaq = sorted(s for s, x in market.listings.items() if x.market == "KOSDAQ")
    after = master_files(
        market,
        {s: market.close(s, next_day) for s in market.listings},
        delisted=kosdaq[:5],
        renamed={s: "새이름" for s in kosdaq[5:10]},
    )
    report = MasterFileBenchReport()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                for file in MASTER_FILES:
                    rows = read_listings(file, extract_single(before[file.name], file.member))
                    values = [
                        {
                            **{f: getattr(x, f) for f in x.__struct_fields__},
                            "active": True,
                            "listed_ns": 0,
                            "updated_ns": 0,
                        }
                        for x in rows
                    ]
                    conn.execute(insert(Instrument), values)

            def parse_and_diff() -> None:
                records = changes = 0
                with engine.connect() as conn:
                    for file in MASTER_FILES:
                        listings = read_listings(
                            file, extract_single(after[file.name], file.member)
                        )
                        d = diff(listings, known_listings(conn, file.market))
                        records += len(listings)
                        changes += len(d.new) + len(d.changed) + len(d.removed)
                report.records, report.changes = records, changes

            raw = sqlite3.connect(path)

            def baseline() -> None:
                for file in MASTER_FILES:
                    text = extract_single(after[file.name], file.member).decode("cp949")
                    for line in text.split("\n"):
                        line.split("\t")
                    query = "select * from instruments where market = ?"
                    raw.execute(query, (file.market,)).fetchall()

            def us() -> None:
                with engine.connect() as conn:
                    report.tickers_us = len(tickers(conn, "US"))

            def us_baseline() -> None:
                raw.execute(
                    "select * from instruments where region = 'US' and active and "
                    "security_type = 'stock' order by market, symbol"
                ).fetchall()

            report.parse_diff_s = best_seconds(parse_and_diff, repeats)
            report.baseline_s = best_seconds(baseline, repeats)
            report.tickers_us_ms = best_seconds(us, repeats + 2) * 1000
            report.tickers_baseline_ms = best_seconds(us_baseline, repeats + 2) * 1000
            raw.close()
        finally:
            engine.dispose()
    return report
