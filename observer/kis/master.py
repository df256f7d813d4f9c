"""KIS master files: safe zip extraction and the domestic ``.mst`` / overseas ``.cod`` parsers.

Facts from shared/reference/kis-api.md §6. Domestic records are cp949 lines: a head (short code
9, ISIN 12, Korean name) then a fixed-width ASCII tail (KOSPI 227, KOSDAQ 221, KONEX 184
characters), taken from the *end* of the line. Overseas ``.cod`` files are cp949, 24
tab-separated columns, no header row. Bad input raises `MasterFileError` naming the line.

A tail whose width changed (KIS added or dropped a field) still slices into fields, every one
of them shifted: a domestic file is refused when more than `MAX_MALFORMED_SHARE` of its rows
hold a field outside its documented form (group code, Y/N flags, dates, codes, numbers).
"""

from __future__ import annotations

import hashlib
import io
import logging
import lzma
import os
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import httpx

from observer.errors import KisTransportError, MasterFileError

__all__ = [
    "COD_COLUMNS",
    "DOMESTIC_TAILS",
    "MAX_MALFORMED_SHARE",
    "OVERSEAS_FILES",
    "DomesticListing",
    "Downloaded",
    "OverseasListing",
    "RemoteFile",
    "download_master",
    "extract_single",
    "head_master",
    "parse_domestic",
    "parse_overseas",
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

# The largest master file is a few MB; anything far larger is not one.
MAX_MASTER_BYTES = 64 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
# What `zipfile` lets through from damaged bytes, besides `zipfile.BadZipFile`: the
# decompressors' own errors (zlib, lzma; bz2 raises OSError), a stream cut short (EOFError),
# a seek before the start or an undecodable name (ValueError), an unsupported compression
# method (NotImplementedError) or encryption (RuntimeError).
_DAMAGED = (
    zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, NotImplementedError,
    RuntimeError, zipfile.LargeZipFile,
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

# Rows with a field outside its form are kept while few (a group code KIS introduced since
# the .h, one odd row); a shifted layout makes nearly every row fail, so more refuses the file.
MAX_MALFORMED_SHARE = 0.05


def _blank_or(pattern: str) -> Callable[[str], bool]:
    form = re.compile(pattern)
    return lambda value: not value or form.fullmatch(value) is not None


# The documented form of each tail field narrow enough to tell a shift (kis-api.md §6.2), as
# stripped; besides these, every ``*_yn`` flag is Y, N or blank. A group code is never blank.
_FORMS: dict[str, Callable[[str], bool]] = {
    "scrt_grp_cls_code": _DOMESTIC_TYPES.__contains__,
    "bstp_larg_div_code": _blank_or(r"\d{4}"),
    "bstp_medm_div_code": _blank_or(r"\d{4}"),
    "bstp_smal_div_code": _blank_or(r"\d{4}"),
    "kospi200_apnt_cls_code": _blank_or(r"[0-9AB]"),
    "etp_prod_cls_code": _blank_or(r"[0-5]"),
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
        """The instrument type in the product's words: ``stock``, ``etf``, ``etn``, ..."""
        etp = _ETP_TYPES.get(self.tail.get("etp_prod_cls_code", ""))
        return etp or _DOMESTIC_TYPES.get(
            self.security_group, self.security_group.lower() or "other"
        )


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


def extract_single(archive: bytes, member: str, max_bytes: int = MAX_MASTER_BYTES) -> bytes:
    """Return the one member named ``member`` (any case) of a zip, checked and bounded.

    Nothing is written to disk, so a member name cannot escape a folder; names with path
    parts are still refused. Declared sizes, the compression ratio and the bytes actually
    inflated are all bounded, and the CRC is verified.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            infos = [i for i in zf.infolist() if i.filename.lower() == member.lower()]
            if len(infos) != 1:
                names = [i.filename for i in zf.infolist()][:5]
                raise MasterFileError(f"{member} not found exactly once in the archive: {names}")
            info = infos[0]
            if "/" in info.filename or "\\" in info.filename or ".." in info.filename:
                raise MasterFileError(f"refusing member with a path: {info.filename!r}")
            if info.file_size > max_bytes:
                raise MasterFileError(f"{member} declares {info.file_size} bytes")
            if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise MasterFileError(f"{member} compression ratio looks like a zip bomb")
            with zf.open(info) as stream:
                data = stream.read(max_bytes + 1)
    except zipfile.BadZipFile as exc:
        raise MasterFileError(f"not a valid zip archive: {exc}") from exc
    except _DAMAGED as exc:
        raise MasterFileError(f"damaged zip archive: {exc}") from exc
    if len(data) > max_bytes:
        raise MasterFileError(f"{member} inflates beyond {max_bytes} bytes")
    return data


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """What a HEAD says about a master archive; validators are "" when the server omits them."""

    size: int
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A master archive saved to disk: its size and sha256 as received."""

    path: Path
    size: int
    sha256: str
    remote: RemoteFile


async def head_master(http: httpx.AsyncClient, name: str) -> RemoteFile:
    """The published size (and ETag / Last-Modified) of master archive ``name``."""
    try:
        response = await http.head(name)
    except httpx.HTTPError as exc:
        raise KisTransportError(f"HEAD {name}: {type(exc).__name__}") from None
    if response.status_code >= 500:
        raise KisTransportError(f"HEAD {name}: HTTP {response.status_code}")
    if response.status_code != 200 or "content-length" not in response.headers:
        raise MasterFileError(f"HEAD {name}: HTTP {response.status_code}, no size")
    return _remote(response)


def _remote(response: httpx.Response) -> RemoteFile:
    try:
        size = int(response.headers["content-length"])
    except ValueError:
        raise MasterFileError(f"{response.url}: Content-Length is not a number") from None
    return RemoteFile(
        size, response.headers.get("etag", ""), response.headers.get("last-modified", "")
    )


async def download_master(
    http: httpx.AsyncClient,
    name: str,
    path: Path,
    *,
    max_bytes: int = MAX_MASTER_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Downloaded:
    """Stream archive ``name`` into ``path`` (created 0600), hashing as it arrives.

    Refuses an error status, a missing or lying Content-Length (more or fewer bytes than
    announced) and more than ``max_bytes``; on any failure ``path`` is removed.
    """
    digest = hashlib.sha256()
    received = 0
    try:
        with _private(path) as out:
            async with http.stream("GET", name) as response:
                if response.status_code >= 500:
                    raise KisTransportError(f"GET {name}: HTTP {response.status_code}")
                if response.status_code != 200:
                    raise MasterFileError(f"GET {name}: HTTP {response.status_code}")
                if "content-length" not in response.headers:
                    raise MasterFileError(f"GET {name}: no Content-Length to verify against")
                remote = _remote(response)
                if remote.size > max_bytes:
                    raise MasterFileError(f"GET {name}: {remote.size} bytes announced")
                try:
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        if received > remote.size:
                            raise MasterFileError(
                                f"GET {name}: more than the {remote.size} bytes announced"
                            )
                        digest.update(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(received)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    raise MasterFileError(
                        f"GET {name}: the body ended after {received} of {remote.size} bytes"
                    ) from None
        if received != remote.size:
            raise MasterFileError(f"GET {name}: {received} of {remote.size} bytes arrived")
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise KisTransportError(f"GET {name}: {type(exc).__name__}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Downloaded(path, received, digest.hexdigest(), remote)


@contextmanager
def _private(path: Path) -> Iterator[BinaryIO]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        yield out


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


def parse_domestic(data: bytes, market: Market) -> list[DomesticListing]:
    """Parse a decompressed ``kospi_code.mst`` / ``kosdaq_code.mst`` / ``konex_code.mst``.

    Raises
    ------
    MasterFileError
        Not cp949, a record too short or without a short code (naming its line), or more
        than `MAX_MALFORMED_SHARE` of the records with a field outside its form.
    """
    rows = [
        _split(number, raw.rstrip("\r"), market)
        for number, raw in enumerate(_decode(data, f"{market} master"), start=1)
    ]
    _check_forms(rows, market)
    return [_listing(market, number, head, tail) for number, head, tail in rows]


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


def _check_forms(rows: list[tuple[int, str, dict[str, str]]], market: Market) -> None:
    """Refuse a file whose rows hold fields outside their forms: its layout has shifted."""
    malformed, counts = 0, Counter[str]()
    first: dict[str, str] = {}  # each field's first offender, for the message
    for number, _, tail in rows:
        bad = [name for name, valid in _CHECKED[market] if not valid(tail[name])]
        malformed += bool(bad)
        counts.update(bad)
        for name in bad:
            first.setdefault(name, f"{name} {tail[name]!r} on line {number}")
    if not malformed:
        return
    examples = "; ".join(f"{first[name]} ({n} rows)" for name, n in counts.most_common(3))
    summary = f"{market} master: {malformed} of {len(rows)} records hold fields outside their form"
    if malformed > MAX_MALFORMED_SHARE * len(rows):
        raise MasterFileError(
            f"{summary}, more than {MAX_MALFORMED_SHARE:.0%} (has the {_TAIL_WIDTHS[market]}-"
            f"character tail changed width?): {examples}"
        )
    log.warning("%s, kept: %s", summary, examples)


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


def parse_overseas(data: bytes, stem: str) -> list[OverseasListing]:
    """Parse a decompressed ``<stem>mst.cod`` (``stem`` is ``nas``, ``nys``, ...)."""
    if stem not in OVERSEAS_FILES:
        raise MasterFileError(f"unknown overseas master {stem!r}")
    _, region = OVERSEAS_FILES[stem]
    listings = []
    for number, raw in enumerate(_decode(data, f"{stem} master"), start=1):
        columns = raw.rstrip("\r").split("\t")
        if len(columns) != len(COD_COLUMNS):
            raise MasterFileError(
                f"{stem} master line {number}: {len(columns)} columns, expected {len(COD_COLUMNS)}"
            )
        row = dict(zip(COD_COLUMNS, (c.strip() for c in columns), strict=True))
        if not row["symb"]:
            raise MasterFileError(f"{stem} master line {number}: no symbol")
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
            )
        )
    return listings
