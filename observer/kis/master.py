"""KIS master files: the domestic ``.mst`` / overseas ``.cod`` parsers.

Facts from shared/reference/kis-api.md §6. Domestic records are cp949 lines: a head (short code 9,
ISIN 12, Korean name) then a fixed-width ASCII tail (KOSPI 227, KOSDAQ 221, KONEX 184 characters)
taken from the *end* of the line; a record with a tail field outside its form is held back, never
a listing (`MalformedRecord`). A group code of the right form that the .h files do not list
(`KNOWN_CODES`) is a listing all the same, reported as a new code. Overseas ``.cod`` files are
cp949, at least 24 tab-separated columns (the known ones read, any further ones kept as
extras), no header row. Downloads and safe extraction: `observer.kis.master_archive`,
re-exported here.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from observer.errors import MasterFileError
from observer.kis.master_archive import (
    Downloaded,
    RemoteFile,
    download_master,
    extract_single,
    head_master,
    probe_master,
)

__all__ = [
    "COD_COLUMNS",
    "DOMESTIC_TAILS",
    "KNOWN_CODES",
    "MAX_MALFORMED_SHARE",
    "MAX_NEW_CODE_SHARE",
    "OVERSEAS_FILES",
    "DomesticListing",
    "DomesticRows",
    "Downloaded",
    "MalformedRecord",
    "NewCode",
    "OverseasListing",
    "OverseasRows",
    "RemoteFile",
    "download_master",
    "extract_single",
    "head_master",
    "parse_domestic",
    "parse_overseas",
    "probe_master",
]

log = logging.getLogger(__name__)

Market = Literal["KOSPI", "KOSDAQ", "KONEX"]

_SHARED_FLAGS = (
    ("trht_yn", 1), ("sltr_yn", 1), ("mang_issu_yn", 1), ("mrkt_alrm_cls_code", 2),
    ("mrkt_alrm_risk_adnt_yn", 1), ("insn_pbnt_yn", 1), ("byps_lstn_yn", 1),
    ("flng_cls_code", 2), ("fcam_mod_cls_code", 2), ("icic_cls_code", 2), ("marg_rate", 3),
    ("crdt_able", 1), ("crdt_days", 3), ("prdy_vol", 12), ("stck_fcam", 12),
    ("stck_lstn_date", 8), ("lstn_stcn", 15), ("cpfn", 21), ("stac_month", 2), ("po_prc", 7),
    ("prst_cls_code", 1), ("ssts_hot_yn", 1), ("stange_runup_yn", 1), ("krx300_issu_yn", 1),
)  # fmt: skip
_FINANCIALS = (
    ("sale_account", 9), ("bsop_prfi", 9), ("op_prfi", 9), ("thtr_ntin", 5), ("roe", 9),
    ("base_date", 8), ("prdy_avls_scal", 9),
)  # fmt: skip
_TRAILER = (("co_crdt_limt_over_yn", 1), ("secu_lend_able_yn", 1), ("stln_able_yn", 1))
_UNITS = (("stck_sdpr", 9), ("frml_mrkt_deal_qty_unit", 5), ("ovtm_mrkt_deal_qty_unit", 5))

# Tail layouts (name, width), in order, from the official .h files.
DOMESTIC_TAILS: dict[Market, tuple[tuple[str, int], ...]] = {
    "KOSPI": (
        ("scrt_grp_cls_code", 2), ("avls_scal_cls_code", 1), ("bstp_larg_div_code", 4),
        ("bstp_medm_div_code", 4), ("bstp_smal_div_code", 4), ("mnin_cls_code_yn", 1),
        ("low_current_yn", 1), ("sprn_strr_nmix_issu_yn", 1), ("kospi200_apnt_cls_code", 1),
        ("kospi100_issu_yn", 1), ("kospi50_issu_yn", 1), ("krx_issu_yn", 1),
        ("etp_prod_cls_code", 1), ("elw_pblc_yn", 1), ("krx100_issu_yn", 1), ("krx_car_yn", 1),
        ("krx_smcn_yn", 1), ("krx_bio_yn", 1), ("krx_bank_yn", 1),
        ("etpr_undt_objt_co_yn", 1), ("krx_enrg_chms_yn", 1), ("krx_stel_yn", 1),
        ("short_over_cls_code", 1), ("krx_medi_cmnc_yn", 1), ("krx_cnst_yn", 1),
        ("krx_fnnc_svc_yn", 1), ("krx_scrt_yn", 1), ("krx_ship_yn", 1), ("krx_insu_yn", 1),
        ("krx_trnp_yn", 1), ("sri_nmix_yn", 1), *_UNITS, *_SHARED_FLAGS,
        ("kospi_issu_yn", 1), *_FINANCIALS, ("grp_code", 3), *_TRAILER,
    ),
    "KOSDAQ": (
        ("scrt_grp_cls_code", 2), ("avls_scal_cls_code", 1), ("bstp_larg_div_code", 4),
        ("bstp_medm_div_code", 4), ("bstp_smal_div_code", 4), ("vntr_issu_yn", 1),
        ("low_current_yn", 1), ("krx_issu_yn", 1), ("etp_prod_cls_code", 1),
        ("krx100_issu_yn", 1), ("krx_car_yn", 1), ("krx_smcn_yn", 1), ("krx_bio_yn", 1),
        ("krx_bank_yn", 1), ("etpr_undt_objt_co_yn", 1), ("krx_enrg_chms_yn", 1),
        ("krx_stel_yn", 1), ("short_over_cls_code", 1), ("krx_medi_cmnc_yn", 1),
        ("krx_cnst_yn", 1), ("invt_alrm_yn", 1), ("krx_scrt_yn", 1), ("krx_ship_yn", 1),
        ("krx_insu_yn", 1), ("krx_trnp_yn", 1), ("ksq150_nmix_yn", 1), *_UNITS,
        *_SHARED_FLAGS, *_FINANCIALS, ("grp_code", 3), *_TRAILER,
    ),
    "KONEX": (("scrt_grp_cls_code", 2), *_UNITS, *_SHARED_FLAGS, *_FINANCIALS, *_TRAILER),
}  # fmt: skip

_TAIL_WIDTHS = {market: sum(w for _, w in spec) for market, spec in DOMESTIC_TAILS.items()}
assert _TAIL_WIDTHS == {"KOSPI": 227, "KOSDAQ": 221, "KONEX": 184}, _TAIL_WIDTHS

# Overseas master files: file stem -> (exchange code, region).
OVERSEAS_FILES: dict[str, tuple[str, str]] = {
    "nas": ("NAS", "US"), "nys": ("NYS", "US"), "ams": ("AMS", "US"),
    "shs": ("SHS", "CN"), "shi": ("SHI", "CN"), "szs": ("SZS", "CN"), "szi": ("SZI", "CN"),
    "tse": ("TSE", "JP"), "hks": ("HKS", "HK"), "hnx": ("HNX", "VN"), "hsx": ("HSX", "VN"),
}  # fmt: skip

COD_COLUMNS: tuple[str, ...] = (
    "ncod", "exid", "excd", "exnm", "symb", "rsym", "knam", "enam", "stis", "curr", "zdiv",
    "ztyp", "base", "bnit", "anit", "mstm", "metm", "isdr", "drcd", "icod", "sjong", "ttyp",
    "etyp", "ttyp_sb",
)  # fmt: skip


# scrt_grp_cls_code (KOSPI .h) in the product's words; KONEX rows carry ``KN`` (코넥스,
# the KONEX .h's only group code): KONEX stocks.
_DOMESTIC_TYPES = {
    "ST": "stock",
    "KN": "stock",
    "FS": "stock",
    "DR": "dr",
    "EF": "etf",
    "FE": "etf",
    "EN": "etn",
    "EW": "elw",
    "RT": "reit",
    "MF": "fund",
    "SC": "fund",
    "IF": "fund",
    "BC": "fund",
    "SW": "rights",
    "SR": "rights",
}
# etp_prod_cls_code (KOSPI and KOSDAQ .h): an ETF or ETN by its product type, whatever its
# group code says (the group codes the KOSPI .h lists have none for ETNs).
_ETP_TYPES = {"1": "etf", "2": "etf", "3": "etn", "4": "etn"}
# mrkt_alrm_cls_code (시장경고구분코드): 00 none, 01 투자주의, 02 투자경고, 03 투자위험
_MARKET_ALARMS = {"01": "caution", "02": "warning", "03": "risk"}
# The Y/N designations, by field: 관리종목, 정리매매 (delisting's last days), 단기과열
_MEASURE_FLAGS = {
    "mang_issu_yn": "administrative",
    "sltr_yn": "liquidation",
    "ssts_hot_yn": "overheated",
}

# Rows with a field outside its form are held back while few (one odd row); a shifted layout
# makes nearly every row fail, so more refuses the file.
MAX_MALFORMED_SHARE = 0.05

# The codes the .h files list, per code field. Real files hold more (2026-07 KOSPI: 18 rows with
# etp_prod_cls_code 8, 2 with scrt_grp_cls_code PF): a code of the field's form that is not
# here is a listing, reported as new. A few rows carry one; a layout shifted by a character
# puts tail characters into the code fields on most rows, so more than this share refuses
# the file as malformed rows do.
KNOWN_CODES: dict[str, frozenset[str]] = {
    "scrt_grp_cls_code": frozenset(_DOMESTIC_TYPES),
    "etp_prod_cls_code": frozenset({"", "0", "1", "2", "3", "4", "5"}),
    # a market alarm KIS adds would otherwise read as none (`DomesticListing.measures`)
    "mrkt_alrm_cls_code": frozenset({"", "00", *_MARKET_ALARMS}),
}
MAX_NEW_CODE_SHARE = 0.05


_GROUP_CODE = re.compile(r"[A-Z]{2}")  # never blank; known or new (`KNOWN_CODES`)


def _blank_or(pattern: str) -> Callable[[str], bool]:
    form = re.compile(pattern)
    return lambda value: not value or form.fullmatch(value) is not None


# The documented form of each tail field narrow enough to tell a shift (kis-api.md §6.2), as
# stripped; besides these, every ``*_yn`` flag is Y, N or blank. A group code is never blank.
_FORMS: dict[str, Callable[[str], bool]] = {
    "scrt_grp_cls_code": lambda value: _GROUP_CODE.fullmatch(value) is not None,
    "bstp_larg_div_code": _blank_or(r"\d{4}"),
    "bstp_medm_div_code": _blank_or(r"\d{4}"),
    "bstp_smal_div_code": _blank_or(r"\d{4}"),
    "kospi200_apnt_cls_code": _blank_or(r"[0-9AB]"),
    "etp_prod_cls_code": _blank_or(r"[0-9A-Z]"),
    "stck_sdpr": _blank_or(r"\d+"),
    "stck_lstn_date": _blank_or(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"),
    "lstn_stcn": _blank_or(r"\d+"),
    "prdy_avls_scal": _blank_or(r"\d+"),
}
_YES_NO = frozenset({"", "Y", "N"}).__contains__
# Flags §6.2 calls filler (deleted 2015; KONEX's KRX300): whatever they hold says nothing.
_FILLERS = {("KOSPI", "krx_fnnc_svc_yn"), ("KONEX", "krx300_issu_yn")}
_CHECKED: dict[Market, tuple[tuple[str, Callable[[str], bool]], ...]] = {
    market: tuple(
        (name, _YES_NO if name.endswith("_yn") else _FORMS[name])
        for name, _ in spec
        if (name in _FORMS or name.endswith("_yn")) and (market, name) not in _FILLERS
    )
    for market, spec in DOMESTIC_TAILS.items()
}


@dataclass(frozen=True, slots=True)
class DomesticListing:
    """One row of a domestic master, with the fields the product uses typed."""

    market: Market
    symbol: str
    isin: str
    name: str
    security_group: str  # scrt_grp_cls_code: ST stock, EF ETF, ...
    base_price: int  # stck_sdpr, KRW
    halted: bool  # trht_yn
    administrative: bool  # mang_issu_yn (관리종목)
    listed_shares: int  # lstn_stcn is in thousands of shares
    market_cap: int  # prdy_avls_scal is in 억 (100 million) KRW
    sector_code: str  # bstp_larg_div_code (대분류: 제조, 금융, ...), "" on KONEX
    industry_code: str  # bstp_medm_div_code (중분류: the industry), "" when "0000" or KONEX
    kospi200_sector: str  # kospi200_apnt_cls_code (KOSPI 200 members), "" when "0" or absent
    listing_date: str  # YYYYMMDD
    tail: dict[str, str]  # every tail field, stripped, by its .h name

    @property
    def kind(self) -> str:
        """The instrument type in the product's words: ``stock``, ``etf``, ``etn``, ...

        ``other`` for a group code the .h files do not list (and no known product type).
        """
        etp = _ETP_TYPES.get(self.tail.get("etp_prod_cls_code", ""))
        return etp or group_kind(self.security_group)

    @property
    def measures(self) -> tuple[str, ...]:
        """The market measures the listing is under, in the product's words, sorted.

        (`observer.market.after_markets.MEASURES`.) Its market alarm (caution, warning, risk)
        and its designations (administrative, liquidation, overheated); () for none.
        """
        found = {word for field, word in _MEASURE_FLAGS.items() if self.tail.get(field) == "Y"}
        alarm = _MARKET_ALARMS.get(self.tail.get("mrkt_alrm_cls_code", ""))
        return tuple(sorted(found | {alarm} if alarm else found))


def group_kind(group: str) -> str:
    """A securities group code's product in the product's words: ``stock``, ``etf``, ...

    The code of the master files (``scrt_grp_cls_code``) and of CTPF1002R's answer
    (``scty_grp_id_cd``); ``other`` for one the .h files do not list.
    """
    return _DOMESTIC_TYPES.get(group, "other")


@dataclass(frozen=True, slots=True)
class MalformedRecord:
    """A domestic record with tail fields outside their form: held back, never a listing.

    Only its symbol is trusted: the head's short code starts the line, where a tail of
    another width does not reach; every tail field would be read shifted (KIS added or
    dropped a field), and one record a character too long would read a live stock as another
    type, under a name with its tail's start.
    """

    market: Market
    line: int
    symbol: str
    problems: tuple[str, ...]  # "scrt_grp_cls_code 'T'": each field outside its form

    def __str__(self) -> str:
        return f"{self.symbol} (line {self.line}: {'; '.join(self.problems)})"


@dataclass(frozen=True, slots=True)
class NewCode:
    """A code of its field's form that `KNOWN_CODES` does not list, and the rows holding it."""

    field: str  # scrt_grp_cls_code, etp_prod_cls_code
    code: str
    rows: int
    first_symbol: str  # of the first row holding it, for the report

    def __str__(self) -> str:
        return f"{self.field} {self.code!r} ({self.rows} rows, first {self.first_symbol})"


class DomesticRows(list[DomesticListing]):
    """`parse_domestic`'s answer: the well-formed listings, in file order.

    ``malformed`` holds the records held back, which a reader must name rather than drop;
    ``new_codes`` the codes not in `KNOWN_CODES` the listings hold, in order of first row.
    """

    def __init__(
        self,
        listings: Iterable[DomesticListing] = (),
        malformed: Iterable[MalformedRecord] = (),
        new_codes: Iterable[NewCode] = (),
    ) -> None:
        super().__init__(listings)
        self.malformed = tuple(malformed)
        self.new_codes = tuple(new_codes)


@dataclass(frozen=True, slots=True)
class OverseasListing:
    """One row of an overseas ``.cod`` master."""

    exchange: str  # excd
    region: str
    symbol: str  # symb
    realtime_symbol: str  # rsym
    name: str  # knam
    name_en: str  # enam
    security_type: str  # stis: 1 index, 2 stock, 3 ETP, 4 warrant
    currency: str
    industry_code: str  # icod
    etp_type: str  # etyp
    extras: tuple[str, ...] = ()  # columns after the known 24, stripped, in file order


class OverseasRows(list[OverseasListing]):
    """`parse_overseas`'s answer: the listings, in file order.

    ``extra_columns``: the most columns any row holds beyond `COD_COLUMNS` (0 for today's
    layout); each listing keeps its own in ``extras``.
    """

    def __init__(self, listings: Iterable[OverseasListing] = (), extra_columns: int = 0) -> None:
        super().__init__(listings)
        self.extra_columns = extra_columns


def _decode(data: bytes, what: str) -> list[str]:
    try:
        text = data.decode("cp949")
    except UnicodeDecodeError as exc:
        raise MasterFileError(f"{what} is not cp949 at byte {exc.start}") from exc
    return [line for line in text.split("\n") if line.strip("\r")]


def _number(value: str, line: int, name: str) -> int:
    value = value.strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise MasterFileError(f"line {line}: {name} is not a number: {value!r}") from None


def parse_domestic(data: bytes, market: Market) -> DomesticRows:
    """Parse a decompressed ``kospi_code.mst`` / ``kosdaq_code.mst`` / ``konex_code.mst``.

    The records with a field outside its form (at most `MAX_MALFORMED_SHARE` of them) are
    not listings: they are in ``malformed`` of the answer, by symbol and line. A code of its
    field's form missing from `KNOWN_CODES` is no damage: its rows are listings and the code
    is in ``new_codes`` of the answer, once.

    Raises
    ------
    MasterFileError
        Not cp949, a record too short or without a short code (naming its line), more than
        `MAX_MALFORMED_SHARE` of the records with a field outside its form, or more than
        `MAX_NEW_CODE_SHARE` of them with a code `KNOWN_CODES` does not list (a shifted layout).
    """
    rows = [
        _split(number, raw.rstrip("\r"), market)
        for number, raw in enumerate(_decode(data, f"{market} master"), start=1)
    ]
    bad = _check_forms(rows, market)
    good = [(number, head, tail) for number, head, tail in rows if number not in bad]
    return DomesticRows(
        (_listing(market, number, head, tail) for number, head, tail in good),
        (
            MalformedRecord(market, number, head[:9].strip(), bad[number])
            for number, head, _ in rows
            if number in bad
        ),
        _new_codes(good, len(rows), market),
    )


def _new_codes(
    rows: list[tuple[int, str, dict[str, str]]], records: int, market: Market
) -> list[NewCode]:
    """The codes outside `KNOWN_CODES` the well-formed ``rows`` hold, in order of first row.

    Refuses the file when more than `MAX_NEW_CODE_SHARE` of its ``records`` hold one.
    """
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], str] = {}
    holding = 0
    for _, head, tail in rows:
        unknown = [
            (name, tail[name])
            for name, known in KNOWN_CODES.items()
            if name in tail and tail[name] not in known
        ]
        holding += bool(unknown)
        for key in unknown:
            counts[key] = counts.get(key, 0) + 1
            first.setdefault(key, head[:9].strip())
    found = [NewCode(name, code, n, first[name, code]) for (name, code), n in counts.items()]
    if holding > MAX_NEW_CODE_SHARE * records:
        raise MasterFileError(
            f"{market} master: {holding} of {records} records hold codes the layout does not "
            f"list, more than {MAX_NEW_CODE_SHARE:.0%} (has the {_TAIL_WIDTHS[market]}-character "
            f"tail changed width?): {'; '.join(str(c) for c in found[:3])}"
        )
    if found:
        log.info("%s master: new codes: %s", market, "; ".join(str(c) for c in found))
    return found


def _split(number: int, line: str, market: Market) -> tuple[int, str, dict[str, str]]:
    """One record as (line number, head, tail fields by their .h name, stripped)."""
    width = _TAIL_WIDTHS[market]
    if len(line) < width + 21:
        raise MasterFileError(
            f"{market} master line {number}: {len(line)} characters, "
            f"shorter than the {width}-character tail plus code fields"
        )
    head, tail_text = line[:-width], line[-width:]
    if not tail_text.isascii():
        raise MasterFileError(f"{market} master line {number}: tail is not ASCII")
    tail: dict[str, str] = {}
    offset = 0
    for name, size in DOMESTIC_TAILS[market]:
        tail[name] = tail_text[offset : offset + size].strip()
        offset += size
    if not head[:9].strip():
        raise MasterFileError(f"{market} master line {number}: no short code")
    return number, head, tail


def _check_forms(
    rows: list[tuple[int, str, dict[str, str]]], market: Market
) -> dict[int, tuple[str, ...]]:
    """The records holding fields outside their forms (line -> the fields, with their values).

    Refuses the file when they are too many: its layout has shifted.
    """
    malformed: dict[int, tuple[str, ...]] = {}
    counts = Counter[str]()
    first: dict[str, str] = {}  # each field's first offender, for the message
    for number, _, tail in rows:
        bad = [name for name, valid in _CHECKED[market] if not valid(tail[name])]
        if not bad:
            continue
        malformed[number] = tuple(f"{name} {tail[name]!r}" for name in bad)
        counts.update(bad)
        for name in bad:
            first.setdefault(name, f"{name} {tail[name]!r} on line {number}")
    if not malformed:
        return malformed
    examples = "; ".join(f"{first[name]} ({n} rows)" for name, n in counts.most_common(3))
    summary = (
        f"{market} master: {len(malformed)} of {len(rows)} records hold fields outside their form"
    )
    if len(malformed) > MAX_MALFORMED_SHARE * len(rows):
        raise MasterFileError(
            f"{summary}, more than {MAX_MALFORMED_SHARE:.0%} (has the {_TAIL_WIDTHS[market]}-"
            f"character tail changed width?): {examples}"
        )
    log.warning("%s, held back: %s", summary, examples)
    return malformed


def _listing(market: Market, number: int, head: str, tail: dict[str, str]) -> DomesticListing:
    return DomesticListing(
        market=market,
        symbol=head[:9].strip(),
        isin=head[9:21].strip(),
        name=head[21:].strip(),
        security_group=tail["scrt_grp_cls_code"],
        base_price=_number(tail["stck_sdpr"], number, "stck_sdpr"),
        halted=tail["trht_yn"] == "Y",
        administrative=tail["mang_issu_yn"] == "Y",
        listed_shares=_number(tail["lstn_stcn"], number, "lstn_stcn") * 1000,
        market_cap=_number(tail["prdy_avls_scal"], number, "prdy_avls_scal") * 100_000_000,
        sector_code=tail.get("bstp_larg_div_code", ""),
        industry_code=_none_as_empty(tail.get("bstp_medm_div_code", ""), "0000"),
        kospi200_sector=_none_as_empty(tail.get("kospi200_apnt_cls_code", ""), "0"),
        listing_date=tail["stck_lstn_date"],
        tail=tail,
    )


def _none_as_empty(value: str, none: str) -> str:
    """A code field's "none" spelling (``0000``, ``0``) as ""."""
    return "" if value in ("", none) else value


def parse_overseas(data: bytes, stem: str) -> OverseasRows:
    """Parse a decompressed ``<stem>mst.cod`` (``stem`` is ``nas``, ``nys``, ...).

    The `COD_COLUMNS` are read by position; columns after them (KIS has changed the count
    before) are kept in each listing's ``extras`` and counted in the answer's
    ``extra_columns``, never dropped unsaid.

    Raises
    ------
    MasterFileError
        An unknown ``stem``, not cp949, a row with fewer columns than `COD_COLUMNS` or
        without a symbol (naming its line).
    """
    if stem not in OVERSEAS_FILES:
        raise MasterFileError(f"unknown overseas master {stem!r}")
    _, region = OVERSEAS_FILES[stem]
    known = len(COD_COLUMNS)
    listings = []
    extra = 0
    for number, raw in enumerate(_decode(data, f"{stem} master"), start=1):
        columns = [c.strip() for c in raw.rstrip("\r").split("\t")]
        if len(columns) < known:
            raise MasterFileError(
                f"{stem} master line {number}: {len(columns)} columns, expected at least {known}"
            )
        row = dict(zip(COD_COLUMNS, columns[:known], strict=True))
        if not row["symb"]:
            raise MasterFileError(f"{stem} master line {number}: no symbol")
        extra = max(extra, len(columns) - known)
        listings.append(
            OverseasListing(
                exchange=row["excd"],
                region=region,
                symbol=row["symb"],
                realtime_symbol=row["rsym"],
                name=row["knam"],
                name_en=row["enam"],
                security_type=row["stis"],
                currency=row["curr"],
                industry_code=row["icod"],
                etp_type=row["etyp"],
                extras=tuple(columns[known:]),
            )
        )
    if extra:
        log.warning(
            "%s master: up to %d columns after the known %d, kept as extras", stem, extra, known
        )
    return OverseasRows(listings, extra)
