"""Real KRX listings the simulated market carries alongside its synthetic ones.

KIS's samples and most tutorials ask for 005930 (삼성전자), 000660 (SK하이닉스) or 069500
(KODEX 200), so the simulator lists the largest real names under their real codes, names
(cp949-encodable, as in the masters) and markets. Listed shares, price levels and volumes are
approximations of late 2025 / 2026, rounded: listed shares to thousands (the masters carry
thousands), prices to the middle of the name's range. Prices move; only these levels are data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

__all__ = ["KNOWN_LISTINGS", "KnownListing", "isin_for"]


@dataclass(frozen=True, slots=True)
class KnownListing:
    """One real listing: what the simulator takes from the real market."""

    code: str  # 6-character short code
    name: str  # Korean short name (hts_kor_isnm)
    market: str  # KOSPI, KOSDAQ
    group: str  # ST stock, EF ETF
    listed_shares: int  # approximate, a multiple of 1,000
    price: int  # KRW: the level its simulated price stays near
    volatility: float  # daily log-return sigma
    avg_volume: int  # shares per day
    sector_code: str  # KRX industry index code (approximate); "" for ETFs
    listed_on: date
    isin: str = ""  # when it does not follow KR7 + code + 00 + check digit (preferred shares)


def isin_for(code: str) -> str:
    """The ISIN of a common share or ETF: ``KR7`` + code + ``00`` + the ISO 6166 check digit."""
    body = f"KR7{code}00"
    digits = "".join(str(int(c, 36)) for c in body)  # letters count as 10..35
    total = 0
    for n, digit in enumerate(reversed(digits)):  # Luhn, doubling from the rightmost digit
        value = int(digit) * (2 if n % 2 == 0 else 1)
        total += value // 10 + value % 10
    return f"{body}{(10 - total % 10) % 10}"


# code, name, listed shares (approximate, a multiple of 1,000), price level (KRW), daily
# log-return sigma, shares per day, KRX industry index code (approximate: 0008 chemicals,
# 0009 pharmaceuticals, 0011 steel and metals, 0012 machinery, 0013 electrical and electronics,
# 0015 transport equipment, 0016 distribution, 0017 utilities, 0019 transport and storage,
# 0020 telecoms, 0021 finance, 0025 insurance, 0026 services), listing date.
_Row = tuple[str, str, int, int, float, int, str, str]

# The largest KOSPI stocks by market value.
_KOSPI: tuple[_Row, ...] = (
    ("005930", "삼성전자", 5_919_638_000, 76_000, 0.018, 15_000_000, "0013", "19750611"),
    ("000660", "SK하이닉스", 728_002_000, 420_000, 0.028, 3_500_000, "0013", "19961226"),
    ("373220", "LG에너지솔루션", 234_000_000, 380_000, 0.022, 300_000, "0013", "20220127"),
    ("207940", "삼성바이오로직스", 71_174_000, 1_000_000, 0.018, 80_000, "0009", "20161110"),
    ("005380", "현대차", 204_758_000, 230_000, 0.020, 700_000, "0015", "19740628"),
    ("000270", "기아", 393_000_000, 105_000, 0.018, 1_200_000, "0015", "19730721"),
    ("068270", "셀트리온", 216_000_000, 180_000, 0.020, 700_000, "0009", "20180209"),
    ("105560", "KB금융", 381_000_000, 110_000, 0.020, 1_000_000, "0021", "20081010"),
    ("055550", "신한지주", 485_000_000, 65_000, 0.018, 1_300_000, "0021", "20010910"),
    ("012450", "한화에어로스페이스", 51_600_000, 850_000, 0.030, 400_000, "0015", "19870528"),
    ("329180", "HD현대중공업", 88_773_000, 450_000, 0.030, 500_000, "0015", "20210917"),
    ("034020", "두산에너빌리티", 640_561_000, 60_000, 0.032, 8_000_000, "0012", "20001025"),
    ("028260", "삼성물산", 169_976_000, 190_000, 0.020, 400_000, "0016", "20141218"),
    ("035420", "NAVER", 158_438_000, 230_000, 0.022, 800_000, "0026", "20081128"),
    ("005490", "POSCO홀딩스", 84_571_000, 300_000, 0.020, 400_000, "0011", "19880610"),
    ("032830", "삼성생명", 200_000_000, 130_000, 0.020, 300_000, "0025", "20100512"),
    ("012330", "현대모비스", 91_795_000, 290_000, 0.018, 300_000, "0015", "19890905"),
    ("086790", "하나금융지주", 285_000_000, 85_000, 0.018, 1_200_000, "0021", "20051212"),
    ("015760", "한국전력", 641_964_000, 35_000, 0.022, 3_000_000, "0017", "19890810"),
    ("006400", "삼성SDI", 80_000_000, 260_000, 0.028, 600_000, "0013", "19790227"),
    ("035720", "카카오", 442_000_000, 55_000, 0.022, 2_500_000, "0026", "20170710"),
    ("009540", "HD한국조선해양", 70_773_000, 320_000, 0.028, 300_000, "0015", "19990824"),
    ("000810", "삼성화재", 47_000_000, 420_000, 0.016, 100_000, "0025", "19750630"),
    ("066570", "LG전자", 163_648_000, 85_000, 0.020, 900_000, "0013", "20020422"),
    ("051910", "LG화학", 70_592_000, 300_000, 0.028, 300_000, "0008", "20010425"),
    ("003550", "LG", 157_000_000, 78_000, 0.016, 400_000, "0026", "19700213"),
    ("017670", "SK텔레콤", 214_790_000, 55_000, 0.012, 500_000, "0020", "19891107"),
    ("034730", "SK", 72_000_000, 190_000, 0.022, 200_000, "0026", "20091111"),
    ("010130", "고려아연", 20_700_000, 850_000, 0.028, 100_000, "0011", "19900713"),
    ("042660", "한화오션", 306_413_000, 95_000, 0.032, 3_500_000, "0015", "19991001"),
    ("011200", "HMM", 1_025_000_000, 21_000, 0.020, 3_000_000, "0019", "19951222"),
    ("010140", "삼성중공업", 880_000_000, 19_000, 0.028, 10_000_000, "0015", "19940527"),
    ("402340", "SK스퀘어", 132_000_000, 190_000, 0.030, 500_000, "0026", "20211129"),
    ("005935", "삼성전자우", 815_975_000, 62_000, 0.016, 2_000_000, "0013", "19890925"),
    ("316140", "우리금융지주", 742_000_000, 20_000, 0.016, 2_500_000, "0021", "20190213"),
)

# The largest KOSDAQ stocks.
_KOSDAQ: tuple[_Row, ...] = (
    ("247540", "에코프로비엠", 97_801_000, 130_000, 0.035, 800_000, "0013", "20190305"),
    ("086520", "에코프로", 133_138_000, 70_000, 0.038, 1_200_000, "0008", "20070720"),
    ("196170", "알테오젠", 53_400_000, 420_000, 0.035, 300_000, "0009", "20141212"),
    ("028300", "HLB", 131_000_000, 55_000, 0.035, 1_500_000, "0009", "19961115"),
    ("000250", "삼천당제약", 23_455_000, 200_000, 0.040, 300_000, "0009", "20000818"),
    ("141080", "리가켐바이오", 36_500_000, 150_000, 0.035, 300_000, "0009", "20130510"),
    ("277810", "레인보우로보틱스", 19_400_000, 280_000, 0.040, 300_000, "0012", "20210203"),
    ("145020", "휴젤", 12_100_000, 320_000, 0.025, 60_000, "0009", "20151224"),
    ("214150", "클래시스", 65_500_000, 55_000, 0.025, 300_000, "0009", "20171222"),
    ("298380", "에이비엘바이오", 50_000_000, 100_000, 0.045, 1_000_000, "0009", "20181219"),
    ("035900", "JYP Ent.", 35_500_000, 65_000, 0.025, 400_000, "0026", "20010831"),
    ("041510", "에스엠", 23_800_000, 100_000, 0.025, 300_000, "0026", "20000427"),
)

# The largest ETFs by net assets, and the most traded ones.
_ETFS: tuple[_Row, ...] = (
    ("069500", "KODEX 200", 150_000_000, 50_000, 0.014, 6_000_000, "", "20021014"),
    ("360750", "TIGER 미국S&P500", 420_000_000, 22_000, 0.010, 3_500_000, "", "20200807"),
    ("459580", "KODEX CD금리액티브(합성)", 8_000_000, 1_060_000, 0.0002, 250_000, "", "20230608"),
    ("133690", "TIGER 미국나스닥100", 36_000_000, 140_000, 0.012, 300_000, "", "20101018"),
    ("379800", "KODEX 미국S&P500", 250_000_000, 20_000, 0.010, 1_500_000, "", "20210409"),
    ("357870", "TIGER CD금리투자KIS(합성)", 90_000_000, 54_000, 0.0002, 200_000, "", "20200707"),
    ("122630", "KODEX 레버리지", 80_000_000, 30_000, 0.028, 15_000_000, "", "20100222"),
    ("102110", "TIGER 200", 60_000_000, 50_000, 0.014, 1_000_000, "", "20080403"),
    ("252670", "KODEX 200선물인버스2X", 1_600_000_000, 1_000, 0.028, 60_000_000, "", "20160922"),
    ("114800", "KODEX 인버스", 200_000_000, 3_800, 0.014, 12_000_000, "", "20090916"),
    ("233740", "KODEX 코스닥150레버리지", 100_000_000, 10_000, 0.032, 12_000_000, "", "20151217"),
    ("229200", "KODEX 코스닥150", 75_000_000, 13_000, 0.016, 3_000_000, "", "20151001"),
    ("091160", "KODEX 반도체", 11_000_000, 45_000, 0.022, 500_000, "", "20060627"),
)

# Preferred shares break the ISIN pattern (삼성전자우 is 005935, its ISIN KR7005931001).
_ISINS = {"005935": "KR7005931001"}


def _listings(market: str, group: str, rows: tuple[_Row, ...]) -> tuple[KnownListing, ...]:
    return tuple(
        KnownListing(
            code,
            name,
            market,
            group,
            shares,
            price,
            sigma,
            volume,
            sector,
            date.fromisoformat(listed),
            _ISINS.get(code, ""),
        )
        for code, name, shares, price, sigma, volume, sector, listed in rows
    )


KNOWN_LISTINGS: tuple[KnownListing, ...] = (
    *_listings("KOSPI", "ST", _KOSPI),
    *_listings("KOSDAQ", "ST", _KOSDAQ),
    *_listings("KOSPI", "EF", _ETFS),
)
