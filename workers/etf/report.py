"""``observer etf status``, ``report``, ``holdings-report``: read-only views of the ETF data.

Each view is a frozen struct (`EtfLine`, `HoldingsTable`) whose fields are the ``--json``
keys, in order; figures not known are None (empty CSV cells).
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
from sqlalchemy import Connection

from bus.events import EtfHolding
from observer.calendar.timeline import timeline_from
from observer.config.tree import Settings
from observer.db.etf_queries import (
    etf_details_of,
    etf_history,
    etf_holdings_of,
    held_etfs,
    kis_etf_symbols,
)
from workers.etf.health import Health, due_session, health, is_due

__all__ = [
    "COLUMNS",
    "EtfLine",
    "HoldingsTable",
    "day_table",
    "holdings_table",
    "judged",
    "write_csv",
]

COLUMNS = (
    "symbol", "name", "issuer", "price", "nav", "premium", "aum", "aum_source",
    "premium_20d", "premium_abs_20d", "premium_60d", "premium_abs_60d", "premium_250d",
    "high_52w", "low_52w", "holdings", "nav_final",
)  # fmt: skip


class EtfLine(msgspec.Struct, frozen=True, kw_only=True):
    """One ETF's figures on a day (`COLUMNS`, in order)."""

    symbol: str
    name: str
    issuer: str
    price: int | None
    nav: Decimal | None
    premium: Decimal | None
    aum: int | None
    aum_source: str
    premium_20d: Decimal | None
    premium_abs_20d: Decimal | None
    premium_60d: Decimal | None
    premium_abs_60d: Decimal | None
    premium_250d: Decimal | None
    high_52w: int | None  # None: not known (a partial range is not told as 52 weeks')
    low_52w: int | None
    holdings: int | None
    nav_final: bool


class HoldingsTable(msgspec.Struct, frozen=True, kw_only=True):
    """An ETF's stored constituents of one session, largest weight first."""

    symbol: str
    date: str
    reported_count: int | None  # the answer's own count
    quote_count: int | None  # FHPST02400000's count in the day's row
    pages: int
    lines: list[EtfHolding]


def judged(
    settings: Settings, conn: Connection, now_kst: datetime, day: date | None = None
) -> Health:
    """The health of ``day`` (default: the session due at ``now_kst``), read on ``conn``."""
    timeline = timeline_from(settings.phases, settings.calendar)
    shifted = timeline.schedule.close_shifts()  # a late close's rows are due later too
    session = day or due_session(now_kst, timeline.calendar, settings.etf.stale_at, shifted)
    due = is_due(session, now_kst, settings.etf.stale_at, shifted)
    listings = held_etfs(conn)
    kis = kis_etf_symbols(conn)
    history = etf_history(conn, session, session)
    details = etf_details_of(conn, session)
    rows = {symbol: days[session] for symbol, days in history.items() if session in days}
    return health(session, due, listings, kis, rows, details, settings.etf)


def day_table(conn: Connection, day: date, sort: str = "symbol") -> list[EtfLine]:
    """One line per ETF with a row on ``day``: its figures, sorted (premium, aum: largest first)."""
    listings = held_etfs(conn)
    history = etf_history(conn, day, day)
    details = etf_details_of(conn, day)
    table: list[EtfLine] = []
    for symbol, days in history.items():
        row = days.get(day)
        if row is None:
            continue
        listing, detail = listings.get(symbol), details.get(symbol)
        table.append(
            EtfLine(
                symbol=symbol,
                name=listing.name if listing else "",
                issuer=listing.manager if listing else "",
                price=row.close,
                nav=row.nav,
                premium=detail.premium if detail else row.premium_calc_pct,
                aum=detail.aum if detail else row.net_assets_krw,
                aum_source=detail.aum_source if detail else "",
                premium_20d=detail.tracking_20d if detail else None,
                premium_abs_20d=detail.premium_abs_20d if detail else None,
                premium_60d=detail.tracking_60d if detail else None,
                premium_abs_60d=detail.premium_abs_60d if detail else None,
                premium_250d=detail.tracking_250d if detail else None,
                # 0: not known (a partial range is not told as 52 weeks')
                high_52w=(detail.high_52w or None) if detail else None,
                low_52w=(detail.low_52w or None) if detail else None,
                holdings=row.holdings,
                nav_final=row.nav_final,
            )
        )

    def key(line: EtfLine) -> tuple[Decimal, str]:
        if sort == "premium":
            return -abs(Decimal(line.premium or 0)), line.symbol
        if sort == "aum":
            return -Decimal(line.aum or 0), line.symbol
        return Decimal(0), line.symbol

    table.sort(key=key)
    return table


def write_csv(table: list[EtfLine], path: Path) -> None:
    """The table as CSV (empty cells for unknown figures)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for line in table:
            row = msgspec.structs.asdict(line)
            writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})


def holdings_table(conn: Connection, symbol: str, until: date) -> HoldingsTable | None:
    """``symbol``'s newest constituents on or before ``until``, largest weight first."""
    found = etf_holdings_of(conn, symbol, until)
    if found is None:
        return None
    lines = sorted(found.lines, key=lambda x: (-abs(x.weight_pct or Decimal(0)), x.code))
    return HoldingsTable(
        symbol=symbol,
        date=found.trade_date.isoformat(),
        reported_count=found.reported_count,
        quote_count=found.quote_count,
        pages=found.pages,
        lines=lines,
    )
