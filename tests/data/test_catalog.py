"""`observer.data`: what the writer committed is what a read returns, wherever the rows are.

The database, the day archives, a day in both (archived, not yet pruned), a day pruned in part,
rows committed after the pruning (a late file): each row once, in the dataset's types.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.events import (
    EtfDaily,
    Event,
    OrderBook,
    TradeTick,
    UniverseMember,
    UniverseSnapshot,
    VolatilityInterruption,
)
from harness.loadgen import synthetic_tick
from observer.calendar.phases import KST
from observer.data import Catalog, DataRequestError, span_of
from observer.data.datasets import DATASETS, DECIMAL, KST_TIME, as_floats
from observer.db import migrate
from observer.db.archive_layout import legacy_path, part_files, part_path
from observer.db.engine import make_engine
from observer.db.models import BOOK_LEVEL_COLUMNS
from observer.db.retention_queries import ARCHIVED_TABLES
from observer.errors import StoreError
from observer.writer.retention import Pruner
from observer.writer.store import Store
from tests.archive.test_archive import (
    DAY,
    NEXT,
    apply,
    archive,
    archive_and_request,
    day_ns,
    market_events,
    prune_all,
    store_settings,
)
from workers.archive.job import archive_day


def ticks(day: date, first: int, count: int) -> list[Event]:
    return [synthetic_tick(n, day_ns(day, n)) for n in range(first, first + count)]


def identities(table: pa.Table) -> list[tuple[str, int]]:
    return list(zip(table["source"].to_pylist(), table["seq"].to_pylist(), strict=True))


@pytest.fixture
def catalog_of(tmp_path: Path, db_url: str) -> Iterator[tuple[Store, Catalog, Path]]:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    store = Store(engine)
    store.load_marks()
    root = tmp_path / "archive"
    with Catalog(db_url, root) as catalog:
        yield store, catalog, root
    engine.dispose()


def test_a_day_reads_the_same_from_the_database_the_archive_and_both(
    catalog_of: tuple[Store, Catalog, Path],
) -> None:
    store, catalog, root = catalog_of
    apply(store, market_events(DAY, 300) + market_events(NEXT, 40))
    before = catalog.ticks(None, DAY, NEXT + timedelta(days=1))
    assert before.num_rows == 340
    archive(store, root, DAY)  # in both: each row once
    assert catalog.ticks(None, DAY, NEXT + timedelta(days=1)).equals(before)
    archive_and_request(store, root, ("trade_ticks", "order_books"))
    prune_all(Pruner(store, 50))
    with store.engine.connect() as conn:  # the database has the next day alone
        assert conn.exec_driver_sql("select count(*) from trade_ticks").scalar() == 40
    assert catalog.ticks(None, DAY, NEXT + timedelta(days=1)).equals(before)
    books = catalog.books(None, DAY)
    assert books.num_rows == 5 and books.schema == DATASETS["books"].returned()


def test_a_catalog_kept_open_reads_a_database_restored_in_its_place(tmp_path: Path) -> None:
    """The SQLite connection a catalog keeps is to the file it opened: a restore renames
    another into place, and the catalog read the old one's rows until it was closed."""
    paths = {3: tmp_path / "observer.db", 5: tmp_path / "restored.db"}
    for count, path in paths.items():
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        engine = make_engine(url)
        store = Store(engine)
        store.load_marks()
        apply(store, ticks(DAY, 0, count))
        engine.dispose()
    with Catalog(f"sqlite:///{paths[3]}", tmp_path / "archive") as catalog:
        assert catalog.ticks(None, DAY).num_rows == 3
        os.replace(paths[5], paths[3])
        assert catalog.ticks(None, DAY).num_rows == 5


def test_each_dataset_has_its_types_from_either_database(
    catalog_of: tuple[Store, Catalog, Path],
) -> None:
    store, catalog, _ = catalog_of
    apply(store, market_events(DAY, 10))
    for name in ("ticks", "books", "bars", "snapshots"):
        table = catalog.read(name, span_of(None, DAY))
        assert table.schema == DATASETS[name].returned(), name
        assert table.num_rows > 0, name
    tick = catalog.ticks("005930", DAY).slice(0, 1).to_pylist()[0]
    sent: TradeTick = next(  # type: ignore[assignment]
        e for e in market_events(DAY, 10) if isinstance(e, TradeTick) and e.symbol == "005930"
    )
    assert tick["price"] == sent.price and isinstance(tick["price"], int)
    assert tick["change_rate"] == float(sent.change_rate) and tick["halted"] is False
    assert tick["exchange_time"] == datetime.fromtimestamp(sent.exchange_ns / 1e9, KST)
    assert tick["venue"] == "KRX"
    assert catalog.ticks("005930", DAY).schema.field("exchange_time").type == KST_TIME
    assert catalog.ticks("005930", DAY).schema.field("strength").type == pa.float64()
    exact = Catalog(catalog.url, catalog.archive.root, decimals=True)
    with exact:  # rates as stored, on request
        assert exact.read("ticks", span_of(None, DAY)).schema == DATASETS["ticks"].schema
        first = exact.ticks("005930", DAY).slice(0, 1).to_pylist()[0]
        assert first["change_rate"] == Decimal(sent.change_rate)
        assert exact.ticks("005930", DAY).schema.field("strength").type == DECIMAL
    book = catalog.books(None, DAY).to_pylist()[0]
    sample = next(e for e in market_events(DAY, 10) if isinstance(e, OrderBook))
    levels = {  # a column per level, best first, NULL past the levels sent
        f"{column}_{n + 1}": side[n] if n < len(side) else None
        for column, side in (
            ("ask_price", sample.ask_prices),
            ("ask_qty", sample.ask_qtys),
            ("bid_price", sample.bid_prices),
            ("bid_qty", sample.bid_qtys),
        )
        for n in range(10)
    }
    assert {k: book[k] for k in levels} == levels
    assert catalog.books(None, DAY).schema.field("bid_qty_10").type == pa.int64()


def test_symbols_venue_and_range_select(catalog_of: tuple[Store, Catalog, Path]) -> None:
    store, catalog, root = catalog_of
    events = ticks(DAY, 0, 200)
    events += [
        msgspec.structs.replace(t, venue="NXT", exchange_ns=t.exchange_ns + 1)  # type: ignore[type-var]
        for t in ticks(DAY, 0, 20)
    ]
    apply(store, events)
    every = catalog.ticks(None, DAY)
    assert every.num_rows == 220
    one = catalog.ticks("005930", DAY)
    assert set(one["symbol"].to_pylist()) == {"005930"} and 0 < one.num_rows < 220
    assert catalog.ticks(None, DAY, venue="nxt").num_rows == 20
    # The first 100 ms after 09:00: ticks 0-99, each 1 ms apart, on both venues
    start = datetime.combine(DAY, datetime.min.time().replace(hour=9))
    window = catalog.ticks(None, start, start + timedelta(milliseconds=100))
    assert window.num_rows == 100 + 20
    assert window["exchange_ns"].to_pylist() == sorted(window["exchange_ns"].to_pylist()) or (
        window["symbol"].to_pylist() == sorted(window["symbol"].to_pylist())
    )
    archive(store, root, DAY)  # the archive's rows are selected alike
    assert catalog.ticks(None, DAY, venue="NXT").num_rows == 20
    assert catalog.ticks("005930", DAY).equals(one)


def test_bad_requests_say_what_is_wrong(catalog_of: tuple[Store, Catalog, Path]) -> None:
    _, catalog, _ = catalog_of
    with pytest.raises(DataRequestError, match="not an ISO date"):
        catalog.ticks("005930", "yesterday")
    with pytest.raises(DataRequestError, match="before it starts"):
        catalog.ticks("005930", NEXT, DAY)
    with pytest.raises(DataRequestError, match="no symbols"):
        catalog.ticks([], DAY)
    assert catalog.ticks("005930", DAY).num_rows == 0  # nothing stored: no rows, its schema
    assert catalog.ticks("005930", DAY).schema == DATASETS["ticks"].returned()


_steps = st.fixed_dictionaries(
    {
        "first": st.integers(1, 120),  # ticks of DAY before the archive
        "archived": st.booleans(),
        "pruned": st.sampled_from(["none", "part", "all"]),
        "late": st.integers(0, 30),  # committed after the pruning (a recovery, a replay)
        "late_archived": st.booleans(),
        "next": st.integers(0, 30),  # the next day's, in the database only
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_steps)
def test_what_was_committed_is_what_a_read_returns(
    steps: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("catalog")
    url = f"sqlite:///{folder / 'observer.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        store = Store(engine)
        store.load_marks()
        root = folder / "archive"
        committed = ticks(DAY, 0, steps["first"]) + ticks(NEXT, 0, steps["next"])
        apply(store, committed)
        if steps["archived"]:
            archive_and_request(store, root, ("trade_ticks",))
            pruner = Pruner(store, 25)
            if steps["pruned"] == "all":
                prune_all(pruner)
            elif steps["pruned"] == "part":
                pruner.pending()
                pruner.step()  # the check
                pruner.step()  # one chunk of 25
        late = ticks(DAY, 10_000, steps["late"])
        apply(store, late, "late")
        committed += late
        if steps["archived"] and steps["pruned"] != "none" and steps["late_archived"]:
            sent: list[Event] = []  # the late rows' own file, as the archive job writes it
            archive_day(store.engine, store_settings(store, root).retention, root, DAY, sent.append)
            apply(store, sent, "archive")
        with Catalog(url, root) as catalog:
            read = catalog.ticks(None, DAY, NEXT + timedelta(days=1))
        expected = sorted(
            (t.symbol, t.exchange_ns, t.price, t.qty)  # type: ignore[attr-defined]
            for t in committed
        )
        got = sorted(
            zip(
                read["symbol"].to_pylist(),
                read["exchange_ns"].to_pylist(),
                read["price"].to_pylist(),
                read["qty"].to_pylist(),
                strict=True,
            )
        )
        assert got == expected
        assert len(set(identities(read))) == read.num_rows  # each row once
    finally:
        engine.dispose()


def test_archived_tables_are_datasets() -> None:
    """Every table the archive job writes is read back by one dataset."""
    assert {d.table for d in DATASETS.values() if d.archived} == set(ARCHIVED_TABLES)


def test_a_day_s_universe_is_its_newest_build_and_an_etf_s_day_its_newest_row(
    catalog_of: tuple[Store, Catalog, Path],
) -> None:
    store, catalog, _ = catalog_of

    def member(symbol: str, rank: int) -> UniverseMember:
        return UniverseMember(
            symbol=symbol, market="KOSPI", rank=rank, prev_close=5000, market_cap=9
        )

    def universe(day: date, *symbols: str) -> UniverseSnapshot:
        members = tuple(member(s, n) for n, s in enumerate(symbols, start=1))
        return UniverseSnapshot(trade_date=day, based_on=day, min_prev_close=4000, members=members)

    def etf(day: date, nav: str, final: bool) -> EtfDaily:
        return EtfDaily(
            trade_date=day, symbol="069500", close=46_000, nav=Decimal(nav), nav_final=final
        )

    apply(
        store,
        [
            universe(DAY, "005930", "000660", "035420"),
            universe(DAY, "000660", "005930"),  # built again: this one is the day's
            universe(NEXT, "005930"),
            etf(DAY, "45990.5", False),  # provisional, then the published NAV
            etf(DAY, "46001.25", True),
            etf(NEXT, "46100", True),
        ],
    )
    day = catalog.universe(DAY)
    assert day["symbol"].to_pylist() == ["000660", "005930"] and day["rank"].to_pylist() == [1, 2]
    assert day.schema.field("trade_date").type == pa.date32()
    assert catalog.universe(DAY, NEXT + timedelta(days=1))["trade_date"].to_pylist() == [
        DAY,
        DAY,
        NEXT,
    ]
    assert catalog.universe(DAY, symbols="005930").num_rows == 1
    rows = catalog.etf_daily("069500", DAY, NEXT + timedelta(days=1)).to_pylist()
    assert [(r["trade_date"], r["nav"], r["nav_final"]) for r in rows] == [
        (DAY, 46001.25, True),
        (NEXT, 46100.0, True),
    ]
    with pytest.raises(DataRequestError, match="no venue"):
        catalog.universe(DAY).equals(catalog.read("universe", span_of(None, DAY, None, "KRX")))
    assert catalog.instruments("005930").schema.field("active").type == pa.bool_()


def test_a_database_that_cannot_be_read_is_a_store_error(tmp_path: Path) -> None:
    odd = tmp_path / "a #folder"
    odd.mkdir()
    url = f"sqlite:///{odd / 'observer.db'}"
    with Catalog(url, tmp_path / "archive") as catalog:
        with pytest.raises(StoreError, match="no database at"):
            catalog.ticks("005930", DAY)
        (odd / "observer.db").touch()  # there, and not migrated: no table
        with pytest.raises(StoreError, match=r"cannot read the sqlite database: .*trade_ticks"):
            catalog.ticks("005930", DAY)
        migrate.upgrade(url)  # a path a URI would misread ("#") is read as the file it names
        assert catalog.ticks("005930", DAY).num_rows == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_books_archived_with_json_levels_read_as_level_columns(
    catalog_of: tuple[Store, Catalog, Path],
) -> None:
    """A day file written while a book's levels were JSON arrays, read beside a newer one."""
    store, catalog, root = catalog_of
    apply(store, market_events(DAY, 300))
    expected = catalog.books(None, DAY)
    archive_and_request(store, root, ("order_books",))
    prune_all(Pruner(store, 50))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from order_books").scalar() == 0
    parts = part_files(root, part_path("order_books", DAY))
    current = pa.concat_tables([pq.read_table(f) for f in parts])
    for file in parts:
        file.unlink()
    day_file = root / legacy_path("order_books", DAY)  # one file per day, as it was then
    day_file.parent.mkdir(parents=True)
    as_json = current.drop_columns(list(BOOK_LEVEL_COLUMNS))
    for group, array in enumerate(("ask_prices", "ask_qtys", "bid_prices", "bid_qtys")):
        names = BOOK_LEVEL_COLUMNS[group * 10 : (group + 1) * 10]
        rows = zip(*(current[name].to_pylist() for name in names), strict=True)
        texts = [msgspec.json.encode([v for v in r if v is not None]).decode() for r in rows]
        as_json = as_json.append_column(array, pa.array(texts, pa.string()))
    pq.write_table(as_json, day_file)  # the day file as it was written before
    assert "ask_prices" in pq.read_schema(day_file).names  # the older file is what is read
    assert catalog.books(None, DAY).equals(expected)


def test_a_symbol_s_file_written_before_a_column_existed_reads_it_as_null(
    catalog_of: tuple[Store, Catalog, Path],
) -> None:
    """Each symbol's file is read as it is when it holds every column, and through the
    dataset's schema when it lacks one: a venue unknown then is KRX's."""
    store, catalog, root = catalog_of
    apply(store, market_events(DAY, 300))
    expected = catalog.ticks(None, DAY)
    archive_and_request(store, root, ("trade_ticks",))
    prune_all(Pruner(store, 50))
    first, *others = part_files(root, part_path("trade_ticks", DAY))
    pq.write_table(pq.read_table(first).drop_columns(["venue"]), first)
    assert others and "venue" not in pq.read_schema(first).names
    assert catalog.ticks(None, DAY).equals(expected)
    assert catalog.ticks(first.stem, DAY).equals(
        expected.filter(pc.equal(expected["symbol"], first.stem))
    )


_RATES = st.decimals(min_value=-(10**7), max_value=10**7, places=8, allow_nan=False)


@given(st.lists(_RATES | st.none(), max_size=40), st.integers(1, 4))
def test_a_rate_read_as_a_float_is_the_double_nearest_it(
    values: list[Decimal | None], chunks: int
) -> None:
    """Arrow's own decimal-to-double cast is an ulp off for about one value in 13; a rate's
    float is ``float(Decimal)``, the nearest double, in any chunking, NULL kept."""
    size = max(1, -(-len(values) // chunks))
    pieces = [pa.array(values[n : n + size], DECIMAL) for n in range(0, len(values), size)]
    table = pa.table({"rate": pa.chunked_array(pieces, DECIMAL), "n": range(len(values))})
    floats = as_floats(table)
    assert floats.schema.field("rate").type == pa.float64() and floats["n"].equals(table["n"])
    assert floats["rate"].to_pylist() == [None if v is None else float(v) for v in values]


def test_a_read_goes_into_pandas_polars_and_duckdb_in_their_native_types(
    catalog_of: tuple[Store, Catalog, Path],
) -> None:
    """Prices int64, rates float64, times tz-aware KST: no object columns in pandas, and each
    of pandas, Polars and DuckDB gives the same rows back to Arrow."""
    store, catalog, _ = catalog_of
    apply(store, market_events(DAY, 60))
    ticks = catalog.ticks(None, DAY)
    frame = ticks.to_pandas()
    kinds = {name: str(kind) for name, kind in frame.dtypes.items()}
    assert kinds["price"] == kinds["qty"] == kinds["exchange_ns"] == "int64"
    assert kinds["change_rate"] == kinds["strength"] == "float64"
    assert kinds["exchange_time"] == "datetime64[ns, Asia/Seoul]"
    assert pa.Table.from_pandas(frame, schema=ticks.schema, preserve_index=False).equals(ticks)
    lazy = pl.from_arrow(ticks)
    assert isinstance(lazy, pl.DataFrame)
    assert lazy.schema["price"] == pl.Int64 and lazy.schema["change_rate"] == pl.Float64
    assert lazy.schema["exchange_time"] == pl.Datetime("ns", "Asia/Seoul")
    assert lazy.to_arrow().cast(ticks.schema).equals(ticks)
    duck = duckdb.connect()
    duck.register("ticks", ticks)
    types = dict(duck.execute("SELECT column_name, column_type FROM (DESCRIBE ticks)").fetchall())
    assert (types["price"], types["change_rate"]) == ("BIGINT", "DOUBLE")
    assert types["exchange_time"] in ("TIMESTAMPTZ_NS", "TIMESTAMP WITH TIME ZONE")  # 2.0, 1.x
    back = duck.sql("SELECT * FROM ticks").to_arrow_table()
    assert back.cast(ticks.schema).equals(ticks)


def test_a_vi_listed_again_reads_once_as_the_newest_listing_gave_it(
    catalog_of: tuple[Store, Catalog, Path],
) -> None:
    """The flows job lists a day's VIs again (a rerun, a VI lifted since): each once."""
    store, catalog, _ = catalog_of
    listed = VolatilityInterruption(
        symbol="005930",
        trade_date=DAY,
        started_ns=day_ns(DAY, 0),
        ended_ns=0,  # not lifted when asked
        kind="1",
        price=80_900,
        static_base=73_500,
        static_move_pct=Decimal("10.07"),
        dynamic_base=0,
        dynamic_move_pct=Decimal("0.00"),
        count=1,
        fetched_ns=day_ns(DAY, 1),
    )
    lifted = msgspec.structs.replace(listed, ended_ns=day_ns(DAY, 120_000))
    second = msgspec.structs.replace(listed, started_ns=day_ns(DAY, 600_000), count=2)
    apply(store, [listed])
    apply(store, [lifted, second])
    rows = catalog.volatility_interruptions("005930", DAY).to_pylist()
    assert [(r["started_ns"], r["ended_ns"], r["count"]) for r in rows] == [
        (listed.started_ns, lifted.ended_ns, 1),
        (second.started_ns, 0, 2),
    ]
    assert rows[0]["static_move_pct"] == 10.07
