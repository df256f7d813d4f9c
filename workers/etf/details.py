"""Each ETF's `EtfDetail` for session d0 from its stored rows, and the figures worth a warning.

Pure: the caller gives the history (stored rows plus the run's own), the sessions up to d0
and the listing. The premium of a day is ``(close - nav) / nav`` computed from the row, or
KIS's ``dprt`` when the row has no close; AUM is KIS's (or KRX's) net assets, else listed
units x NAV, and says which (``aum_source``). The computed premium is held to KIS's
``dprt`` (2 decimals): more than ``PREMIUM_TOLERANCE`` apart, the row's close and NAV are
not the moment KIS judged (`premium_mismatches`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bus.events import EtfDaily, EtfDetail, EtfListing
from workers.etf.metrics import WINDOWS, aum_check_pct, premium_windows, range_52w

__all__ = [
    "PREMIUM_TOLERANCE",
    "Flag",
    "aum_allowance_pct",
    "day_premium",
    "detail_of",
    "flags_of",
    "mismatch_message",
    "premium_mismatches",
]

PREMIUM_TOLERANCE = Decimal("0.01")  # |computed premium - dprt|, points (design/etf.md)


def day_premium(row: EtfDaily) -> Decimal | None:
    """The session's premium, percent: computed from close and NAV, else KIS's ``dprt``."""
    if row.premium_calc_pct is not None:
        return row.premium_calc_pct
    return row.premium_pct if row.nav is not None else None


def detail_of(
    history: Mapping[date, EtfDaily],
    sessions: Sequence[date],
    listing: EtfListing | None,
) -> EtfDetail | None:
    """The detail for ``sessions[-1]``; None when that day has no close and NAV.

    ``sessions``: the sessions up to d0, oldest first, the 52 weeks' at least (260). A
    52-week range whose sessions with a price are too few (`workers.etf.metrics.range_52w`)
    is told as unknown (high and low 0) with basis ``partial``.
    """
    d0 = sessions[-1]
    row = history.get(d0)
    premium = day_premium(row) if row is not None else None
    if row is None or row.close is None or row.nav is None or premium is None:
        return None
    premiums = {day: p for day, r in history.items() if (p := day_premium(r)) is not None}
    windows = premium_windows(premiums, sessions, WINDOWS)
    span = range_52w(
        {day: (r.high, r.low, r.close) for day, r in history.items()},
        d0,
        sessions,
        listing.listed_on if listing else None,
    )
    partial = span is not None and span.basis == "partial"
    if partial:  # a few days' range, not 52 weeks': no high or low is told
        span = None
    if row.net_assets_krw:
        aum, source = row.net_assets_krw, "krx" if row.origin == "krx" else "kis"
    elif row.listed_units:
        aum, source = int(row.listed_units * row.nav), "units_x_nav"
    else:
        aum, source = 0, ""
    fields: dict[str, object] = {}
    for size, window in windows.items():
        fields |= {
            f"tracking_{size}d": window.mean,
            f"premium_abs_{size}d": window.mean_abs,
            f"n_{size}d": window.n,
        }
    return EtfDetail(
        trade_date=d0,
        symbol=row.symbol,
        name=listing.name if listing else "",
        price=row.close,
        nav=row.nav,
        aum=aum,
        premium=premium,
        holdings=row.holdings or 0,
        high_52w=span.high if span else 0,
        low_52w=span.low if span else 0,
        high_52w_date=span.high_date if span else None,
        low_52w_date=span.low_date if span else None,
        range_52w_basis="partial" if partial else span.basis if span else "",
        range_52w_close_days=span.close_days if span else 0,
        underlying_index=listing.underlying_index if listing else "",
        issuer=listing.manager if listing else "",
        aum_source=source,
        aum_check_pct=aum_check_pct(row.net_assets_krw, row.listed_units, row.nav),
        market_value=(row.listed_units or 0) * row.close,
        **fields,  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class Flag:
    """A figure of one ETF worth a warning: ``code`` and the human message."""

    code: str  # etf_premium_high | etf_aum_jump | etf_aum_mismatch
    symbol: str
    message: str


def flags_of(
    detail: EtfDetail,
    previous: EtfDaily | None,
    *,
    premium_pct: float,
    aum_jump_pct: float,
    aum_check_pct: float,
    net_assets_unit_krw: int,
) -> list[Flag]:
    """The ETF's figures worth a warning.

    |premium| above ``premium_pct``; net assets moving more than ``aum_jump_pct`` since the
    previous session; net assets off listed units x NAV by more than ``aum_check_pct``, and
    by more than KIS's whole units can tell (`aum_allowance_pct`).
    """
    found = []
    if abs(detail.premium) > Decimal(str(premium_pct)):
        found.append(
            Flag(
                "etf_premium_high",
                detail.symbol,
                f"{detail.symbol} premium {detail.premium}% on {detail.trade_date}",
            )
        )
    before = previous.net_assets_krw if previous is not None else None
    now = detail.aum if detail.aum_source in ("kis", "krx") else 0
    if before and now and abs(now - before) * 100 > aum_jump_pct * before:
        found.append(
            Flag(
                "etf_aum_jump",
                detail.symbol,
                f"{detail.symbol} net assets {before:,} -> {now:,} KRW on {detail.trade_date}",
            )
        )
    allowed = aum_allowance_pct(detail, aum_check_pct, net_assets_unit_krw)
    if detail.aum_check_pct is not None and detail.aum_check_pct > allowed:
        found.append(
            Flag(
                "etf_aum_mismatch",
                detail.symbol,
                f"{detail.symbol} net assets are {detail.aum_check_pct}% off listed units x NAV",
            )
        )
    return found


def premium_mismatches(
    rows: Iterable[EtfDaily], tolerance: Decimal = PREMIUM_TOLERANCE
) -> list[tuple[str, Decimal, Decimal]]:
    """(symbol, computed premium, KIS's ``dprt``) of the rows more than ``tolerance`` apart.

    Worst first; rows lacking either figure are not judged.
    """
    found = [
        (r.symbol, r.premium_calc_pct, r.premium_pct)
        for r in rows
        if r.premium_calc_pct is not None
        and r.premium_pct is not None
        and abs(r.premium_calc_pct - r.premium_pct) > tolerance
    ]
    return sorted(found, key=lambda f: (-abs(f[1] - f[2]), f[0]))


def mismatch_message(found: Sequence[tuple[str, Decimal, Decimal]], judged: int, day: date) -> str:
    """One line for every mismatch of a run: how many, and the worst five."""
    worst = ", ".join(f"{s} {calc}% vs dprt {dprt}%" for s, calc, dprt in found[:5])
    return (
        f"{len(found)} of {judged} ETFs' premium from close and NAV is more than "
        f"{PREMIUM_TOLERANCE} points off KIS's dprt on {day} (worst: {worst})"
    )[:2000]


def aum_allowance_pct(detail: EtfDetail, check_pct: float, unit_krw: int) -> Decimal:
    """How far the ETF's net assets may be off listed units x NAV before they are flagged.

    KIS's ``etf_ntas_ttam`` counts whole ``unit_krw`` (억 KRW, UNCONFIRMED): rounded or cut,
    it is up to one unit off, which for a small ETF (30억) is more than the 2 % check.
    The check is widened by that unit's share of the true figure (at least ``aum - unit``);
    KRX's figure is exact and is not. Infinite when the figure is a unit or less.
    """
    allowed = Decimal(str(check_pct))
    if detail.aum_source != "kis" or unit_krw <= 1:
        return allowed
    if detail.aum <= unit_krw:
        return Decimal("Infinity")  # 0 or 1 unit: any value below two units would print so
    return allowed + Decimal(unit_krw * 100) / (detail.aum - unit_krw)
