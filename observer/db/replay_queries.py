"""A day replayed from the journal against the rows its live run stored, table by table.

``observer journal replay --compare`` asks this after the replay: for each table a replay
writes (`REPLAYED_TABLES`), the live database's rows of the day's journaled processes (their
bus sources, each named as its journal files are, ``process_of``) against the
scratch database's rows of the replay's sources (``journal.<process>.<YYYYMMDD>``), as
multisets of every column but the audit ones (source, seq, idx, produced_ns) and the receipt
stamps (``received_ns``, ``fetched_ns``, ``observed_ns``: a REST answer's receipt is the
journal's stamp, a moment before its process's). A row of a day is one produced that KST day.

Rows are counted by their hash, a pass over each side, so memory grows with a table's rows
(a few tens of bytes each), never with their width; an example of each side's extra rows is
read back only where the two differ. The live side is found through its sources' key
(source, seq) and kept to the day by ``produced_ns``: every stored day of those processes is
read past once per table, so a database holding a month takes about a month's reading (the
demo's day, 660,000 rows: seconds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Column, Connection, Engine, Table, select

from observer.calendar.phases import KST
from observer.db.models import Base

__all__ = ["REPLAYED_TABLES", "TableComparison", "compare_replayed"]

# The tables a journal's replay writes (its events' tables), in the order they are reported.
REPLAYED_TABLES = (
    "trade_ticks",
    "order_books",
    "market_status",
    "program_trades",
    "broker_trades",
    "auction_expected",
    "vi_notices",
    "price_snapshots",
    "investor_estimates",
    "investor_flows",
    "program_trades_daily",
    "volatility_interruptions",
    "minute_bars",
)
_AUDIT = frozenset({"source", "seq", "idx", "produced_ns"})
_STAMPS = frozenset({"received_ns", "fetched_ns", "observed_ns"})
_NS = 1_000_000_000
_CHUNK = 10_000  # rows fetched at a time


@dataclass(frozen=True)
class TableComparison:
    """One table's rows of the day: live, replayed, and those only one side holds.

    ``example_live`` / ``example_replayed``: one row only that side holds (column=value,
    ...), "" where there is none.
    """

    table: str
    live: int
    replayed: int
    only_live: int
    only_replayed: int
    example_live: str = ""
    example_replayed: str = ""

    @property
    def same(self) -> bool:
        """Whether both sides hold the same rows (the compared columns)."""
        return self.only_live == 0 and self.only_replayed == 0

    def line(self) -> str:
        """One line for a person."""
        text = f"{self.table}: {self.live:,} live, {self.replayed:,} replayed"
        if self.same:
            return text + ", the same rows"
        return text + f": {self.only_live:,} only live, {self.only_replayed:,} only replayed"


def compare_replayed(
    live: Engine,
    scratch: Engine,
    day: date,
    processes: Sequence[str],
    process_of: Callable[[str], str],
) -> list[TableComparison]:
    """Each of `REPLAYED_TABLES` compared on ``day`` (see the module).

    ``processes``: the journal's process names replayed; ``process_of``: the process name a
    live bus source's journal files take (`observer.kis.journal.journal_name`). A table
    neither side holds a row of is left out.
    """
    start = int(datetime(day.year, day.month, day.day, tzinfo=KST).timestamp()) * _NS
    end = start + int(timedelta(days=1).total_seconds()) * _NS
    replayed_sources = [f"journal.{p}.{day:%Y%m%d}" for p in processes]
    found = []
    with live.connect() as old, scratch.connect() as new:
        sources = [s for s in _sources(old) if process_of(s) in processes]
        for name in REPLAYED_TABLES:
            table = Base.metadata.tables[name]
            before = _Side(old, table, sources, start, end)
            after = _Side(new, table, replayed_sources, start, end)
            counts = Counter(hash(row) for row in before.rows())
            live_rows = counts.total()
            replayed_rows = 0
            for row in after.rows():
                counts[hash(row)] -= 1
                replayed_rows += 1
            if not live_rows and not replayed_rows:
                continue
            only_live = {h for h, n in counts.items() if n > 0}
            only_replayed = {h for h, n in counts.items() if n < 0}
            found.append(
                TableComparison(
                    name,
                    live_rows,
                    replayed_rows,
                    sum(counts[h] for h in only_live),
                    -sum(counts[h] for h in only_replayed),
                    before.example(only_live),
                    after.example(only_replayed),
                )
            )
    return found


def _sources(conn: Connection) -> list[str]:
    """Every bus source the database has committed from (its marks: a row each)."""
    marks = Base.metadata.tables["bus_offsets"]
    return [s for (s,) in conn.execute(select(marks.c.source))]


class _Side:
    """One database's rows of a table from ``sources`` produced in ``[start, end)``."""

    def __init__(
        self, conn: Connection, table: Table, sources: list[str], start: int, end: int
    ) -> None:
        self.conn = conn
        self.columns: list[Column[object]] = [
            c for c in table.columns if c.name not in _AUDIT | _STAMPS
        ]
        self.query = (
            select(*self.columns)
            .where(table.c.source.in_(sources))
            .where(table.c.produced_ns >= start, table.c.produced_ns < end)
        )

    def rows(self) -> Iterator[tuple[object, ...]]:
        for row in self.conn.execute(self.query.execution_options(yield_per=_CHUNK)):
            yield tuple(row)

    def example(self, hashes: set[int]) -> str:
        """The first row whose hash is one of ``hashes``, as column=value pairs ("" for none)."""
        if not hashes:
            return ""
        for row in self.rows():
            if hash(row) in hashes:
                pairs = zip(self.columns, row, strict=True)
                return ", ".join(f"{c.name}={value}" for c, value in pairs)
        return ""
