"""`Catalog`: from symbols and a time range to an Arrow table, across database and archive.

A day's rows are wherever they are: today's in the database, days past their retention in
the archive only, a day archived and not yet pruned (or with late rows) in both. A read takes
both and keeps each row once (by its event's identity, ``source`` and ``seq``), so the answer
is the same before and after the archive job and the pruning ran.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from observer.calendar.clock import Clock, SystemClock
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import Venues, venues_from
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.data.archive import ArchiveReader
from observer.data.bars import BEST_BARS_SCHEMA, best_bars
from observer.data.conform import conform, empty
from observer.data.coverage import MinuteFacts, by_trades, coverage_table, tick_facts
from observer.data.database import DatabaseReader
from observer.data.datasets import BARS, DATASETS, GAPS, TICKS, Dataset, as_floats
from observer.data.span import DataRequestError, Span, When, span_of
from observer.db.archive import archive_root
from observer.db.engine import make_engine
from observer.db.retention_queries import ARCHIVED_TABLES, archive_order
from observer.errors import ArchiveError, ObserverError, StoreError

__all__ = ["Catalog", "open_catalog"]

Symbols = str | Iterable[str] | None
# What the coverage and the best bars read of the trades: each minute's count, volume, prices.
_MINUTE_TICKS = TICKS.project("symbol", "venue", "exchange_ns", "price", "qty")
_BAR_MINUTES = BARS.project("symbol", "venue", "minute_ns", "quality")


class Catalog:
    """The stored data of one observer: its database at ``url``, its archives under ``root``.

    Every read takes ``symbols`` (one, several, or None for all), ``start`` and ``end`` (see
    `observer.data.span`: a day at either end is the whole KST day, an instant as the end is
    excluded) and ``venue`` ("KRX", "NXT", "combined"; None: all), and returns an Arrow table
    in the dataset's schema (`Dataset.returned`), sorted by symbol and time: ``.to_pandas()``,
    ``polars.from_arrow(...)``, or DuckDB's ``FROM table``. Rates come as float64 unless the
    catalog is opened with ``decimals=True`` (exact ``decimal128(24, 8)``, as stored). On
    PostgreSQL it keeps a connection open: `close` it, or use it as a context manager.
    """

    def __init__(
        self,
        url: str,
        root: Path,
        venues: Venues | None = None,
        edge_s: float = 2.0,
        clock: Clock | None = None,
        *,
        decimals: bool = False,
    ) -> None:
        """Read the database at ``url`` and the archives under ``root``.

        ``venues``: the venues' sessions (default: the shipped hours); ``edge_s``: how long a
        slot must be held either side of a minute for it to count as watched (as reconciled);
        ``clock``: now, for a day still going on (default: the system's); ``decimals``: rates
        as exact decimals (Python ``Decimal`` in pandas: slow) instead of float64.
        """
        self.url = url
        self.decimals = decimals
        self.clock = clock or SystemClock()
        self.database = DatabaseReader(url)
        self.archive = ArchiveReader(root)
        self.venues = venues or _venues(Settings())
        self.edge_ns = int(edge_s * 1e9)

    def close(self) -> None:
        """Close the database connection it keeps (PostgreSQL); a later read opens another."""
        self.database.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def of(
        cls, settings: Settings, clock: Clock | None = None, *, decimals: bool = False
    ) -> Catalog:
        """The catalog of the observer ``settings`` configure."""
        return cls(
            settings.database.url,
            archive_root(settings.retention, settings.paths),
            _venues(settings),
            settings.gap_recovery.verify_edge_s,
            clock,
            decimals=decimals,
        )

    def ticks(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track B's trades."""
        return self.read("ticks", span_of(symbols, start, end, venue))

    def books(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track B's ten-level books: each side's prices and quantities as lists, best first."""
        return self.read("books", span_of(symbols, start, end, venue))

    def bars(
        self,
        symbols: Symbols,
        start: When,
        end: When | None = None,
        venue: str | None = None,
        *,
        source: Literal["best", "stored"] = "best",
    ) -> pa.Table:
        """Minute bars: each minute's best, or those stored.

        ``best`` (`observer.data.bars.BEST_BARS_SCHEMA`): each minute's bar from the stored
        trades where they are whole, else KIS's recovered one; a minute missed and not
        recovered has none. ``stored`` (the ``bars`` dataset): only the bars recovered from
        KIS for gaps, as stored (``quality``, ``gap_id``).
        """
        span = span_of(symbols, start, end, venue)
        if source == "stored":
            return self.read("bars", span)
        if source != "best":
            raise DataRequestError(f"source is 'best' or 'stored', not {source!r}")
        days = [self._best_bars(span, day) for day in span.days()]
        table = pa.concat_tables(days) if days else BEST_BARS_SCHEMA.empty_table()
        inside = pc.and_(
            pc.greater_equal(table["minute_ns"], span.lo_ns),
            pc.less(table["minute_ns"], span.hi_ns),
        )
        return table.filter(inside).combine_chunks()

    def coverage(self, symbols: Symbols, day: When, venue: str | None = None) -> pa.Table:
        """One row per symbol, venue and minute of ``day`` (`observer.data.coverage`).

        ``symbols`` None: every symbol Track B watched that day.
        """
        span = span_of(symbols, day, None, venue)
        first = next(span.days())
        whole = _day_span(span, first)
        return self._coverage(whole, first, self.read(_MINUTE_TICKS, whole))

    def _coverage(self, whole: Span, first: date, ticks: pa.Table) -> pa.Table:
        """``first``'s coverage of ``whole``'s symbols and venue, given the day's ``ticks``."""
        gaps: dict[tuple[str, str], list[tuple[str, int, int, str]]] = defaultdict(list)
        for gap in self.read(GAPS, whole).to_pylist():
            state = gap["state"]
            if by_trades(state, gap["missing_volume"], gap["bars"], gap["trades"] or 0):
                state = "recovered_trades"
            gaps[(gap["symbol"], gap["venue"])].append(
                (gap["gap_id"], gap["start_ns"], gap["end_ns"], state)
            )
        bars = self.read(_BAR_MINUTES, whole)
        bars = bars.filter(pc.equal(bars["quality"], "recovered"))
        minutes = zip(*(bars[c].to_pylist() for c in ("symbol", "venue", "minute_ns")), strict=True)
        facts = MinuteFacts(tick_facts(ticks), gaps, frozenset(minutes))
        engine = make_engine(self.url, read_only=True)  # the small reads: slots, reconciliation
        try:
            return coverage_table(
                engine,
                self.venues,
                first,
                whole.symbols,
                whole.venue,
                facts,
                edge_ns=self.edge_ns,
                now_ns=self.clock.now_ns(),
            )
        finally:
            engine.dispose()

    def snapshots(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track A's snapshots of the universe."""
        return self.read("snapshots", span_of(symbols, start, end, venue))

    def gaps(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """The gaps overlapping the range, each in its current state."""
        return self.read("gaps", span_of(symbols, start, end, venue))

    def market_status(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track B's market-operation records: halts, VIs and session events, as received."""
        return self.read("market_status", span_of(symbols, start, end, venue))

    def program_trades(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track B's program trading: each record the day's so far."""
        return self.read("program_trades", span_of(symbols, start, end, venue))

    def broker_trades(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track B's brokers' trading: a row per ranked broker of each record, as received."""
        return self.read("broker_trades", span_of(symbols, start, end, venue))

    def auction_expected(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track B's expected matches of KRX's opening and closing auctions, as received."""
        return self.read("auction_expected", span_of(symbols, start, end, venue))

    def vi_notices(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Track B's VI feed: each VI's start and end as received (the whole market's)."""
        return self.read("vi_notices", span_of(symbols, start, end, venue))

    def instruments(self, symbols: Symbols = None) -> pa.Table:
        """The instruments the master files list (every market, the delisted too: ``active``)."""
        return self.read("instruments", _everything(symbols))

    def sectors(self, symbols: Symbols = None) -> pa.Table:
        """Each instrument's newest sector classification (KIS's code, GICS, its origin)."""
        return self.read("sectors", _everything(symbols))

    def universe(self, start: When, end: When | None = None, symbols: Symbols = None) -> pa.Table:
        """The universe of each KST day in the range: its members by rank.

        The day's newest build, with the closes, caps, volumes and Nextrade standing it
        chose them by.
        """
        return self.read("universe", span_of(symbols, start, end))

    def etf_daily(self, symbols: Symbols, start: When, end: When | None = None) -> pa.Table:
        """Each ETF's sessions in the range: OHLCV, NAV, premium, net assets, units.

        The newest row of each ETF's day.
        """
        return self.read("etf_daily", span_of(symbols, start, end))

    def investor_estimates(
        self, symbols: Symbols, start: When, end: When | None = None
    ) -> pa.Table:
        """Each stock's intraday investor estimates of each day: a row per posting (1-5)."""
        return self.read("investor_estimates", span_of(symbols, start, end))

    def investor_flows(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Each stock's final net buying by investor group, a row per day and venue."""
        return self.read("investor_flows", span_of(symbols, start, end, venue))

    def program_trades_daily(
        self, symbols: Symbols, start: When, end: When | None = None, venue: str | None = None
    ) -> pa.Table:
        """Each stock's program trading, a row per day and venue."""
        return self.read("program_trades_daily", span_of(symbols, start, end, venue))

    def volatility_interruptions(
        self, symbols: Symbols, start: When, end: When | None = None
    ) -> pa.Table:
        """Each stock's volatility interruptions of each day, as KIS lists them after it."""
        return self.read("volatility_interruptions", span_of(symbols, start, end))

    def read(self, name: str | Dataset, span: Span) -> pa.Table:
        """A dataset's rows in ``span``, from database and archive, once each.

        In `Dataset.returned`'s schema (the catalog's ``decimals``).
        """
        dataset = DATASETS[name] if isinstance(name, str) else name
        if span.venue is not None and "venue" not in dataset.stored:
            raise DataRequestError(f"{dataset.name} has no venue: ask without one")
        stored = self.database.read(dataset, span)
        parts = [_conformed(stored, dataset, StoreError)] if stored.num_rows else []
        ordered = False  # the rows are in ``dataset.order`` already
        if dataset.archived:
            archived = self.archive.read(dataset, span)
            if archived is not None and archived.table.num_rows:
                parts.append(_venue_known(_conformed(archived.table, dataset, ArchiveError)))
                if span.venue is not None:
                    parts[-1] = parts[-1].filter(pc.equal(parts[-1]["venue"], span.venue))
                ordered = archived.ordered and _in_archive_order(dataset)
        if not parts:
            return self._rates(empty(dataset))
        table = parts[0] if len(parts) == 1 else _once(pa.concat_tables(parts), dataset)
        if dataset.newest:
            table = _newest(table, dataset.newest)
        if not (ordered and len(parts) == 1 and not dataset.newest):
            table = table.sort_by([(c, "ascending") for c in dataset.order])
        return self._rates(table.combine_chunks())

    def _rates(self, table: pa.Table) -> pa.Table:
        """``table``'s rates as the catalog returns them: `as_floats` unless ``decimals``."""
        return table if self.decimals else as_floats(table)

    def stored_days(self, name: str, symbols: Symbols = None) -> tuple[date, date] | None:
        """The first and last KST day of a dataset's rows, database and archive together.

        Of ``symbols``' rows in the database when given (the (symbol, time) index answers
        that; every row's bounds are a scan of the table). None when it holds none, or its
        rows are no one day's (a reference dataset). For an empty answer to say where the
        data is.
        """
        dataset = DATASETS[name]
        if dataset.kind == "reference":
            return None
        column = dataset.time_column
        chosen = [symbols] if isinstance(symbols, str) else list(symbols or ())
        where, params = "", list[str]()
        if chosen and "symbol" in dataset.stored:
            marks = ", ".join(self.database.placeholder(n + 1) for n in range(len(chosen)))
            where, params = f" WHERE symbol IN ({marks})", chosen
        # The names are the dataset's own; the symbols are bound.
        sql = f"SELECT MIN({column}), MAX({column}) FROM {dataset.table}{where}"  # noqa: S608
        found = self.database.query(sql, params)
        days: list[date] = []
        for value in found.to_pylist()[0].values():
            if value is None:
                continue
            if isinstance(value, str):  # a date column as SQLite holds it
                days.append(date.fromisoformat(value[:10]))
            else:
                days.append(value if isinstance(value, date) else _kst_day(int(value)))
        folder = self.archive.root / dataset.table
        if dataset.archived and folder.is_dir():
            days += [
                date.fromisoformat(entry.name.removeprefix("date="))
                for entry in folder.iterdir()
                if entry.is_dir() and entry.name.startswith("date=")
            ]
        return (min(days), max(days)) if days else None

    def _best_bars(self, span: Span, day: date) -> pa.Table:
        whole = _day_span(span, day)
        ticks = self.read(_MINUTE_TICKS, whole)  # read once: the coverage's and the bars'
        cover = self._coverage(whole, day, ticks)
        return best_bars(cover, ticks, self.read(BARS, whole))


def open_catalog(config: Path | str | None = None, *, decimals: bool = False) -> Catalog:
    """The catalog of the observer ``config`` (default: `default_config_path`) sets up.

    ``decimals``: rates exact (see `Catalog`).
    """
    settings = load_settings(Path(config) if config is not None else None)
    return Catalog.of(settings, decimals=decimals)


def _venues(settings: Settings) -> Venues:
    return venues_from(settings.venues, timeline_from(settings.phases, settings.calendar))


def _day_span(span: Span, day: date) -> Span:
    """``span``'s symbols and venue over the whole KST ``day``."""
    whole = span_of(span.symbols, day)
    return Span(span.symbols, span.venue, whole.lo_ns, whole.hi_ns)


def _everything(symbols: Symbols) -> Span:
    """A span of ``symbols`` whose range a reference dataset does not read."""
    return span_of(symbols, 0, 1)


def _newest(table: pa.Table, alike: tuple[str, ...]) -> pa.Table:
    """The rows of the newest event (``produced_ns``, then ``seq``) among those ``alike``."""
    ordered = table.sort_by(
        [*((c, "ascending") for c in alike), ("produced_ns", "descending"), ("seq", "descending")]
    )
    newest = ordered.group_by(list(alike), use_threads=False).aggregate(
        [("source", "first"), ("seq", "first")]
    )
    chosen = newest.rename_columns([*alike, "source", "seq"])
    return table.join(chosen, [*alike, "source", "seq"], join_type="inner", use_threads=False)


def _in_archive_order(dataset: Dataset) -> bool:
    """Whether rows in their archive files' order (`archive_order`) are in ``dataset.order``."""
    files = tuple(c.name for c in archive_order(ARCHIVED_TABLES[dataset.table]))
    return files[: len(dataset.order)] == dataset.order


def _conformed(table: pa.Table, dataset: Dataset, error: type[ObserverError]) -> pa.Table:
    """`conform`, a value of another type than its column's raised as ``error``."""
    try:
        return conform(table, dataset)
    except TypeError as exc:
        raise error(f"{dataset.table} holds a value observer.data cannot read: {exc}") from exc


def _kst_day(ns: int) -> date:
    return datetime.fromtimestamp(ns // 1_000_000_000, KST).date()


def _venue_known(table: pa.Table) -> pa.Table:
    """Rows archived before venues were recorded are KRX's."""
    index = table.schema.get_field_index("venue")
    return table.set_column(index, "venue", pc.fill_null(table["venue"], "KRX"))


def _once(table: pa.Table, dataset: Dataset) -> pa.Table:
    """Each row once by its identity (``dataset.key``): the first of those read twice."""
    numbered = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = numbered.group_by(list(dataset.key), use_threads=False).aggregate([("_row", "min")])
    return table.take(first["_row_min"])
