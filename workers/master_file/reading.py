"""Reading a master file: its archive verified and unpacked, its rows as `Listing`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from observer.errors import MasterFileError
from observer.instruments import Listing, MasterFile
from observer.kis.master import extract_single, parse_domestic, parse_overseas

__all__ = ["read_archive", "read_listings"]

# stis (overseas .h) in the product's words.
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
            for x in parse_domestic(data, file.market)  # type: ignore[arg-type]
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
    if not rows:
        raise MasterFileError(f"{file.member} holds no records")
    return rows


def read_archive(file: MasterFile, archive: Path) -> tuple[list[Listing], str]:
    """Verify and parse an archive of ``file``: (listings, sha256 of the member)."""
    member = extract_single(archive.read_bytes(), file.member)
    return read_listings(file, member), hashlib.sha256(member).hexdigest()
