"""Where a day archive's files are: a folder per table and day, hive-style.

``<archive dir>/<table>/date=YYYY-MM-DD/`` holds a table's rows of one KST day. The
``date=`` folders are hive-style, so DuckDB, Polars and Spark read a table as one dataset
with a ``date`` column. What is in the folder follows how the table is read:

* ``trade_ticks``, read a symbol's day at a time: a file per symbol, ``<symbol>.parquet``,
  so that a reader of one symbol opens its file alone;
* the others (books, snapshots, bars), read across the market as often: one file,
  ``day.parquet``, rows by symbol and time in row groups that end with a symbol (opening a
  file costs about a millisecond, so a scan of a day's books over a file per symbol takes
  more than ten times as long as over one).

Rows committed after a day was pruned go beside its files, ``<symbol>.late-N.parquet`` or
``day.late-N.parquet`` (the Nth time that happened). A *part* is what one archive record
covers: a day's files or its Nth late files; a record's path names a per-symbol part with
``{symbol}`` (``trade_ticks/date=D/{symbol}.parquet``). Days archived before this layout
keep theirs, one file per table and day (``YYYY/MM/DD/<table>.parquet``, late files
``<table>.late-N.parquet``), and go on being written that way, so that their records keep
adding up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

__all__ = [
    "PER_SYMBOL",
    "SYMBOL",
    "SYMBOL_NAME",
    "day_folder",
    "is_part",
    "late_path",
    "legacy_path",
    "main_path",
    "part_files",
    "part_path",
    "symbol_files",
]

SYMBOL = "{symbol}"  # where a part's path names each file's symbol
PER_SYMBOL = frozenset({"trade_ticks"})  # the tables written a file per symbol
_DAY = "day"  # the one file of a day of the other tables: day.parquet
SYMBOL_NAME = re.compile(r"[A-Za-z0-9_-]+")  # a symbol that may name a file (fullmatch)
# A symbol code is letters and digits: a main file's stem has no dot, a late file's one.
_LATE = re.compile(r"^[^.]+\.late-(\d+)\.parquet$")


def day_folder(table: str, day: date) -> str:
    """``<table>/date=YYYY-MM-DD``, under the archive folder."""
    return f"{table}/date={day.isoformat()}"


def part_path(table: str, day: date, late: int = 0) -> str:
    """The path of a day's files (``late`` 0) or of its ``late``-th late files."""
    stem = SYMBOL if table in PER_SYMBOL else _DAY
    name = f"{stem}.parquet" if late == 0 else f"{stem}.late-{late}.parquet"
    return f"{day_folder(table, day)}/{name}"


def legacy_path(table: str, day: date, late: int = 0) -> str:
    """The file of a day archived before this layout (``YYYY/MM/DD/<table>...``)."""
    name = f"{table}.parquet" if late == 0 else f"{table}.late-{late}.parquet"
    return f"{day:%Y/%m/%d}/{name}"


def is_part(path: str) -> bool:
    """Whether a record's path names files per symbol, not a single file."""
    return SYMBOL in path


def main_path(table: str, day: date, recorded: Iterable[str]) -> str:
    """The path a day's files are written to: this layout's, or the legacy file.

    ``recorded``: the paths of the day's archive records. A day recorded in the legacy
    layout stays in it: its files' rows are added up, and files beside them would count
    its rows twice.
    """
    if any("/date=" not in path for path in recorded):
        return legacy_path(table, day)
    return part_path(table, day)


def late_path(main: str, number: int) -> str:
    """The path of the ``number``-th late files of the day whose files are at ``main``."""
    return main.removesuffix(".parquet") + f".late-{number}.parquet"


def part_files(root: Path, path: str) -> list[Path]:
    """The files a record's ``path`` covers, by name: a part's, or the single file if there."""
    if not is_part(path):
        single = root / path
        return [single] if single.is_file() else []
    folder, _, name = path.rpartition("/")
    prefix, _, suffix = name.partition(SYMBOL)
    found = []
    for file in (root / folder).glob(f"{prefix}*{suffix}"):
        symbol = file.name[len(prefix) : len(file.name) - len(suffix)]
        if symbol and "." not in symbol and not symbol.startswith("."):
            found.append(file)
    return sorted(found)


def symbol_files(root: Path, table: str, day: date, symbols: Iterable[str] | None) -> list[Path]:
    """The files holding a day's rows of ``symbols`` (None: every symbol), the day's first.

    The day's files in this layout (of a per-symbol table, only those of ``symbols``), each
    before its late ones, then the legacy file and its late files if the day has them.
    """
    folder = root / day_folder(table, day)
    found: list[Path] = []
    if folder.is_dir():
        if table not in PER_SYMBOL:
            stems: Iterable[str] = [_DAY]
        elif symbols is None:
            stems = sorted(f.stem for f in folder.glob("*.parquet") if "." not in f.stem)
        else:  # a code that could not name a file has none (nor may it glob others')
            stems = sorted(s for s in set(symbols) if SYMBOL_NAME.fullmatch(s))
        for stem in stems:
            main = folder / f"{stem}.parquet"
            if main.is_file():
                found.append(main)
            late = [f for f in folder.glob(f"{stem}.late-*.parquet") if _LATE.match(f.name)]
            found.extend(sorted(late, key=_late_order))
    legacy = root / legacy_path(table, day)
    if legacy.is_file():
        found.append(legacy)
    found.extend(sorted(legacy.parent.glob(f"{table}.late-*.parquet"), key=_late_order))
    return found


def _late_order(file: Path) -> tuple[int, str]:
    """Late files by their number (late-10 after late-9), then name."""
    digits = re.search(r"\.late-(\d+)\.parquet$", file.name)
    return (int(digits.group(1)) if digits else 0, file.name)
