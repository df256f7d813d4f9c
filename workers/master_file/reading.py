"""Reading a master file: its archive verified and unpacked, its rows as `Listing`.

A domestic record with fields outside their form is no listing (`observer.kis.master`): it
is `Parsed.malformed`, and its symbol stays in the database as stored (`Parsed.comparable`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from observer.errors import MasterFileError
from observer.kis.master import MalformedRecord, extract_single, parse_domestic, parse_overseas
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
    if file.domestic:
        domestic = parse_domestic(data, file.market)  # type: ignore[arg-type]
        malformed = domestic.malformed
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
            )
            for x in domestic
        ]
    else:
        stem = file.member.split("mst", 1)[0]
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
            for x in parse_overseas(data, stem)
        ]
    if not rows and not malformed:
        raise MasterFileError(f"{file.member} holds no records")
    return Parsed(rows, malformed)


def read_listings(file: MasterFile, data: bytes) -> list[Listing]:
    """The well-formed listings of the decompressed member of ``file`` (`parse`)."""
    return parse(file, data).listings


def read_archive(file: MasterFile, archive: Path) -> Parsed:
    """Verify and parse an archive of ``file``, with the sha256 of its member."""
    member = extract_single(archive.read_bytes(), file.member)
    parsed = parse(file, member)
    return Parsed(parsed.listings, parsed.malformed, hashlib.sha256(member).hexdigest())
