"""The read queries of workers, jobs, reports and tools: every SELECT outside the writer.

One place, so that a question asked twice ("the day's newest universe") has one answer, and
the indexes the tables need can be read off one module.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import JSON, ColumnElement, Connection, Row, and_, case, func, select, text, true
from sqlalchemy.orm import Session

from bus.events import UniverseMember, UniverseSnapshot, Venue
from observer.db.audit_queries import snapshot
from observer.db.models import (
    AlertAckedRow,
    AlertDeliveryRow,
    AlertResolvedRow,
    AlertRow,
    BarRow,
    BusOffset,
    Gap,
    GapEvent,
    Instrument,
    InvestorEstimateRow,
    InvestorFlowRow,
    MasterFileCheckedRow,
    MasterFileState,
    PriceSnapshotRow,
    ProgramTradeDailyRow,
    TrackACycleRow,
    TradeTickRow,
    UniverseMemberRow,
    UniverseSnapshotRow,
    VolatilityInterruptionRow,
)
from observer.db.retention_queries import day_bounds

__all__ = [
    "AlertRecords",
    "Listed",
    "active_listings",
    "alert_records",
    "committed_offsets",
    "cycle_summarised",
    "cycle_symbols",
    "cycle_windows",
    "cycles_of",
    "flows_stored",
    "investor_postings_stored",
    "listed_as",
    "master_file_checks",
    "master_file_sha",
    "master_files_checked_ns",
    "open_alert_records",
    "open_gaps",
    "recovered_minutes",
    "recovered_trades",
    "settled_gaps",
    "snapshot_limits",
    "snapshots_of_cycles",
    "universe_of",
    "universe_published",
    "universe_references",
    "universe_stored",
]


def committed_offsets(conn: Connection) -> dict[str, int]:
    """Each source's committed high-water mark."""
    return {row.source: row.seq for row in conn.execute(select(BusOffset.source, BusOffset.seq))}


def universe_of(conn: Connection, day: date, venue: Venue = "KRX") -> list[tuple[str, str, int]]:
    """The members (symbol, market, rank) of ``day``'s newest universe, by rank; [] if none.

    ``venue`` "NXT": those Nextrade trades that day (eligible and not halted by it; none
    where that is not known).
    """
    newest = _newest_universe(conn, day)
    if newest is None:
        return []
    m = UniverseMemberRow
    query = (
        select(m.symbol, m.market, m.rank)
        .where(m.source == newest.source, m.seq == newest.seq)
        .order_by(m.rank, m.symbol)
    )
    if venue == "NXT":
        query = query.where(m.nxt_eligible.is_(True), m.nxt_halted.isnot(True))
    return [(symbol, market, rank) for symbol, market, rank in conn.execute(query)]


def universe_references(
    conn: Connection, day: date
) -> Sequence[Row[str, int, int, int, Decimal, bool, list[str]]] | None:
    """Each member's reference figures in ``day``'s newest universe; None if there is none.

    Rows of ``symbol, market_cap, prev_close, avg_volume_20d, atr_14, nxt, measures``: ``nxt``
    true where Nextrade trades the member today (eligible, not halted by it; false if not
    known); ``measures`` the market measures the masters list it under.
    """
    newest = _newest_universe(conn, day)
    if newest is None:
        return None
    m = UniverseMemberRow
    nxt = and_(m.nxt_eligible.is_(True), m.nxt_halted.isnot(True))
    query = select(
        m.symbol,
        m.market_cap,
        m.prev_close,
        m.avg_volume_20d,
        m.atr_14,
        case((nxt, True), else_=False).label("nxt"),
        m.measures,
    ).where(m.source == newest.source, m.seq == newest.seq)
    return conn.execute(query).all()


class Listed(NamedTuple):
    """How the domestic master files list a symbol (the instruments table's row of it)."""

    kind: str  # its product: stock, etf, etn, ... (`observer.kis.master.group_kind`'s words)
    measures: tuple[str, ...]  # the market measures it is under, sorted ("warning", ...)


def listed_as(conn: Connection, symbols: Collection[str]) -> dict[str, Listed]:
    """How the domestic master files list each of ``symbols``; one they do not is left out."""
    query = select(Instrument.symbol, Instrument.security_type, Instrument.measures).where(
        Instrument.region == "KR", Instrument.symbol.in_(sorted(symbols))
    )
    return {s: Listed(kind, tuple(measures)) for s, kind, measures in conn.execute(query)}


def investor_postings_stored(
    conn: Connection, day: date
) -> dict[tuple[str, int], list[tuple[int, int, int]]]:
    """``day``'s intraday investor estimates stored, by (symbol, posting), oldest first.

    Each one's figures (foreigners', institutions', both): the first answer, then each
    revision KIS answered later.
    """
    e = InvestorEstimateRow
    query = (
        select(e.symbol, e.posting, e.foreign_qty, e.institution_qty, e.total_qty)
        .where(e.trade_date == day)
        .order_by(e.fetched_ns, e.seq)
    )
    stored: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    for row in conn.execute(query):
        stored.setdefault((row[0], row[1]), []).append((row[2], row[3], row[4]))
    return stored


def flows_stored(conn: Connection, day: date) -> set[tuple[str, str, str]]:
    """The (kind, symbol, venue) of ``day``'s final flows stored.

    Kinds: "investor", "program"; "vi" (KRX's) for a stock with a VI of the day stored.
    """
    found: set[tuple[str, str, str]] = set()
    for kind, model in (("investor", InvestorFlowRow), ("program", ProgramTradeDailyRow)):
        query = select(model.symbol, model.venue).where(model.trade_date == day)
        found |= {(kind, symbol, venue) for symbol, venue in conn.execute(query)}
    vis = select(VolatilityInterruptionRow.symbol).where(
        VolatilityInterruptionRow.trade_date == day
    )
    found |= {("vi", symbol, "KRX") for (symbol,) in conn.execute(vis)}
    return found


def universe_stored(conn: Connection, day: date) -> tuple[UniverseSnapshot, int] | None:
    """``day``'s newest universe as published, and when (``produced_ns``); None if none."""
    newest = _newest_universe(conn, day)
    if newest is None:
        return None
    u, m = UniverseSnapshotRow, UniverseMemberRow
    head = conn.execute(
        select(u.based_on, u.min_prev_close, u.excluded, u.produced_ns).where(
            u.source == newest.source, u.seq == newest.seq
        )
    ).one()
    fields = UniverseMember.__struct_fields__
    rows = conn.execute(
        select(*(getattr(m, f) for f in fields))
        .where(m.source == newest.source, m.seq == newest.seq)
        .order_by(m.rank, m.symbol)
    )
    event = UniverseSnapshot(
        trade_date=day,
        based_on=head.based_on,
        min_prev_close=head.min_prev_close,
        members=tuple(UniverseMember(**r._asdict()) for r in rows),
        excluded=head.excluded,
    )
    return event, head.produced_ns


def universe_published(conn: Connection, day: date) -> bool:
    """True if a universe of ``day`` is stored."""
    query = select(func.count()).where(UniverseSnapshotRow.trade_date == day)
    return bool(conn.execute(query).scalar_one())


def _newest_universe(conn: Connection, day: date) -> Row[str, int] | None:
    """The (source, seq) of ``day``'s newest universe publication.

    A day's universe never changes, but it may be published more than once (a rerun
    republishes it when the database lacks it): the newest publication is the one.
    """
    u = UniverseSnapshotRow
    return conn.execute(
        select(u.source, u.seq)
        .where(u.trade_date == day)
        .order_by(u.produced_ns.desc(), u.seq.desc())
        .limit(1)
    ).first()


def cycle_summarised(conn: Connection, source: str, cycle_id: str) -> bool:
    """True if Track A's summary of the cycle is stored."""
    query = select(func.count()).where(
        TrackACycleRow.source == source, TrackACycleRow.cycle_id == cycle_id
    )
    return bool(conn.execute(query).scalar_one())


def cycle_symbols(conn: Connection, source: str, cycle_id: str) -> set[str]:
    """The symbols whose snapshot of the cycle is stored."""
    query = select(PriceSnapshotRow.symbol).where(
        PriceSnapshotRow.source == source, PriceSnapshotRow.cycle_id == cycle_id
    )
    return set(conn.execute(query).scalars())


def cycles_of(session: Session, day: date) -> list[TrackACycleRow]:
    """Track A's cycle summaries of ``day``, in schedule order."""
    query = (
        select(TrackACycleRow)
        .where(TrackACycleRow.trade_date == day)
        .order_by(TrackACycleRow.scheduled_ns, TrackACycleRow.seq)
    )
    return list(session.scalars(query))


def snapshots_of_cycles(
    conn: Connection, first: str, last: str, venue: Venue = "KRX"
) -> list[dict[str, Any]]:
    """Every snapshot row of ``venue``'s cycles ``first``..``last`` (cycle ids sort by time)."""
    query = select(PriceSnapshotRow).where(
        PriceSnapshotRow.cycle_id >= first,
        PriceSnapshotRow.cycle_id <= last,
        PriceSnapshotRow.venue == venue,
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def active_listings(conn: Connection) -> dict[str, int]:
    """Active instruments per market."""
    query = (
        select(Instrument.market, func.count())
        .where(Instrument.active.is_(True))
        .group_by(Instrument.market)
    )
    return {market: int(count) for market, count in conn.execute(query)}


def master_file_sha(conn: Connection, market: str) -> str:
    """The sha256 of the master file whose listings the database holds; "" if none."""
    query = select(MasterFileState.sha256).where(MasterFileState.market == market)
    return conn.execute(query).scalar() or ""


def master_file_checks(
    conn: Connection, since_ns: int, markets: Sequence[str] | None = None
) -> Sequence[Row[Any]]:
    """The master-file checks since ``since_ns`` (of ``markets`` if given), oldest first."""
    query = select(MasterFileCheckedRow).where(MasterFileCheckedRow.produced_ns >= since_ns)
    if markets:
        query = query.where(MasterFileCheckedRow.market.in_(markets))
    return conn.execute(query.order_by(MasterFileCheckedRow.produced_ns)).all()


_OPEN_GAP_STATES = ("detected", "recovering")


def open_gaps(
    conn: Connection, host: str = "", *, unrecoverable_since_ns: int | None = None
) -> Sequence[Row[str, str, int, int, str, int, str, str, int | None, int | None]]:
    """Gaps not yet settled, oldest detection first; with ``host``, those detected there.

    Rows of ``gap_id, symbol, start_ns, end_ns, reason, detected_ns, state, venue, cum_before,
    cum_after`` (the last two a volume-chain gap's, else None). A gap was
    detected on ``host`` if the source of its detection is qualified with it (``track_b@c2``).
    With ``unrecoverable_since_ns``, the unrecoverable gaps that began since then too: gap
    recovery tries them again while KIS still serves their bars.
    """
    wanted: ColumnElement[bool] = Gap.state.in_(_OPEN_GAP_STATES)
    if unrecoverable_since_ns is not None:
        wanted = wanted | (
            (Gap.state == "unrecoverable") & (Gap.start_ns >= unrecoverable_since_ns)
        )
    query = (
        select(
            Gap.gap_id,
            Gap.symbol,
            Gap.start_ns,
            Gap.end_ns,
            Gap.reason,
            Gap.detected_ns,
            Gap.state,
            Gap.venue,
            Gap.cum_before,
            Gap.cum_after,
        )
        .where(wanted, _detected_on(host))
        .order_by(Gap.detected_ns)
    )
    return conn.execute(query).all()


def settled_gaps(conn: Connection, lo_ns: int, hi_ns: int, host: str = "") -> list[tuple[str, str]]:
    """``(gap_id, state)`` of the gaps that began in ``[lo_ns, hi_ns)`` and were settled.

    Settled: recovered or unrecoverable (a marker is neither). With ``host``, those detected
    there (`open_gaps`). Gap recovery's success rate of the day starts from these.
    """
    query = select(Gap.gap_id, Gap.state).where(
        Gap.state.in_(("recovered", "unrecoverable")),
        Gap.start_ns >= lo_ns,
        Gap.start_ns < hi_ns,
        _detected_on(host),
    )
    return [(gap_id, state) for gap_id, state in conn.execute(query)]


def _detected_on(host: str) -> ColumnElement[bool]:
    """Gaps detected on ``host`` (every gap without one)."""
    if not host:
        return true()
    detected_here = select(GapEvent.gap_id).where(
        GapEvent.state == "detected", GapEvent.source.endswith(f"@{host}", autoescape=True)
    )
    return Gap.gap_id.in_(detected_here)


def recovered_minutes(conn: Connection, since_ns: int) -> list[tuple[str, str, int]]:
    """(symbol, venue, minute) of each recovered bar an open gap or the last ``since_ns`` touch."""
    oldest = conn.execute(
        select(func.min(Gap.start_ns)).where(Gap.state.in_(_OPEN_GAP_STATES))
    ).scalar_one()
    query = select(BarRow.symbol, BarRow.venue, BarRow.minute_ns).where(
        BarRow.quality == "recovered",
        BarRow.minute_ns >= min(since_ns, oldest or since_ns) - 60 * 1_000_000_000,
    )
    return [(symbol, venue, minute_ns) for symbol, venue, minute_ns in conn.execute(query)]


def recovered_trades(conn: Connection, source: str, since_ns: int) -> list[tuple[str, str, int]]:
    """(symbol, venue, cumulative volume) of each trade ``source`` stored since ``since_ns``.

    Gap recovery's own trades (`observer.kis.time_trades.TradeLedger`): none is published twice.
    """
    t = TradeTickRow
    query = select(t.symbol, t.venue, t.cum_volume).where(
        t.source == source, t.exchange_ns >= since_ns
    )
    return [(symbol, venue, cum) for symbol, venue, cum in conn.execute(query)]


def master_files_checked_ns(conn: Connection) -> int | None:
    """When the master file checked longest ago was last checked; None before any check."""
    return conn.execute(select(func.min(MasterFileState.checked_ns))).scalar()


@dataclass(frozen=True, slots=True)
class AlertRecords:
    """Alerts since an instant and what became of them, read in one snapshot.

    Rows of ``alerts``: ``source, seq, produced_ns, severity, code, subject, message``;
    ``resolutions``: ``source, seq, produced_ns, severity, code, subject, message``;
    ``acks``: ``alert_source, alert_seq, produced_ns, by``; ``deliveries``:
    ``channel, kind, outcome, alerts, produced_ns``, each list oldest first.
    """

    alerts: Sequence[Row[str, int, int, str, str, str, str]]
    resolutions: Sequence[Row[str, int, int, str, str, str, str]]
    acks: Sequence[Row[str, int, int, str]]
    deliveries: Sequence[Row[str, str, str, list[Any], int]]


def alert_records(conn: Connection, since_ns: int) -> AlertRecords:
    """The alerts, resolutions, acks and deliveries produced since ``since_ns``."""
    notices = [
        select(
            table.source,
            table.seq,
            table.produced_ns,
            table.severity,
            table.code,
            table.subject,
            table.message,
        )
        .where(table.produced_ns >= since_ns)
        .order_by(table.produced_ns, table.source, table.seq)
        for table in (AlertRow, AlertResolvedRow)
    ]
    acks = (
        select(
            AlertAckedRow.alert_source,
            AlertAckedRow.alert_seq,
            AlertAckedRow.produced_ns,
            AlertAckedRow.by,
        )
        .where(AlertAckedRow.produced_ns >= since_ns)
        .order_by(AlertAckedRow.produced_ns)
    )
    deliveries = (
        select(
            AlertDeliveryRow.channel,
            AlertDeliveryRow.kind,
            AlertDeliveryRow.outcome,
            AlertDeliveryRow.alerts,
            AlertDeliveryRow.produced_ns,
        )
        .where(AlertDeliveryRow.produced_ns >= since_ns)
        .order_by(AlertDeliveryRow.produced_ns)
    )
    with snapshot(conn):
        return AlertRecords(
            alerts=conn.execute(notices[0]).all(),
            resolutions=conn.execute(notices[1]).all(),
            acks=conn.execute(acks).all(),
            deliveries=conn.execute(deliveries).all(),
        )


# The alerts open now, whatever their age (`observer.alerts.states.alert_states`' rules): a warning,
# error or critical alert no ack names and no resolution of its condition (code, subject)
# ends: one produced after it, or at the same instant after it in its own source; between
# two named hosts only its own host's. Of a condition's resolutions by one source only the
# latest can end anything, so each alert is joined with those few rows, not with every
# resolution: one pass over each table (as `alert_records` makes for its window: no index
# on their time), and only the open alerts come back.
_OPEN_ALERTS = """
with latest as (
    select code, subject, source, seq, produced_ns from (
        select code, subject, source, seq, produced_ns, row_number() over (
            partition by code, subject, source order by produced_ns desc, seq desc
        ) as nth from alert_resolutions
    ) as ranked where nth = 1
)
select a.source, a.seq, a.produced_ns, a.severity, a.code, a.subject, a.message
from alerts as a
left join alert_acks as k on k.alert_source = a.source and k.alert_seq = a.seq
left join latest as r on r.code = a.code and r.subject = a.subject
    and (
        r.produced_ns > a.produced_ns
        or (r.produced_ns = a.produced_ns and r.source = a.source and r.seq > a.seq)
    )
    and (
        {at}(r.source, '@') = 0 or {at}(a.source, '@') = 0
        or substr(r.source, {at}(r.source, '@')) = substr(a.source, {at}(a.source, '@'))
    )
where a.severity <> 'info' and k.alert_seq is null and r.code is null
order by a.produced_ns, a.source, a.seq
"""

# The sent messages of those alerts: ``likes`` holds bound parameters' names, no value.
# A message comes after the alerts it names; the margin takes two hosts' clocks apart.
_SENT = (
    "select source, seq, channel, kind, outcome, alerts, produced_ns from alert_deliveries "
    "where produced_ns >= :since and outcome = 'sent' and ({likes}) order by produced_ns"
)
_CLOCKS_APART_NS = 3600 * 10**9
# Open alerts per query of their messages: SQLite refuses an expression more than 1,000
# deep (a chain of ORs is as deep as it is long), and PostgreSQL more than 65,535 parameters.
_LIKES_PER_QUERY = 200


def open_alert_records(conn: Connection, *, deliveries: bool = True) -> AlertRecords:
    """Every open alert, whatever its age, and (``deliveries``) the messages that sent it."""
    at = "instr" if conn.dialect.name == "sqlite" else "strpos"  # the '@' before a host
    alerts: Any = conn.execute(text(_OPEN_ALERTS.format(at=at))).all()
    sent: dict[tuple[str, int], Any] = {}  # by the delivery's identity: a message in 2 chunks
    for first in range(0, len(alerts) if deliveries else 0, _LIKES_PER_QUERY):
        # The messages that named one (a LIKE may take more: only the ids count); the
        # alerts are oldest first, so each chunk reads from its own oldest on.
        chunk = alerts[first : first + _LIKES_PER_QUERY]
        named = {f"id{i}": f'%"{source}:{seq}"%' for i, (source, seq, *_) in enumerate(chunk)}
        likes = " or ".join(f"cast(alerts as text) like :{name}" for name in named)
        rows = conn.execute(
            text(_SENT.format(likes=likes)).columns(alerts=JSON),
            {"since": chunk[0][2] - _CLOCKS_APART_NS, **named},
        ).all()
        sent.update(((source, seq), tuple(rest)) for source, seq, *rest in rows)
    found = sorted(sent.values(), key=lambda row: row[-1])  # oldest first, as each query
    return AlertRecords(alerts=alerts, resolutions=[], acks=[], deliveries=found)


def cycle_windows(conn: Connection, day: date) -> dict[str, list[tuple[int, int, str]]]:
    """Each venue's Track A cycles of ``day``: ``(scheduled_ns, finished_ns, cycle_id)``.

    In order; a cycle summarised more than once (a restart resumed it) spans from its
    schedule to its last finish. Where the journal's replay places Track A's answers
    (`observer.kis.answer_replay`).
    """
    c = TrackACycleRow
    rows = conn.execute(
        select(c.venue, c.cycle_id, func.min(c.scheduled_ns), func.max(c.finished_ns))
        .where(c.trade_date == day)
        .group_by(c.venue, c.cycle_id)
        .order_by(func.min(c.scheduled_ns))
    )
    windows: dict[str, list[tuple[int, int, str]]] = {}
    for venue, cycle_id, scheduled, finished in rows:
        windows.setdefault(venue, []).append((scheduled, finished, cycle_id))
    return windows


def snapshot_limits(conn: Connection, day: date) -> dict[str, list[tuple[int, tuple[int, int]]]]:
    """Each symbol's price limits as Track A's snapshots of KST ``day`` gave them, in order.

    symbol -> [(observed_ns, (lower, upper))]: what Track B's checks knew by each instant
    (`observer.kis.journal_replay`). Snapshots without limits (0) are left out.
    """
    lo, hi = day_bounds(day)
    s = PriceSnapshotRow
    rows = conn.execute(
        select(s.symbol, s.observed_ns, s.lower_limit, s.upper_limit)
        .where(s.observed_ns >= lo, s.observed_ns < hi, s.upper_limit > 0)
        .order_by(s.symbol, s.observed_ns)
    )
    limits: dict[str, list[tuple[int, tuple[int, int]]]] = {}
    for symbol, observed, lower, upper in rows:
        limits.setdefault(symbol, []).append((observed, (lower, upper)))
    return limits
