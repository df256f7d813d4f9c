"""``observer gap-recovery report``: a day's real-time data, symbol by symbol, and its gaps.

A symbol is *watched* while it holds a Track B slot; of the watched time, recovered gaps
are *covered* and every other gap *uncovered*; completeness is the watched time not
uncovered (None when nothing was watched). Overlapping gaps count once; gaps a
reconciliation published are listed but left out of the detection latency. The day's
reconciliation (`workers.gap_recovery.verify`) is the second figure, as of the report.
`DaySummary` is the ``--json`` output, its fields in order.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time

import msgspec
from sqlalchemy import Connection, text

from observer.calendar.phases import KST
from observer.db.reconciliation_queries import (
    chain_span,
    settled_minutes,
    slot_events_between,
    slot_venues_between,
)
from observer.process.stats import p99
from workers.gap_recovery.reconcile import held_spans

__all__ = [
    "ChainProof",
    "DayReconciliation",
    "DayReport",
    "DaySummary",
    "Latencies",
    "SymbolReport",
    "SymbolSummary",
    "chart_html",
    "day_report",
]

_NS = 1_000_000_000
_HOUR = 3600 * _NS
Span = tuple[int, int]


class SymbolSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The figures ``observer gap-recovery report`` prints for one symbol."""

    symbol: str
    ticks: int
    watched_s: float
    gaps_by_reason: dict[str, int]
    gaps_by_state: dict[str, int]
    covered_s: float
    uncovered_s: float
    completeness_pct: float | None  # None: nothing was watched
    reconciled_minutes: int
    reconciliation_pct: float | None


class Latencies(msgspec.Struct, frozen=True, kw_only=True):
    """How the day's short gaps ended, and how soon gaps were detected and recovered."""

    short_gaps: int
    short_success_pct: float
    detection_p99_s: float
    detect_to_recovered_p99_s: float


class DayReconciliation(msgspec.Struct, frozen=True, kw_only=True):
    """The day's reconciled minutes by status, as of the report."""

    watched_minutes: int
    complete: int
    recovered: int
    short: int
    excess: int
    missing_volume: int
    misses: int  # short with no gap Track B recorded: found by the reconciliation
    unexplained: int  # short with no gap at all (none once it has run)
    completeness_pct: float | None
    stream_pct: float | None
    calls: int


class ChainProof(msgspec.Struct, frozen=True, kw_only=True):
    """The watched spans' stored trades against KIS's cumulative-volume chain (ACML_VOL).

    A span is a symbol's slot on a venue; it is *proven* when its stored trades, streamed and
    recovered, hold every share between its first trade's cumulative volume (less the
    trade) and its last's: nothing missing and nothing twice, trade by trade. A span with an
    outage the chain could not measure (its bars recovered, not its trades) or a trade stored
    twice is not.
    """

    spans: int  # with two trades or more
    proven: int
    chain_volume: int  # the chain's difference, summed over the spans
    proven_volume: int  # of it, in proven spans
    proven_pct: float | None  # None: no span


class DaySummary(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``observer gap-recovery report --json`` prints, in this order."""

    date: str
    symbols: list[SymbolSummary]
    ticks: int
    gaps: int
    gaps_by_state: dict[str, int]
    # the two figures: by the gaps detected, and by the exchange's own bars
    completeness_pct: float | None
    reconciliation: DayReconciliation | None  # None: the day was not reconciled
    chain: ChainProof  # the volume proven by the chain, beside the minutes by the bars
    short_gaps: int
    short_success_pct: float
    detection_p99_s: float
    detect_to_recovered_p99_s: float


@dataclass
class SymbolReport:
    """One symbol's day."""

    symbol: str
    ticks: int = 0
    watched: list[Span] = field(default_factory=list)
    gaps: list[tuple[int, int, str, str]] = field(default_factory=list)  # start, end, reason, state
    minutes: Counter[str] = field(default_factory=Counter)  # reconciled minutes by status

    def summary(self) -> SymbolSummary:
        """The figures ``observer gap-recovery report`` prints for the symbol."""
        watched = _union(self.watched)
        # The gaps the system detected: a reconciliation's gaps are the other figure's.
        detected = [(s, e, st) for s, e, reason, st in self.gaps if reason != "reconciliation"]
        uncovered = _within(_union([(s, e) for s, e, st in detected if st != "recovered"]), watched)
        covered = _within(_union([(s, e) for s, e, st in detected if st == "recovered"]), watched)
        watched_s, uncovered_s = _length(watched), _length(uncovered)
        covered_s = _length(covered) - _length(_within(covered, uncovered))
        return SymbolSummary(
            symbol=self.symbol,
            ticks=self.ticks,
            watched_s=round(watched_s, 1),
            gaps_by_reason=dict(Counter(reason for _, _, reason, _ in self.gaps)),
            gaps_by_state=dict(Counter(state for _, _, _, state in self.gaps)),
            covered_s=round(covered_s, 1),
            uncovered_s=round(uncovered_s, 1),
            completeness_pct=_completeness(uncovered_s, watched_s),
            reconciled_minutes=sum(self.minutes.values()),
            reconciliation_pct=_pct(
                self.minutes["complete"] + self.minutes["recovered"], sum(self.minutes.values())
            ),
        )


@dataclass
class DayReport:
    """A day's symbols and the recovery figures of its gaps."""

    day: date
    symbols: list[SymbolReport]
    latencies: Latencies
    reconciliation: DayReconciliation | None = None  # None: the day was not reconciled
    chain: ChainProof = field(default_factory=lambda: _proof([]))

    def summary(self) -> DaySummary:
        """Everything, as one struct (``--json``: its fields, in order)."""
        rows = [s.summary() for s in self.symbols]
        states = Counter(st for s in self.symbols for _, _, _, st in s.gaps)
        watched = sum(r.watched_s for r in rows)
        uncovered = sum(r.uncovered_s for r in rows)
        return DaySummary(
            date=self.day.isoformat(),
            symbols=rows,
            ticks=sum(r.ticks for r in rows),
            gaps=sum(states.values()),
            gaps_by_state=dict(states),
            completeness_pct=_completeness(uncovered, watched),
            reconciliation=self.reconciliation,
            chain=self.chain,
            short_gaps=self.latencies.short_gaps,
            short_success_pct=self.latencies.short_success_pct,
            detection_p99_s=self.latencies.detection_p99_s,
            detect_to_recovered_p99_s=self.latencies.detect_to_recovered_p99_s,
        )


def _union(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > start:
            merged.append((start, end))
    return merged


def _within(spans: list[Span], bounds: list[Span]) -> list[Span]:
    """The parts of ``spans`` inside ``bounds`` (both already unions)."""
    out = []
    for s, e in spans:
        for bs, be in bounds:
            if min(e, be) > max(s, bs):
                out.append((max(s, bs), min(e, be)))
    return _union(out)


def _length(spans: list[Span]) -> float:
    return sum(e - s for s, e in spans) / _NS


def _completeness(uncovered_s: float, watched_s: float) -> float | None:
    """The watched time not uncovered, in %; None when nothing was watched."""
    return round(100 * (1 - uncovered_s / watched_s), 3) if watched_s else None


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 3) if whole else 100.0


# Each symbol's ticks of the day and the last one's receipt, read by the ticks' exchange day
# (their BSOP_DATE, as retention and the reconciliation date them): PostgreSQL reads the
# day's partition only; SQLite, whose table is keyed by (source, seq), reads each symbol's
# range of the (symbol, exchange_ns) index, the symbols found by a loose scan of the same
# index (a seek each). These are the ticks received that day, as the report says: Track B
# streams only in the day's session, hours from either midnight, and a tick arrives
# seconds after its trade, so its exchange day is the day it was received.
_DAY_TICKS = text(
    "select symbol, count(*), max(received_ns) from trade_ticks "
    "where exchange_ns >= :lo and exchange_ns < :hi group by symbol"
)
_DAY_TICKS_SQLITE = text(
    "with recursive symbols(s) as (select min(symbol) from trade_ticks union all "
    "select (select min(symbol) from trade_ticks where symbol > s) from symbols "
    "where s is not null) "
    "select symbol, count(*), max(received_ns) from symbols join trade_ticks on symbol = s "
    "where exchange_ns >= :lo and exchange_ns < :hi group by symbol"
)


def day_report(conn: Connection, day: date, short_s: float = 60.0) -> DayReport:
    """Read ``day`` (KST) from the database; ``short_s`` bounds the gaps counted as short."""
    lo = int(datetime.combine(day, time(0), tzinfo=KST).timestamp()) * _NS
    hi = lo + 86_400 * _NS
    bounds = {"lo": lo, "hi": hi}
    symbols: dict[str, SymbolReport] = defaultdict(lambda: SymbolReport(""))
    sqlite = conn.dialect.name == "sqlite"
    ticks = conn.execute(_DAY_TICKS_SQLITE if sqlite else _DAY_TICKS, bounds).all()
    last = max((t for _, _, t in ticks), default=lo)
    for symbol, count, _ in ticks:
        symbols[symbol].ticks = count
    gaps = conn.execute(
        text(
            "select symbol, start_ns, end_ns, reason, state, detected_ns, updated_ns from gaps "
            "where start_ns >= :lo and start_ns < :hi"
        ),
        bounds,
    ).all()
    events = {
        venue: slot_events_between(conn, lo, hi, venue=venue)
        for venue in slot_venues_between(conn, lo, hi)
    }
    last = max([last, *(g[2] for g in gaps), *(e[3] for held in events.values() for e in held)])
    proofs: list[tuple[int, int, int, int]] = []  # per span: chain_span's figures
    for venue, held in events.items():  # a symbol watched on several venues: each venue's
        for symbol, spans in held_spans(held, last).items():
            symbols[symbol].watched = sorted([*symbols[symbol].watched, *spans])
            proofs += [chain_span(conn, symbol, venue, start, end) for start, end in spans]
    detection, to_recovered, short = [], [], Counter[str]()
    for symbol, start, end, reason, state, detected, updated in gaps:
        symbols[symbol].gaps.append((start, end, reason, state))
        if reason != "reconciliation":  # found after the close, hours after its minute
            detection.append(max(0, detected - end) / _NS)
        if state == "recovered":
            to_recovered.append(max(0, updated - detected) / _NS)
        if (end - start) / _NS <= short_s:
            short[state] += 1
    for symbol, report in symbols.items():
        report.symbol = symbol
    settled = short["recovered"] + short["unrecoverable"]
    latencies = Latencies(
        short_gaps=sum(short.values()),
        short_success_pct=round(100 * short["recovered"] / settled, 2) if settled else 100.0,
        detection_p99_s=p99(detection),
        detect_to_recovered_p99_s=p99(to_recovered),
    )
    reconciliation = _reconciliation(conn, day, symbols)
    return DayReport(
        day, [symbols[s] for s in sorted(symbols)], latencies, reconciliation, _proof(proofs)
    )


def _proof(spans: list[tuple[int, int, int, int]]) -> ChainProof:
    """The chain's figures of ``spans`` (`chain_span`'s, each span's)."""
    chained = [(shares, last - first) for count, shares, first, last in spans if count >= 2]
    volume = sum(diff for _, diff in chained)
    proven = [diff for shares, diff in chained if shares == diff]
    return ChainProof(
        spans=len(chained),
        proven=len(proven),
        chain_volume=volume,
        proven_volume=sum(proven),
        proven_pct=round(100 * sum(proven) / volume, 2) if volume else None,
    )


def _reconciliation(
    conn: Connection, day: date, symbols: dict[str, SymbolReport]
) -> DayReconciliation | None:
    """The day's reconciled minutes by status, into ``symbols``; None if none.

    As of now: a short minute KIS's bar stands in for since is recovered (`settled_minutes`).
    """
    minutes, calls = settled_minutes(conn, day)
    if not minutes:
        return None
    total: Counter[str] = Counter()
    misses = unexplained = missing = 0
    for symbol, _, status, stored, bar, gap_id, _ in minutes:
        if status == "short":
            missing += bar - stored
            unexplained += not gap_id
        misses += status in ("short", "recovered") and gap_id.startswith("reconciliation:")
        symbols[symbol].minutes[status] += 1
        total[status] += 1
    watched = sum(total.values())
    return DayReconciliation(
        watched_minutes=watched,
        complete=total["complete"],
        recovered=total["recovered"],
        short=total["short"],
        excess=total["excess"],
        missing_volume=missing,
        misses=misses,
        unexplained=unexplained,
        # "shifted": complete once the bars are read a minute off (bar_label_shifted)
        completeness_pct=_pct(total["complete"] + total["shifted"] + total["recovered"], watched),
        stream_pct=_pct(total["complete"] + total["shifted"], watched),
        calls=calls,
    )


_COLOURS = {
    "recovered": "#2e9d4f",
    "unrecoverable": "#d43c3c",
    "marker_only": "#e39b28",
    "detected": "#6f7fa8",
    "recovering": "#6f7fa8",
}


def _axis(report: DayReport) -> Span:
    """The chart's time axis: the whole hours around every watched and gap instant.

    Taken from the data, so a late day (a session shifted an hour, as on the CSAT) is shown
    whole; a day with neither shows the regular session, 09:00-15:30.
    """
    lo = int(datetime.combine(report.day, time(0), tzinfo=KST).timestamp()) * _NS
    hi = lo + 86_400 * _NS
    instants = [
        min(max(t, lo), hi)
        for symbol in report.symbols
        for spans in (symbol.watched, [(g[0], g[1]) for g in symbol.gaps])
        for span in spans
        for t in span
    ]
    if not instants:
        return lo + 9 * _HOUR, lo + 15 * _HOUR + _HOUR // 2
    first = lo + (min(instants) - lo) // _HOUR * _HOUR  # KST hours are whole UTC hours
    last = lo - (lo - max(instants)) // _HOUR * _HOUR
    return first, max(last, first + _HOUR)


def chart_html(report: DayReport) -> str:
    """A self-contained HTML page: each symbol's watched time and gaps on the day's hours."""
    day = report.day
    x0, x1 = _axis(report)
    left, width, row = 80, 1040, 16
    height = 40 + row * len(report.symbols)

    def x(ns: int) -> float:
        return left + width * min(max(ns - x0, 0), x1 - x0) / (x1 - x0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{height}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for hour in range(-(-x0 // _HOUR), x1 // _HOUR + 1):
        at = x(hour * _HOUR)
        label = f"{datetime.fromtimestamp(hour * _HOUR / _NS, KST):%H:%M}"
        parts.append(f'<line x1="{at:.1f}" y1="20" x2="{at:.1f}" y2="{height}" stroke="#ddd"/>')
        parts.append(f'<text x="{at:.1f}" y="14" text-anchor="middle">{label}</text>')
    for i, symbol in enumerate(report.symbols):
        y = 24 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 10}" text-anchor="end">{symbol.symbol}</text>')
        for start, end in _union(symbol.watched):
            parts.append(
                f'<rect x="{x(start):.1f}" y="{y + 3}" width="{max(x(end) - x(start), 1):.1f}" '
                'height="6" fill="#cfd8e3"/>'
            )
        for start, end, reason, state in symbol.gaps:
            label = (
                f"{symbol.symbol} {reason} {state}: "
                f"{datetime.fromtimestamp(start / _NS, KST):%H:%M:%S}-"
                f"{datetime.fromtimestamp(end / _NS, KST):%H:%M:%S}"
            )
            parts.append(
                f'<rect x="{x(start):.1f}" y="{y}" width="{max(x(end) - x(start), 2):.1f}" '
                f'height="12" fill="{_COLOURS.get(state, "#888")}">'
                f"<title>{html.escape(label)}</title></rect>"
            )
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {s}</span>'
        for s, c in _COLOURS.items()
        if s != "recovering"
    )
    summary = report.summary()
    return (
        f"<!doctype html><meta charset='utf-8'><title>gaps {day}</title>"
        f"<h3>Real-time gaps on {day}: {summary.gaps} gaps, {summary.ticks:,} ticks</h3>"
        f"<p>{legend} <span style='color:#cfd8e3'>&#9632; watched</span></p>" + "".join(parts)
    )
