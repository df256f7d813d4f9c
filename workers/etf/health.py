"""The ETF data's health for one session: stale, coverage per field, the list against KIS's.

Pure: `health` judges what the caller read. A session's rows are due by ``[etf] stale_at``
(later on a late day); before then the previous session is judged. Conditions (`CODES`):
``etf_stale`` (critical, subject the session), ``etf_coverage_low`` (warning, subject the
field and session), ``etf_universe_mismatch`` (warning). A condition is over only when a
judgement that judged it finds it cleared (`settle`): a session not yet due resolves
nothing, and a stale session's alert ends only with a judgement of that session.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import msgspec

from bus.events import EtfDaily, EtfDetail, EtfListing, Severity
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.workers import EtfSettings

__all__ = [
    "CODES",
    "Condition",
    "Health",
    "HealthSummary",
    "due_session",
    "field_of",
    "health",
    "is_due",
    "session_of",
    "settle",
]

CODES = ("etf_stale", "etf_coverage_low", "etf_universe_mismatch")


@dataclass(frozen=True, slots=True)
class Condition:
    """One unhealthy condition: an alert's code, subject, severity and message."""

    code: str
    subject: str
    severity: Severity
    message: str


@dataclass(slots=True)
class Health:
    """The judgement of one session's ETF data."""

    session: date
    due: bool  # the session's rows are due (it is past stale_at on it, or later)
    active: int
    collected: int
    coverage: dict[str, float] = field(default_factory=dict)  # field -> percent of active
    conditions: list[Condition] = field(default_factory=list)
    universe_judged: bool = False  # both the KRX list and the masters' ETFs were there

    @property
    def stale(self) -> bool:
        """Whether the session's rows are due and too few arrived."""
        return any(c.code == "etf_stale" for c in self.conditions)

    @property
    def stale_judged(self) -> bool:
        """Whether staleness was judged: the rows were due, or no ETF is active at all."""
        return self.due or self.active == 0

    @property
    def coverage_judged(self) -> bool:
        """Whether coverage was judged: due, and some rows came (a stale day is not judged)."""
        return self.due and self.collected > 0

    def summary(self) -> HealthSummary:
        """What ``observer etf status --json`` and ``check --json`` print."""
        return HealthSummary(
            session=self.session,
            due=self.due,
            active=self.active,
            collected=self.collected,
            stale=self.stale,
            coverage_pct={k: round(v, 2) for k, v in self.coverage.items()},
            conditions=list(self.conditions),
        )


class HealthSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A judgement's figures: these keys, in this order, are the ``--json`` output."""

    session: date
    due: bool
    active: int
    collected: int
    stale: bool
    coverage_pct: dict[str, float]  # field -> percent of the active ETFs, 2 decimals
    conditions: list[Condition]


def stale_from(
    day: date, stale_at: str, shifted: Mapping[date, timedelta] | None = None
) -> datetime:
    """When ``day``'s rows are due: ``stale_at`` (KST), later by a late day's shift."""
    hour, minute = map(int, stale_at.split(":"))
    due = datetime.combine(day, time(hour, minute), tzinfo=KST)
    return due + (shifted or {}).get(day, timedelta(0))


def due_session(
    now_kst: datetime,
    calendar: TradingCalendar,
    stale_at: str,
    shifted: Mapping[date, timedelta] | None = None,
) -> date:
    """The newest session whose rows are due at ``now_kst``.

    Today's from ``stale_at`` on a session (moved as the day's hours are on a late day:
    ``shifted``); else the previous session's (a Monday morning judges Friday, never the
    weekend).
    """
    today = now_kst.date()
    if calendar.is_session(today) and now_kst >= stale_from(today, stale_at, shifted):
        return today
    return calendar.previous_session(today)


def is_due(
    session: date,
    now_kst: datetime,
    stale_at: str,
    shifted: Mapping[date, timedelta] | None = None,
) -> bool:
    """Whether ``session``'s rows are due at ``now_kst`` (from ``stale_at`` that day)."""
    today = now_kst.date()
    return session < today or (
        session == today and now_kst >= stale_from(session, stale_at, shifted)
    )


def _pct(part: int, whole: int) -> float:
    # Nothing active covers nothing: an empty universe was read as 100 % healthy.
    return 100.0 * part / whole if whole else 0.0


def session_of(subject: str) -> date | None:
    """The session a health alert's subject names (its last word); None: an older subject."""
    try:
        return date.fromisoformat(subject.rpartition(" ")[2])
    except ValueError:
        return None


def field_of(subject: str) -> str:
    """The field an ``etf_coverage_low`` subject names (``"fee 2026-11-20"``: ``fee``)."""
    return subject.rpartition(" ")[0] if session_of(subject) is not None else subject


def health(
    session: date,
    due: bool,
    listings: Mapping[str, EtfListing],
    kis_etfs: Collection[str],
    rows: Mapping[str, EtfDaily],
    details: Mapping[str, EtfDetail],
    settings: EtfSettings,
) -> Health:
    """Judge ``session``: ``rows`` and ``details`` are its newest per symbol."""
    active = set(listings) or set(kis_etfs)
    collected = sum(1 for s in active if s in rows)
    judged = Health(session, due, len(active), collected)
    floor = settings.min_coverage_pct
    if not active:
        judged.conditions.append(
            Condition(
                "etf_stale",
                session.isoformat(),
                "critical",
                f"no active ETF for {session}: no KRX ETF list is held and the KIS masters "
                "have no ETF (nothing can be collected)",
            )
        )
    elif due and _pct(collected, len(active)) < floor:
        judged.conditions.append(
            Condition(
                "etf_stale",
                session.isoformat(),
                "critical",
                f"{collected} of {len(active)} active ETFs have a row for {session} "
                f"({_pct(collected, len(active)):.1f}% < {floor:g}%)",
            )
        )
    checks: dict[str, Callable[[str], bool]] = {
        "issuer": lambda s: bool(listings.get(s) and listings[s].manager),
        "fee": lambda s: bool(listings.get(s) and listings[s].fee_pct is not None),
        "aum": lambda s: bool(details.get(s) and details[s].aum > 0),
        "premium_20d": lambda s: bool(details.get(s) and details[s].tracking_20d is not None),
        "high_52w": lambda s: bool(details.get(s) and details[s].high_52w > 0),
    }
    for name, has in checks.items():
        judged.coverage[name] = _pct(sum(1 for s in active if has(s)), len(active))
        if due and collected and judged.coverage[name] < floor:
            judged.conditions.append(
                Condition(
                    "etf_coverage_low",
                    f"{name} {session}",
                    "warning",
                    f"{name} known for {judged.coverage[name]:.1f}% of active ETFs "
                    f"on {session} (< {floor:g}%)",
                )
            )
    if listings and kis_etfs:
        judged.universe_judged = True
        differ = len(set(listings) ^ set(kis_etfs))
        off = _pct(differ, max(len(listings), len(kis_etfs)))
        if off > settings.mismatch_pct:
            judged.conditions.append(
                Condition(
                    "etf_universe_mismatch",
                    "",
                    "warning",
                    f"the KRX list ({len(listings)}) and the KIS masters' ETFs "
                    f"({len(kis_etfs)}) differ in {differ} symbols ({off:.1f}%)",
                )
            )
    return judged


def _no_later(subject: str, session: date) -> bool:
    """Whether ``subject`` names ``session`` or an earlier one (or none: an older subject)."""
    named = session_of(subject)
    return named is None or named <= session


def settle(
    verdict: Health, open_: Collection[tuple[str, str]], past: Iterable[Health] = ()
) -> tuple[list[Condition], set[tuple[str, str]]]:
    """The conditions to send and the open ``(code, subject)`` pairs that are over.

    ``verdict``: the session judged; ``open_``: the health alerts open now; ``past``:
    judgements of the sessions of open ``etf_stale`` alerts, which may only end those.
    A coverage condition with an alert of its field open from this session or an earlier
    one is not sent again: that alert stands for it.
    """
    send: list[Condition] = []
    low: set[str] = set()
    for c in verdict.conditions:
        if c.code == "etf_coverage_low":
            name = field_of(c.subject)
            low.add(name)
            held = any(
                code == c.code and field_of(s) == name and _no_later(s, verdict.session)
                for code, s in open_
            )
            if held:
                continue
        send.append(c)
    over: set[tuple[str, str]] = set()
    for judged in (verdict, *past):
        if judged.stale_judged and not judged.stale:
            day = judged.session
            over |= {p for p in open_ if p[0] == "etf_stale" and session_of(p[1]) == day}
            if judged is verdict:  # an older subject (no session): any due judgement's
                over |= {p for p in open_ if p == ("etf_stale", "")}
    if verdict.coverage_judged:
        fine = verdict.coverage.keys() - low
        over |= {
            (code, s)
            for code, s in open_
            if code == "etf_coverage_low" and field_of(s) in fine and _no_later(s, verdict.session)
        }
    mismatch = any(c.code == "etf_universe_mismatch" for c in verdict.conditions)
    if verdict.universe_judged and not mismatch:
        over |= {p for p in open_ if p[0] == "etf_universe_mismatch"}
    return send, over
