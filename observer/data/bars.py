"""The best bar of each minute: from the stored trades where whole, else KIS's recovered one.

``built_from`` says which: ``ticks`` (the minute's coverage is ``ticks``, or
``recovered_trades``, its streamed trades made whole by the exchange's own: open, high, low and
close of its trades in exchange order, their volume and value, their count) or ``kis`` (the
minute was missed and recovered: the newest bar recovered for it; its ``trades`` is NULL, as
KIS's bars carry no count). A minute missed and not recovered has no bar. ``verified``: the
day's reconciliation judged the minute.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from observer.data.datasets import KST_TIME
from observer.db.slot_queries import MINUTE_NS

__all__ = ["BEST_BARS_SCHEMA", "best_bars"]

BEST_BARS_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("venue", pa.string()),
        ("trading_session", pa.string()),
        ("minute_ns", pa.int64()),
        ("minute_time", KST_TIME),
        ("open", pa.int64()),
        ("high", pa.int64()),
        ("low", pa.int64()),
        ("close", pa.int64()),
        ("volume", pa.int64()),
        ("value", pa.int64()),
        ("trades", pa.int64()),
        ("built_from", pa.string()),
        ("verified", pa.bool_()),
    ]
)
_KEY = ["symbol", "venue", "minute_ns"]


def best_bars(coverage: pa.Table, ticks: pa.Table, recovered: pa.Table) -> pa.Table:
    """The best bars (`BEST_BARS_SCHEMA`) of the minutes of ``coverage``.

    ``ticks``: the minutes' trades (symbol, venue, exchange_ns, price, qty), in exchange
    order; ``recovered``: the stored bars (`observer.data.datasets.BARS`).
    """
    from_ticks = _from_ticks(ticks).join(
        _where(coverage, "ticks", "recovered_trades"), _KEY, join_type="inner", use_threads=False
    )
    newest = _newest_recovered(recovered).join(
        _where(coverage, "recovered"), _KEY, join_type="inner", use_threads=False
    )
    parts = [
        _shape(from_ticks, "ticks"),
        _shape(newest.append_column("trades", pa.nulls(newest.num_rows, pa.int64())), "kis"),
    ]
    table = pa.concat_tables(parts)
    return table.sort_by([(c, "ascending") for c in _KEY]).combine_chunks()


def _where(coverage: pa.Table, *statuses: str) -> pa.Table:
    chosen = coverage.filter(pc.is_in(coverage["status"], pa.array(statuses)))
    return chosen.select([*_KEY, "trading_session", "verified"])


def _from_ticks(ticks: pa.Table) -> pa.Table:
    minute = pc.multiply(pc.divide(ticks["exchange_ns"], MINUTE_NS), MINUTE_NS)
    value = pc.multiply(ticks["price"], ticks["qty"])
    trades = pa.table(
        {
            "symbol": ticks["symbol"],
            "venue": ticks["venue"],
            "minute_ns": minute,
            "price": ticks["price"],
            "qty": ticks["qty"],
            "value": value,
        }
    )
    grouped = trades.group_by(_KEY, use_threads=False).aggregate(  # in order: first, last
        [
            ("price", "first"),
            ("price", "max"),
            ("price", "min"),
            ("price", "last"),
            ("qty", "sum"),
            ("value", "sum"),
            ("qty", "count"),
        ]
    )
    names = ["open", "high", "low", "close", "volume", "value", "trades"]
    return grouped.rename_columns([*_KEY, *names])


def _newest_recovered(bars: pa.Table) -> pa.Table:
    """Of the bars recovered, the newest of each minute (a gap recovered twice)."""
    recovered = bars.filter(pc.equal(bars["quality"], "recovered"))
    ordered = recovered.sort_by([*((c, "ascending") for c in _KEY), ("seq", "descending")])
    picked = ordered.group_by(_KEY, use_threads=False).aggregate(
        [(c, "first") for c in ("open", "high", "low", "close", "volume", "value")]
    )
    return picked.rename_columns([*_KEY, "open", "high", "low", "close", "volume", "value"])


def _shape(table: pa.Table, built_from: str) -> pa.Table:
    columns = []
    for field in BEST_BARS_SCHEMA:
        if field.name == "built_from":
            columns.append(pa.array([built_from] * table.num_rows, pa.string()))
        elif field.name == "minute_time":
            columns.append(table["minute_ns"].cast(KST_TIME))
        else:
            columns.append(table[field.name].cast(field.type))
    return pa.Table.from_arrays(columns, schema=BEST_BARS_SCHEMA)
