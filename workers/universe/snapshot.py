"""The day's universe on disk: ``<data_dir>/universe/{YYYYMMDD}_kr_stocks.json``.

Per symbol ``code``, ``name``, ``market_cap``, ``prev_close``, ``avg_volume_20d``,
``market``, ``rank``, ``atr_14`` and its Nextrade standing (`Symbol`); the build's
candidates, exclusions, failures, rate and sources in the `Metadata`. Written once per day,
atomically and durably; never rewritten, except that the day's own build replaces a reused
universe before Track A starts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from bus.events import UniverseMember, UniverseSnapshot
from observer.calendar.phases import KST
from observer.errors import ObserverError
from observer.process.private_files import write_private

if TYPE_CHECKING:
    from workers.universe.build import Built

__all__ = [
    "UniverseFile",
    "candidates_by_market",
    "decode",
    "earlier_snapshots",
    "event_of",
    "file_of",
    "file_of_stored",
    "kst",
    "nxt_counts",
    "read",
    "snapshot_path",
    "write",
]

_DAY = "%Y%m%d"


class Metadata(msgspec.Struct, frozen=True):
    """The metadata block: the day, its candidates, and how the build went.

    Also the candidates per market, the exclusions, the candidates whose chart failed twice or
    whose master record is malformed (by code, with the error), the requests and rate achieved,
    when the masters read were installed, ``reused_from`` when the day reuses an earlier
    universe and ``restored_from`` when the file was rewritten from the database.
    """

    date: str
    previous_trading_day: str
    generated_at: str
    symbol_count: int
    filter_criteria: str
    market: str = "kr_stocks"
    version: str = "1.0"
    min_prev_close: int = 4_000
    candidates: int = 0
    excluded: dict[str, int] = {}
    requests: int = 0
    elapsed_s: float = 0.0
    rate_limit_per_s: float = 0.0
    achieved_fraction: float = 0.0
    reused_from: str = ""
    # when the master-file worker installed the KOSPI and KOSDAQ masters read (ISO, KST)
    masters_installed: dict[str, str] = {}
    restored_from: str = ""  # "database": the file was rewritten from the stored universe
    candidates_by_market: dict[str, int] = {}  # KOSPI and KOSDAQ: the next build's baseline
    # code -> error of the candidates left out: their daily chart failed twice, or their
    # master record is malformed
    failed_symbols: dict[str, str] = {}
    nxt_unknown: dict[str, str] = {}  # member -> why its Nextrade standing is not known
    nxt_not_asked: str = ""  # why no member's Nextrade standing was asked ("": asked)


class Symbol(msgspec.Struct, frozen=True):
    """One member: code, name, market cap, previous close, 20-day volume, market, rank, ATR.

    And its Nextrade standing that morning (None: not known; files before it was asked), and
    the market measures the masters listed it under (none in files before they were kept).
    """

    code: str
    name: str
    market: str
    rank: int
    market_cap: int
    prev_close: int
    avg_volume_20d: int
    atr_14: Decimal
    nxt_eligible: bool | None = None
    nxt_halted: bool | None = None
    measures: tuple[str, ...] = ()


class UniverseFile(msgspec.Struct, frozen=True):
    """The whole file."""

    metadata: Metadata
    symbols: tuple[Symbol, ...]


def snapshot_path(data_dir: Path, day: date) -> Path:
    """Where the universe of ``day`` lives."""
    return data_dir / "universe" / f"{day.strftime(_DAY)}_kr_stocks.json"


def file_of(built: Built, min_prev_close: int, now_ns: int) -> UniverseFile:
    """The file of a freshly built universe."""
    return UniverseFile(
        Metadata(
            date=built.trade_date.strftime(_DAY),
            previous_trading_day=built.based_on.strftime(_DAY),
            generated_at=datetime.fromtimestamp(now_ns / 1e9, UTC).isoformat(timespec="seconds"),
            symbol_count=len(built.members),
            filter_criteria=f"close_price >= {min_prev_close} KRW",
            min_prev_close=min_prev_close,
            candidates=built.candidates,
            excluded={
                "below_threshold": built.below_threshold,
                "not_traded": built.not_traded,
                "failed": len(built.failed),
            },
            requests=built.requests,
            elapsed_s=round(built.elapsed_s, 3),
            rate_limit_per_s=built.rate_limit_per_s,
            achieved_fraction=round(built.achieved_fraction, 3),
            masters_installed={m: kst(ns) for m, ns in built.masters_installed.items()},
            candidates_by_market=dict(built.candidates_by_market),
            failed_symbols=dict(sorted(built.failed.items())),
            nxt_unknown=dict(sorted(built.nxt_unknown.items())),
            nxt_not_asked=built.nxt_not_asked,
        ),
        tuple(_symbol(m) for m in built.members),
    )


def file_of_stored(stored: UniverseSnapshot, produced_ns: int, reused_from: str) -> UniverseFile:
    """The file of a universe the database holds (its file lost): the same members."""
    cent = Decimal("0.01")
    members = tuple(
        msgspec.structs.replace(m, atr_14=m.atr_14.quantize(cent)) for m in stored.members
    )
    return UniverseFile(
        Metadata(
            date=stored.trade_date.strftime(_DAY),
            previous_trading_day=stored.based_on.strftime(_DAY),
            generated_at=datetime.fromtimestamp(produced_ns / 1e9, UTC).isoformat(
                timespec="seconds"
            ),
            symbol_count=len(members),
            filter_criteria=f"close_price >= {stored.min_prev_close} KRW",
            min_prev_close=stored.min_prev_close,
            candidates=len(members) + stored.excluded,
            excluded={"total": stored.excluded},
            reused_from=reused_from,
            restored_from="database",
        ),
        tuple(_symbol(m) for m in members),
    )


def candidates_by_market(universe: UniverseFile) -> dict[str, int]:
    """Per market, the candidates ``universe`` was built from.

    A file from before they were recorded (or rewritten from the database) gives its members
    per market instead: fewer than its candidates, a lower baseline but never a false one.
    """
    if universe.metadata.candidates_by_market:
        return dict(universe.metadata.candidates_by_market)
    counts: dict[str, int] = {}
    for symbol in universe.symbols:
        counts[symbol.market] = counts.get(symbol.market, 0) + 1
    return counts


def nxt_counts(universe: UniverseFile) -> dict[str, int]:
    """Members Nextrade trades (``eligible``), has halted (``halted``), or not known."""
    symbols = universe.symbols
    return {
        "eligible": sum(s.nxt_eligible is True for s in symbols),
        "halted": sum(s.nxt_halted is True for s in symbols),
        "unknown": sum(s.nxt_eligible is None for s in symbols),
    }


def kst(ns: int) -> str:
    """An instant in ns as ISO text in KST, to the second."""
    return datetime.fromtimestamp(ns / 1e9, KST).isoformat(timespec="seconds")


def _symbol(m: UniverseMember) -> Symbol:
    return Symbol(
        m.symbol,
        m.name,
        m.market,
        m.rank,
        m.market_cap,
        m.prev_close,
        m.avg_volume_20d,
        m.atr_14,
        m.nxt_eligible,
        m.nxt_halted,
        m.measures,
    )


def _member(s: Symbol) -> UniverseMember:
    return UniverseMember(
        symbol=s.code,
        market=s.market,
        rank=s.rank,
        prev_close=s.prev_close,
        market_cap=s.market_cap,
        name=s.name,
        avg_volume_20d=s.avg_volume_20d,
        atr_14=s.atr_14,
        nxt_eligible=s.nxt_eligible,
        nxt_halted=s.nxt_halted,
        measures=s.measures,
    )


def write(path: Path, universe: UniverseFile, *, reused: UniverseFile | None = None) -> None:
    """Write once, atomically and durably; an existing day is never rewritten.

    Except a reused universe (``reused``, the file found there) by the day's own build,
    before Track A starts: the file is then replaced atomically.
    """
    data = msgspec.json.format(msgspec.json.encode(universe), indent=2)
    try:
        if reused is not None and path.exists():
            if read(path) != reused or not reused.metadata.reused_from:
                raise ObserverError(f"{path} changed; a day's universe never changes")
            write_private(path, data)
        else:
            write_private(path, data, exclusive=True)  # fails if the day exists
    except FileExistsError:
        raise ObserverError(f"{path} exists; a day's universe never changes") from None


def decode(data: bytes) -> UniverseFile:
    """A universe file's contents, checked against its schema (`msgspec.DecodeError`)."""
    return msgspec.json.decode(data, type=UniverseFile)


def read(path: Path) -> UniverseFile:
    """A universe file, checked against its schema."""
    try:
        return decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise ObserverError(f"{path} is not a universe file: {exc}") from None


def earlier_snapshots(data_dir: Path, day: date) -> list[Path]:
    """The universe files of the days before ``day``, newest first."""
    before = day.strftime(_DAY)
    found = (data_dir / "universe").glob("*_kr_stocks.json")
    return sorted((p for p in found if p.name[:8] < before), reverse=True)


def event_of(universe: UniverseFile, trade_date: date) -> UniverseSnapshot:
    """The bus event of a universe file, for ``trade_date``."""
    meta = universe.metadata
    return UniverseSnapshot(
        trade_date=trade_date,
        based_on=datetime.strptime(meta.previous_trading_day, _DAY).date(),
        min_prev_close=meta.min_prev_close,
        members=tuple(_member(s) for s in universe.symbols),
        excluded=sum(meta.excluded.values()),
    )
