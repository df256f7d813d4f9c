"""A day on one page: `day_report` renders what the observer held of a day as HTML.

For each venue: the coverage of every watched symbol and minute as a heat map (a row per
symbol, a column per minute of the venue's sessions, a colour per status, `coverage`), the
symbols watched minute by minute (the registrations in use), and the reconciliation per
symbol; then the day's gaps and what became of them, and its alerts. The page is one file with
no script and nothing fetched: it opens from a mail or a shared folder as it is.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from itertools import groupby

import pyarrow as pa
import pyarrow.compute as pc

from observer.calendar.phases import KST
from observer.data.catalog import Catalog
from observer.data.coverage import STATUSES
from observer.db.retention_queries import day_bounds

__all__ = ["COLOURS", "day_report"]

COLOURS = {  # a status's colour in the heat map and its legend
    "ticks": "#2e7d32",
    "quiet": "#a5d6a7",
    "recovered_trades": "#1e88e5",
    "recovered": "#f9a825",
    "missing": "#c62828",
    "not_watched": "#eeeeee",
}
_CELL_W, _ROW_H, _LABEL_W = 2, 10, 64  # pixels: a minute, a symbol's row, the symbol labels
_STYLE = """
body { font: 13px system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f5f5f5; } td.text, th.text { text-align: left; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }
svg text { font: 10px system-ui, sans-serif; fill: #444; }
"""


def day_report(catalog: Catalog, day: date) -> str:
    """The HTML page of ``day`` (a KST trading day), from what ``catalog`` reads."""
    coverage = catalog.coverage(None, day)
    gaps = catalog.gaps(None, day)
    alerts = _alerts(catalog, day)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>observer: {day}</title><style>{_STYLE}</style></head><body>",
        f"<h1>observer: the day of {day}</h1>",
        _summary(coverage, gaps, alerts),
        _legend(),
    ]
    for venue in sorted(set(coverage["venue"].to_pylist())):
        rows = coverage.filter(pc.equal(coverage["venue"], venue))
        parts += [
            f'<section class="venue" data-venue="{_e(venue)}"><h2>{_e(venue)}</h2>',
            _heat_map(rows),
            _watched(rows),
            _reconciliation(rows, venue),
            "</section>",
        ]
    parts += [_gaps(gaps), _alerts_table(alerts), "</body></html>"]
    return "\n".join(parts)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _kst(ns: int | None) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, KST).strftime("%H:%M:%S")


def _summary(coverage: pa.Table, gaps: pa.Table, alerts: pa.Table) -> str:
    counts = Counter(coverage["status"].to_pylist())
    watched = sum(n for status, n in counts.items() if status != "not_watched")
    whole = counts["ticks"] + counts["quiet"]
    verified = sum(1 for v in coverage["verified"].to_pylist() if v)
    symbols = len(set(coverage["symbol"].to_pylist()))
    share = f"{100 * whole / watched:.2f} %" if watched else "none watched"
    items = [
        ("symbols watched", f"{symbols:,}"),
        ("minutes watched", f"{watched:,}"),
        ("whole from the stream", share),
        *((f"minutes {s}", f"{counts[s]:,}") for s in STATUSES),
        ("minutes the reconciliation judged", f"{verified:,}"),
        ("gaps", f"{gaps.num_rows:,}"),
        ("alerts", f"{alerts.num_rows:,}"),
    ]
    cells = "".join(
        f'<tr><th class="text">{_e(k)}</th><td data-key="{_e(k)}">{_e(v)}</td></tr>'
        for k, v in items
    )
    return f'<table id="summary">{cells}</table>'


def _legend() -> str:
    return (
        '<p class="legend">'
        + "".join(f'<span style="background:{c}"></span>{_e(s)}' for s, c in COLOURS.items())
        + "</p>"
    )


def _heat_map(rows: pa.Table) -> str:
    """A rect per run of minutes of one status, for each symbol, on one minute axis."""
    minutes = sorted(set(rows["minute_ns"].to_pylist()))
    column = {m: n for n, m in enumerate(minutes)}
    by_symbol = _by_symbol(rows)
    width = _LABEL_W + _CELL_W * len(minutes)
    height = _ROW_H * len(by_symbol) + 14
    shapes = []
    for n, (symbol, cells) in enumerate(by_symbol):
        y = n * _ROW_H
        shapes.append(f'<text x="0" y="{y + _ROW_H - 1}">{_e(symbol)}</text>')
        for status, run in groupby(cells, key=lambda cell: cell[1]):
            spans = [column[cell[0]] for cell in run]
            x = _LABEL_W + _CELL_W * spans[0]
            shapes.append(
                f'<rect class="cell" data-symbol="{_e(symbol)}" data-status="{_e(status)}" '
                f'data-minutes="{len(spans)}" x="{x}" y="{y}" width="{_CELL_W * len(spans)}" '
                f'height="{_ROW_H - 1}" fill="{COLOURS.get(status, "#000")}"/>'
            )
    for n, minute in enumerate(minutes):
        if _kst(minute).endswith(":00:00"):  # the hours along the bottom
            x = _LABEL_W + _CELL_W * n
            shapes.append(f'<text x="{x}" y="{height - 2}">{_kst(minute)[:5]}</text>')
    return (
        f'<svg class="heat-map" width="{width}" height="{height}" role="img" '
        f'aria-label="coverage by symbol and minute">{"".join(shapes)}</svg>'
    )


_Cell = tuple[int, str, bool, int]  # a minute's instant, status, verified, trades stored


def _by_symbol(rows: pa.Table) -> list[tuple[str, list[_Cell]]]:
    """Each symbol's minutes in time order, symbols in order."""
    cells = sorted(
        zip(
            rows["symbol"].to_pylist(),
            rows["minute_ns"].to_pylist(),
            rows["status"].to_pylist(),
            rows["verified"].to_pylist(),
            rows["ticks"].to_pylist(),
            strict=True,
        )
    )
    return [
        (
            symbol,
            [
                (minute, status, bool(verified), ticks or 0)
                for _, minute, status, verified, ticks in run
            ],
        )
        for symbol, run in groupby(cells, key=lambda cell: cell[0])
    ]


def _watched(rows: pa.Table) -> str:
    """The symbols watched in each minute: a line over the heat map's minute axis."""
    counts = Counter(
        m
        for m, s in zip(rows["minute_ns"].to_pylist(), rows["status"].to_pylist(), strict=True)
        if s != "not_watched"
    )
    minutes = sorted(set(rows["minute_ns"].to_pylist()))
    peak = max(counts.values(), default=0)
    height = 60
    points = " ".join(
        f"{_LABEL_W + _CELL_W * n},{height - (height - 4) * counts[m] / max(peak, 1):.1f}"
        for n, m in enumerate(minutes)
    )
    return (
        f"<p>Symbols watched minute by minute (peak {peak:,}):</p>"
        f'<svg class="watched" data-peak="{peak}" width="{_LABEL_W + _CELL_W * len(minutes)}" '
        f'height="{height}"><polyline fill="none" stroke="#1565c0" points="{points}"/></svg>'
    )


def _reconciliation(rows: pa.Table, venue: str) -> str:
    """Each symbol's minutes by status, how many the reconciliation judged, its trades."""
    header = "".join(f"<th>{_e(s)}</th>" for s in STATUSES)
    lines = []
    for symbol, cells in _by_symbol(rows):
        counts = Counter(status for _, status, _, _ in cells)
        judged = sum(1 for _, _, verified, _ in cells if verified)
        trades = sum(ticks for _, _, _, ticks in cells)
        lines.append(
            f'<tr data-symbol="{_e(symbol)}"><td class="text">{_e(symbol)}</td>'
            + "".join(f'<td data-status="{s}">{counts[s]:,}</td>' for s in STATUSES)
            + f"<td>{judged:,}</td><td>{trades:,}</td></tr>"
        )
    return (
        f'<table class="reconciliation" id="reconciliation-{_e(venue)}">'
        '<tr><th class="text">symbol</th>'
        f"{header}<th>judged</th><th>trades</th></tr>{''.join(lines)}</table>"
    )


def _gaps(gaps: pa.Table) -> str:
    columns = ("symbol", "venue", "start_ns", "end_ns", "reason", "state", "bars")
    return _table("gaps", "Gaps and their recovery", columns, gaps.select(list(columns)))


def _alerts_table(alerts: pa.Table) -> str:
    columns = ("produced_ns", "severity", "code", "subject", "message")
    return _table("alerts", "Alerts", columns, alerts)


def _table(name: str, title: str, columns: Sequence[str], rows: pa.Table) -> str:
    """A titled table of ``rows``' ``columns``: instants (``*_ns``) as KST times, the rest text."""
    header = "".join(f'<th class="text">{_e(c.removesuffix("_ns"))}</th>' for c in columns)
    lines = [
        "<tr>"
        + "".join(
            f"<td>{_kst(row[c])}</td>"
            if c.endswith("_ns")
            else f'<td class="text">{_e(row[c])}</td>'
            for c in columns
        )
        + "</tr>"
        for row in rows.to_pylist()
    ]
    body = "".join(lines) or f'<tr><td class="text" colspan="{len(columns)}">none</td></tr>'
    return f'<h2>{_e(title)}</h2><table id="{name}"><tr>{header}</tr>{body}</table>'


def _alerts(catalog: Catalog, day: date) -> pa.Table:
    """The alerts raised on ``day``, in the order they were."""
    reader = catalog.database
    lo, hi = day_bounds(day)
    sql = (
        "SELECT produced_ns, severity, code, subject, message FROM alerts "  # noqa: S608
        f"WHERE produced_ns >= {reader.placeholder(1)} AND produced_ns < "
        f"{reader.placeholder(2)} ORDER BY produced_ns, source, seq"
    )
    return reader.query(sql, (lo, hi))
