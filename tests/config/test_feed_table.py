"""``[track_b.feeds]``: what a watched name holds, part by part, checked when loaded.

Every row that cannot give what it names is refused with the row named; Track B's switches of
before (4,608 combinations) are each read as the rows they meant, with a warning.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.config.load import load_settings
from observer.config.workers import OLD_SWITCHES, FeedTable, feeds_of_switches
from observer.errors import ConfigError


def load(tmp_path: Path, toml: str) -> FeedTable:
    path = tmp_path / "observer.toml"
    path.write_text(toml)
    return load_settings(path).track_b.feeds


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ('regular = ["trades", "trades"]', r"regular \['trades', 'trades'\]: a kind twice"),
        ('regular = ["trades", "auction"]', "no auction then, so no expected matches"),
        ('krx_after_market = ["trades", "auction"]', "no auction then"),
        ('krx_opening_auction = ["auction", "trades"]', "nothing trades before the opening match"),
        ('krx_opening_auction = ["program"]', "nothing trades before the opening match"),
        ('regular = ["book", "trades"]', "a name is watched by its trades: trades first"),
        ('nxt_pre_market = ["status"]', "nxt_pre_market \\['status'\\]: .* trades first"),
        ("regular = []", "Track B's day needs its trades"),
        (
            'regular = ["trades", "program"]\n'
            'krx_closing_auction = ["trades", "program", "auction"]',
            "its auction becomes program trading at the match",
        ),
        (
            'krx_closing_auction = ["trades", "book"]',
            r"krx_closing_auction \['trades', 'book'\]: more kinds than regular's \['trades'\]",
        ),
        ('nxt_after_market = ["trades", "status"]', "more kinds than regular's"),
        ('nextrade = "off"', "nxt_pre_market, nxt_after_market on Nextrade's feeds, but"),
        ('nextrade = "off"\nnxt_pre_market = []', "nxt_after_market on Nextrade's feeds"),
        (
            'nextrade = "combined"\nregular = ["trades", "program"]\n'
            'nxt_after_market = ["trades", "auction"]',
            "Nextrade's expected matches are on its own feed",
        ),
        (
            'regular = ["trades", "vi"]',
            r"Invalid enum value 'vi' - at `\$\.track_b\.feeds\.regular",
        ),
    ],
)
def test_a_row_that_cannot_hold_what_it_names_is_refused_naming_it(
    tmp_path: Path, rows: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, f"[track_b.feeds]\n{rows}\n")


def test_the_defaults_and_a_full_table_load(tmp_path: Path) -> None:
    assert load(tmp_path, "") == FeedTable()
    assert FeedTable().regular == ("trades",) and FeedTable().nextrade == "NXT"
    full = load(
        tmp_path,
        '[track_b.feeds]\nnextrade = "NXT"\nnxt_pre_market = ["trades", "book"]\n'
        'krx_opening_auction = ["auction", "book", "status"]\n'
        'krx_opening_half_hour = ["trades", "book"]\n'
        'regular = ["trades", "book", "status", "program"]\n'
        'krx_closing_auction = ["trades", "book", "status", "auction"]\n'
        'nxt_after_market = ["trades", "auction"]\nkrx_after_market = ["trades"]\n',
    )
    assert full.krx_closing_auction == ("trades", "book", "status", "auction")
    nothing = load(
        tmp_path,
        '[track_b.feeds]\nnextrade = "off"\nnxt_pre_market = []\n'
        "nxt_after_market = []\nkrx_opening_auction = []\n",
    )
    assert (nothing.nxt_pre_market, nothing.krx_opening_auction) == ((), ())


switches = st.fixed_dictionaries(
    {},
    optional={
        key: st.sampled_from(["krx", "venues", "combined"]) if key == "trades" else st.booleans()
        for key in OLD_SWITCHES
    },
)


@given(switches)
def test_every_combination_of_the_old_switches_is_rows_that_load(old: dict[str, object]) -> None:
    """No file of before stops loading: each combination is a valid table, meaning the same."""
    on = {**OLD_SWITCHES, **old}
    table = msgspec.convert(feeds_of_switches(old), FeedTable)
    extra = [
        k
        for k, s in (("book", "books"), ("status", "market_status"), ("program", "program_trading"))
        if on[s]
    ]
    assert table.regular == ("trades", *extra)
    assert table.nextrade == {"krx": "off", "venues": "NXT", "combined": "combined"}[on["trades"]]
    assert bool(table.krx_closing_auction) == on["krx_to_close"]
    assert bool(table.krx_after_market) == on["krx_after_market"]
    assert bool(table.krx_opening_auction) == on["opening_auction"]
    assert bool(table.krx_opening_half_hour) == on["opening_half_hour"]
    nxt = on["trades"] != "krx"
    assert bool(table.nxt_pre_market) == (nxt and bool(on["nxt_pre_market"]))
    assert bool(table.nxt_after_market) == (nxt and bool(on["nxt_after_market"]))
    # expected matches in place of program trading where the switches asked for them and could
    closing = bool(on["closing_auction"] and on["program_trading"] and on["krx_to_close"])
    assert ("auction" in table.krx_closing_auction) == closing
    evening = on["nxt_after_market_auction"] and on["program_trading"] and on["trades"] == "venues"
    assert ("auction" in table.nxt_after_market) == bool(evening and on["nxt_after_market"])


def test_a_file_of_switches_reads_as_their_rows_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's switches, split over a base file and its extension."""
    (tmp_path / "base.toml").write_text("[track_b]\nmarket_status = true\nevaluate_s = 7.0\n")
    (tmp_path / "mine.toml").write_text(
        'extends = "base.toml"\n[track_b]\nprogram_trading = true\n'
    )
    settings = load_settings(tmp_path / "mine.toml")
    assert settings.track_b.evaluate_s == 7.0  # the other keys where they were
    assert settings.track_b.feeds == FeedTable(
        nxt_pre_market=("trades", "status", "program"),
        regular=("trades", "status", "program"),
        krx_closing_auction=("trades", "status", "auction"),
        nxt_after_market=("trades", "status", "auction"),
        krx_after_market=("trades", "status", "program"),
    )
    assert "[track_b] market_status, program_trading are now the rows of [track_b.feeds]" in (
        caplog.text
    )
    assert 'regular = ["trades", "status", "program"]' in caplog.text  # what to write instead
    with pytest.raises(ConfigError, match="keep the rows"):
        load(tmp_path, '[track_b]\nbooks = true\n[track_b.feeds]\nregular = ["trades"]\n')
    with pytest.raises(ConfigError, match=r"track_b\.trades 'both': expected krx, venues or"):
        load(tmp_path, '[track_b]\ntrades = "both"\n')
    with pytest.raises(ConfigError, match=r"track_b\.books 'yes': expected true or false"):
        load(tmp_path, '[track_b]\nbooks = "yes"\n')
