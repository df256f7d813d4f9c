"""The simulator's industry codes and each overseas symbol's hidden true sector.

KIS serves its overseas industry catalog per exchange through HHDFS76370100 (``icod`` and
``name``); the real list needs a live call, so the simulator invents a finite one of 42
codes with Korean names, the same on every exchange, answered with 3-digit codes as KIS's
sample does (``"010"``) while its master files hold the 4-character form (``"0010"``).

Each code has the GICS sector it "means". The broad codes (holding companies, "other",
manufacturing, ...) mean nothing and are drawn three times as often, so that about half the
stocks have a code a mapping can use, as the seed's 46 % KIS-mapped share says. Each symbol
also has a hidden true sector, which the fallback source answers: its code's sector for
97 % of the clear codes, and a draw for the rest, so tests can measure a mapping's precision
and the KIS-mapped share instead of asserting them.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "CATALOG",
    "catalog_code",
    "detail_name",
    "info_class",
    "listed_code",
    "true_sector",
    "unit",
]

# (3-digit icod, Korean name, GICS sector it means, or "" for a broad code)
CATALOG: tuple[tuple[str, str, str], ...] = (
    ("010", "석유·가스", "10"), ("020", "에너지장비", "10"), ("030", "화학", "15"),
    ("040", "금속·광업", "15"), ("050", "건설자재", "15"), ("060", "항공우주·방위", "20"),
    ("070", "기계", "20"), ("080", "건설·엔지니어링", "20"), ("090", "상업서비스", "20"),
    ("100", "항공·운송", "20"), ("110", "해운", "20"), ("120", "자동차·부품", "25"),
    ("130", "내구소비재·의류", "25"), ("140", "호텔·레저", "25"), ("150", "소매", "25"),
    ("160", "식품·음료", "30"), ("170", "생활용품", "30"), ("180", "식품유통", "30"),
    ("190", "의료장비", "35"), ("200", "제약·바이오", "35"), ("210", "은행", "40"),
    ("220", "증권·자산운용", "40"), ("230", "보험", "40"), ("240", "소프트웨어", "45"),
    ("250", "하드웨어·장비", "45"), ("260", "반도체", "45"), ("270", "통신서비스", "50"),
    ("280", "미디어·엔터테인먼트", "50"), ("290", "전력", "55"), ("300", "가스·수도", "55"),
    ("310", "리츠", "60"), ("320", "부동산개발", "60"),
    ("330", "지주회사", ""), ("340", "복합기업", ""), ("350", "기타", ""),
    ("360", "서비스업", ""), ("370", "제조업", ""), ("380", "신기술", ""),
    ("390", "유통업", ""), ("400", "전기·전자", ""), ("410", "기타금융", ""),
    ("420", "기업인수목적", ""),
)  # fmt: skip

_SECTORS = ("10", "15", "20", "25", "30", "35", "40", "45", "50", "55", "60")
_MEANING = {code: sector for code, _, sector in CATALOG}
_NAMES = {code: name for code, name, _ in CATALOG}
_CLEAR: dict[str, tuple[str, ...]] = {
    s: tuple(code for code, _, meant in CATALOG if meant == s) for s in _SECTORS
}
# Broad codes three times over: about half the stocks get a clear code.
_DRAWN = tuple(code for code, _, sector in CATALOG for _ in range(1 if sector else 3))


def catalog_code(draw: int) -> str:
    """The 4-character master-file code for a listing's random ``draw``."""
    return "0" + _DRAWN[draw % len(_DRAWN)]


def unit(*parts: str) -> float:
    """A uniform draw in [0, 1) fixed by ``parts``."""
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def true_sector(exchange: str, symbol: str, icod: str) -> str:
    """The GICS sector ``symbol`` really is in (what the fallback source knows)."""
    meant = _MEANING.get(icod[-3:], "")
    if meant and unit("agree", exchange, symbol) < 0.97:
        return meant
    return _SECTORS[int(unit("sector", exchange, symbol) * len(_SECTORS))]


def _clear_code(exchange: str, symbol: str, icod: str, salt: str) -> str:
    """A 3-digit clear code meaning ``symbol``'s true sector (drawn by ``salt``)."""
    choices = _CLEAR[true_sector(exchange, symbol, icod)]
    return choices[int(unit(salt, exchange, symbol) * len(choices))]


def detail_name(exchange: str, symbol: str, icod: str) -> str:
    """HHDFS76200200's ``e_icod``: a sector name.

    A clear code's own name; for a broad code, 80 % of the time the name of a clear code of
    the symbol's true sector (what price-detail adds), else the broad code's name.
    """
    code = icod[-3:]
    if _MEANING.get(code) or unit("detail", exchange, symbol) >= 0.8:
        return _NAMES.get(code, "")
    return _NAMES[_clear_code(exchange, symbol, icod, "detail-code")]


def info_class(exchange: str, symbol: str, icod: str) -> tuple[str, str]:
    """CTPF1702R's ``prdt_clsf_cd`` (4 characters) and ``prdt_clsf_name``.

    Its meaning is UNCONFIRMED; the simulator treats it as a finer industry code: the
    master's for a clear code, for a broad one 60 % of the time a clear code of the true
    sector.
    """
    code = icod[-3:]
    if not _MEANING.get(code) and unit("info", exchange, symbol) < 0.6:
        code = _clear_code(exchange, symbol, icod, "info-code")
    return "0" + code, _NAMES.get(code, "")


def listed_code(exchange: str, symbol: str, icod: str) -> str:
    """The 3-digit code HHDFS76370000 lists ``symbol`` under.

    The master's, except for 2 % of the stocks, which KIS's industry lists file under a
    clear code of their true sector (what the cross-check is to find).
    """
    if unit("listed", exchange, symbol) < 0.02:
        return _clear_code(exchange, symbol, icod, "listed-code")
    return icod[-3:]
