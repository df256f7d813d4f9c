"""KIS's per-symbol lookups (the middle tier) and the industry-list cross-check.

A stock whose master ``icod`` is missing or unmapped is asked of HHDFS76200200 (its sector
name, mapped through the map's ``names``) and, when configured, CTPF1702R (UNCONFIRMED). Both
are real-only: refused on a paper account before sending, the tier then stands aside for the
run. A failed lookup is not a failed stock (`Lookup.failed`). `cross_check` compares
HHDFS76370000's lists per industry code with the masters' codes.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

from observer.db.sector_queries import Stored
from observer.errors import KisError, KisPaperRefused
from observer.kis.client import KisClient
from observer.kis.overseas_sectors import industry_members, price_detail
from observer.reference.sector_map import Classification, SectorMap, normalise_icod

__all__ = ["CrossCheck", "KisLookups", "Lookup", "cross_check", "sample_codes"]

log = logging.getLogger(__name__)

MAX_LISTED = 200  # disagreements kept per region (the count is exact)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What KIS answered of one stock: a classification and the name it gave, or a failure."""

    found: Classification | None = None
    name: str = ""
    failed: bool = False  # KIS could not be asked (an error), as opposed to "no answer"


@dataclass
class KisLookups:
    """The per-symbol KIS tier of one run, over every account's client in turn.

    Each account's client has its own limiter at the jobs' share, so N accounts ask N times
    as fast; the cross-check asks through the first (`client`).
    """

    clients: Sequence[KisClient]
    sector_map: SectorMap
    detail: bool
    search_info: bool
    calls: int = 0
    failed: int = 0
    refused: bool = False  # a paper account: the TRs are real-only
    _turn: Iterator[KisClient] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.clients:
            raise ValueError("the KIS tier needs at least one account's client")
        self._turn = itertools.cycle(self.clients)

    @property
    def client(self) -> KisClient:
        """The first account's client (the cross-check's)."""
        return self.clients[0]

    @property
    def requests(self) -> int:
        """KIS requests of every account's client, lookups and cross-check together."""
        return sum(c.requests for c in self.clients)

    async def classify(self, stored: Stored) -> tuple[Classification | None, str]:
        """KIS's own answer for ``stored``, and the sector name it gave ("" when none)."""
        found = await self.lookup(stored)
        return found.found, found.name

    async def lookup(self, stored: Stored) -> Lookup:
        """KIS's own answer for ``stored`` (see `Lookup`)."""
        if self.refused:
            return Lookup()
        client = next(self._turn)
        try:
            if self.detail:
                self.calls += 1
                detail = await price_detail(client, stored.exchange, stored.symbol)
                name = detail.e_icod.strip() if detail else ""
                found = self.sector_map.for_name(name) if name else None
                if found is not None:
                    return Lookup(found, name)
            if self.search_info:
                self.calls += 1
                info = await client.overseas_info(stored.exchange, stored.symbol)
                if info is not None:
                    found = self.sector_map.for_code(stored.exchange, info.prdt_clsf_cd)
                    found = found or self.sector_map.for_name(info.prdt_clsf_name)
                    if found is not None:
                        kis_info = msgspec.structs.replace(found, source="kis_info")
                        return Lookup(kis_info, info.prdt_clsf_name.strip())
        except KisPaperRefused as exc:
            self.refused = True
            log.info("per-symbol KIS sector lookups off for this run: %s", exc)
        except KisError as exc:
            self.failed += 1
            log.warning("%s:%s KIS sector lookup failed: %s", stored.market, stored.symbol, exc)
            return Lookup(failed=True)
        return Lookup()


@dataclass
class CrossCheck:
    """One region's cross-check: stocks compared and where KIS's lists disagree."""

    compared: int = 0
    disagreeing: int = 0
    listed: list[str] = field(default_factory=list)  # "NAS:XYZ 0330 -> 0260", at most MAX_LISTED

    def add(self, entry: str) -> None:
        """Count one disagreement; list it while there is room."""
        self.disagreeing += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(entry)

    @property
    def pct(self) -> float:
        """The disagreeing share of the stocks compared, in percent."""
        return 100 * self.disagreeing / self.compared if self.compared else 0.0


def sample_codes(codes: list[str], mode: str, count: int, day: int) -> list[str]:
    """The codes to check today: every one (``full``), else ``count`` rotating by ``day``."""
    codes = sorted(codes)
    if mode == "full" or len(codes) <= count:
        return codes
    start = (day * count) % len(codes)
    return [codes[(start + i) % len(codes)] for i in range(count)]


async def cross_check(
    client: KisClient,
    stocks: list[Stored],
    exchanges: tuple[str, ...],
    mode: str,
    count: int,
    day: int,
) -> CrossCheck:
    """HHDFS76370000 for some codes of each of ``exchanges`` against the masters' codes.

    A stock disagrees when KIS lists it under a code its master does not carry (``old ->
    listed``), or when its master's code is checked and KIS does not list it (``-> ?``).
    Listed symbols the instruments lack are left out (new listings are the master-file
    job's to find).
    Raises `KisError` (the caller alerts and carries on).
    """
    result = CrossCheck()
    for exchange in exchanges:
        by_code: dict[str, set[str]] = {}
        master: dict[str, str] = {}
        for s in stocks:
            if s.exchange != exchange:
                continue
            code = _code(s.sector_code)
            master[s.symbol] = code
            if code:
                by_code.setdefault(code, set()).add(s.symbol)
        for code in sample_codes(list(by_code), mode, count, day):
            # HHDFS76370100 spells codes with 3 digits ("010"); the masters with 4.
            spelt = code[1:] if code[0] == "0" else code
            # A symbol the instruments lack is the master-file job's concern, not ours.
            listed = set(await industry_members(client, exchange, spelt)) & set(master)
            expected = by_code[code]
            result.compared += len(expected | listed)
            for symbol in sorted(listed - expected):
                result.add(f"{exchange}:{symbol} {master[symbol] or '(none)'} -> {code}")
            for symbol in sorted(expected - listed):
                result.add(f"{exchange}:{symbol} {code} -> ?")
    return result


def _code(text: str) -> str:
    try:
        return normalise_icod(text)
    except ValueError:
        return ""
