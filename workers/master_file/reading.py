"""Reading a master file: its archive verified and unpacked, its rows as `Listing`.

A domestic record with fields outside their form is no listing (`observer.kis.master`): it
is `Parsed.malformed`, and its symbol stays in the database as stored (`Parsed.comparable`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

from observer.errors import MasterFileError
from observer.kis.master import (
    COD_COLUMNS,
    MalformedRecord,
    NewCode,
    extract_single,
    parse_domestic,
    parse_overseas,
)
from observer.reference.instruments import Listing, MasterFile

__all__ = ["Parsed", "parse", "read_archive", "read_listings"]

# stis (overseas .h) in the product's words.
_OVERSEAS_TYPES = {"1": "index", "2": "stock", "3": "etp", "4": "warrant"}


@dataclass(frozen=True, slots=True)
class Parsed:
    """A master file read: its listings and the records held back as malformed."""

    listings: list[Listing]
    malformed: tuple[MalformedRecord, ...] = ()
    content_sha256: str = ""  # of the member, when read from an archive
    new_codes: tuple[NewCode, ...] = ()  # codes the layout does not list, held by listings
    extra_columns: int = 0  # .cod columns beyond the known ones, kept in the listings' extras

    @property
    def findings(self) -> tuple[str, ...]:
        """What the file holds beyond the documented layout, one key per finding.

        ``etp_prod_cls_code=8``, ``cod_columns=26``: what a report names once, not daily.
        """
        keys = tuple(f"{c.field}={c.code}" for c in self.new_codes)
        if self.extra_columns:
            keys += (f"cod_columns={len(COD_COLUMNS) + self.extra_columns}",)
        return keys

    @property
    def records(self) -> int:
        """Every record of the file, the malformed ones included."""
        return len(self.listings) + len(self.malformed)

    @property
    def held_back(self) -> list[str]:
        """The symbols of the malformed records (without a well-formed row), sorted."""
        listed = {x.symbol for x in self.listings}
        return sorted({m.symbol for m in self.malformed} - listed)

    def comparable(self, known: dict[str, tuple[Listing, bool]]) -> dict[str, tuple[Listing, bool]]:
        """``known`` without the held-back symbols: what the listings are diffed against.

        A symbol whose record cannot be read is neither changed nor removed: it stays as
        the database holds it until a file lists it well-formed.
        """
        held = set(self.held_back)
        return {s: v for s, v in known.items() if s not in held} if held else known


def parse(file: MasterFile, data: bytes) -> Parsed:
    """Parse the decompressed member of ``file``; an empty file is an error, not "no listings".

    Raises
    ------
    MasterFileError
        Not cp949, a record of the wrong shape (naming its line), or no record at all.
    """
    malformed: tuple[MalformedRecord, ...] = ()
    new_codes: tuple[NewCode, ...] = ()
    extra_columns = 0
    if file.domestic:
        domestic = parse_domestic(data, file.market)  # type: ignore[arg-type]
        malformed, new_codes = domestic.malformed, domestic.new_codes
        rows = [
            Listing(
                file.market,
                x.symbol,
                x.name,
                "",
                file.exchange,
                file.region,
                file.currency,
                x.kind,
                x.sector_code,
                x.industry_code,
                x.kospi200_sector,
                x.measures,
            )
            for x in domestic
        ]
    else:
        stem = file.member.split("mst", 1)[0]
        overseas = parse_overseas(data, stem)
        extra_columns = overseas.extra_columns
        rows = [
            Listing(
                file.market,
                x.symbol,
                x.name,
                x.name_en,
                file.exchange,
                file.region,
                x.currency or file.currency,
                "index" if file.indices else _OVERSEAS_TYPES.get(x.security_type, "other"),
                x.industry_code,
            )
            for x in overseas
        ]
    if not rows and not malformed:
        raise MasterFileError(f"{file.member} holds no records")
    return Parsed(rows, malformed, new_codes=new_codes, extra_columns=extra_columns)


def read_listings(file: MasterFile, data: bytes) -> list[Listing]:
    """The well-formed listings of the decompressed member of ``file`` (`parse`)."""
    return parse(file, data).listings


def read_archive(file: MasterFile, archive: Path) -> Parsed:
    """Verify and parse an archive of ``file``, with the sha256 of its member."""
    member = extract_single(archive.read_bytes(), file.member)
    parsed = parse(file, member)
    return dataclasses.replace(parsed, content_sha256=hashlib.sha256(member).hexdigest())
