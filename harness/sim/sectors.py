"""The simulator's industry codes and each symbol's hidden true sector, overseas and KR.

`CATALOG` invents KIS's overseas industry catalog (HHDFS76370100): 42 codes with Korean names,
the same on every exchange, answered with 3 digits as KIS's sample (``"010"``) while the masters
hold 4 (``"0010"``). Broad codes mean no sector and are drawn three times as often, so about half
the stocks get a usable code (the seed's KIS-mapped share is 46 %). Each symbol's hidden true
sector (`true_sector`) lets tests measure a mapping's precision instead of asserting it.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "CATALOG",
    "catalog_code",
    "detail_name",
    "info_class",
    "kr_codes",
    "kr_true_sector",
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
    """The GICS sector ``symbol`` really is in (what the fallback source knows).

    Its code's sector for 97 % of the clear codes, and a draw for the rest.
    """
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


# KRX industry codes (ref-KRX §3.3): (KOSPI code, KOSDAQ code, name, GICS sector it means,
# "" for a broad one). The domestic masters carry them as the 중분류 (mid) code.
KR_INDUSTRIES: tuple[tuple[str, str, str, str], ...] = (
    ("0005", "1019", "음식료·담배", "30"), ("0006", "1020", "섬유·의류", "25"),
    ("0007", "1021", "종이·목재", "15"), ("0008", "1023", "화학", "15"),
    ("0009", "1024", "제약", "35"), ("0010", "1025", "비금속", "15"),
    ("0011", "1026", "금속", "15"), ("0012", "1027", "기계·장비", "20"),
    ("0013", "1028", "전기·전자", "45"), ("0014", "1029", "의료·정밀기기", "35"),
    ("0015", "1030", "운송장비·부품", "25"), ("0016", "1011", "유통", "25"),
    ("0017", "", "전기·가스", "55"), ("0018", "1010", "건설", "20"),
    ("0019", "1013", "운송·창고", "20"), ("0020", "1032", "통신", "50"),
    ("0021", "1014", "금융", "40"), ("0024", "", "증권", "40"), ("0025", "", "보험", "40"),
    ("0026", "1006", "일반서비스", ""), ("0028", "", "부동산", "60"),
    ("0029", "1033", "IT 서비스", "45"), ("0030", "1015", "오락·문화", "50"),
    ("", "1022", "출판·매체복제", "50"), ("", "1031", "기타제조", ""),
)  # fmt: skip
# KOSPI 200 sector codes (kospi200_apnt_cls_code, ref-KRX §3.1) and the GICS sector each
# stands for in the simulator ("4" 에너지화학 spans energy and materials: broad).
KOSPI200_SECTORS = {
    "1": "20", "2": "20", "3": "15", "4": "", "5": "45", "6": "40", "7": "30", "8": "25",
    "9": "20", "A": "35", "B": "50",
}  # fmt: skip


def kr_codes(symbol: str, market: str, group: str) -> tuple[str, str]:
    """A domestic stock's 중분류 code and KOSPI 200 sector code ("" for none).

    ETFs and KONEX listings have neither; 40 % of KOSPI stocks are KOSPI 200 members with
    a sector code meaning their true sector (the broad "4" where that is energy or
    materials).
    """
    if group != "ST" or market == "KONEX":
        return "", ""
    column = 0 if market == "KOSPI" else 1
    codes = [row[column] for row in KR_INDUSTRIES if row[column]]
    mid = codes[int(unit("kr-mid", symbol) * len(codes))]
    k200 = ""
    if market == "KOSPI" and unit("k200", symbol) < 0.4:
        sector = kr_true_sector(symbol, market, mid)
        choices = [c for c, meant in KOSPI200_SECTORS.items() if meant == sector] or ["4"]
        k200 = choices[int(unit("k200-code", symbol) * len(choices))]
    return mid, k200


def kr_true_sector(symbol: str, market: str, mid: str) -> str:
    """The GICS sector a domestic stock really is in: its 중분류's for 95 %."""
    column = 0 if market == "KOSPI" else 1
    meant = next((row[3] for row in KR_INDUSTRIES if row[column] == mid), "")
    if meant and unit("kr-agree", symbol) < 0.95:
        return meant
    return _SECTORS[int(unit("kr-sector", symbol) * len(_SECTORS))]
