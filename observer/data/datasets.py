"""The datasets `observer.data` returns: which table each reads, and its columns' types.

Every dataset comes back with one Arrow schema whatever it was read from (SQLite, PostgreSQL,
a day archive): KRW amounts and counts ``int64``; rates, strengths and NAVs ``float64``, or
``decimal128(24, 8)`` (exact, as stored) when asked for decimals; flags ``bool``; a book's
levels an ``int64`` column each (``ask_price_1``, the best ask, to ``bid_qty_10``; NULL past
the levels sent); each instant as UTC nanoseconds (``*_ns``, ``int64``) beside its KST view
(``*_time``, ``timestamp[ns, tz=Asia/Seoul]``). ``source`` and ``seq`` name the event a row
came from (with ``idx`` for events of several rows): together they are the row's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from observer.db.archive import schema_of
from observer.db.models import BOOK_LEVEL_COLUMNS, Base

__all__ = ["DATASETS", "DECIMAL", "KST_TIME", "Dataset", "as_floats"]

DECIMAL = pa.decimal128(24, 8)
KST_TIME = pa.timestamp("ns", tz="Asia/Seoul")
_S, _I, _B = pa.string(), pa.int64(), pa.bool_()


@dataclass(frozen=True, slots=True)
class Dataset:
    """One dataset: its table, the column that dates a row, and its stored columns.

    ``time_column`` dates a row by a UTC-ns instant; a ``kind`` "spans" dataset's rows span
    a range from it (those overlapping the range are read), a "daily" dataset's is a date
    (KST), and a "reference" dataset has none (every row, the range unused). ``columns`` are
    the table's columns returned, with their types; ``views`` adds a KST timestamp column
    after each UTC-ns column it names. ``key`` is a row's identity (rows read twice, from the
    database and an archive, are kept once); ``order`` sorts the rows. ``newest``: of the rows
    alike in these columns, only the newest event's are current (a day's universe built
    again: the newest build's members).
    """

    name: str
    table: str
    time_column: str
    columns: tuple[tuple[str, pa.DataType], ...]
    views: tuple[str, ...]
    key: tuple[str, ...] = ("source", "seq")
    order: tuple[str, ...] = ()
    archived: bool = True  # the archive job writes its days to Parquet
    kind: str = "instants"  # "instants" | "spans" | "daily" | "reference"
    newest: tuple[str, ...] = ()

    @property
    def schema(self) -> pa.Schema:
        """The exact schema of the rows as stored: the columns, each view after its column."""
        fields: list[pa.Field] = []
        for name, kind in self.columns:
            fields.append(pa.field(name, kind))
            if name in self.views:
                fields.append(pa.field(name.removesuffix("_ns") + "_time", KST_TIME))
        return pa.schema(fields)

    def returned(self, decimals: bool = False) -> pa.Schema:
        """The schema a read returns: `schema`, its decimals as float64 unless ``decimals``."""
        return self.schema if decimals else as_floats(self.schema.empty_table()).schema

    def project(self, *names: str) -> Dataset:
        """The dataset narrowed to the columns ``names`` and its key (a cheaper read)."""
        keep = set(names) | set(self.key)
        return replace(
            self,
            columns=tuple(c for c in self.columns if c[0] in keep),
            views=tuple(v for v in self.views if v in keep),
            order=tuple(o for o in self.order if o in keep),
        )

    @property
    def stored(self) -> list[str]:
        """The table columns a read selects."""
        return [name for name, _ in self.columns]


def as_floats(table: pa.Table) -> pa.Table:
    """``table`` with each decimal column as float64, as pandas and Polars compute natively.

    Each value the double nearest it while its digits fit a double's 53 bits (a rate's do),
    else within one unit in the last place.
    """
    for index, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            floats = pa.field(field.name, pa.float64(), field.nullable)
            table = table.set_column(index, floats, _floats(table.column(index)))
    return table


def _floats(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A decimal column as the nearest doubles.

    Arrow's own cast is off by one unit in the last place for about one value in 13
    (8491620.88444 -> 8491620.884440001); the unscaled integer, a double while under 2**53,
    divided by 10**scale is correctly rounded.
    """
    kind: pa.Decimal128Type = column.type
    unscaled = pa.decimal128(kind.precision, 0)  # the same 16 bytes a value, read unscaled
    try:
        ints = pa.chunked_array([c.view(unscaled) for c in column.chunks], unscaled)
        exact = ints.cast(pa.int64()).cast(pa.float64(), safe=False)
    except pa.ArrowInvalid:  # past 2**63 unscaled: no rate; Arrow's cast, within an ulp
        return column.cast(pa.float64())
    return pc.divide(exact, 10.0**kind.scale)


_VENUE = (("symbol", _S), ("venue", _S), ("trading_session", _S))
_EVENT = (("source", _S), ("seq", _I))

TICKS = Dataset(
    "ticks",
    "trade_ticks",
    "exchange_ns",
    (
        *_VENUE,
        ("exchange_ns", _I),
        ("received_ns", _I),
        ("price", _I),
        ("qty", _I),
        ("cum_volume", _I),
        ("cum_value", _I),
        ("change_rate", DECIMAL),
        ("ask1", _I),
        ("bid1", _I),
        ("strength", DECIMAL),
        ("side", _S),
        ("halted", _B),
        ("session", _S),
        ("market_session", _S),
        ("account", _S),
        *_EVENT,
    ),
    views=("exchange_ns",),
    order=("symbol", "exchange_ns", "source", "seq"),
)

BOOKS = Dataset(
    "books",
    "order_books",
    "exchange_ns",
    (
        *_VENUE,
        ("exchange_ns", _I),
        ("received_ns", _I),
        *((name, _I) for name in BOOK_LEVEL_COLUMNS),
        ("total_ask_qty", _I),
        ("total_bid_qty", _I),
        ("expected_price", _I),
        ("expected_qty", _I),
        ("mid_price", DECIMAL),
        ("mid_qty", _I),
        ("mid_side", _S),
        ("market_session", _S),
        ("account", _S),
        *_EVENT,
    ),
    views=("exchange_ns",),
    order=("symbol", "exchange_ns", "source", "seq"),
)

BARS = Dataset(
    "bars",
    "minute_bars",
    "minute_ns",
    (
        *_VENUE,
        ("minute_ns", _I),
        ("open", _I),
        ("high", _I),
        ("low", _I),
        ("close", _I),
        ("volume", _I),
        ("value", _I),
        ("quality", _S),
        ("gap_id", _S),
        *_EVENT,
        ("idx", _I),
    ),
    views=("minute_ns",),
    key=("source", "seq", "idx"),
    order=("symbol", "venue", "minute_ns", "source", "seq", "idx"),
)

SNAPSHOTS = Dataset(
    "snapshots",
    "price_snapshots",
    "observed_ns",
    (
        *_VENUE,
        ("observed_ns", _I),
        ("cycle_id", _S),
        ("market", _S),
        ("price", _I),
        ("change", _I),
        ("change_rate", DECIMAL),
        ("open", _I),
        ("high", _I),
        ("low", _I),
        ("volume", _I),
        ("traded_value", _I),
        ("upper_limit", _I),
        ("lower_limit", _I),
        ("base_price", _I),
        ("market_cap", _I),
        ("halted", _B),
        *_EVENT,
    ),
    views=("observed_ns",),
    order=("symbol", "observed_ns", "venue", "source", "seq"),
)

# A gap's current state; a gap is in a range when its span overlaps it.
GAPS = Dataset(
    "gaps",
    "gaps",
    "start_ns",
    (
        ("gap_id", _S),
        *_VENUE,
        ("start_ns", _I),
        ("end_ns", _I),
        ("reason", _S),
        ("state", _S),
        ("bars", _I),
        ("detail", _S),
        ("account", _S),
        ("detected_ns", _I),
        ("updated_ns", _I),
        # a volume_chain gap's shares missing and the cumulative volumes around them
        ("missing_volume", _I),
        ("cum_before", _I),
        ("cum_after", _I),
        # the exchange's trades gap recovery stored for it, and the shares they closed
        ("trades", _I),
        ("trade_volume", _I),
    ),
    views=("start_ns", "end_ns"),
    key=("gap_id",),
    order=("symbol", "start_ns", "gap_id"),
    archived=False,
    kind="spans",
)


def _of_model(name: str, table: str, kind: str, **chosen: object) -> Dataset:
    """A dataset of every column of ``table`` as the archives type them (`schema_of`)."""
    schema = schema_of(Base.metadata.tables[table])
    columns = tuple((f.name, f.type) for f in schema)
    options: dict[str, object] = {"views": (), "archived": False, "kind": kind, **chosen}
    time_column = "trade_date" if kind == "daily" else ""
    return Dataset(name, table, time_column, columns, **options)  # type: ignore[arg-type]


INSTRUMENTS = _of_model(
    "instruments", "instruments", "reference", key=("market", "symbol"), order=("symbol", "market")
)
SECTORS = _of_model(
    "sectors",
    "instrument_sectors",
    "reference",
    key=("market", "symbol"),
    order=("symbol", "market"),
)
# The day's universe: its members, by rank, as the newest build of the day chose them.
UNIVERSE = _of_model(
    "universe",
    "universe_members",
    "daily",
    key=("source", "seq", "idx"),
    order=("trade_date", "rank"),
    newest=("trade_date",),
)
ETF_DAILY = _of_model(
    "etf_daily",
    "etf_daily",
    "daily",
    order=("symbol", "trade_date"),
    newest=("symbol", "trade_date"),
)

# The investor job's intraday estimates: each stock's newest row of each posting of a day.
INVESTOR_ESTIMATES = _of_model(
    "investor_estimates",
    "investor_estimates",
    "daily",
    order=("trade_date", "symbol", "posting"),
    newest=("symbol", "trade_date", "posting"),
)
# The flows job's final figures: each stock's newest row of a day and venue.
INVESTOR_FLOWS = _of_model(
    "investor_flows",
    "investor_flows",
    "daily",
    order=("trade_date", "symbol", "venue"),
    newest=("symbol", "trade_date", "venue"),
)
PROGRAM_TRADES_DAILY = _of_model(
    "program_trades_daily",
    "program_trades_daily",
    "daily",
    order=("trade_date", "symbol", "venue"),
    newest=("symbol", "trade_date", "venue"),
)
# The flows job's VIs: each VI (a stock's, by its start) as the newest listing gave it.
VOLATILITY_INTERRUPTIONS = _of_model(
    "volatility_interruptions",
    "volatility_interruptions",
    "daily",
    order=("trade_date", "symbol", "started_ns"),
    newest=("symbol", "trade_date", "started_ns"),
)
# Track B's market-operation records (halts, VIs, session events), program trading,
# auctions' expected matches and VIs: kept in the database (never archived), dated by their
# receipt or by their exchange time.
MARKET_STATUS = replace(
    _of_model("market_status", "market_status", "instants"),
    time_column="received_ns",
    views=("received_ns",),
    order=("symbol", "received_ns", "source", "seq"),
)
PROGRAM_TRADES = replace(
    _of_model("program_trades", "program_trades", "instants"),
    time_column="exchange_ns",
    views=("exchange_ns",),
    order=("symbol", "exchange_ns", "source", "seq"),
)
AUCTION_EXPECTED = replace(
    _of_model("auction_expected", "auction_expected", "instants"),
    time_column="exchange_ns",
    views=("exchange_ns",),
    order=("symbol", "exchange_ns", "source", "seq"),
)
# Track B's brokers' trading: a row per ranked broker of each record, dated by its receipt.
BROKER_TRADES = replace(
    _of_model("broker_trades", "broker_trades", "instants"),
    time_column="received_ns",
    views=("received_ns",),
    key=("source", "seq", "idx"),
    order=("symbol", "received_ns", "source", "seq", "idx"),
)
# Track B's VI feed: the whole market's VIs as they start and end, dated by their receipt.
VI_NOTICES = replace(
    _of_model("vi_notices", "vi_notices", "instants"),
    time_column="received_ns",
    views=("received_ns", "started_ns", "ended_ns"),
    order=("symbol", "received_ns", "source", "seq"),
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        TICKS,
        BOOKS,
        BARS,
        SNAPSHOTS,
        GAPS,
        INSTRUMENTS,
        SECTORS,
        UNIVERSE,
        ETF_DAILY,
        MARKET_STATUS,
        PROGRAM_TRADES,
        BROKER_TRADES,
        AUCTION_EXPECTED,
        VI_NOTICES,
        INVESTOR_FLOWS,
        PROGRAM_TRADES_DAILY,
        VOLATILITY_INTERRUPTIONS,
        INVESTOR_ESTIMATES,
    )
}
