"""Master files as KIS publishes them, built from the simulated listings.

Written from shared/reference/kis-api.md §6 independently of ``observer.kis.master`` (the
simulator never imports the client): zip archives holding one cp949 file each; domestic
``.mst`` lines are a head (short code 9, ISIN 12, name 40 bytes) and a fixed-width tail of
227 (KOSPI), 221 (KOSDAQ) or 184 (KONEX) characters, KONEX stocks with group code ``KN``;
overseas ``.cod`` rows are 24 tab-separated columns with no header. Asked to, it writes what
real files hold beyond the .h files: rows with group codes they do not list, and ``.cod`` rows
with more columns.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import replace

from harness.sim.market import Listing, Market, Overseas
from harness.sim.sectors import kr_codes

__all__ = [
    "DOMESTIC_FILES",
    "OVERSEAS_STEMS",
    "damaged",
    "domestic_master",
    "group_code",
    "master_files",
    "new_codes",
    "overseas_master",
    "zipped",
]

DOMESTIC_FILES = {"kospi_code": "KOSPI", "kosdaq_code": "KOSDAQ", "konex_code": "KONEX"}
OVERSEAS_STEMS = ("nas", "nys", "ams", "shs", "shi", "szs", "szi", "tse", "hks", "hnx", "hsx")

# market -> (tail width, {field: (offset in the tail, width)}) for the fields we fill.
_TAILS: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {
    "KOSPI": (227, {"scrt_grp_cls_code": (0, 2), "bstp_larg_div_code": (3, 4),
                    "bstp_medm_div_code": (7, 4), "kospi200_apnt_cls_code": (18, 1),
                    "etp_prod_cls_code": (22, 1), "stck_sdpr": (41, 9), "trht_yn": (60, 1),
                    "mang_issu_yn": (62, 1), "mrkt_alrm_cls_code": (63, 2),
                    "stck_lstn_date": (105, 8), "lstn_stcn": (113, 15),
                    "prdy_avls_scal": (212, 9)}),
    "KOSDAQ": (221, {"scrt_grp_cls_code": (0, 2), "bstp_larg_div_code": (3, 4),
                     "bstp_medm_div_code": (7, 4),
                     "etp_prod_cls_code": (18, 1), "stck_sdpr": (36, 9), "trht_yn": (55, 1),
                     "mang_issu_yn": (57, 1), "mrkt_alrm_cls_code": (58, 2),
                     "stck_lstn_date": (100, 8), "lstn_stcn": (108, 15),
                     "prdy_avls_scal": (206, 9)}),
    "KONEX": (184, {"scrt_grp_cls_code": (0, 2), "stck_sdpr": (2, 9), "trht_yn": (21, 1),
                    "mang_issu_yn": (23, 1), "mrkt_alrm_cls_code": (24, 2),
                    "stck_lstn_date": (66, 8), "lstn_stcn": (74, 15),
                    "prdy_avls_scal": (172, 9)}),
}  # fmt: skip


# mrkt_alrm_cls_code of a market alarm (`Listing.measures`)
_ALARMS = {"caution": "01", "warning": "02", "risk": "03"}


def group_code(listing: Listing) -> str:
    """The row's ``scrt_grp_cls_code``: a KONEX stock is ``KN`` (the KONEX .h), not ``ST``."""
    return "KN" if listing.market == "KONEX" and listing.group == "ST" else listing.group


def _line(listing: Listing, base_price: int, codes: dict[str, str] | None = None) -> bytes:
    width, fields = _TAILS[listing.market]
    tail = list(" " * width)
    mid, k200 = kr_codes(listing.symbol, listing.market, listing.group)
    values = {
        "scrt_grp_cls_code": group_code(listing),
        "bstp_larg_div_code": listing.sector_code,
        "bstp_medm_div_code": mid or "0000",
        "kospi200_apnt_cls_code": k200 or "0",
        "etp_prod_cls_code": {"EF": "1", "EN": "3"}.get(listing.group, "0"),
        "stck_sdpr": str(base_price),
        "trht_yn": "Y" if listing.suspended else "N",
        "mang_issu_yn": "Y" if listing.administrative else "N",
        "mrkt_alrm_cls_code": max((_ALARMS[m] for m in listing.measures), default="00"),
        "stck_lstn_date": listing.listed_on.strftime("%Y%m%d"),
        "lstn_stcn": str(listing.listed_shares // 1000),
        "prdy_avls_scal": str(listing.listed_shares * base_price // 100_000_000),
    } | (codes or {})
    for name, (offset, size) in fields.items():
        value = values[name]
        if len(value) > size:
            raise ValueError(f"{listing.symbol}: {name} {value!r} is wider than {size}")
        tail[offset : offset + size] = list(
            value.rjust(size) if value.isdigit() else value.ljust(size)
        )
    name_bytes = listing.name.encode("cp949")[:40].ljust(40)
    head = listing.symbol.ljust(9).encode() + listing.isin.ljust(12).encode() + name_bytes
    return head + "".join(tail).encode("ascii") + b"\n"


def domestic_master(
    listings: Iterable[Listing],
    prices: dict[str, int],
    codes: dict[str, dict[str, str]] | None = None,
) -> bytes:
    """A ``.mst`` file body for ``listings`` (one market), with base prices from ``prices``.

    ``codes``: symbol -> tail fields written instead of the listing's own (new codes).
    """
    codes = codes or {}
    return b"".join(_line(x, prices[x.symbol], codes.get(x.symbol)) for x in listings)


def new_codes(listings: Iterable[Listing]) -> dict[str, dict[str, str]]:
    """Codes the .h files do not list, one row each: what ``domestic_master`` writes instead.

    The first KOSPI ETF gets ``etp_prod_cls_code`` 8, the last KOSPI stock group ``PF`` and
    the last KOSDAQ stock a made-up group ``QX`` (KIS may add any), synthetic listings only.
    """

    def pick(market: str, group: str) -> list[str]:
        return sorted(
            x.symbol for x in listings if x.market == market and x.group == group and not x.known
        )

    listings = list(listings)
    codes: dict[str, dict[str, str]] = {}
    for market, group, field, code, first in (
        ("KOSPI", "EF", "etp_prod_cls_code", "8", True),
        ("KOSPI", "ST", "scrt_grp_cls_code", "PF", False),
        ("KOSDAQ", "ST", "scrt_grp_cls_code", "QX", False),
    ):
        symbols = pick(market, group)
        if symbols:
            codes[symbols[0] if first else symbols[-1]] = {field: code}
    return codes


def overseas_master(rows: Iterable[Overseas], extra_columns: int = 0) -> bytes:
    """A ``.cod`` file body: 24 tab-separated columns per instrument, cp949.

    ``extra_columns`` more after them (``X1``, ``X2``, ...), as a later layout would add.
    """
    lines = []
    for row in rows:
        columns = [
            row.exchange[:2] if row.currency != "USD" else "US",
            "000",
            row.exchange,
            row.exchange,
            row.symbol,
            f"D{row.exchange}{row.symbol}",
            row.name,
            row.name_en,
            row.security_type,
            row.currency,
            "2",
            "1",
            "0",
            "1",
            "1",
            "0930",
            "1600",
            "N",
            "",
            row.industry_code,
            "0",
            "1",
            "001" if row.security_type == "3" else "",
            "",
        ] + [f"X{n}" for n in range(1, extra_columns + 1)]
        lines.append("\t".join(columns).encode("cp949") + b"\n")
    return b"".join(lines)


def zipped(member: str, data: bytes) -> bytes:
    """A zip archive holding ``data`` as ``member``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # A fixed timestamp: the same contents make the same bytes (and the same ETag).
        archive.writestr(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def master_files(
    market: Market,
    prices: dict[str, int],
    *,
    delisted: Iterable[str] = (),
    renamed: dict[str, str] | None = None,
    listed: Iterable[Listing] = (),
    with_new_codes: bool = False,
    extra_columns: int = 0,
) -> dict[str, bytes]:
    """Every master archive by file name (``kospi_code.mst.zip``, ``nasmst.cod.zip``, ...).

    ``delisted`` symbols are left out, ``renamed`` ones carry their new name and ``listed``
    ones are added (domestic or overseas symbols alike), as a real master changes over time.
    ``with_new_codes`` writes a few rows with codes the .h files do not list (`new_codes`);
    ``extra_columns`` widens every ``.cod`` row.
    """
    gone, names = set(delisted), renamed or {}
    extra = list(listed)
    codes = new_codes(market.listings.values()) if with_new_codes else {}
    files = {}
    for stem, name in DOMESTIC_FILES.items():
        rows = [
            replace(x, name=names.get(x.symbol, x.name))
            for x in [*market.listings.values(), *extra]
            if x.market == name and x.symbol not in gone
        ]
        body = domestic_master(rows, prices | {x.symbol: x.start_price for x in extra}, codes)
        files[f"{stem}.mst.zip"] = zipped(f"{stem}.mst", body)
    for stem in OVERSEAS_STEMS:
        rows_overseas = [
            replace(x, name_en=names.get(x.symbol, x.name_en))
            for x in market.overseas[stem]
            if x.symbol not in gone
        ]
        files[f"{stem}mst.cod.zip"] = zipped(
            f"{stem}mst.cod", overseas_master(rows_overseas, extra_columns)
        )
    return files


def damaged(archive: bytes, member: str, how: str) -> bytes:
    """``archive`` (holding ``member``) broken in one of the ways a download can break.

    ``truncated`` cuts the archive in half; ``crc`` flips one content byte of a stored copy;
    ``encoding`` puts bytes that are not cp949 into the first record; ``columns`` replaces
    the first record with one of the wrong shape; ``empty`` zips an empty member;
    ``short_body`` is served whole here (the server cuts the transfer).
    """
    if how == "truncated":
        return archive[: len(archive) // 2]
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        data = zf.read(member)
    if how == "crc":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
            out.writestr(member, data)
        raw = bytearray(buffer.getvalue())
        raw[len(raw) // 2] ^= 0x5A  # inside the stored member's bytes
        return bytes(raw)
    first, rest = data.split(b"\n", 1)
    if how == "encoding":
        return zipped(member, first[:30] + b"\xff\xfe" + first[30:] + b"\n" + rest)
    if how == "columns":
        return zipped(member, b"NOT\tA\tRECORD\n" + rest)
    if how == "empty":
        return zipped(member, b"")
    return archive
