"""KIS wire shapes, spelled exactly as KIS spells them.

The real-time (``^``-separated) frames carry no field names, so their field orders live here
as data (shared/reference/kis-api.md §5.6, §5.7): `REALTIME_LAYOUTS` holds every layout known
for each TR, by its record width, and is the only place the widths live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, NamedTuple

import msgspec

__all__ = [
    "H0NXANC0_FIELDS",
    "H0NXASP0_FIELDS",
    "H0NXASP0_FIELDS_2026_09",
    "H0NXCNT0_FIELDS",
    "H0STANC0_FIELDS",
    "H0STASP0_FIELDS",
    "H0STASP0_FIELDS_2026_09",
    "H0STCNT0_FIELDS",
    "H0STCNT0_FIELDS_2026_09",
    "H0STMBC0_FIELDS",
    "H0STMKO0_FIELDS",
    "H0STPGM0_FIELDS",
    "H0STVIC0_FIELDS",
    "H0UNASP0_FIELDS_2026_09",
    "H0UNVIC0_FIELDS",
    "REALTIME_LAYOUTS",
    "Answer",
    "ApprovalAnswer",
    "CurrentPriceOutput",
    "DailyBarRow",
    "EtfComponentRow",
    "EtfComponentSummary",
    "EtfNavDailyRow",
    "EtfPriceOutput",
    "IndustryCodeRow",
    "IndustryMemberRow",
    "InvestorEstimateRow",
    "InvestorFlowRow",
    "Layout",
    "MinuteBarRow",
    "OverseasInfoOutput",
    "OverseasPriceOutput",
    "PriceDetailOutput",
    "ProgramDailyRow",
    "StockInfoOutput",
    "TimeTradeRow",
    "TokenAnswer",
    "ViStatusRow",
]

# 국내주식 실시간체결가 (KRX): 46 fields per record.
H0STCNT0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR", "PRDY_VRSS_SIGN", "PRDY_VRSS",
    "PRDY_CTRT", "WGHN_AVRG_STCK_PRC", "STCK_OPRC", "STCK_HGPR", "STCK_LWPR", "ASKP1", "BIDP1",
    "CNTG_VOL", "ACML_VOL", "ACML_TR_PBMN", "SELN_CNTG_CSNU", "SHNU_CNTG_CSNU",
    "NTBY_CNTG_CSNU", "CTTR", "SELN_CNTG_SMTN", "SHNU_CNTG_SMTN", "CCLD_DVSN", "SHNU_RATE",
    "PRDY_VOL_VRSS_ACML_VOL_RATE", "OPRC_HOUR", "OPRC_VRSS_PRPR_SIGN", "OPRC_VRSS_PRPR",
    "HGPR_HOUR", "HGPR_VRSS_PRPR_SIGN", "HGPR_VRSS_PRPR", "LWPR_HOUR", "LWPR_VRSS_PRPR_SIGN",
    "LWPR_VRSS_PRPR", "BSOP_DATE", "NEW_MKOP_CLS_CODE", "TRHT_YN", "ASKP_RSQN1", "BIDP_RSQN1",
    "TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN", "VOL_TNRT", "PRDY_SMNS_HOUR_ACML_VOL",
    "PRDY_SMNS_HOUR_ACML_VOL_RATE", "HOUR_CLS_CODE", "MRKT_TRTM_CLS_CODE", "VI_STND_PRC",
)  # fmt: skip

# 국내주식 실시간호가 (KRX): 59 fields per record.
H0STASP0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "BSOP_HOUR", "HOUR_CLS_CODE",
    *(f"ASKP{i}" for i in range(1, 11)),
    *(f"BIDP{i}" for i in range(1, 11)),
    *(f"ASKP_RSQN{i}" for i in range(1, 11)),
    *(f"BIDP_RSQN{i}" for i in range(1, 11)),
    "TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN", "OVTM_TOTAL_ASKP_RSQN", "OVTM_TOTAL_BIDP_RSQN",
    "ANTC_CNPR", "ANTC_CNQN", "ANTC_VOL", "ANTC_CNTG_VRSS", "ANTC_CNTG_VRSS_SIGN",
    "ANTC_CNTG_PRDY_CTRT", "ACML_VOL", "TOTAL_ASKP_RSQN_ICDC", "TOTAL_BIDP_RSQN_ICDC",
    "OVTM_TOTAL_ASKP_ICDC", "OVTM_TOTAL_BIDP_ICDC", "STCK_DEAL_CLS_CODE",
)  # fmt: skip

# The 2026-09-20 workbook export appends fields to both:
# the session (장 구분 코드: 1 pre, 2 regular, 3 after, 5 closing) and the book's mid-point.
H0STCNT0_FIELDS_2026_09: tuple[str, ...] = (*H0STCNT0_FIELDS, "MARKET_CLS_CODE")
H0STASP0_FIELDS_2026_09: tuple[str, ...] = (
    *H0STASP0_FIELDS, "MID_PRC", "MIDP_TOTAL_RSQN", "MIDP_CLS_CODE", "MARKET_CLS_CODE",
)  # fmt: skip

# 국내주식 실시간체결가 (NXT) and (통합): H0STCNT0's names in its order, but for the 22nd,
# 체결구분, which they call CNTG_CLS_CODE. 2026-09 appends MARKET_CLS_CODE to both too.
H0NXCNT0_FIELDS: tuple[str, ...] = (*H0STCNT0_FIELDS[:21], "CNTG_CLS_CODE", *H0STCNT0_FIELDS[22:])

# 국내주식 실시간호가 (NXT) and (통합), 2026-05: H0STASP0's 59, then each venue's mid-point
# (KRX's, NXT's): 65 fields. 2026-09 removed KRX's from the middle of the NXT book (62 fields:
# not an append) and appended the expected price's venue to the combined one (66).
_KRX_MID = ("KMID_PRC", "KMID_TOTAL_RSQN", "KMID_CLS_CODE")
_NXT_MID = ("NMID_PRC", "NMID_TOTAL_RSQN", "NMID_CLS_CODE")
H0NXASP0_FIELDS: tuple[str, ...] = (*H0STASP0_FIELDS, *_KRX_MID, *_NXT_MID)
H0NXASP0_FIELDS_2026_09: tuple[str, ...] = (*H0STASP0_FIELDS, *_NXT_MID)
H0UNASP0_FIELDS_2026_09: tuple[str, ...] = (*H0NXASP0_FIELDS, "ANTC_EXCH_CLS_CODE")

# 국내주식 장운영정보 (KRX, NXT): 11 fields in both exports. KIS's own example of H0STMKO0
# (``396300^N^(null)^^311^^^55^N^N``) has 10, without EXCH_CLS_CODE: read as a layout of its
# own. The combined feed's (H0UNMKO0) is documented without the symbol: a record that cannot
# say which registration it answers, never registered here.
H0STMKO0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "TRHT_YN", "TR_SUSP_REAS_CNTT", "MKOP_CLS_CODE", "ANTC_MKOP_CLS_CODE",
    "MRKT_TRTM_CLS_CODE", "DIVI_APP_CLS_CODE", "ISCD_STAT_CLS_CODE", "VI_CLS_CODE",
    "OVTM_VI_CLS_CODE", "EXCH_CLS_CODE",
)  # fmt: skip
# 국내주식 실시간프로그램매매 (KRX, NXT, 통합): the same 11 fields in both exports.
H0STPGM0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "SELN_CNQN", "SELN_TR_PBMN", "SHNU_CNQN",
    "SHNU_TR_PBMN", "NTBY_CNQN", "NTBY_TR_PBMN", "SELN_RSQN", "SHNU_RSQN", "WHOL_NTBY_QTY",
)  # fmt: skip


def _five(*prefixes: str) -> tuple[str, ...]:
    """Each prefix's five ranks, ``{prefix}1`` to ``{prefix}5``, prefix by prefix."""
    return tuple(f"{prefix}{rank}" for prefix in prefixes for rank in range(1, 6))


# 국내주식 실시간회원사 (KRX, NXT, 통합; KIS's samples member_krx, member_nxt, member_total):
# the same 78 fields. The five brokers (exchange members) each side's volume ranks first today, by
# rank (SELN* the sellers, SHNU*/BYOV* the buyers), then the foreign brokers' totals. No
# time: a record is stamped at its receipt.
H0STMBC0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    *_five("SELN2_MBCR_NAME", "BYOV_MBCR_NAME", "TOTAL_SELN_QTY", "TOTAL_SHNU_QTY"),
    *_five("SELN_MBCR_GLOB_YN_", "SHNU_MBCR_GLOB_YN_", "SELN_MBCR_NO", "SHNU_MBCR_NO"),
    *_five("SELN_MBCR_RLIM", "SHNU_MBCR_RLIM", "SELN_QTY_ICDC", "SHNU_QTY_ICDC"),
    "GLOB_TOTAL_SELN_QTY", "GLOB_TOTAL_SHNU_QTY", "GLOB_TOTAL_SELN_QTY_ICDC",
    "GLOB_TOTAL_SHNU_QTY_ICDC", "GLOB_NTBY_QTY", "GLOB_SELN_RLIM", "GLOB_SHNU_RLIM",
    *_five("SELN2_MBCR_ENG_NAME", "BYOV_MBCR_ENG_NAME"),
)  # fmt: skip

# 국내주식 실시간예상체결 (KRX, NXT, 통합): H0STCNT0's first 45 names (체결구분 named
# CNTG_CLS_CODE); Nextrade's and the combined feed's add VI_STND_PRC (labelled "VI 상태값"
# there), and the 2026-09-20 export appends an unused ``dummy`` to each.
H0STANC0_FIELDS: tuple[str, ...] = (
    *H0STCNT0_FIELDS[:21], "CNTG_CLS_CODE", *H0STCNT0_FIELDS[22:45],
)  # fmt: skip
H0NXANC0_FIELDS: tuple[str, ...] = (*H0STANC0_FIELDS, "VI_STND_PRC")

# 국내주식 VI변동성완화장치 (KRX, NXT; the 2026-09-20 export alone): a VI's start or end.
# The combined feed's (H0UNVIC0) names its venue in EXCH_CLS_CODE (1 KRX, 2 NXT) before ETP_YN.
H0STVIC0_FIELDS: tuple[str, ...] = (
    "BSOP_DATE", "MKSC_SHRN_ISCD", "HTS_KOR_ISNM", "MRKT_DIV_CLS_CODE", "VI_CLS_CODE",
    "VI_CNCL_HOUR", "CNTG_VI_HOUR", "VI_KIND_CODE", "VI_PRC", "VI_STND_PRC", "VI_DPRT",
    "VI_DMC_STND_PRC", "VI_DMC_DPRT", "VI_COUNT", "ETP_YN",
)  # fmt: skip
H0UNVIC0_FIELDS: tuple[str, ...] = (*H0STVIC0_FIELDS[:14], "EXCH_CLS_CODE", "ETP_YN")


class Layout(NamedTuple):
    """One generation of a real-time TR's record: its workbook export and its field names."""

    generation: str  # the workbook export that documents it, "YYYY-MM"
    fields: tuple[str, ...]

    @property
    def width(self) -> int:
        """Fields per record."""
        return len(self.fields)


def _by_width(*layouts: Layout) -> dict[int, Layout]:
    table = {layout.width: layout for layout in layouts}
    if len(table) != len(layouts):  # a width must name one layout, or records are ambiguous
        raise RuntimeError(f"two layouts of one width: {[lay.generation for lay in layouts]}")
    return table


# TR -> record width -> its layout. A record's layout is chosen by its width alone (a frame's
# fields / its record count); a width not here is refused whole, never sliced.
REALTIME_LAYOUTS: Mapping[str, Mapping[int, Layout]] = {
    "H0STCNT0": _by_width(
        Layout("2026-05", H0STCNT0_FIELDS), Layout("2026-09", H0STCNT0_FIELDS_2026_09)
    ),
    "H0STASP0": _by_width(
        Layout("2026-05", H0STASP0_FIELDS), Layout("2026-09", H0STASP0_FIELDS_2026_09)
    ),
    "H0NXCNT0": _by_width(
        Layout("2026-05", H0NXCNT0_FIELDS), Layout("2026-09", (*H0NXCNT0_FIELDS, "MARKET_CLS_CODE"))
    ),
    "H0UNCNT0": _by_width(
        Layout("2026-05", H0NXCNT0_FIELDS), Layout("2026-09", (*H0NXCNT0_FIELDS, "MARKET_CLS_CODE"))
    ),
    "H0NXASP0": _by_width(
        Layout("2026-05", H0NXASP0_FIELDS), Layout("2026-09", H0NXASP0_FIELDS_2026_09)
    ),
    "H0UNASP0": _by_width(
        Layout("2026-05", H0NXASP0_FIELDS), Layout("2026-09", H0UNASP0_FIELDS_2026_09)
    ),
    **{
        tr_id: _by_width(
            Layout("2026-05", H0STMKO0_FIELDS), Layout("example", H0STMKO0_FIELDS[:-1])
        )
        for tr_id in ("H0STMKO0", "H0NXMKO0")
    },
    **{
        tr_id: _by_width(Layout("2026-05", H0STPGM0_FIELDS))
        for tr_id in ("H0STPGM0", "H0NXPGM0", "H0UNPGM0")
    },
    "H0STANC0": _by_width(
        Layout("2026-05", H0STANC0_FIELDS), Layout("2026-09", (*H0STANC0_FIELDS, "DUMMY"))
    ),
    **{
        tr_id: _by_width(
            Layout("2026-05", H0NXANC0_FIELDS), Layout("2026-09", (*H0NXANC0_FIELDS, "DUMMY"))
        )
        for tr_id in ("H0NXANC0", "H0UNANC0")
    },
    **{tr_id: _by_width(Layout("2026-09", H0STVIC0_FIELDS)) for tr_id in ("H0STVIC0", "H0NXVIC0")},
    "H0UNVIC0": _by_width(Layout("2026-09", H0UNVIC0_FIELDS)),
    **{
        tr_id: _by_width(Layout("2025-07", H0STMBC0_FIELDS))
        for tr_id in ("H0STMBC0", "H0NXMBC0", "H0UNMBC0")
    },
}


# --------------------------------------------------------------------------- REST answers
# Every number arrives as a string; fields mirror KIS's names and stay strings here.
# `observer.kis.parse` converts them.


class Answer(msgspec.Struct):
    """The envelope of every REST answer (§3.3); ``output*`` stay raw until typed."""

    rt_cd: str = ""
    msg_cd: str = ""
    msg1: str = ""
    output: msgspec.Raw = msgspec.Raw(b"null")
    output1: msgspec.Raw = msgspec.Raw(b"null")
    output2: msgspec.Raw = msgspec.Raw(b"null")
    # Continuation cursors of account-style queries (§3.4), echoed back on the next page.
    ctx_area_fk100: str = ""
    ctx_area_nk100: str = ""
    ctx_area_fk200: str = ""
    ctx_area_nk200: str = ""


class CurrentPriceOutput(msgspec.Struct):
    """FHKST01010100 ``output`` (§4.1), the fields the product uses."""

    stck_prpr: str
    prdy_vrss: str = "0"
    prdy_vrss_sign: str = "3"
    prdy_ctrt: str = "0"
    acml_vol: str = "0"
    acml_tr_pbmn: str = "0"
    stck_oprc: str = "0"
    stck_hgpr: str = "0"
    stck_lwpr: str = "0"
    stck_mxpr: str = "0"
    stck_llam: str = "0"
    stck_sdpr: str = "0"
    hts_avls: str = "0"  # market cap, 억 KRW
    lstn_stcn: str = "0"
    temp_stop_yn: str = "N"
    iscd_stat_cls_code: str = ""
    rprs_mrkt_kor_name: str = ""
    mang_issu_cls_code: str = ""


class MinuteBarRow(msgspec.Struct):
    """FHKST03010200 / FHKST03010230 ``output2`` row (§4.3), newest first."""

    stck_bsop_date: str
    stck_cntg_hour: str
    stck_prpr: str
    stck_oprc: str
    stck_hgpr: str
    stck_lwpr: str
    cntg_vol: str
    acml_tr_pbmn: str = "0"


class TimeTradeRow(msgspec.Struct):
    """FHPST01060000 ``output2`` row: one of today's trades on a venue, newest first.

    Whether a row is one trade or one second's trades is UNCONFIRMED (kis-market-2026-09.md
    §6); KIS's table names the price ``stck_pbpr`` and its example ``stck_prpr``: either is
    read (`observer.kis.time_trades`).
    """

    stck_cntg_hour: str
    acml_vol: str
    cnqn: str
    stck_prpr: str = ""
    stck_pbpr: str = ""
    askp: str = "0"
    bidp: str = "0"
    prdy_ctrt: str = "0"
    tday_rltv: str = "0"


class DailyBarRow(msgspec.Struct):
    """FHKST03010100 ``output2`` row (§4.2), newest first."""

    stck_bsop_date: str
    stck_clpr: str
    stck_oprc: str
    stck_hgpr: str
    stck_lwpr: str
    acml_vol: str
    acml_tr_pbmn: str = "0"


class EtfPriceOutput(msgspec.Struct):
    """FHPST02400000 ``output`` (§4.5), the fields the ETF job uses."""

    stck_prpr: str
    stck_prdy_clpr: str = "0"
    prdy_vrss: str = "0"
    prdy_ctrt: str = "0"
    acml_vol: str = "0"
    nav: str = "0"
    prdy_last_nav: str = "0"
    trc_errt: str = "0"  # tracking error rate
    dprt: str = "0"  # premium/discount (괴리율), percent
    etf_ntas_ttam: str = "0"  # total net assets
    etf_cnfg_issu_cnt: str = "0"  # number of constituents
    lstn_stcn: str = "0"
    stck_dryy_hgpr: str = "0"  # this year's high (year to date, not 52 weeks)
    stck_dryy_lwpr: str = "0"
    stck_lstn_date: str = ""
    stck_oprc: str = "0"
    stck_hgpr: str = "0"
    stck_lwpr: str = "0"
    etf_crcl_stcn: str = "0"  # circulating units
    etf_trc_ert_mltp: str = "0"  # tracking multiple (2, -1, -2 for leveraged and inverse)
    etf_cu_unit_scrt_cnt: str = "0"  # units per creation unit


class EtfNavDailyRow(msgspec.Struct):
    """FHPST02440200 ``output`` row (§4.6): price and NAV of one day, newest first."""

    stck_bsop_date: str
    stck_clpr: str
    nav: str = "0"
    dprt: str = "0"
    acml_vol: str = "0"
    nav_vrss_prpr: str = "0"  # NAV against the price


class EtfComponentSummary(msgspec.Struct):
    """FHKST121600C0 ``output1`` (§4.7)."""

    stck_prpr: str = "0"
    nav: str = "0"
    etf_ntas_ttam: str = "0"
    etf_cnfg_issu_cnt: str = "0"


class EtfComponentRow(msgspec.Struct):
    """FHKST121600C0 ``output2`` row (§4.7): one constituent."""

    stck_shrn_iscd: str
    hts_kor_isnm: str = ""
    etf_cnfg_issu_rlim: str = "0"  # weight, percent
    etf_vltn_amt: str = "0"  # the line's value within the ETF, KRW
    hts_avls: str = "0"


class InvestorEstimateRow(msgspec.Struct):
    """HHPTJ04160200 ``output2`` row: one posting of the day's estimated net buying, shares."""

    bsop_hour_gb: str  # the posting: 1 09:30, 2 10:00, 3 11:20, 4 13:20, 5 14:30
    frgn_fake_ntby_qty: str = "0"  # foreigners'
    orgn_fake_ntby_qty: str = "0"  # institutions'
    sum_fake_ntby_qty: str = "0"  # both


class InvestorFlowRow(msgspec.Struct):
    """FHPTJ04160001 ``output2`` row: one day's final net buying by investor group.

    Quantities in shares, values in millions of KRW (백만원) as KIS's workbook says.
    """

    stck_bsop_date: str  # YYYYMMDD
    acml_vol: str = "0"
    prsn_ntby_qty: str = "0"  # individuals'
    frgn_ntby_qty: str = "0"  # foreigners'
    orgn_ntby_qty: str = "0"  # institutions' (기관계)
    etc_corp_ntby_vol: str = "0"  # other corporations'
    prsn_ntby_tr_pbmn: str = "0"
    frgn_ntby_tr_pbmn: str = "0"
    orgn_ntby_tr_pbmn: str = "0"
    etc_corp_ntby_tr_pbmn: str = "0"


class ProgramDailyRow(msgspec.Struct):
    """FHPPG04650201 ``output`` row: one day's program trading of a stock on a venue."""

    stck_bsop_date: str  # YYYYMMDD
    whol_smtn_seln_vol: str = "0"
    whol_smtn_shnu_vol: str = "0"
    whol_smtn_ntby_qty: str = "0"
    whol_smtn_seln_tr_pbmn: str = "0"  # KRW (UNCONFIRMED: no unit in the workbook)
    whol_smtn_shnu_tr_pbmn: str = "0"
    whol_smtn_ntby_tr_pbmn: str = "0"


class ViStatusRow(msgspec.Struct):
    """FHPST01390000 ``output`` row: one volatility interruption (VI) of a stock on a day."""

    cntg_vi_hour: str  # HHMMSS: when it started
    mksc_shrn_iscd: str = ""
    bsop_date: str = ""  # YYYYMMDD
    vi_cls_code: str = ""  # Y while it applies
    vi_kind_code: str = ""  # 1 static, 2 dynamic, 3 both
    vi_cncl_hour: str = ""  # HHMMSS: when it was lifted ("000000" or empty: not yet)
    vi_prc: str = "0"  # the price that set it off
    vi_stnd_prc: str = "0"  # the static VI's base price
    vi_dprt: str = "0"  # ... and the move from it, percent
    vi_dmc_stnd_prc: str = "0"  # the dynamic VI's base price
    vi_dmc_dprt: str = "0"
    vi_count: str = "0"  # the symbol's VIs of the day so far


class OverseasPriceOutput(msgspec.Struct):
    """HHDFS00000300 ``output`` (§4.8a); an empty ``last`` means an unknown symbol."""

    last: str = ""
    rsym: str = ""
    zdiv: str = "0"
    base: str = ""
    pvol: str = "0"
    sign: str = ""
    diff: str = "0"
    rate: str = "0"
    tvol: str = "0"
    tamt: str = "0"
    ordy: str = ""


class StockInfoOutput(msgspec.Struct):
    """CTPF1002R ``output`` (주식기본조회), the fields the observer reads: NXT eligibility, kind.

    An empty flag is one the answer did not carry (`observer.kis.client.nxt_status` refuses it).
    """

    pdno: str = ""
    prdt_name: str = ""
    cptt_trad_tr_psbl_yn: str = ""  # "NXT 거래종목여부": Y where Nextrade trades the stock
    nxt_tr_stop_yn: str = ""  # "NXT 거래정지여부": Y while Nextrade has halted it
    scty_grp_id_cd: str = ""  # "증권그룹ID코드": ST a stock, EF an ETF, EN an ETN, ...


class OverseasInfoOutput(msgspec.Struct):
    """CTPF1702R ``output`` (§4.9), the fields enrichment and listings use."""

    std_pdno: str = ""
    prdt_eng_name: str = ""
    prdt_name: str = ""
    natn_cd: str = ""
    ovrs_excg_cd: str = ""
    tr_crcy_cd: str = ""
    prdt_clsf_cd: str = ""
    prdt_clsf_name: str = ""
    lstg_stck_num: str = "0"
    lstg_dt: str = ""
    ovrs_stck_tr_stop_dvsn_cd: str = ""  # trading halt code
    lstg_abol_item_yn: str = "N"  # delisted


class IndustryCodeRow(msgspec.Struct):
    """One row of HHDFS76370100's catalog (ref-KRX §3.2): an overseas industry code and name.

    The sample answers a 3-digit ``icod`` (``"010"``) while the master column is 4 wide; the
    caller normalises. Whether the rows come in ``output2`` or ``output`` is UNCONFIRMED
    (the client reads either).
    """

    icod: str = ""
    name: str = ""


class PriceDetailOutput(msgspec.Struct):
    """HHDFS76200200 ``output`` (ref-KIS §4.8b), the fields enrichment uses.

    ``e_icod`` is a sector *name* (ref-KRX §3.2), not a code; an empty ``last`` means no
    such symbol, as on HHDFS00000300.
    """

    rsym: str = ""
    last: str = ""
    e_icod: str = ""


class IndustryMemberRow(msgspec.Struct):
    """One ``output2`` row of HHDFS76370000 (the stocks of one industry code)."""

    symb: str = ""
    excd: str = ""
    name: str = ""


# A token's stated lifetime is about a day (§2.1); beyond a year the answer is nonsense,
# and its expiry in nanoseconds would not fit the BIGINT of `TokenRefreshed` rows.
_MAX_EXPIRES_IN_S = 366 * 86400


class TokenAnswer(msgspec.Struct):
    """The answer of ``/oauth2/tokenP`` (§2.1); KIS's errors in ``error_code``."""

    access_token: str = ""
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: Annotated[int, msgspec.Meta(ge=0, le=_MAX_EXPIRES_IN_S)] = 0
    access_token_token_expired: str = ""
    error_code: str = ""
    error_description: str = ""


class ApprovalAnswer(msgspec.Struct):
    """The answer of ``/oauth2/Approval`` (§2.3)."""

    approval_key: str = ""
    error_code: str = ""
    error_description: str = ""
