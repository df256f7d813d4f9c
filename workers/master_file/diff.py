"""The listing diff: a parsed file against what the ``instruments`` table holds of its market.

`known_listings` reads the table (read-only; it imports the database layer itself), `diff`
sorts the file's rows into new, changed, removed and unchanged, and `Diff.events` turns the
result into the `ListingChanged` events the writer applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bus.events import ListingChanged
from observer.reference.instruments import Listing, listing_columns, listing_of

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["COMPARED_FIELDS", "Diff", "diff", "known_listings", "listing_event"]

COMPARED_FIELDS = (
    "name",
    "name_en",
    "exchange",
    "region",
    "currency",
    "security_type",
    "sector_code",
    "industry_code",
    "kospi200_sector",
    "measures",
)


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
        change=change,
        market=x.market,
        symbol=x.symbol,
        name=x.name,
        name_en=x.name_en,
        exchange=x.exchange,
        currency=x.currency,
        security_type=x.security_type,
        sector_code=x.sector_code,
        industry_code=x.industry_code,
        kospi200_sector=x.kospi200_sector,
        measures=x.measures,
        changed_fields=fields,
        region=x.region,
        initial=initial,
    )


def known_listings(conn: Connection, market: str) -> dict[str, tuple[Listing, bool]]:
    """Every instrument of ``market`` the database holds, active or not (read-only)."""
    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from sqlalchemy import select

    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from observer.db.models import Instrument

    rows = conn.execute(
        select(*listing_columns(), Instrument.active).where(Instrument.market == market)
    )
    return {r[1]: (listing_of(r[:-1]), bool(r[-1])) for r in rows}
