"""The symbol master: the fourteen KIS master files, their listings, diffs, quality and queries.

A `Listing` is what the product keeps of one master-file row, the same for domestic ``.mst``
and overseas ``.cod`` files. `diff` compares a parsed file with the ``instruments`` table,
`assess` counts valid tickers and the fields each row has, and `tickers` is the read-only
query the rest of the product uses for "every stock of a region". The two queries import the
database layer themselves: the master-file job reaches READY without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from bus.events import ListingChanged
from observer.errors import MasterFileError
from observer.kis.master import OVERSEAS_FILES, parse_domestic, parse_overseas

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = [
    "COMPARED_FIELDS",
    "MASTER_FILES",
    "REGIONS",
    "Diff",
    "Listing",
    "MasterFile",
    "Quality",
    "assess",
    "current_archive",
    "diff",
    "known_listings",
    "listing_event",
    "master_file",
    "read_listings",
    "resolve",
    "tickers",
]

REGIONS = ("KR", "US", "CN", "HK", "JP", "VN")
_CURRENCIES = {"KR": "KRW", "US": "USD", "CN": "CNY", "HK": "HKD", "JP": "JPY", "VN": "VND"}
# KIS's exchange codes (as its overseas order APIs spell them), by each file's market code.
_SEED_EXCHANGES = {
    "NAS": "NASD", "NYS": "NYSE", "AMS": "AMEX", "SHS": "SHAA", "SHI": "SHAA", "SZS": "SZAA",
    "SZI": "SZAA", "TSE": "TKSE", "HKS": "SEHK", "HNX": "VNSE", "HSX": "HASE",
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
            ("KOSPI", "kospi_code"), ("KOSDAQ", "kosdaq_code"), ("KONEX", "konex_code")
        )
    ]  # fmt: skip
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


COMPARED_FIELDS = (
    "name", "name_en", "exchange", "region", "currency", "security_type", "sector_code",
)  # fmt: skip

# scrt_grp_cls_code (KOSPI .h) and stis (overseas .h) in the product's words.
_DOMESTIC_TYPES = {
    "ST": "stock", "FS": "stock", "DR": "dr", "EF": "etf", "FE": "etf", "EN": "etn",
    "EW": "elw", "RT": "reit", "MF": "fund", "SC": "fund", "IF": "fund", "BC": "fund",
    "SW": "rights", "SR": "rights",
}  # fmt: skip
_OVERSEAS_TYPES = {"1": "index", "2": "stock", "3": "etp", "4": "warrant"}


def read_listings(file: MasterFile, data: bytes) -> list[Listing]:
    """Parse the decompressed member of ``file``; an empty file is an error, not "no listings".

    Raises
    ------
    MasterFileError
        Not cp949, a record of the wrong shape (naming its line), or no record at all.
    """
    if file.domestic:
        rows = [
            Listing(
                file.market, x.symbol, x.name, "", file.exchange, file.region, file.currency,
                _DOMESTIC_TYPES.get(x.security_group, x.security_group.lower() or "other"),
                x.sector_code,
            )
            for x in parse_domestic(data, file.market)  # type: ignore[arg-type]
        ]  # fmt: skip
    else:
        stem = file.member.split("mst", 1)[0]
        rows = [
            Listing(
                file.market, x.symbol, x.name, x.name_en, file.exchange, file.region,
                x.currency or file.currency,
                "index" if file.indices else _OVERSEAS_TYPES.get(x.security_type, "other"),
                x.industry_code,
            )
            for x in parse_overseas(data, stem)
        ]  # fmt: skip
    if not rows:
        raise MasterFileError(f"{file.member} holds no records")
    return rows


@dataclass(slots=True)
class Quality:
    """Data-quality counts for one parsed file: how many rows have each field, and are whole."""

    records: int = 0
    valid_ticker: int = 0
    has_name: int = 0
    has_exchange: int = 0
    has_region: int = 0
    has_currency: int = 0
    complete: int = 0
    duplicates: int = 0  # rows repeating an earlier symbol (the first one is kept)

    @property
    def complete_pct(self) -> Decimal:
        """Complete rows in percent, two decimals."""
        if not self.records:
            return Decimal(0)
        return (Decimal(100 * self.complete) / self.records).quantize(Decimal("0.01"))

    def lines(self) -> list[str]:
        """The report: one line per count, with its share of the records."""
        rows = [
            ("Valid ticker", self.valid_ticker), ("Has name", self.has_name),
            ("Has exchange", self.has_exchange), ("Has region", self.has_region),
            ("Has currency", self.has_currency), ("Complete", self.complete),
        ]  # fmt: skip
        total = max(self.records, 1)
        return [f"{k + ':':14}{v:,}/{self.records:,} ({100 * v / total:.1f}%)" for k, v in rows]


_TICKER = re.compile(r"[0-9A-Z][0-9A-Z.\-/]{0,11}")


def assess(listings: Sequence[Listing]) -> Quality:
    """Count valid tickers, and rows that have a name, an exchange, a region and a currency."""
    q = Quality(records=len(listings))
    seen: set[str] = set()
    for x in listings:
        checks = (
            _TICKER.fullmatch(x.symbol) is not None,
            bool(x.name or x.name_en),
            bool(x.exchange),
            x.region in REGIONS,
            len(x.currency) == 3,
        )
        q.valid_ticker += checks[0]
        q.has_name += checks[1]
        q.has_exchange += checks[2]
        q.has_region += checks[3]
        q.has_currency += checks[4]
        q.complete += all(checks)
        q.duplicates += x.symbol in seen
        seen.add(x.symbol)
    return q


@dataclass(slots=True)
class Diff:
    """A parsed file against what the database knows of its market."""

    new: list[Listing] = field(default_factory=list)  # includes relisted (inactive) symbols
    changed: list[tuple[Listing, tuple[str, ...]]] = field(default_factory=list)
    removed: list[Listing] = field(default_factory=list)  # active listings the file dropped
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        """Nothing to apply."""
        return not (self.new or self.changed or self.removed)

    def summary(self) -> str:
        """``+new ~changed -removed =unchanged``."""
        return f"+{len(self.new)} ~{len(self.changed)} -{len(self.removed)} ={self.unchanged}"

    def events(self, *, initial: bool = False) -> list[ListingChanged]:
        """The changes as bus events, in a stable order (new, changed, removed; by symbol)."""
        out = [listing_event("new", x, initial=initial) for x in self.new]
        out += [listing_event("changed", x, fields) for x, fields in self.changed]
        out += [listing_event("removed", x) for x in self.removed]
        return out


def diff(listings: Iterable[Listing], known: dict[str, tuple[Listing, bool]]) -> Diff:
    """New, changed (with the fields), removed and unchanged, against ``known``.

    ``known`` maps symbol to (listing, active) as `known_listings` reads it. A symbol that
    reappears after being removed counts as new. Duplicate rows keep the first.
    """
    result = Diff()
    seen: set[str] = set()
    for x in listings:
        if x.symbol in seen:
            continue
        seen.add(x.symbol)
        before = known.get(x.symbol)
        if before is None or not before[1]:
            result.new.append(x)
            continue
        fields = tuple(f for f in COMPARED_FIELDS if getattr(x, f) != getattr(before[0], f))
        if fields:
            result.changed.append((x, fields))
        else:
            result.unchanged += 1
    result.removed = [old for s, (old, active) in known.items() if active and s not in seen]
    result.new.sort(key=lambda x: x.symbol)
    result.changed.sort(key=lambda c: c[0].symbol)
    result.removed.sort(key=lambda x: x.symbol)
    return result


def listing_event(
    change: Literal["new", "changed", "removed"],
    x: Listing,
    fields: tuple[str, ...] = (),
    *,
    initial: bool = False,
) -> ListingChanged:
    """The bus event of one listing change."""
    return ListingChanged(
        change=change, market=x.market, symbol=x.symbol, name=x.name, name_en=x.name_en,
        exchange=x.exchange, currency=x.currency, security_type=x.security_type,
        sector_code=x.sector_code, changed_fields=fields, region=x.region, initial=initial,
    )  # fmt: skip


def _columns() -> tuple[Any, ...]:
    """The ``instruments`` columns of a `Listing`, in its field order."""
    from observer.db.models import Instrument

    return (
        Instrument.market, Instrument.symbol, Instrument.name, Instrument.name_en,
        Instrument.exchange, Instrument.region, Instrument.currency, Instrument.security_type,
        Instrument.sector_code,
    )  # fmt: skip


def known_listings(conn: Connection, market: str) -> dict[str, tuple[Listing, bool]]:
    """Every instrument of ``market`` the database holds, active or not (read-only)."""
    from sqlalchemy import select

    from observer.db.models import Instrument

    rows = conn.execute(select(*_columns(), Instrument.active).where(Instrument.market == market))
    return {r[1]: (Listing(*r[:9]), bool(r[9])) for r in rows}


def tickers(
    conn: Connection, region: str, kinds: Sequence[str] | None = ("stock",)
) -> list[Listing]:
    """Active instruments of ``region`` ("KR", "US", ...), ordered by market and symbol.

    ``kinds`` are the security types wanted (``None``: every type).
    """
    from sqlalchemy import select

    from observer.db.models import Instrument

    if region not in REGIONS:
        raise MasterFileError(f"unknown region {region!r}; known: {', '.join(REGIONS)}")
    query = select(*_columns()).where(Instrument.region == region, Instrument.active.is_(True))
    if kinds is not None:
        query = query.where(Instrument.security_type.in_(kinds))
    rows = conn.execute(query.order_by(Instrument.market, Instrument.symbol))
    return [Listing(*r) for r in rows]
