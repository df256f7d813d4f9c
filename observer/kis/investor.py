"""The investor job's answers: HHPTJ04160200's intraday estimates, a posting each.

KIS's staff post each stock's estimated net buying by foreigners and institutions through
the session (`INVESTOR_POSTINGS`), and the answer is today's alone, with no date: a posting
not due yet is another day's (`investor_posting_due`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from bus.events import InvestorEstimate
from observer.calendar.phases import KST
from observer.errors import KisProtocolError
from observer.kis.parse import read_int
from observer.kis.schemas import InvestorEstimateRow

__all__ = [
    "INVESTOR_POSTINGS",
    "INVESTOR_POSTING_TOLERANCE",
    "Figures",
    "early_postings",
    "estimates_of",
    "figures_of",
    "investor_posting_due",
]

_NS = 1_000_000_000
# A posting's three figures (foreigners, institutions, their total), as stored: KIS revises
# a posting's figures after it is made, and each revision is stored beside the first.
Figures = tuple[int, int, int]

# HHPTJ04160200's postings (bsop_hour_gb) and their times, KST: foreigners' at 09:30,
# institutions' at 10:00, both at 11:20, 13:20 and 14:30 ("사정에 따라 변동될 수 있음").
INVESTOR_POSTINGS: dict[int, time] = {
    1: time(9, 30),
    2: time(10, 0),
    3: time(11, 20),
    4: time(13, 20),
    5: time(14, 30),
}
# "입력한 시간은 ±10분정도 차이가 발생할 수 있으며" (FHPTJ04400000's note): a posting may be
# made this long before its time, and an answer holding one earlier is not today's.
INVESTOR_POSTING_TOLERANCE = timedelta(minutes=10)


def investor_posting_due(posting: int, now: datetime) -> bool:
    """Whether KIS may have made ``posting`` by ``now`` (aware, KST).

    Its time less `INVESTOR_POSTING_TOLERANCE`; False for a posting KIS does not list.
    """
    at = INVESTOR_POSTINGS.get(posting)
    if at is None:
        return False
    return now >= datetime.combine(now.date(), at, now.tzinfo) - INVESTOR_POSTING_TOLERANCE


def early_postings(estimates: Sequence[InvestorEstimate]) -> list[int]:
    """The postings of one answer not due when it was fetched (`investor_posting_due`).

    An answer holding one is KIS's last session's figures, or another day's: none of it is
    today's (the answer carries no date).
    """
    return [
        e.posting
        for e in estimates
        if not investor_posting_due(e.posting, datetime.fromtimestamp(e.fetched_ns / _NS, KST))
    ]


def figures_of(estimate: InvestorEstimate) -> Figures:
    """An estimate's figures, as `observer.db.queries.investor_postings_stored` lists them."""
    return estimate.foreign_qty, estimate.institution_qty, estimate.total_qty


def estimates_of(
    symbol: str, day: date, rows: Sequence[InvestorEstimateRow], fetched_ns: int
) -> list[InvestorEstimate]:
    """The events of one answer, a posting each (a posting KIS does not list is refused).

    Raises
    ------
    KisProtocolError
        A row's posting or quantity does not read.
    """
    out = []
    for row in rows:
        posting = read_int(row.bsop_hour_gb, "bsop_hour_gb")
        if posting not in INVESTOR_POSTINGS:
            raise KisProtocolError(f"HHPTJ04160200 {symbol}: no posting {posting}")
        out.append(
            InvestorEstimate(
                symbol=symbol,
                trade_date=day,
                posting=posting,
                foreign_qty=read_int(row.frgn_fake_ntby_qty, "frgn_fake_ntby_qty"),
                institution_qty=read_int(row.orgn_fake_ntby_qty, "orgn_fake_ntby_qty"),
                total_qty=read_int(row.sum_fake_ntby_qty, "sum_fake_ntby_qty"),
                fetched_ns=fetched_ns,
            )
        )
    return out
