"""Track B's symbols split between collectors hosts: the split, its settings, its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bus.events import PriceSnapshot
from observer.calendar.phases import KST
from observer.cluster.shards import MAX_SHARDS, Shard, shard_of
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.config.workers import TrackBSettings
from observer.errors import ConfigError
from tests.support import ROOT
from workers.track_b.cli import app
from workers.track_b.pins import pins_path
from workers.track_b.triggers import Reference, TriggerEngine

# CRC-32 of the codes, fixed by its standard: (shard of 2, of 3, of 7, of 64) for each code.
# Any host, process or release must split them so, or two hosts would watch one symbol.
EXPECTED = {
    "005930": (1, 2, 1, 25),
    "000660": (1, 1, 5, 19),
    "035420": (1, 3, 1, 27),
    "035720": (2, 2, 4, 4),
    "051910": (2, 2, 6, 62),
    "005380": (2, 2, 3, 6),
    "068270": (1, 1, 1, 1),
    "207940": (2, 2, 5, 32),
    "0001A0": (1, 1, 5, 39),
    "Q500001": (2, 1, 7, 30),
}
COUNTS = (2, 3, 7, 64)


@given(st.text(min_size=1, max_size=12), st.integers(1, MAX_SHARDS))
def test_every_symbol_belongs_to_exactly_one_shard_of_n(symbol: str, count: int) -> None:
    owners = [k for k in range(1, count + 1) if Shard(frozenset({k}), count).owns(symbol)]
    assert owners == [shard_of(symbol, count)]
    assert Shard().owns(symbol)  # the default: every symbol


@given(
    st.lists(st.text(min_size=1, max_size=12), max_size=50),
    st.integers(1, MAX_SHARDS).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(1, 4), min_size=n, max_size=n))
    ),
)
def test_hosts_taking_several_shards_each_still_watch_every_symbol_once(
    symbols: list[str], split: tuple[int, list[int]]
) -> None:
    """Shards 1..n dealt out to up to four hosts (``"1,3/4"`` and ``"2,4/4"``, say)."""
    count, host_of_shard = split
    hosts = {
        host: Shard.parse(
            ",".join(str(k) for k in range(1, count + 1) if host_of_shard[k - 1] == host)
            + f"/{count}"
        )
        for host in set(host_of_shard)
    }
    for symbol in symbols:
        assert sum(shard.owns(symbol) for shard in hosts.values()) == 1, (symbol, hosts)


def test_a_host_with_two_shards_of_three_takes_about_two_thirds() -> None:
    codes = [f"{n:06d}" for n in range(3_000)]
    taken = sum(Shard.parse("1,2/3").owns(c) for c in codes)
    assert 1_900 < taken < 2_100  # CRC-32 spreads six-digit codes evenly (1,000 +- 100 each)
    assert str(Shard.parse("2,1/3")) == "1,2/3"


def test_the_split_of_a_fixed_list_is_the_documented_one() -> None:
    for code, shards in EXPECTED.items():
        assert tuple(shard_of(code, n) for n in COUNTS) == shards, code


def test_the_split_is_the_same_in_every_process() -> None:
    """Python's hash() of a str changes with PYTHONHASHSEED; the split must not."""
    codes, counts = list(EXPECTED), list(COUNTS)
    program = (
        "import json; from observer.cluster.shards import shard_of; "
        f"print(json.dumps({{c: [shard_of(c, n) for n in {counts}] for c in {codes}}}))"
    )
    for seed in ("1", "2", "random"):
        out = subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        assert {c: tuple(s) for c, s in json.loads(out).items()} == EXPECTED


@given(st.integers(0, 99), st.integers(0, 99))
def test_a_shard_is_k_of_n_with_1_le_k_le_n_le_64(k: int, n: int) -> None:
    spec = f"{k}/{n}"
    if 1 <= k <= n <= MAX_SHARDS:
        assert Shard.parse(spec) == Shard(frozenset({k}), n) and str(Shard.parse(spec)) == spec
    else:
        with pytest.raises(ValueError, match="1 <= k <= n <= 64"):
            Shard.parse(spec)


@pytest.mark.parametrize(
    "spec", ["", "1", "1/2/3", " 1/2", "1/2 ", "a/b", "1/-2", "1/100", "½", ",1/2", "1,/2", "1;2/3"]
)
def test_a_shard_in_another_form_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match='must be "k/n"'):
        Shard.parse(spec)


def test_a_shard_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="names a shard twice"):
        Shard.parse("2,2/3")


def config(tmp_path: Path, shard: str, host: str = "c1") -> Path:
    path = tmp_path / "observer.toml"
    path.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[supervisor]\nhost = "{host}"\n[track_b]\nshard = "{shard}"\n'
    )
    return path


@pytest.mark.parametrize(
    ("shard", "host", "error"),
    [
        ("3/2", "c1", "1 <= k <= n <= 64"),
        ("1,3/2", "c1", "1 <= k <= n <= 64"),
        ("1/65", "c1", "1 <= k <= n <= 64"),
        ("0/2", "c1", "1 <= k <= n <= 64"),
        ("half", "c1", 'must be "k/n"'),
        ("1/2", "", "set supervisor.host"),
    ],
)
def test_a_bad_shard_is_refused_at_load(tmp_path: Path, shard: str, host: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_settings(config(tmp_path, shard, host))


def test_the_default_is_every_symbol_and_a_good_shard_loads(tmp_path: Path) -> None:
    assert TrackBSettings().shard == "1/1"
    assert msgspec.convert({}, Settings).track_b.shard == "1/1"  # no host needed
    assert load_settings(config(tmp_path, "2/2")).track_b.shard == "2/2"
    assert load_settings(config(tmp_path, "1,3/3")).track_b.shard == "1,3/3"


def surge(symbol: str, at: datetime) -> PriceSnapshot:
    return PriceSnapshot(
        cycle_id=at.strftime("%Y%m%d-%H%M"),
        symbol=symbol,
        market="KOSPI",
        observed_ns=int(at.timestamp() * 1e9),
        price=10_000,
        change=0,
        change_rate=Decimal(0),
        open=10_000,
        high=10_000,
        low=10_000,
        volume=10_000_000,  # ten times the 20-day average by 09:10: a volume surge anywhere
        traded_value=10**11,
        base_price=10_000,
    )


def test_triggers_of_another_shard_are_counted_not_fired() -> None:
    opening = datetime(2026, 11, 20, 9, 0, tzinfo=KST)
    refs = {c: Reference(c, 10**12, 10_000, 1_000_000, 300.0) for c in EXPECTED}
    engine = TriggerEngine(msgspec.convert({"shard": "1/2"}, TrackBSettings), refs, opening)
    ten = opening + timedelta(minutes=10)
    fired = {t.symbol for c in EXPECTED for t in engine.on_snapshot(surge(c, ten))}
    ours = {c for c, shards in EXPECTED.items() if shards[0] == 1}
    assert fired == ours
    assert engine.other_shard == len(EXPECTED) - len(ours) > 0
    assert engine.on_velocity("035720", 1000.0, engine.open_ns) is None  # shard 2's
    assert engine.other_shard == len(EXPECTED) - len(ours) + 1
    assert {c.symbol for c in engine.candidates(int(ten.timestamp() * 1e9))} == ours


def test_a_pin_of_another_shard_is_refused_naming_its_shard(tmp_path: Path) -> None:
    path = config(tmp_path, "1/2")
    runner = CliRunner()
    refused = runner.invoke(app, ["slots", "--config", str(path), "pin", "005930", "035720"])
    assert refused.exit_code == 1
    assert 'this is host c1, shard 1/2; the split gives 035720 to shard "2/2"' in refused.output
    assert not pins_path(tmp_path / "data").exists()  # nothing pinned, not even 005930
    (tmp_path / "data" / "run").mkdir(parents=True)  # a supervisor has run with it
    done = runner.invoke(app, ["slots", "--config", str(path), "pin", "005930"])
    assert done.exit_code == 0, done.output
    assert json.loads(pins_path(tmp_path / "data").read_text()) == ["005930"]
    # Unpinning is never refused: a pin left from before a change of shard can go.
    gone = runner.invoke(app, ["slots", "--config", str(path), "unpin", "005930", "035720"])
    assert gone.exit_code == 0, gone.output
