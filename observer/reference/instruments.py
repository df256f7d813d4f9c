"""The symbol master's catalogue: the fourteen KIS master files, and the ``tickers`` query.

`MASTER_FILES` says which master files exist and what each lists (market, exchange, region,
currency); `current_archive` and `installed_ns` say where and when the master-file worker
installed the one in use, for the other workers to read. A `Listing` is what the product keeps of
one row, domestic or overseas; `tickers` is the read-only query for "every stock of a region".
Reading, diffing and assessing the files is the master-file worker's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from observer.errors import MasterFileError
from observer.kis.master import OVERSEAS_FILES

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = [
    "MASTER_FILES",
    "REGIONS",
    "Listing",
    "MasterFile",
    "current_archive",
    "installed_ns",
    "listing_columns",
    "master_file",
    "master_state_path",
    "resolve",
    "tickers",
]

REGIONS = ("KR", "US", "CN", "HK", "JP", "VN")
_CURRENCIES = {"KR": "KRW", "US": "USD", "CN": "CNY", "HK": "HKD", "JP": "JPY", "VN": "VND"}
# KIS's exchange codes (as its overseas order APIs spell them), by each file's market code.
# Vietnam: KIS's OVRS_EXCG_CD tables say "HASE : 베트남 하노이, VNSE : 베트남 호치민", so the
# Hanoi file (hnx) is HASE and the Ho Chi Minh file (hsx) is VNSE.
_SEED_EXCHANGES = {
    "NAS": "NASD", "NYS": "NYSE", "AMS": "AMEX", "SHS": "SHAA", "SHI": "SHAA", "SZS": "SZAA",
    "SZI": "SZAA", "TSE": "TKSE", "HKS": "SEHK", "HNX": "HASE", "HSX": "VNSE",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class MasterFile:
    """One KIS master file and the market it lists."""

    market: str  # the key everywhere: "KOSPI", "KOSDAQ", "KONEX", "NAS", "NYS", ...
    name: str  # archive on the master host, e.g. "nasmst.cod.zip"
    member: str  # the one file inside it
    exchange: str  # KIS's exchange code: "NASD", "SEHK", ...; "KOSPI" etc. at home
    region: str
    currency: str
    indices: bool = False  # shi / szi list indices, not securities

    @property
    def domestic(self) -> bool:
        """True for the three KRX files."""
        return self.region == "KR"


def _files() -> tuple[MasterFile, ...]:
    home = [
        MasterFile(market, f"{stem}.mst.zip", f"{stem}.mst", market, "KR", "KRW")
        for market, stem in (
            ("KOSPI", "kospi_code"),
            ("KOSDAQ", "kosdaq_code"),
            ("KONEX", "konex_code"),
        )
    ]
    abroad = [
        MasterFile(
            code,
            f"{stem}mst.cod.zip",
            f"{stem}mst.cod",
            _SEED_EXCHANGES[code],
            region,
            _CURRENCIES[region],
            indices=stem in ("shi", "szi"),
        )
        for stem, (code, region) in OVERSEAS_FILES.items()
    ]
    return (*home, *abroad)


MASTER_FILES: tuple[MasterFile, ...] = _files()
_BY_MARKET = {f.market: f for f in MASTER_FILES}


def current_archive(data_dir: Path, file: MasterFile) -> Path:
    """Where the master-file worker keeps the archive of ``file`` in use."""
    return data_dir / "masters" / "current" / file.name


def master_state_path(data_dir: Path, file: MasterFile) -> Path:
    """Where the master-file worker keeps what it knows of ``file`` (its ``FileState``)."""
    return data_dir / "masters" / "state" / f"{file.market}.json"


class _InUse(msgspec.Struct):
    installed_ns: int = 0


class _StateView(msgspec.Struct):
    current: _InUse | None = None


def installed_ns(data_dir: Path, file: MasterFile) -> int | None:
    """When the master-file worker installed the archive of ``file`` in use, if it knows.

    Nanoseconds since the epoch on the worker's clock; None without a record of one (or
    with an unreadable record).
    """
    try:
        state = msgspec.json.decode(master_state_path(data_dir, file).read_bytes(), type=_StateView)
    except (OSError, msgspec.DecodeError):
        return None
    return state.current.installed_ns if state.current and state.current.installed_ns else None


def master_file(market: str) -> MasterFile:
    """The master file of ``market`` ("KOSPI", "NAS", ...)."""
    try:
        return _BY_MARKET[market.upper()]
    except KeyError:
        raise MasterFileError(f"no master file for market {market!r}") from None


def resolve(codes: Iterable[str]) -> list[MasterFile]:
    """The files some codes name, in table order.

    A code is a market ("NAS", "kospi"), an exchange code ("NASD"; "SHAA" is both
    Shanghai files) or a region ("US").
    """
    wanted: set[str] = set()
    for code in codes:
        key = code.strip().upper()
        found = {f.market for f in MASTER_FILES if key in (f.market, f.exchange, f.region)}
        if not found:
            known = ", ".join(f.market for f in MASTER_FILES)
            raise MasterFileError(f"unknown exchange {code!r}; known: {known} (or a region)")
        wanted |= found
    return [f for f in MASTER_FILES if f.market in wanted]


class Listing(msgspec.Struct, frozen=True, gc=False):
    """One instrument as its master file lists it."""

    market: str
    symbol: str
    name: str
    name_en: str
    exchange: str
    region: str
    currency: str
    security_type: str  # stock, etf, etn, elw, reit, fund, rights, dr, index, etp, warrant, ...
    sector_code: str
    industry_code: str = ""  # domestic: the KRX 중분류 code (sector_code is the 대분류)
    kospi200_sector: str = ""  # domestic KOSPI 200 members: their KOSPI 200 sector code
    # domestic: the market measures it is under (`observer.kis.master.DomesticListing.measures`)
    measures: tuple[str, ...] = ()


def listing_of(row: Sequence[Any]) -> Listing:
    """The `Listing` of a row of `listing_columns` (its measures stored as a JSON list)."""
    *fields, measures = row
    return msgspec.structs.replace(Listing(*fields), measures=tuple(measures))


def listing_columns() -> tuple[Any, ...]:
    """The ``instruments`` columns of a `Listing`, in its field order (imports the models)."""
    # deferred: the models (SQLAlchemy, about 0.5 s): the master-file job is READY before
    from observer.db.models import Instrument

    return (
        Instrument.market,
        Instrument.symbol,
        Instrument.name,
        Instrument.name_en,
        Instrument.exchange,
        Instrument.region,
        Instrument.currency,
        Instrument.security_type,
        Instrument.sector_code,
        Instrument.industry_code,
        Instrument.kospi200_sector,
        Instrument.measures,
    )


def tickers(
    conn: Connection, region: str, kinds: Sequence[str] | None = ("stock",)
) -> list[Listing]:
    """Active instruments of ``region`` ("KR", "US", ...), ordered by market and symbol.

    ``kinds`` are the security types wanted (``None``: every type). It imports the database
    layer itself, so that the master-file job reaches READY without it.
    """
    # deferred: the models (SQLAlchemy, about 0.5 s): the master-file job is READY before
    from sqlalchemy import select

    from observer.db.models import Instrument

    if region not in REGIONS:
        raise MasterFileError(f"unknown region {region!r}; known: {', '.join(REGIONS)}")
    query = select(*listing_columns()).where(
        Instrument.region == region, Instrument.active.is_(True)
    )
    if kinds is not None:
        query = query.where(Instrument.security_type.in_(kinds))
    rows = conn.execute(query.order_by(Instrument.market, Instrument.symbol))
    return [listing_of(r) for r in rows]
