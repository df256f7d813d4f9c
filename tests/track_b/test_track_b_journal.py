"""Track B's raw journal: every frame it received is there before its events are published.

A Track B under the supervisor streams from the simulator, is killed with SIGKILL
mid-session and comes back. Every tick and book the writer stored is in the journal
(appended before publishing, so nothing acknowledged is missing from it), and replaying
the day's journal into a fresh database gives the same ticks and books: exactly, but for
what the killed process journaled and had not yet published.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from observer.kis.journal import day_files, journal_days, read_file, verify_file
from tests.support import ROOT, db_rows, wait_until
from tests.track_b.test_track_b import DAY
from tests.track_b.test_track_b_restart import PROGRAMS, kill_track_b, streaming

pytestmark = pytest.mark.slow

TICKS = (
    "select symbol, venue, exchange_ns, received_ns, price, qty, cum_volume, cum_value, "
    "change_rate, ask1, bid1, strength, side, session, halted, account, market_session, "
    "trading_session from trade_ticks"
)
LEVELS = ", ".join(
    f"{side}_{what}_{level}"
    for side in ("ask", "bid")
    for what in ("price", "qty")
    for level in range(1, 11)
)
BOOKS = (
    f"select symbol, venue, exchange_ns, received_ns, account, {LEVELS}, total_ask_qty, "
    "total_bid_qty, expected_price, expected_qty, mid_price, mid_qty, mid_side, "
    "market_session, trading_session from order_books"
)


def rows(url: str, sql: str, source: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in db_rows(url, f"{sql} where source like '{source}%'")]


def test_a_killed_track_b_journaled_every_stored_frame_and_the_replay_gives_them_back(
    tmp_path: Path,
) -> None:
    # Each symbol's book beside its trades (six registrations an account).
    with streaming(tmp_path, PROGRAMS, 'feeds.regular = ["trades", "book"]\n', registrations=6) as (
        _,
        sup,
    ):
        url = sup.url
        wait_until(
            lambda: db_rows(url, "select count(*) from order_books")[0][0] > 100,
            60,
            "books stored",
        )
        kill_track_b(sup)
        stored_then = db_rows(url, "select count(*) from trade_ticks")[0][0]
        wait_until(
            lambda: db_rows(url, "select count(*) from trade_ticks")[0][0] > stored_then + 100,
            60,
            "the new Track B's ticks",
        )
        assert sup.terminate() == 0
    root = sup.data_dir / "journal"
    assert journal_days(root) == [DAY]
    found = {p.name: verify_file(p) for p in day_files(root, DAY)}
    track_b = {name: f for name, f in found.items() if name.startswith("track_b.")}
    # The killed one is unsealed but whole to its last record; the one stopped is sealed.
    assert sorted(f.sealed for f in track_b.values()) == [False, True], found
    assert all(f.ok for f in found.values()), found
    print({name: (f.records, f.bytes, f.raw_bytes) for name, f in found.items()})
    (resumed,) = [f.path for f in track_b.values() if f.sealed]
    resumed_ns = next(iter(read_file(resumed))).received_ns

    scratch = f"sqlite:///{tmp_path / 'replayed.db'}"
    command = [sys.executable, "-m", "observer", "journal", "replay", "--date", DAY.isoformat()]
    command += ["--db", scratch, "--process", "track_b", "--config", str(sup.config)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    # Replayed again: the same envelopes, nothing stored twice.
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "\n0 events stored" in again.stdout, again.stdout

    for sql in (TICKS, BOOKS):
        stored = Counter(rows(url, sql, "track_b"))
        replayed = Counter(rows(scratch, sql, "journal.track_b"))
        assert stored and not stored - replayed  # every stored one was journaled
        extra = replayed - stored
        # What the killed process received, journaled and did not get published: its
        # last moments only, never anything of the process that stopped in order.
        assert extra.total() < stored.total() // 20, (extra.total(), stored.total())
        assert all(row[3] < resumed_ns for row in extra), "the resumed process lost one"
