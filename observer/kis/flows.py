"""The flows job's answers as events: a day's investor flows, program trading and VIs.

FHPTJ04160001 (`InvestorFlow`) and FHPPG04650201 (`ProgramTradeDaily`) list a stock's days
newest first, the day asked first: the day's row, if KIS has posted it, is the event.
FHPST01390000 lists a stock's VIs of the day asked (`VolatilityInterruption`, one each).
"""

from __future__ import annotations

from datetime import date

from bus.events import InvestorFlow, ProgramTradeDaily, Venue, VolatilityInterruption
from observer.kis.parse import kst_to_utc_ns, read_decimal, read_int, read_text
from observer.kis.schemas import InvestorFlowRow, ProgramDailyRow, ViStatusRow

__all__ = ["investor_flow", "program_trade_daily", "volatility_interruptions"]


def _dated(dates: list[str], day: date) -> int | None:
    """The index of ``day``'s row among the rows' dates (KIS lists the day asked first)."""
    wanted = day.strftime("%Y%m%d")
    return next((i for i, at in enumerate(dates) if at == wanted), None)


def investor_flow(
    symbol: str, day: date, venue: Venue, rows: list[InvestorFlowRow], fetched_ns: int
) -> InvestorFlow | None:
    """``day``'s flows of the answer; None if it has no row of the day.

    Raises
    ------
    KisProtocolError
        The day's row holds a number that does not read (the item fails, `fan_out`).
    """
    at = _dated([row.stck_bsop_date for row in rows], day)
    if at is None:
        return None
    row = rows[at]
    return InvestorFlow(
        symbol=symbol,
        trade_date=day,
        venue=venue,
        individual_qty=read_int(row.prsn_ntby_qty, "prsn_ntby_qty"),
        foreign_qty=read_int(row.frgn_ntby_qty, "frgn_ntby_qty"),
        institution_qty=read_int(row.orgn_ntby_qty, "orgn_ntby_qty"),
        other_corp_qty=read_int(row.etc_corp_ntby_vol, "etc_corp_ntby_vol"),
        individual_value=read_int(row.prsn_ntby_tr_pbmn, "prsn_ntby_tr_pbmn"),
        foreign_value=read_int(row.frgn_ntby_tr_pbmn, "frgn_ntby_tr_pbmn"),
        institution_value=read_int(row.orgn_ntby_tr_pbmn, "orgn_ntby_tr_pbmn"),
        other_corp_value=read_int(row.etc_corp_ntby_tr_pbmn, "etc_corp_ntby_tr_pbmn"),
        volume=read_int(row.acml_vol, "acml_vol"),
        fetched_ns=fetched_ns,
    )


def program_trade_daily(
    symbol: str, day: date, venue: Venue, rows: list[ProgramDailyRow], fetched_ns: int
) -> ProgramTradeDaily | None:
    """``day``'s program trading of the answer; None if it has no row of the day.

    Raises
    ------
    KisProtocolError
        The day's row holds a number that does not read.
    """
    at = _dated([row.stck_bsop_date for row in rows], day)
    if at is None:
        return None
    row = rows[at]
    return ProgramTradeDaily(
        symbol=symbol,
        trade_date=day,
        venue=venue,
        sell_qty=read_int(row.whol_smtn_seln_vol, "whol_smtn_seln_vol"),
        buy_qty=read_int(row.whol_smtn_shnu_vol, "whol_smtn_shnu_vol"),
        net_qty=read_int(row.whol_smtn_ntby_qty, "whol_smtn_ntby_qty"),
        sell_value=read_int(row.whol_smtn_seln_tr_pbmn, "whol_smtn_seln_tr_pbmn"),
        buy_value=read_int(row.whol_smtn_shnu_tr_pbmn, "whol_smtn_shnu_tr_pbmn"),
        net_value=read_int(row.whol_smtn_ntby_tr_pbmn, "whol_smtn_ntby_tr_pbmn"),
        fetched_ns=fetched_ns,
    )


def volatility_interruptions(
    symbol: str, day: date, rows: list[ViStatusRow], fetched_ns: int
) -> list[VolatilityInterruption]:
    """The VIs of ``day`` in the answer (KIS's list of the day asked), oldest first.

    Raises
    ------
    KisProtocolError
        A row's time or number does not read (the item fails, `fan_out`).
    """
    wanted = day.strftime("%Y%m%d")
    found = []
    for row in rows:
        if row.bsop_date and row.bsop_date != wanted:
            continue  # another day's, if KIS lists one
        ended = row.vi_cncl_hour.strip()
        found.append(
            VolatilityInterruption(
                symbol=symbol,
                trade_date=day,
                started_ns=kst_to_utc_ns(wanted, row.cntg_vi_hour),
                ended_ns=kst_to_utc_ns(wanted, ended) if ended.strip("0") else 0,
                kind=read_text(row.vi_kind_code, "vi_kind_code", 8),
                price=read_int(row.vi_prc, "vi_prc"),
                static_base=read_int(row.vi_stnd_prc, "vi_stnd_prc"),
                static_move_pct=read_decimal(row.vi_dprt, "vi_dprt"),
                dynamic_base=read_int(row.vi_dmc_stnd_prc, "vi_dmc_stnd_prc"),
                dynamic_move_pct=read_decimal(row.vi_dmc_dprt, "vi_dmc_dprt"),
                count=read_int(row.vi_count, "vi_count"),
                fetched_ns=fetched_ns,
            )
        )
    return sorted(found, key=lambda vi: vi.started_ns)
