"""The ``etf_list`` job's core: the KRX list read, judged, and diffed against the last good one.

Rows with a blank or invalid short code, and repeats, are dropped first (alerted as
``etf_list_rows_dropped``; a held ETF whose ISIN is on such a row is not removed). A list
that `refusal` or `drift` judges wrong (empty, ``LOGOUT``, under ``min_ratio`` of the last,
a key missing, the portal's columns changed) is never applied: the run alerts and the stored
list stays. Listed units change daily: they are ``etf_daily`` data, not a listing change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import msgspec

from bus.events import Alert, EtfListing, EtfRun, Event
from observer.db.models.etf import RUN_REASON_CHARS
from observer.errors import KrxError, KrxLoggedOut, KrxLoginError
from observer.krx.client import KrxClient
from observer.krx.schemas import (
    KrxEtfRow,
    is_short_code,
    krx_date,
    krx_decimal,
    krx_int,
    tracking_multiple,
)

__all__ = [
    "COMPARED",
    "Cleaned",
    "ListOutcome",
    "cleaned",
    "collect_list",
    "drift",
    "listing_of",
    "refusal",
]

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class Cleaned:
    """The answer's listings by code, and the rows dropped from it."""

    listings: dict[str, EtfListing]
    invalid: int = 0  # rows whose short code is blank or not a code
    repeated: int = 0  # rows repeating a code already read (the first one is kept)
    doubtful: frozenset[str] = frozenset()  # the dropped rows' ISINs: not removed
    examples: tuple[str, ...] = ()

    @property
    def dropped(self) -> int:
        """Rows dropped, for either reason."""
        return self.invalid + self.repeated

    def note(self, rows: int) -> str:
        """``"3 of the 1066 rows dropped: 2 with a blank or invalid code, ..."``."""
        parts = [f"{self.invalid} with a blank or invalid code"] if self.invalid else []
        parts += [f"{self.repeated} repeating a code"] if self.repeated else []
        sample = f" (e.g. {'; '.join(self.examples)})" if self.examples else ""
        return f"{self.dropped} of the {rows} rows dropped: {', '.join(parts)}{sample}"


def cleaned(rows: Iterable[KrxEtfRow]) -> Cleaned:
    """The rows as listings by code, without those of a blank or invalid code or a repeat."""
    listings: dict[str, EtfListing] = {}
    invalid = repeated = 0
    doubtful: set[str] = set()
    examples: list[str] = []
    for row in rows:
        code = row.ISU_SRT_CD.strip()
        if is_short_code(code) and code not in listings:
            listings[code] = listing_of(row)
            continue
        if is_short_code(code):
            repeated += 1
        else:
            invalid += 1
        if row.ISU_CD.strip():
            doubtful.add(row.ISU_CD.strip())
        if len(examples) < 3:
            examples.append(f"code {row.ISU_SRT_CD[:20]!r} ISIN {row.ISU_CD[:20]!r}")
    return Cleaned(listings, invalid, repeated, frozenset(doubtful), tuple(examples))


def _filled(value: object) -> bool:
    return value is not None and value != ""


def drift(previous: Mapping[str, EtfListing], fresh: Mapping[str, EtfListing]) -> str | None:
    """Why the answer looks like the portal's columns changed; None if it does not.

    A field filled for most of the held ETFs the answer has too, and empty in the answer
    for most of those, is a renamed or dropped column (the row types read what is absent
    as ``""``), not a hundred ETFs changing at once.
    """
    common = previous.keys() & fresh.keys()
    lost = []
    for name in (*COMPARED, "listed_units"):
        was = [s for s in common if _filled(getattr(previous[s], name))]
        if 2 * len(was) <= len(common):
            continue
        gone = sum(not _filled(getattr(fresh[s], name)) for s in was)
        if 2 * gone > len(was):
            lost.append(f"{name} ({gone} of {len(was)})")
    if not lost:
        return None
    return (
        f"the KRX list's {', '.join(lost)} came back empty for most held ETFs "
        "(the portal's columns changed)"
    )


def refusal(answer: int, previous: int, min_ratio: float) -> str | None:
    """Why a list of ``answer`` ETFs must not replace one of ``previous``; None if it may.

    Refused: an empty list, ``LOGOUT`` (after one new login), fewer than ``min_ratio`` of the
    previous one, one lacking a screen key (the client's check), or `drift`.
    """
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
    dropped: int = 0  # rows dropped: a blank or invalid code, or a repeated one


async def _read(krx: KrxClient) -> tuple[list[KrxEtfRow], str | None, str]:
    """The list's rows, or none with why and the alert's code."""
    try:
        return await krx.etf_list(), None, ""
    except KrxLoginError as exc:
        return [], str(exc), "krx_login_failed"
    except KrxLoggedOut as exc:
        return [], f"{exc} after a new login", "krx_login_failed"
    except KrxError as exc:
        return [], f"KRX list failed: {exc}", "etf_list_refused"


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
    ``initial``). The guards judge the list as cleaned (`cleaned`), never the raw rows.
    """
    started = time.monotonic()
    calls_before = krx.requests
    rows, reason, code = await _read(krx)
    clean = cleaned(rows)
    note = clean.note(len(rows)) if clean.dropped else ""
    if note:
        log.warning("KRX list: %s", note)
    if reason is None:
        code = "etf_list_refused"
        reason = refusal(len(clean.listings), len(previous), min_ratio)
        reason = reason or drift(previous, clean.listings)
        reason = f"{reason} ({note})" if reason and note else reason

    def run(applied: bool, why: str, listed: int) -> EtfRun:
        return EtfRun(
            job="etf_list",
            trade_date=day,
            applied=applied,
            reason=why[:RUN_REASON_CHARS],  # what etf_runs.reason holds
            listed=listed,
            collected=listed,
            calls=krx.requests - calls_before,
            failures=clean.dropped if applied else 1,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    context = {"held": str(len(previous)), "answer": str(len(rows)), "dropped": str(clean.dropped)}
    if reason is not None:
        send(
            Alert(
                severity="error",
                code=code,
                message=f"{reason}; yesterday's list is kept"[:2000],
                context=context,
            )
        )
        outcome = ListOutcome(run(False, reason, len(previous)), dropped=clean.dropped)
        send(outcome.run)
        return outcome
    if note:
        send(
            Alert(
                severity="warning",
                code="etf_list_rows_dropped",
                message=f"{note}; the rest is applied, held ETFs of their ISINs kept"[:2000],
                context=context,
            )
        )
    fresh = clean.listings
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
        if symbol not in fresh and old.isin not in clean.doubtful:
            send(msgspec.structs.replace(old, change="removed", changed_fields=(), initial=False))
            counts["removed"] += 1
    outcome = ListOutcome(run(True, note, len(fresh)), dropped=clean.dropped, **counts)
    send(outcome.run)
    return outcome
