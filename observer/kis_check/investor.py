"""What KIS answered of today's investor postings: due or another day's, revised or not.

HHPTJ04160200 answers no date, and KIS's staff may revise a posting after making it
(UNCONFIRMED either way, kis-market-2026-09.md): the investor job stores an answer only when
each posting in it is due (`observer.kis.investor.investor_posting_due`), and a posting
answered later with other figures as a revision beside the first. The check says which way
KIS behaved when asked: which postings it answered against those due, and, held against
what the investor job stored today for the same symbol, which it answered as stored and
which otherwise (a revision).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from observer.calendar.phases import KST
from observer.db.queries import investor_postings_stored
from observer.db.settings import DatabaseSettings
from observer.errors import KisError
from observer.kis.investor import (
    INVESTOR_POSTINGS,
    Figures,
    estimates_of,
    figures_of,
    investor_posting_due,
)
from observer.kis.schemas import InvestorEstimateRow
from observer.kis_check.stored import read_stored

__all__ = ["NONE_STORED", "StoredPostings", "postings_finding", "stored_postings"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StoredPostings:
    """Today's postings of one symbol as the investor job stored them, oldest figures first.

    ``unread``: why the database was not read ("" when it was; nothing stored reads as an
    empty ``figures``).
    """

    figures: Mapping[int, Sequence[Figures]] = field(default_factory=dict)
    unread: str = ""


NONE_STORED = StoredPostings(unread="no database asked")  # nothing to hold an answer against


def stored_postings(database: DatabaseSettings, symbol: str, day: date) -> StoredPostings:
    """``symbol``'s postings of ``day`` in the configured database; never raises for it."""
    stored, unread = read_stored(database, lambda c: investor_postings_stored(c, day))
    if stored is None:
        return StoredPostings(unread=unread)
    return StoredPostings({p: f for (s, p), f in stored.items() if s == symbol})


def postings_finding(
    symbol: str, rows: Sequence[InvestorEstimateRow], now_ns: int, stored: StoredPostings
) -> str:
    """Which postings an answer received at ``now_ns`` held, against those due and stored.

    A posting not due yet makes the answer another day's (the job stores none of it), and
    then nothing is held against the stored. Otherwise each posting answered is as stored
    (figures the job stored, as it judges them: nothing new), otherwise (a revision the job
    will store: the newest stored figures and the answered), or not stored yet.
    """
    now = datetime.fromtimestamp(now_ns / _NS, KST)
    held = sorted(int(row.bsop_hour_gb) for row in rows if row.bsop_hour_gb.isdigit())
    early = [p for p in held if p in INVESTOR_POSTINGS and not investor_posting_due(p, now)]
    seen = f"postings {held or 'none'} answered at {now:%H:%M} KST"
    if early:
        return f"{seen}: {early} not due yet, so another day's (the job stores none of them)"
    seen += ": each due, today's"
    if stored.unread or not held:
        return f"{seen}{'; ' + stored.unread if stored.unread else ''}"
    if not stored.figures:
        return f"{seen}; none of {symbol} stored today to hold them against"
    try:
        answered = {e.posting: figures_of(e) for e in estimates_of(symbol, now.date(), rows, 0)}
    except KisError as exc:
        return f"{seen}; not held against the stored: {exc}"
    same = [p for p, f in answered.items() if f in stored.figures.get(p, ())]
    missing = [p for p in answered if p not in stored.figures]
    revised = {
        p: (stored.figures[p][-1], f)
        for p, f in answered.items()
        if p not in same and p not in missing
    }
    parts = [f"{same} as stored"] if same else []
    parts += [
        f"{p} otherwise (stored {was}, now {now_}): revised" for p, (was, now_) in revised.items()
    ]
    parts += [f"{missing} not stored yet"] if missing else []
    return f"{seen}; against the database: {', '.join(parts)}"
