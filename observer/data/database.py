"""Rows of the database as Arrow tables, over ADBC (no Python object per value).

SQLite through ``adbc_driver_sqlite``, read-only; PostgreSQL through
``adbc_driver_postgresql``, with the libpq parameters the engines use (`libpq_params`). One
connection is kept, in autocommit so that no read holds a snapshot past its statement,
until `DatabaseReader.close` (opening one costs a millisecond on SQLite, tens on PostgreSQL,
whose driver reads the server's type catalog as it connects). The SQLite one is opened again
when the file at the path is another (a restore renames one into place). The SQLite driver
types each column from the first batch it reads: a column NULL in all of the first rows and
text after them would fail, so the whole result is read as one batch. A reader is for one
thread.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import adbc_driver_manager
import adbc_driver_sqlite.dbapi as sqlite
import pyarrow as pa
from adbc_driver_sqlite import StatementOptions

from observer.data.datasets import Dataset
from observer.data.span import Span
from observer.db.engine import libpq_params, normalize_url, sqlite_file
from observer.errors import StoreError

__all__ = ["DatabaseReader"]

_ONE_BATCH = str(1 << 30)  # rows per batch of the SQLite driver: all of them


class DatabaseReader:
    """Reads a dataset's rows in a `Span` from the database at ``url``."""

    def __init__(self, url: str) -> None:
        parsed = normalize_url(url)
        self.dialect = parsed.get_backend_name()
        self._path: Path | None = None
        self._conninfo = ""
        self._postgres: Any = None  # the kept connection (adbc_driver_manager's)
        self._sqlite_conn: Any = None  # the kept SQLite connection, and its file's identity
        self._sqlite_file: tuple[int, int] | None = None
        if self.dialect == "sqlite":
            self._path = sqlite_file(parsed)
            if self._path is None:
                raise StoreError("observer.data reads a SQLite file, not a database in memory")
        elif self.dialect == "postgresql":
            from psycopg.conninfo import make_conninfo  # deferred: PostgreSQL only

            self._conninfo = make_conninfo(**libpq_params(parsed))
        else:
            raise StoreError(f"observer.data reads SQLite or PostgreSQL, not {self.dialect}")

    def read(self, dataset: Dataset, span: Span) -> pa.Table:
        """The dataset's stored columns of the rows in ``span`` (types as the driver gives).

        A dataset whose rows are spans (``gaps``) gives those overlapping the range.
        """
        where, params = self._where(dataset, span)
        columns = ", ".join(dataset.stored)
        # The names are the dataset's own; every value is a bound parameter.
        sql = f"SELECT {columns} FROM {dataset.table} WHERE {where}"  # noqa: S608
        return self.query(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """The rows of ``sql`` (placeholders as `placeholder` writes them) as an Arrow table.

        Raises
        ------
        StoreError
            The database could not be read (not there, not reachable, not migrated).
        """
        try:
            if self._path is not None:
                return self._sqlite(sql, params)
            return self._postgresql(sql, params)
        except adbc_driver_manager.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot read the {self.dialect} database: {first}") from exc

    def placeholder(self, n: int) -> str:
        """The ``n``-th (from 1) parameter's placeholder in this database's SQL."""
        return "?" if self.dialect == "sqlite" else f"${n}"

    def _where(self, dataset: Dataset, span: Span) -> tuple[str, list[Any]]:
        params: list[Any] = []

        def bind(value: Any) -> str:
            params.append(value.isoformat() if isinstance(value, date) else value)
            return self.placeholder(len(params))

        if dataset.kind == "reference":  # every row
            terms = ["1 = 1"]
        elif dataset.kind == "daily":  # the KST days the range touches
            days = list(span.days())
            first, after = days[0], days[-1] + timedelta(days=1)
            column = dataset.time_column
            terms = [
                f"{column} >= {self._day(bind(first))}",
                f"{column} < {self._day(bind(after))}",
            ]
        elif dataset.kind == "spans":  # those overlapping the range (gaps)
            terms = [f"start_ns < {bind(span.hi_ns)}", f"end_ns > {bind(span.lo_ns)}"]
        else:
            column = dataset.time_column
            terms = [f"{column} >= {bind(span.lo_ns)}", f"{column} < {bind(span.hi_ns)}"]
        if span.symbols is not None:
            terms.append(f"symbol IN ({', '.join(bind(s) for s in span.symbols)})")
        if span.venue is not None:
            terms.append(f"venue = {bind(span.venue)}")
        return " AND ".join(terms), params

    def _day(self, placeholder: str) -> str:
        """A date parameter (bound as ISO text): SQLite keeps dates as that text."""
        return placeholder if self.dialect == "sqlite" else f"CAST({placeholder} AS DATE)"

    def _sqlite(self, sql: str, params: Sequence[Any]) -> pa.Table:
        assert self._path is not None
        try:
            found = self._path.stat()
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            raise StoreError(f"no database at {self._path}")
        identity = (found.st_dev, found.st_ino)
        if self._sqlite_conn is None or self._sqlite_file != identity:
            self.close()
            uri = f"file:{quote(str(self._path))}?mode=ro"
            self._sqlite_conn = sqlite.connect(uri, autocommit=True)
            self._sqlite_file = identity
        try:
            with self._sqlite_conn.cursor() as cursor:
                cursor.adbc_statement.set_options(**{StatementOptions.BATCH_ROWS.value: _ONE_BATCH})
                cursor.execute(sql, parameters=tuple(params) or None)
                table: pa.Table = cursor.fetch_arrow_table()
        except Exception:
            self.close()  # the next read opens afresh
            raise
        return table

    def _postgresql(self, sql: str, params: Sequence[Any]) -> pa.Table:
        if self._postgres is None:
            import adbc_driver_postgresql.dbapi as postgresql  # deferred: PostgreSQL only

            self._postgres = postgresql.connect(self._conninfo, autocommit=True)
        try:
            with self._postgres.cursor() as cursor:
                cursor.execute(sql, parameters=tuple(params) or None)
                table: pa.Table = cursor.fetch_arrow_table()
        except Exception:
            self.close()  # the next read connects afresh (the server may have gone)
            raise
        return table

    def close(self) -> None:
        """Close the kept connection; a later read opens another."""
        for kept in ("_postgres", "_sqlite_conn"):
            conn = getattr(self, kept)
            if conn is not None:
                setattr(self, kept, None)
                conn.close()
