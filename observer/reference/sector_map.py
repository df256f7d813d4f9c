"""The KIS-industry-code-to-GICS mapping, as data: ``config/sector_map.toml``.

The file maps ``(exchange, icod)``, KIS sector names, domestic codes and the fallback source's
keys to GICS with a confidence, and names per-symbol overrides that win over everything. It is
loaded once, strictly (a typo or an unknown GICS code is a `ConfigError` naming the entry), and
its ``mapping_version`` is stamped on every classification. Whether KIS's overseas codes resemble
GICS is UNCONFIRMED, so nothing here assumes it: ``observer enrich unmapped`` lists the gaps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from observer.errors import ConfigError
from observer.reference.gics import INDUSTRY_GROUPS, SECTORS
from observer.setting_types import Strict

__all__ = [
    "ANY_EXCHANGE",
    "EXCHANGES",
    "Classification",
    "SectorMap",
    "default_map_path",
    "load_sector_map",
    "normalise_icod",
]

# HHDFS76370100's EXCD values (ref-KRX §3.2); "*" in the file: every exchange.
EXCHANGES = ("NYS", "NAS", "AMS", "HKS", "SHS", "SZS", "HSX", "HNX", "TSE")
ANY_EXCHANGE = "*"

Confidence = Annotated[float, Meta(ge=0.0, le=1.0)]
SectorCode = Annotated[str, Meta(pattern=r"^[0-9]{2}$")]
GroupCode = Annotated[str, Meta(pattern=r"^([0-9]{4})?$")]


class CodeEntry(Strict, frozen=True):
    """``(exchange, icod)`` -> GICS."""

    exchange: str
    icod: Annotated[str, Meta(pattern=r"^[0-9A-Za-z]{1,4}$")]
    gics_sector: SectorCode
    gics_ig: GroupCode = ""
    confidence: Confidence = 0.9
    note: str = ""


class Override(Strict, frozen=True):
    """One symbol's sector, chosen by hand (``symbol`` is ``"MARKET:SYMBOL"``)."""

    symbol: Annotated[str, Meta(pattern=r"^[A-Z]{2,6}:[0-9A-Za-z.\-]{1,16}$")]
    gics_sector: SectorCode
    gics_ig: GroupCode = ""
    note: str = ""


class IndustryEntry(Strict, frozen=True):
    """A fallback ``industryKey`` -> GICS industry group (curated, so at most 0.6)."""

    key: str
    gics_ig: Annotated[str, Meta(pattern=r"^[0-9]{4}$")]
    confidence: Annotated[float, Meta(ge=0.0, le=0.6)] = 0.6


class NameEntry(Strict, frozen=True):
    """A KIS sector *name* (HHDFS76200200's ``e_icod``) -> GICS."""

    name: Annotated[str, Meta(min_length=1, max_length=120)]
    gics_sector: SectorCode
    gics_ig: GroupCode = ""
    confidence: Confidence = 0.85
    note: str = ""


class KrEntry(Strict, frozen=True):
    """A domestic code -> GICS: a KRX industry code, or a KOSPI 200 sector code."""

    code: Annotated[str, Meta(pattern=r"^[0-9A-Z]{1,4}$")]
    gics_sector: SectorCode
    gics_ig: GroupCode = ""
    confidence: Confidence = 0.8
    note: str = ""


class MapFile(Strict, frozen=True):
    """``config/sector_map.toml`` as written."""

    mapping_version: Annotated[str, Meta(min_length=1, max_length=32)]
    fallback_confidence: Confidence = 0.8
    fallback_sectors: dict[str, SectorCode] = msgspec.field(default_factory=dict)
    codes: tuple[CodeEntry, ...] = ()
    names: tuple[NameEntry, ...] = ()
    kr_kospi200: tuple[KrEntry, ...] = ()
    kr_industries: tuple[KrEntry, ...] = ()
    overrides: tuple[Override, ...] = ()
    fallback_industries: tuple[IndustryEntry, ...] = ()


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's GICS sector, where it came from, and how sure that is."""

    gics_sector: str
    gics_ig: str = ""
    confidence: float
    source: str  # "manual" | "kis_map" | "kis_detail" | "kis_info" | "fallback"
    note: str = ""


def normalise_icod(code: str) -> str:
    """KIS industry code as the master file holds it: 4 characters, zero-padded.

    HHDFS76370100's sample answers ``"010"`` while the master column is 4 wide.
    """
    code = code.strip().upper()
    if not code or len(code) > 4 or not code.isalnum():
        raise ValueError(f"not a KIS industry code: {code!r}")
    return code.zfill(4)


class SectorMap:
    """A loaded, validated mapping (`load_sector_map`): lookups by code, name, key or symbol."""

    def __init__(self, file: MapFile) -> None:
        self.version = file.mapping_version
        self._codes: dict[tuple[str, str], Classification] = {}
        for entry in file.codes:
            if entry.exchange != ANY_EXCHANGE and entry.exchange not in EXCHANGES:
                raise ValueError(f"codes: unknown exchange {entry.exchange!r}")
            key = (entry.exchange, normalise_icod(entry.icod))
            if key in self._codes:
                raise ValueError(f"codes: {key[0]} {key[1]} is mapped twice")
            _check(entry.gics_sector, entry.gics_ig, f"codes {key[0]} {key[1]}")
            self._codes[key] = Classification(
                gics_sector=entry.gics_sector,
                gics_ig=entry.gics_ig,
                confidence=entry.confidence,
                source="kis_map",
                note=entry.note,
            )
        self._names: dict[str, Classification] = {}
        for n in file.names:
            name = _name_key(n.name)
            if name in self._names:
                raise ValueError(f"names: {n.name!r} is mapped twice")
            _check(n.gics_sector, n.gics_ig, f"names {n.name!r}")
            self._names[name] = Classification(
                gics_sector=n.gics_sector,
                gics_ig=n.gics_ig,
                confidence=n.confidence,
                source="kis_detail",
                note=n.note or n.name,
            )
        self._kospi200 = _kr_table(file.kr_kospi200, "kr_kospi200")
        self._kr_industries = _kr_table(file.kr_industries, "kr_industries")
        self._overrides: dict[str, Classification] = {}
        for o in file.overrides:
            if o.symbol in self._overrides:
                raise ValueError(f"overrides: {o.symbol} is overridden twice")
            _check(o.gics_sector, o.gics_ig, f"overrides {o.symbol}")
            self._overrides[o.symbol] = Classification(
                gics_sector=o.gics_sector,
                gics_ig=o.gics_ig,
                confidence=1.0,
                source="manual",
                note=o.note,
            )
        for name, sector in file.fallback_sectors.items():
            _check(sector, "", f"fallback_sectors {name}")
        self._fallback_sectors = dict(file.fallback_sectors)
        self._fallback_confidence = file.fallback_confidence
        self._industries: dict[str, IndustryEntry] = {}
        for i in file.fallback_industries:
            if i.gics_ig not in INDUSTRY_GROUPS:
                raise ValueError(f"fallback_industries {i.key}: unknown GICS group {i.gics_ig}")
            self._industries[i.key] = i

    def override(self, market: str, symbol: str) -> Classification | None:
        """The hand-chosen sector of ``market:symbol``, if any."""
        return self._overrides.get(f"{market}:{symbol}")

    def for_code(self, exchange: str, icod: str) -> Classification | None:
        """The mapping of a KIS industry code on ``exchange`` (its own entry, else ``"*"``)."""
        try:
            code = normalise_icod(icod)
        except ValueError:
            return None
        return self._codes.get((exchange, code)) or self._codes.get((ANY_EXCHANGE, code))

    def for_kr(self, kospi200: str, industry: str, large: str) -> Classification | None:
        """A domestic stock's sector from the codes its master carries.

        Its KOSPI 200 sector (members only), else its KRX industry: the 중분류 code, else
        the 대분류 for a stock without one.
        """
        for code, table in ((kospi200, self._kospi200), (industry or large, self._kr_industries)):
            found = table.get(code) if code else None
            if found is not None:
                return found
        return None

    def for_name(self, name: str) -> Classification | None:
        """The mapping of a KIS sector name (HHDFS76200200's ``e_icod``), spacing ignored."""
        return self._names.get(_name_key(name))

    def for_fallback(self, sector_key: str, industry_key: str) -> Classification | None:
        """The fallback source's keys in GICS; the industry group only when it agrees."""
        sector = self._fallback_sectors.get(sector_key)
        if sector is None:
            return None
        industry = self._industries.get(industry_key)
        if industry is not None and industry.gics_ig[:2] == sector:
            return Classification(
                gics_sector=sector,
                gics_ig=industry.gics_ig,
                confidence=min(self._fallback_confidence, industry.confidence),
                source="fallback",
                note=f"{sector_key}/{industry_key}",
            )
        return Classification(
            gics_sector=sector,
            confidence=self._fallback_confidence,
            source="fallback",
            note=sector_key,
        )

    def mapped_codes(self) -> set[tuple[str, str]]:
        """Every ``(exchange, icod)`` in the file (``"*"`` for every exchange)."""
        return set(self._codes)


def _kr_table(entries: tuple[KrEntry, ...], where: str) -> dict[str, Classification]:
    table: dict[str, Classification] = {}
    for e in entries:
        if e.code in table:
            raise ValueError(f"{where}: {e.code} is mapped twice")
        _check(e.gics_sector, e.gics_ig, f"{where} {e.code}")
        table[e.code] = Classification(
            gics_sector=e.gics_sector,
            gics_ig=e.gics_ig,
            confidence=e.confidence,
            source="kis_map",
            note=e.note,
        )
    return table


def _name_key(name: str) -> str:
    return "".join(name.split())


def _check(sector: str, group: str, where: str) -> None:
    if sector not in SECTORS:
        raise ValueError(f"{where}: unknown GICS sector {sector!r}")
    if group and (group not in INDUSTRY_GROUPS or group[:2] != sector):
        raise ValueError(f"{where}: GICS group {group!r} is not in sector {sector}")


def default_map_path() -> Path:
    """``config/sector_map.toml`` beside the package (``$OBSERVER_SECTOR_MAP`` wins)."""
    explicit = os.environ.get("OBSERVER_SECTOR_MAP")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "config" / "sector_map.toml"


def load_sector_map(path: Path | None = None) -> SectorMap:
    """Load and validate the mapping; raise `ConfigError` naming the bad entry."""
    path = path or default_map_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the sector map {path}: {exc}") from exc
    return parse_sector_map(data, str(path))


def parse_sector_map(data: bytes, where: str = "sector map") -> SectorMap:
    """`SectorMap` of TOML text; raise `ConfigError` naming what is wrong."""
    try:
        return SectorMap(msgspec.toml.decode(data, type=MapFile))
    except (msgspec.DecodeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
