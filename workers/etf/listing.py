"""The ``etf_list`` job's core: the KRX list read, judged, and diffed against the last good one.

A list that is empty, ``LOGOUT`` (after one new login) or smaller than ``min_ratio`` of the
previous one is never applied: the run alerts and the stored list stays as it was. (The
seed deleted every ETF and inserted the answer again, so a LOGOUT emptied the table.)
Listed units change every day with creations and redemptions: they are daily data
(``etf_daily``), not a change of the listing, so they do not make an ETF "changed".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import msgspec

from bus.events import Alert, EtfListing, EtfRun, Event
from observer.errors import KrxError, KrxLoggedOut, KrxLoginError
from observer.krx.client import KrxClient
from observer.krx.schemas import KrxEtfRow, krx_date, krx_decimal, krx_int, tracking_multiple

__all__ = ["COMPARED", "ListOutcome", "collect_list", "listing_of", "refusal"]

# The fields whose change makes an ETF "changed" (not units, which move daily).
COMPARED = (
    "isin", "name", "name_full", "name_en", "listed_on", "underlying_index", "index_provider",
    "multiple", "multiple_label", "replication", "base_market", "asset_class", "manager",
    "cu_units", "fee_pct", "tax_type",
)  # fmt: skip


def listing_of(row: KrxEtfRow) -> EtfListing:
    """One MDCSTAT04601 row as a (new) listing; unparsable numbers are None, never 0."""
    return EtfListing(
        change="new",
        symbol=row.ISU_SRT_CD.strip(),
        isin=row.ISU_CD,
        name=row.ISU_ABBRV,
        name_full=row.ISU_NM,
        name_en=row.ISU_ENG_NM,
        listed_on=krx_date(row.LIST_DD),
        underlying_index=row.ETF_OBJ_IDX_NM,
        index_provider=row.IDX_CALC_INST_NM1,
        multiple=tracking_multiple(row.IDX_CALC_INST_NM2),
        multiple_label=row.IDX_CALC_INST_NM2,
        replication=row.ETF_REPLICA_METHD_TP_CD,
        base_market=row.IDX_MKT_CLSS_NM,
        asset_class=row.IDX_ASST_CLSS_NM,
        listed_units=krx_int(row.LIST_SHRS),
        manager=row.COM_ABBRV,
        cu_units=krx_int(row.CU_QTY),
        fee_pct=krx_decimal(row.ETF_TOT_FEE),
        tax_type=row.TAX_TP_CD,
    )


def refusal(answer: int, previous: int, min_ratio: float) -> str | None:
    """Why a list of ``answer`` ETFs must not replace one of ``previous``; None if it may."""
    if answer == 0:
        return "the KRX list is empty"
    if previous and answer < min_ratio * previous:
        return f"the KRX list has {answer} ETFs, below {min_ratio:.0%} of the {previous} held"
    return None


@dataclass(frozen=True, slots=True)
class ListOutcome:
    """What one run did: the run's record and how many changes it sent."""

    run: EtfRun
    new: int = 0
    changed: int = 0
    removed: int = 0


async def collect_list(
    krx: KrxClient,
    previous: Mapping[str, EtfListing],
    day: date,
    send: Callable[[Event], object],
    *,
    min_ratio: float = 0.9,
) -> ListOutcome:
    """Read the list, judge it, send the changes (or an alert), then the run's `EtfRun`.

    ``previous`` is the stored active list (empty on the first load, whose rows are sent as
    ``initial``).
    """
    started = time.monotonic()
    calls_before = krx.requests
    try:
        rows = await krx.etf_list()
        reason = refusal(len(rows), len(previous), min_ratio)
        code = "etf_list_refused"
    except KrxLoginError as exc:
        rows, reason, code = [], str(exc), "krx_login_failed"
    except KrxLoggedOut as exc:
        rows, reason, code = [], f"{exc} after a new login", "krx_login_failed"
    except KrxError as exc:
        rows, reason, code = [], f"KRX list failed: {exc}", "etf_list_refused"

    def run(applied: bool, why: str, listed: int) -> EtfRun:
        return EtfRun(
            job="etf_list",
            trade_date=day,
            applied=applied,
            reason=why,
            listed=listed,
            collected=listed,
            calls=krx.requests - calls_before,
            failures=0 if applied else 1,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    if reason is not None:
        send(
            Alert(
                severity="error",
                code=code,
                message=f"{reason}; yesterday's list is kept",
                context={"held": str(len(previous)), "answer": str(len(rows))},
            )
        )
        outcome = ListOutcome(run(False, reason, len(previous)))
        send(outcome.run)
        return outcome
    fresh = {listing.symbol: listing for listing in map(listing_of, rows)}
    initial = not previous
    counts = {"new": 0, "changed": 0, "removed": 0}
    for symbol, listing in fresh.items():
        old = previous.get(symbol)
        if old is None:
            send(msgspec.structs.replace(listing, initial=initial))
            counts["new"] += 1
            continue
        fields = tuple(f for f in COMPARED if getattr(old, f) != getattr(listing, f))
        if fields:
            send(msgspec.structs.replace(listing, change="changed", changed_fields=fields))
            counts["changed"] += 1
    for symbol, old in previous.items():
        if symbol not in fresh:
            send(msgspec.structs.replace(old, change="removed", changed_fields=(), initial=False))
            counts["removed"] += 1
    outcome = ListOutcome(run(True, "", len(fresh)), **counts)
    send(outcome.run)
    return outcome
