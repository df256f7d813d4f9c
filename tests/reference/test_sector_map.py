"""The sector map: strict loading of config/sector_map.toml, and what each lookup answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.sectors import CATALOG, catalog_code, true_sector
from observer.errors import ConfigError
from observer.reference.gics import INDUSTRY_GROUPS, SECTORS
from observer.reference.sector_map import load_sector_map, normalise_icod, parse_sector_map

HEAD = 'mapping_version = "t1"\n'


def _entry(exchange: str, icod: str, sector: str, group: str = "") -> str:
    return (
        f'[[codes]]\nexchange = "{exchange}"\nicod = "{icod}"\n'
        f'gics_sector = "{sector}"\ngics_ig = "{group}"\n'
    )


def test_gics_2023_has_11_sectors_and_25_groups_each_in_its_sector() -> None:
    assert len(SECTORS) == 11 and len(INDUSTRY_GROUPS) == 25
    assert all(group[:2] in SECTORS for group in INDUSTRY_GROUPS)


def test_the_checked_in_map_loads_and_covers_every_clear_simulated_code() -> None:
    sector_map = load_sector_map()
    for code, name, meaning in CATALOG:
        found = sector_map.for_code("NAS", code)
        if meaning:
            assert found is not None and found.gics_sector == meaning, name
        else:
            assert found is None, name


@given(st.text(alphabet="0123456789", min_size=1, max_size=4))
def test_a_3_digit_answer_code_and_its_4_character_master_form_are_one_code(code: str) -> None:
    assert normalise_icod(code) == normalise_icod(code.zfill(4))
    assert len(normalise_icod(code)) == 4


@given(
    sector=st.sampled_from(sorted(SECTORS)),
    group=st.sampled_from(["", *sorted(INDUSTRY_GROUPS)]),
    exchange=st.sampled_from(["*", "NAS", "HKS", "XXX"]),
    icod=st.text(alphabet="0123456789", min_size=1, max_size=5),
)
def test_an_entry_loads_exactly_when_it_is_valid(
    sector: str, group: str, exchange: str, icod: str
) -> None:
    valid = (not group or group[:2] == sector) and exchange != "XXX" and len(icod) <= 4
    text = HEAD + _entry(exchange, icod, sector, group)
    if not valid:
        with pytest.raises(ConfigError):
            parse_sector_map(text.encode())
        return
    found = parse_sector_map(text.encode()).for_code("NAS" if exchange == "*" else exchange, icod)
    assert found is not None and (found.gics_sector, found.gics_ig) == (sector, group)


@pytest.mark.parametrize(
    "text",
    [
        _entry("*", "0010", "10") + _entry("*", "010", "15"),  # the same code twice
        _entry("*", "0010", "99"),  # no such sector
        _entry("*", "0010", "10", "4530"),  # a group of another sector
        '[[overrides]]\nsymbol = "AAPL"\ngics_sector = "45"\n',  # no market
        '[[codes]]\nexchange = "*"\nicod = "0010"\ngics_sector = "10"\ntypo = 1\n',
        '[fallback_sectors]\ntechnology = "46"\n',
    ],
)
def test_a_bad_entry_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match="sector map"):
        parse_sector_map((HEAD + text).encode())


def test_an_override_wins_and_an_exchange_entry_beats_the_wildcard() -> None:
    text = (
        HEAD
        + _entry("*", "0330", "40")
        + _entry("HKS", "0330", "20", "2010")
        + '[[overrides]]\nsymbol = "NAS:BRK.B"\ngics_sector = "40"\ngics_ig = "4020"\n'
    )
    sector_map = parse_sector_map(text.encode())
    assert sector_map.for_code("HKS", "330").gics_sector == "20"  # type: ignore[union-attr]
    assert sector_map.for_code("NAS", "330").gics_sector == "40"  # type: ignore[union-attr]
    override = sector_map.override("NAS", "BRK.B")
    assert override is not None and (override.source, override.confidence) == ("manual", 1.0)


def test_a_fallback_industry_is_used_only_when_it_agrees_with_the_sector() -> None:
    sector_map = load_sector_map()
    agreed = sector_map.for_fallback("technology", "semiconductors")
    assert agreed is not None and agreed.gics_ig == "4530" and agreed.confidence <= 0.6
    disagreed = sector_map.for_fallback("healthcare", "semiconductors")
    assert disagreed is not None and (disagreed.gics_sector, disagreed.gics_ig) == ("35", "")
    assert sector_map.for_fallback("no-such-sector", "") is None


@given(st.integers(0, 10**6), st.text(alphabet="ABCDEFGHIJ", min_size=1, max_size=5))
def test_the_simulators_codes_are_in_its_catalog_and_its_true_sectors_are_gics(
    draw: int, symbol: str
) -> None:
    code = catalog_code(draw)
    assert code[1:] in {c for c, _, _ in CATALOG} and len(code) == 4
    assert true_sector("NAS", symbol, code) in SECTORS


def test_the_checked_in_names_map_every_clear_simulated_name_and_no_broad_one() -> None:
    sector_map = load_sector_map()
    for _, name, meaning in CATALOG:
        found = sector_map.for_name(name)
        assert (found.gics_sector if found else "") == meaning, name
        assert found is None or found.source == "kis_detail"
    assert sector_map.for_name(" 반 도체 ") == sector_map.for_name("반도체")  # spacing ignored


def test_a_name_mapped_twice_is_refused() -> None:
    entry = '[[names]]\nname = "반도체"\ngics_sector = "45"\n'
    with pytest.raises(ConfigError, match="mapped twice"):
        parse_sector_map((HEAD + entry + entry.replace("반도체", "반 도체")).encode())


def test_a_kospi200_sector_wins_over_the_industry_and_the_broad_codes_stay_unmapped() -> None:
    sector_map = load_sector_map()
    by_k200 = sector_map.for_kr("5", "0005", "0027")  # 정보통신 member filed under 음식료
    assert by_k200 is not None and by_k200.gics_sector == "45" and by_k200.confidence == 0.9
    by_mid = sector_map.for_kr("", "0005", "0027")
    assert by_mid is not None and by_mid.gics_sector == "30"
    assert sector_map.for_kr("4", "", "0027") is None  # 에너지화학 and 제조 are both broad
    by_large = sector_map.for_kr("", "", "0021")  # no 중분류: the 대분류 금융
    assert by_large is not None and by_large.gics_sector == "40"
