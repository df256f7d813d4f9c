"""``observer data``: each format says the same rows, with exact types where the format has them."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from observer.cli import main as cli
from observer.data import Catalog
from observer.data.datasets import DATASETS
from observer.writer.store import Store
from tests.archive.test_archive import apply, market_events

DAY = date(2026, 11, 18)


@pytest.fixture
def config(store: Store, tmp_path: Path) -> Path:
    """A settings file naming ``store``'s database, with a day of market events in it."""
    apply(store, market_events(DAY, 50))
    url = store.engine.url.render_as_string(hide_password=False)
    path = tmp_path / "observer.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[retention]\ndir = "{tmp_path / "archive"}"\n')
    return path


def run(config: Path, *args: str) -> str:
    done = CliRunner().invoke(cli.app, ["data", *args, "--config", str(config)])
    assert done.exit_code == 0, done.output
    return done.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_format_holds_the_rows_a_catalog_returns(config: Path, tmp_path: Path) -> None:
    url = config.read_text().split('"')[1]
    with Catalog(url, tmp_path / "archive") as catalog:
        expected = catalog.ticks("005930", DAY)
        best_ask = catalog.books(None, DAY)["ask_price_1"][0].as_py()
    assert expected.num_rows > 0
    rows = list(
        csv.DictReader(
            io.StringIO(run(config, "ticks", "005930", "--date", str(DAY), "--format", "csv"))
        )
    )
    assert [int(r["price"]) for r in rows] == expected["price"].to_pylist()
    assert rows[0]["exchange_time"].endswith("+0900")  # the KST view
    lines = run(config, "ticks", "005930", "--date", str(DAY), "--format", "json").splitlines()
    first = json.loads(lines[0])
    assert len(lines) == expected.num_rows
    assert first["change_rate"] == expected["change_rate"][0].as_py()  # a float, as read
    assert isinstance(first["change_rate"], float)
    assert first["exchange_ns"] == expected["exchange_ns"][0].as_py()
    exact = run(config, "ticks", "005930", "--date", str(DAY), "--format", "json", "--decimals")
    stored = json.loads(exact.splitlines()[0])["change_rate"]
    assert isinstance(stored, str) and Decimal(stored) == Decimal(str(first["change_rate"]))
    out = tmp_path / "ticks.parquet"
    run(config, "ticks", "005930", "--date", str(DAY), "--format", "parquet", "--out", str(out))
    assert pq.read_table(out).equals(expected)  # the types themselves
    table = run(config, "ticks", "--date", str(DAY), "--limit", "2")
    assert f"{50:,} rows" in table and "..." in table and "exchange_time" in table
    coverage = run(config, "coverage", "005930", "--date", str(DAY), "--format", "csv")
    assert set(next(csv.reader(io.StringIO(coverage)))) >= {"symbol", "minute_time", "status"}
    books = run(config, "books", "--date", str(DAY), "--format", "json").splitlines()
    assert json.loads(books[0])["ask_price_1"] == best_ask


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["ticks", "--format", "parquet"], "give --out"),
        (["ticks", "--from", "2026-11-18"], "--from and --to"),
        (
            [
                "ticks",
                "--date",
                "2026-11-18",
                "--from",
                "2026-11-18 09:00",
                "--to",
                "2026-11-18 10:00",
            ],
            "--from and --to",
        ),
        (["ticks", "--date", "yesterday"], "not an ISO date"),
        (["ticks", "--from", "2026-11-19", "--to", "2026-11-18"], "before it starts"),
        (["ticks", "--venue", "nyse"], "none of the venues (KRX, NXT, combined)"),
        (["coverage", "--venue", "krxx"], "none of the venues"),
    ],
)
def test_a_bad_request_is_one_line_and_exit_2(config: Path, args: list[str], said: str) -> None:
    done = CliRunner().invoke(cli.app, ["data", *args, "--config", str(config)])
    assert done.exit_code == 2 and said in done.output, done.output
    assert "Traceback" not in done.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("column", "value", "said"),
    [("change_rate", "abc", "'abc' is no decimal"), ("price", "x", "string is not int64")],
)
def test_a_stored_value_of_another_type_is_one_line_naming_its_column(
    config: Path, store: Store, column: str, value: str, said: str
) -> None:
    """SQLite keeps text in any column: a database edited by hand is refused, never a crash."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE trade_ticks SET {column} = ? WHERE seq = (SELECT min(seq) FROM trade_ticks)",
            (value,),
        )
    done = CliRunner().invoke(
        cli.app, ["data", "ticks", "--date", str(DAY), "--config", str(config)]
    )
    assert done.exit_code == 2, done.output
    assert f"trade_ticks holds a value observer.data cannot read: column {column}" in done.output
    assert said in done.output and "Traceback" not in done.output


def test_every_dataset_has_a_command() -> None:
    names = {c.name for c in cli.app.registered_groups if c.name == "data"}
    assert names == {"data"}
    commands = {c.name or c.callback.__name__ for c in cli.data_app.registered_commands}  # type: ignore[union-attr]
    instants = {name.replace("_", "-") for name, d in DATASETS.items() if d.kind == "instants"}
    assert instants | {"coverage"} <= commands


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_export_writes_a_file_per_symbol_and_day_that_duckdb_reads(
    config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    done = CliRunner().invoke(
        cli.app,
        [
            "export",
            "--from",
            str(DAY),
            "--to",
            str(DAY),
            "--out",
            str(out),
            "--config",
            str(config),
        ],
    )
    assert done.exit_code == 0, done.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert f"ticks/date={DAY}/symbol=005930.parquet" in files
    assert f"books/date={DAY}/symbol=005930.parquet" in files
    assert not list(out.rglob(".*.tmp"))
    one = pq.read_table(out / f"ticks/date={DAY}/symbol=005930.parquet")
    assert set(one["symbol"].to_pylist()) == {"005930"}
    ((count, symbols),) = duckdb.sql(
        f"SELECT count(*), count(DISTINCT symbol) FROM "
        f"read_parquet('{out}/ticks/*/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert (count, symbols) == (50, 8)  # every tick of the day, once
    assert f"{len(files)} files" in done.output
    # Bars are each minute's best: none, as Track B watched nothing that day; the bars as
    # stored on request, the rates exact on request.
    assert not [f for f in files if f.startswith("bars/")]
    stored = tmp_path / "stored"
    also = ["--stored-bars", "--decimals", "--datasets", "bars,ticks", "--out", str(stored)]
    done = CliRunner().invoke(
        cli.app, ["export", "--from", str(DAY), "--to", str(DAY), *also, "--config", str(config)]
    )
    assert done.exit_code == 0, done.output
    bars = pq.read_table(stored / f"bars/date={DAY}/symbol=005930.parquet")
    assert bars["quality"].to_pylist() == ["live"] * 4
    exact = pq.read_table(stored / f"ticks/date={DAY}/symbol=005930.parquet")
    assert (
        exact.schema.field("change_rate").type == DATASETS["ticks"].schema.field("change_rate").type
    )
    assert one.schema.field("change_rate").type == pa.float64()
    refused = CliRunner().invoke(
        cli.app,
        [
            "export",
            "--from",
            str(DAY),
            "--to",
            str(DAY),
            "--datasets",
            "gaps",
            "--config",
            str(config),
        ],
    )
    assert refused.exit_code == 2 and "not a dataset kept per symbol" in refused.output


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_an_empty_answer_says_which_days_are_stored(config: Path, tmp_path: Path) -> None:
    """Asked for a day without rows (today, by default), the answer says where the data is."""
    done = CliRunner().invoke(
        cli.app, ["data", "ticks", "005930", "--date", "2026-11-19", "--config", str(config)]
    )
    assert done.exit_code == 0 and "0 rows" in done.stdout
    assert "no ticks for 2026-11-19 (KST); stored from 2026-11-18 to 2026-11-18" in done.stderr
    url = config.read_text().split('"')[1]
    with Catalog(url, tmp_path / "archive") as catalog:
        assert catalog.stored_days("ticks") == (DAY, DAY)
        assert catalog.stored_days("ticks", "005930") == (DAY, DAY)
        assert catalog.stored_days("ticks", ["999999"]) is None  # a symbol with no row
        assert catalog.stored_days("instruments") is None  # no one day's rows
        # Any case of a venue's name reads it; the combined feed's too.
        assert catalog.ticks("005930", DAY, venue="krx").num_rows > 0
        assert catalog.ticks("005930", DAY, venue="Combined").num_rows == 0
