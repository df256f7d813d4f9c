"""``observer data DATASET`` and ``observer export``.

The datasets: ticks, books, bars, snapshots, gaps, coverage, market-status, program-trades,
broker-trades, auction-expected, vi-notices.
Each reads through `observer.data` (the database and the day archives as one). ``data``
writes a table, CSV, JSON lines or Parquet, to the terminal or ``--out`` (times in KST);
``export`` writes a Parquet file per dataset, symbol and day (`observer.data.export`).
Rates are float64 (``--decimals``: exact); a day at either end of a range is the whole day,
a time as ``--to`` is excluded (`observer.data.span`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, Literal

import typer

from observer.calendar.phases import KST
from observer.cli.support import fail

if TYPE_CHECKING:
    import pyarrow as pa

    from observer.data import Catalog

__all__ = ["data_app", "export", "report"]

data_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Read the stored data back: the database and the day archives as one.",
)


class Format(StrEnum):
    """How the rows are written."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


Symbols = Annotated[list[str] | None, typer.Argument(help="symbols (none: every symbol)")]
Day = Annotated[
    str | None, typer.Option("--date", help="a KST day, YYYY-MM-DD (default: today in Korea)")
]
From = Annotated[str | None, typer.Option("--from", help="from this KST time (instead of --date)")]
To = Annotated[
    str | None,
    typer.Option("--to", help="to this KST time, excluded (a day, YYYY-MM-DD: included)"),
]
VenueOpt = Annotated[str | None, typer.Option("--venue", help="KRX or NXT (default: both)")]
FormatOpt = Annotated[Format, typer.Option("--format", help="how the rows are written")]
Out = Annotated[Path | None, typer.Option("--out", help="write to this file (default: stdout)")]
Limit = Annotated[int, typer.Option("--limit", min=1, help="rows a table shows (first and last)")]
Config = Annotated[Path | None, typer.Option("--config", help="observer.toml to load")]
Decimals = Annotated[
    bool,
    typer.Option("--decimals", help="rates as exact decimals (default: float64, as pandas has)"),
]

_COMMAND = "observer data"
# What a table in a terminal shows of each dataset (the other formats: every column).
_BRIEF = {
    "ticks": ("symbol", "venue", "trading_session", "exchange_time", "price", "qty", "side"),
    "books": (
        "symbol",
        "venue",
        "exchange_time",
        "bid_qty_1",
        "bid_price_1",
        "ask_price_1",
        "ask_qty_1",
        "total_ask_qty",
        "total_bid_qty",
    ),
    "bars": ("symbol", "venue", "minute_time", "open", "high", "low", "close", "volume", "gap_id"),
    "best_bars": (
        "symbol",
        "venue",
        "minute_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "built_from",
    ),
    "snapshots": ("symbol", "venue", "observed_time", "price", "volume", "market_cap", "halted"),
    "gaps": ("symbol", "venue", "start_time", "end_time", "reason", "state", "bars"),
    "market_status": (
        "symbol",
        "venue",
        "received_time",
        "halted",
        "operation",
        "expected_operation",
        "status",
        "vi",
    ),
    "program_trades": ("symbol", "venue", "exchange_time", "sell_qty", "buy_qty", "net_qty"),
    "broker_trades": (
        "symbol",
        "venue",
        "received_time",
        "side",
        "rank",
        "name",
        "qty",
        "foreign_broker",
        "foreign_net_qty",
    ),
    "auction_expected": (
        "symbol",
        "venue",
        "exchange_time",
        "hour_class",
        "price",
        "volume",
        "total_ask_qty",
        "total_bid_qty",
    ),
    "vi_notices": (
        "symbol",
        "venue",
        "received_time",
        "applies",
        "started_time",
        "ended_time",
        "kind",
        "price",
        "static_move_pct",
    ),
    "coverage": ("symbol", "venue", "minute_time", "status", "verified", "ticks", "bar_volume"),
}


def _ranged(what: str) -> Callable[..., None]:
    """The command that shows dataset ``what`` over a day or a range."""

    def command(
        symbols: Symbols = None,
        day: Day = None,
        start: From = None,
        end: To = None,
        venue: VenueOpt = None,
        fmt: FormatOpt = Format.table,
        out: Out = None,
        limit: Limit = 20,
        decimals: Decimals = False,
        config: Config = None,
    ) -> None:
        _show(what, symbols, day, start, end, venue, fmt, out, limit, decimals, config)

    return command


for _name, _help in (
    ("ticks", "Track B's trades."),
    ("books", "Track B's ten-level books (each side's levels as lists, best first)."),
    ("snapshots", "Track A's snapshots of the universe."),
    ("gaps", "The gaps overlapping the range, each in its current state."),
    ("market-status", "Track B's market-operation records: halts, VIs, session events."),
    ("program-trades", "Track B's program trading (each record the day's so far)."),
    ("broker-trades", "Track B's brokers' trading: each side's top five brokers, foreign totals."),
    ("auction-expected", "Track B's expected matches of KRX's opening and closing auctions."),
    ("vi-notices", "Track B's VI feed: the market's VIs as they start and end."),
):
    data_app.command(_name, help=_help)(_ranged(_name.replace("-", "_")))


@data_app.command()
def bars(
    symbols: Symbols = None,
    day: Day = None,
    start: From = None,
    end: To = None,
    venue: VenueOpt = None,
    stored: Annotated[
        bool,
        typer.Option("--stored", help="only the bars KIS gave back for gaps, as stored"),
    ] = False,
    fmt: FormatOpt = Format.table,
    out: Out = None,
    limit: Limit = 20,
    config: Config = None,
) -> None:
    """Each minute's best bar: from the stored trades where whole, else KIS's recovered one."""
    what = "bars" if stored else "best_bars"
    _show(what, symbols, day, start, end, venue, fmt, out, limit, False, config)


@data_app.command()
def coverage(
    symbols: Symbols = None,
    day: Day = None,
    venue: VenueOpt = None,
    fmt: FormatOpt = Format.table,
    out: Out = None,
    limit: Limit = 20,
    config: Config = None,
) -> None:
    """Each minute of a day per symbol and venue: ticks, quiet, recovered, missing, not watched."""
    _show("coverage", symbols, day, None, None, venue, fmt, out, limit, False, config)


def _show(
    what: str,
    symbols: list[str] | None,
    day: str | None,
    start: str | None,
    end: str | None,
    venue: str | None,
    fmt: Format,
    out: Path | None,
    limit: int,
    decimals: bool,
    config: Path | None,
) -> None:
    # deferred: pyarrow, the ADBC drivers and the settings (about 0.3 s) for these commands
    from observer.calendar.clock import clock_from_env
    from observer.cli.support import settings_or_exit
    from observer.data import Catalog, DataRequestError
    from observer.errors import ArchiveError, StoreError

    if fmt is Format.parquet and out is None:
        fail(_COMMAND, "--format parquet writes a file: give --out", 2)
    if (start is None) != (end is None) or (start is not None and day is not None):
        fail(_COMMAND, "give --date, or --from and --to", 2)
    first = start or day or datetime.now(KST).date().isoformat()  # today in Korea
    try:
        settings = settings_or_exit(_COMMAND, config)
        with Catalog.of(settings, clock_from_env(), decimals=decimals) as catalog:
            table = _read(catalog, what, symbols or None, first, end, venue)
            if not table.num_rows:
                _say_where(catalog, what, symbols, first, end)
    except (DataRequestError, StoreError, ArchiveError) as exc:
        fail(_COMMAND, str(exc), 2)
    if out is None and fmt is not Format.table:
        _write(table, fmt, sys.stdout.buffer)
    elif out is None:
        _print(table.select(list(_BRIEF[what])), limit)
    else:
        with out.open("wb") as file:
            _write(table, fmt, file)
        typer.echo(f"{table.num_rows:,} rows to {out}", err=True)


def _say_where(
    catalog: Catalog, what: str, symbols: list[str] | None, first: str, end: str | None
) -> None:
    """An empty answer, on standard error: which days the dataset holds (of ``symbols``)."""
    # deferred: as the read's
    from observer.data.datasets import DATASETS
    from observer.errors import ObserverError

    name = "bars" if what == "best_bars" else what
    if name not in DATASETS:
        return  # coverage: a day's grid, never empty for a day asked
    try:
        days = catalog.stored_days(name, symbols or None)
    except ObserverError:
        return  # the answer stands; where else the data is cannot be said
    asked = first if end is None else f"{first} to {end}"
    held = "none stored" if days is None else f"stored from {days[0]} to {days[1]}"
    typer.echo(f"no {what.replace('_', ' ')} for {asked} (KST); {held}", err=True)


def _read(
    catalog: Catalog,
    what: str,
    symbols: list[str] | None,
    start: str,
    end: str | None,
    venue: str | None,
) -> pa.Table:
    if what == "coverage":
        return catalog.coverage(symbols, start, venue)
    if what == "best_bars":
        return catalog.bars(symbols, start, end, venue)
    if what == "bars":
        return catalog.bars(symbols, start, end, venue, source="stored")
    read: pa.Table = getattr(catalog, what)(symbols, start, end, venue)
    return read


def _write(table: pa.Table, fmt: Format, file: BinaryIO) -> None:
    # deferred with the rest of the data commands' (see `_show`)
    import msgspec
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    if fmt is Format.parquet:
        pq.write_table(table, file, compression="zstd")
    elif fmt is Format.csv:
        csv.write_csv(table, file)
    else:  # JSON lines: exact decimals as text, times as ISO text in KST
        encoder = msgspec.json.Encoder(decimal_format="string")
        for row in _texts(table).to_pylist():
            file.write(encoder.encode(row) + b"\n")
    file.flush()


def _texts(table: pa.Table, brief: bool = False) -> pa.Table:
    """``table`` with each KST time column as ISO text (with its offset), for text output.

    ``brief``: to the millisecond, without the offset (a table in a terminal, all KST).
    """
    # deferred with the rest of the data commands' (see `_show`)
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            column = table[field.name]
            if brief:
                column = column.cast(pa.timestamp("ms", tz=field.type.tz), safe=False)
            spec = "%Y-%m-%d %H:%M:%S" if brief else "%Y-%m-%dT%H:%M:%S%z"
            table = table.set_column(index, field.name, pc.strftime(column, format=spec))
    return table


def _print(table: pa.Table, limit: int) -> None:
    """The first and last ``limit`` rows as a table, the times in KST."""
    # deferred: rich (about 0.1 s), for a table in a terminal only
    from rich.console import Console
    from rich.table import Table

    shown = table.column_names
    rows = table.num_rows
    cut = rows > 2 * limit
    parts = [table.slice(0, limit), table.slice(rows - limit)] if cut else [table]
    view = Table(show_lines=False, header_style="bold")
    for name in shown:
        view.add_column(name, no_wrap=True)
    for n, part in enumerate(parts):
        if n:
            view.add_row(*["..."] * len(shown))
        for row in _texts(part, brief=True).to_pylist():
            view.add_row(*("" if v is None else str(v) for v in row.values()))
    console = Console(soft_wrap=False, width=max(120, Console().width))
    console.print(view)
    console.print(f"{rows:,} rows")


def export(
    first: Annotated[str, typer.Option("--from", help="the first KST day, YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="the last KST day, included")],
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="A,B,... (default: every symbol)")
    ] = None,
    datasets: Annotated[
        str, typer.Option("--datasets", help="which, of ticks,books,bars,snapshots")
    ] = "ticks,books,bars,snapshots",
    venue: VenueOpt = None,
    out: Annotated[Path, typer.Option("--out", help="the folder the files go to")] = Path("export"),
    stored_bars: Annotated[
        bool,
        typer.Option(
            "--stored-bars", help="bars: only those KIS gave back for gaps (default: the best)"
        ),
    ] = False,
    decimals: Decimals = False,
    config: Config = None,
) -> None:
    """A Parquet file per dataset, symbol and day: OUT/DATASET/date=D/symbol=S.parquet.

    Bars are each minute's best (from the trades where whole, else KIS's recovered one).
    """
    # deferred: pyarrow, the ADBC drivers and the settings (about 0.3 s) for this command
    from observer.calendar.clock import clock_from_env
    from observer.cli.support import settings_or_exit
    from observer.data import Catalog, DataRequestError
    from observer.data.export import export as write
    from observer.errors import ArchiveError, StoreError

    command = "observer export"
    try:
        days = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        fail(command, f"--from {first} and --to {last}: days as YYYY-MM-DD", 2)
    chosen = [s for s in (symbols or "").split(",") if s] or None
    files = rows = 0
    try:
        settings = settings_or_exit(command, config)
        bars: Literal["best", "stored"] = "stored" if stored_bars else "best"
        with Catalog.of(settings, clock_from_env(), decimals=decimals) as catalog:
            wanted = datasets.split(",")
            for written in write(catalog, out, *days, chosen, wanted, venue, bars):
                files, rows = files + 1, rows + written.rows
    except (DataRequestError, StoreError, ArchiveError) as exc:
        fail(command, str(exc), 2)
    typer.echo(f"{files:,} files, {rows:,} rows under {out}")


def report(
    day: Annotated[
        str | None, typer.Option("--date", help="the KST day, YYYY-MM-DD (default: today)")
    ] = None,
    html: Annotated[Path, typer.Option("--html", help="the page to write")] = Path("report.html"),
    config: Config = None,
) -> None:
    """A day on one page: coverage heat map, symbols watched, reconciliation, gaps, alerts."""
    # deferred: pyarrow, the ADBC drivers and the settings (about 0.3 s) for this command
    from observer.calendar.clock import clock_from_env
    from observer.cli.support import settings_or_exit
    from observer.data import Catalog, DataRequestError
    from observer.data.report import day_report
    from observer.errors import ArchiveError, StoreError

    command = "observer report"
    try:
        chosen = date.fromisoformat(day) if day else datetime.now(KST).date()
    except ValueError:
        fail(command, f"--date {day}: a day as YYYY-MM-DD", 2)
    try:
        with Catalog.of(settings_or_exit(command, config), clock_from_env()) as catalog:
            page = day_report(catalog, chosen)
    except (DataRequestError, StoreError, ArchiveError) as exc:
        fail(command, str(exc), 2)
    html.write_text(page, encoding="utf-8")
    typer.echo(f"the day of {chosen} to {html} ({len(page.encode()):,} bytes)")
