"""`observer.db.archive_layout`: which files a record covers and which a reader opens."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.db.archive_layout import (
    day_folder,
    late_path,
    legacy_path,
    main_path,
    part_files,
    part_path,
    symbol_files,
)

DAY = date(2026, 11, 20)
SYMBOLS = st.from_regex(r"[A-Z0-9]{1,7}", fullmatch=True)


@settings(max_examples=80, deadline=None)
@given(
    held=st.dictionaries(SYMBOLS, st.lists(st.integers(1, 12), unique=True), min_size=1),
    asked=st.lists(SYMBOLS | st.sampled_from(["*", "../x", "a.b", ""]), max_size=4),
)
def test_a_part_is_its_files_and_a_reader_opens_the_symbols_asked(
    held: dict[str, list[int]], asked: list[str]
) -> None:
    """Each symbol has its day's file and some late files: the day's part is the day files
    alone, the Nth late part the Nth late files alone, and a reader of some symbols gets
    theirs (a code that could not name a file gets none, nor anyone else's), each symbol's
    day file before its late ones in their order; hidden files written aside are no one's."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / day_folder("trade_ticks", DAY)
        folder.mkdir(parents=True)
        for symbol, lates in held.items():
            (folder / f"{symbol}.parquet").touch()
            (folder / f".{symbol}.late-1.parquet.tmp").touch()  # a late file being written
            for n in lates:
                (folder / f"{symbol}.late-{n}.parquet").touch()
        (root / day_folder("trade_ticks", DAY).replace("date=", ".date=")).mkdir()

        main = part_path("trade_ticks", DAY)
        assert main == "trade_ticks/date=2026-11-20/{symbol}.parquet"
        assert part_files(root, main) == sorted(folder / f"{s}.parquet" for s in held)
        for n in range(1, 13):
            late = late_path(main, n)
            assert late == part_path("trade_ticks", DAY, late=n)
            expected = sorted(folder / f"{s}.late-{n}.parquet" for s, ns in held.items() if n in ns)
            assert part_files(root, late) == expected

        def files_of(symbol: str) -> list[Path]:
            late = [folder / f"{symbol}.late-{n}.parquet" for n in sorted(held[symbol])]
            return [folder / f"{symbol}.parquet", *late]

        wanted = sorted({s for s in asked if s in held})
        assert symbol_files(root, "trade_ticks", DAY, asked) == [
            f for s in wanted for f in files_of(s)
        ]
        assert symbol_files(root, "trade_ticks", DAY, None) == [
            f for s in sorted(held) for f in files_of(s)
        ]


def test_a_table_of_one_file_a_day_and_a_day_of_the_earlier_layout() -> None:
    """Books, snapshots and bars are one ``day.parquet``; a day recorded in the earlier
    layout (``YYYY/MM/DD/<table>.parquet``) is written there again, its late files beside."""
    books = part_path("order_books", DAY)
    assert books == "order_books/date=2026-11-20/day.parquet"
    assert late_path(books, 2) == "order_books/date=2026-11-20/day.late-2.parquet"
    assert main_path("order_books", DAY, [books, late_path(books, 1)]) == books
    assert main_path("trade_ticks", DAY, []) == part_path("trade_ticks", DAY)
    legacy = legacy_path("trade_ticks", DAY)
    assert legacy == "2026/11/20/trade_ticks.parquet"
    assert main_path("trade_ticks", DAY, [legacy]) == legacy
    assert late_path(legacy, 3) == "2026/11/20/trade_ticks.late-3.parquet"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path in (books, late_path(books, 1), legacy, late_path(legacy, 1)):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).touch()
        assert part_files(root, books) == [root / books]
        assert symbol_files(root, "order_books", DAY, ["005930"]) == [
            root / books,
            root / late_path(books, 1),
        ]
        assert symbol_files(root, "trade_ticks", DAY, ["005930"]) == [
            root / legacy,
            root / late_path(legacy, 1),
        ]
