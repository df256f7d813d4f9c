"""The simulator's listings: the real KRX names first, synthetic ones filling the rest.

The largest real KRX names (`harness.sim.listings_krx`) keep their real codes, names and
ISINs; synthetic stocks and ETFs get codes and names that never collide with them. The
overseas exchanges' listings (for the eleven overseas master files) are all synthetic.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from harness.sim.listings_krx import KNOWN_LISTINGS, KnownListing, isin_for
from harness.sim.price_units import round_tick
from harness.sim.sectors import catalog_code

__all__ = ["Listing", "Overseas", "draw_listings"]

_KNOWN_NAMES = frozenset(x.name for x in KNOWN_LISTINGS)
# Synthetic codes are "NNNNN0"; these numbers are the real listings' codes of that form.
_KNOWN_NUMBERS = sorted({int(x.code[:5]) for x in KNOWN_LISTINGS if x.code.endswith("0")})
_TRADE_VALUE = 10_000_000  # KRW per trade, on average, of a real listing


@dataclass(frozen=True, slots=True)
class Listing:
    """A domestic instrument."""

    symbol: str
    isin: str
    name: str
    market: str  # KOSPI, KOSDAQ, KONEX
    group: str  # ST stock, EF ETF
    listed_shares: int
    start_price: int  # price level on the anchor date
    volatility: float  # daily log-return sigma
    avg_volume: int  # shares per day
    suspended: bool
    administrative: bool
    sector_code: str
    listed_on: date
    known: bool = False  # a real KRX listing: its price stays near its real level
    trade_size: int = 300  # shares per trade on average
    # its market alarm, as the master files' words (`observer.market.after_markets.MEASURES`):
    # "warning" (투자경고) or "risk" (투자위험), () for none
    measures: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Overseas:
    """An overseas instrument of one of the eleven master files."""

    stem: str  # nas, nys, ...
    exchange: str  # NAS, NYS, ...
    symbol: str
    name: str
    name_en: str
    security_type: str
    currency: str
    industry_code: str


_SYLLABLES = tuple(
    [
        "삼성",
        "현대",
        "한국",
        "대한",
        "동양",
        "신한",
        "미래",
        "엘지",
        "코리아",
        "글로벌",
        "바이오",
        "테크",
        "에너지",
        "케미칼",
        "반도체",
        "제약",
        "금융",
        "건설",
        "모빌리티",
        "로보틱스",
        "솔루션",
        "시스템",
        "네트웍스",
        "푸드",
        "엔터",
        "중공업",
        "전자",
        "화학",
    ]
)
_ETF_BRANDS = ("KODEX", "TIGER", "KBSTAR", "ARIRANG", "HANARO", "KOSEF", "ACE", "SOL", "PLUS")
_ETF_THEMES = tuple(
    [
        "200",
        "코스닥150",
        "반도체",
        "2차전지",
        "미국S&P500",
        "미국나스닥100",
        "단기채권",
        "고배당",
        "레버리지",
        "인버스",
        "금선물",
        "원유선물",
        "헬스케어",
        "은행",
        "리츠",
    ]
)
_OVERSEAS = {  # stem: (exchange, listings, currency); US: the real files' counts
    "nas": ("NAS", 3813, "USD"),
    "nys": ("NYS", 2453, "USD"),
    "ams": ("AMS", 262, "USD"),
    "shs": ("SHS", 1700, "CNY"),
    "shi": ("SHI", 20, "CNY"),
    "szs": ("SZS", 2800, "CNY"),
    "szi": ("SZI", 20, "CNY"),
    "tse": ("TSE", 3900, "JPY"),
    "hks": ("HKS", 2600, "HKD"),
    "hnx": ("HNX", 300, "VND"),
    "hsx": ("HSX", 400, "VND"),
}


def draw_listings(rng: np.random.Generator, *, stocks: int, etfs: int) -> dict[str, Listing]:
    """The domestic listings by code, drawn from ``rng``.

    ``stocks`` and ``etfs`` count the real ones among them: the real stocks and ETFs come
    first (as many as fit), synthetic ones fill the rest.
    """
    drawer = _Drawer()
    drawer.draw(rng, stocks, etfs)
    return drawer.listings


def draw_overseas(rng: np.random.Generator) -> dict[str, list[Overseas]]:
    """The overseas listings by master-file stem, drawn from ``rng``, symbols unique."""
    return _Drawer().overseas(rng)


class _Drawer:
    """The listings drawn so far, and the names they took."""

    def __init__(self) -> None:
        self.listings: dict[str, Listing] = {}
        self._names: set[str] = set()

    def draw(self, rng: np.random.Generator, stocks: int, etfs: int) -> None:
        """Draw the domestic listings: real stocks, synthetic stocks, real ETFs, synthetic ETFs."""
        known_stocks = [x for x in KNOWN_LISTINGS if x.group == "ST"][:stocks]
        known_etfs = [x for x in KNOWN_LISTINGS if x.group == "EF"][:etfs]
        synthetic = stocks - len(known_stocks)
        known_kospi = sum(x.market == "KOSPI" for x in known_stocks)
        kospi = min(synthetic, max(0, stocks * 36 // 100 - known_kospi))
        markets = ["KOSPI"] * kospi + ["KONEX"] * min(synthetic - kospi, stocks * 4 // 100)
        markets += ["KOSDAQ"] * (synthetic - len(markets))
        pool = np.setdiff1d(np.arange(100, 99999), _KNOWN_NUMBERS, assume_unique=True)
        codes = rng.choice(pool, size=synthetic + etfs - len(known_etfs), replace=False)
        for known in known_stocks:
            self._add_known(known)
        for n, market in enumerate(markets):
            self._add(rng, f"{int(codes[n]):05d}0", market, "ST")
        for known in known_etfs:
            self._add_known(known)
        for n in range(etfs - len(known_etfs)):
            code = f"{int(codes[synthetic + n]):05d}0"
            if rng.random() < 0.17:  # newer ETF codes carry a letter, e.g. 0120J0
                code = code[:4] + "ABCDEFGHJKLMNPQRSTUVWXYZ"[int(rng.integers(24))] + code[5]
            self._add(rng, code, "KOSPI", "EF")

    def _add_known(self, known: KnownListing) -> None:
        price = round_tick(known.price)
        self._names.add(known.name)
        self.listings[known.code] = Listing(
            symbol=known.code,
            isin=known.isin or isin_for(known.code),
            name=known.name,
            market=known.market,
            group=known.group,
            listed_shares=known.listed_shares,
            start_price=price,
            volatility=known.volatility,
            avg_volume=known.avg_volume,
            suspended=False,
            administrative=False,
            sector_code=known.sector_code,
            listed_on=known.listed_on,
            known=True,
            trade_size=max(1, round(_TRADE_VALUE / price)),
        )

    def _synthetic_name(self, rng: np.random.Generator, group: str) -> str:
        """A made-up name; never a real listing's (삼성 + 전자 is drawn again)."""
        while True:
            if group == "EF":
                name = f"{_ETF_BRANDS[int(rng.integers(len(_ETF_BRANDS)))]} " + (
                    f"{_ETF_THEMES[int(rng.integers(len(_ETF_THEMES)))]}"
                )
            else:
                parts = rng.choice(len(_SYLLABLES), size=2, replace=False)
                name = _SYLLABLES[int(parts[0])] + _SYLLABLES[int(parts[1])]
            if name not in _KNOWN_NAMES:
                return name

    def _add(self, rng: np.random.Generator, code: str, market: str, group: str) -> None:
        name = self._synthetic_name(rng, group)
        if group == "EF":
            price = int(rng.lognormal(math.log(12000), 0.5))
            volatility = float(rng.uniform(0.004, 0.02))
        else:
            # With the real listings, about 1,050 of 2,500 stocks close at or above 4,000 KRW.
            price = int(rng.lognormal(math.log(2800), 1.2))
            volatility = float(rng.uniform(0.01, 0.045))
        if name in self._names:
            name = f"{name} {code}"
        self._names.add(name)
        self.listings[code] = Listing(
            symbol=code,
            isin=f"KR7{code}00{int(rng.integers(10))}",
            name=name,
            market=market,
            group=group,
            listed_shares=int(rng.lognormal(math.log(30_000_000), 1.3)) // 1000 * 1000,
            start_price=round_tick(min(max(price, 300), 900_000)),
            volatility=volatility,
            avg_volume=int(rng.lognormal(math.log(150_000), 1.2)) + 1000,
            suspended=group == "ST" and rng.random() < 0.01,
            administrative=group == "ST" and rng.random() < 0.015,
            sector_code=f"{int(rng.integers(1, 30)):04d}" if market != "KONEX" else "",
            listed_on=date(2000, 1, 4) + timedelta(days=int(rng.integers(9000))),
            measures=_alarm(code) if group == "ST" else (),
        )

    def overseas(self, rng: np.random.Generator) -> dict[str, list[Overseas]]:
        """The overseas listings of every master-file stem, symbols unique across them.

        Each stem's draws are made as arrays: 18,000 listings drawn one call at a time would
        take 0.8 s of every simulator's start, and of every test module that builds a market.
        """
        result: dict[str, list[Overseas]] = {}
        seen: set[str] = set()
        for stem, (exchange, count, currency) in _OVERSEAS.items():
            symbols = _unique_symbols(rng, count, currency == "USD", seen)
            etps = rng.random(count) < 0.1
            draws = rng.integers(100, 9999, size=count)
            result[stem] = [
                Overseas(
                    stem,
                    exchange,
                    symbol,
                    f"{symbol} 주식회사",
                    f"{symbol} CORP",
                    "1" if stem in ("shi", "szi") else ("3" if etp else "2"),
                    currency,
                    catalog_code(int(draw)),
                )
                for symbol, etp, draw in zip(symbols, etps.tolist(), draws.tolist(), strict=True)
            ]
        return result


_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def _unique_symbols(
    rng: np.random.Generator, count: int, letters: bool, seen: set[str]
) -> list[str]:
    """``count`` symbols not in ``seen`` (which takes them): 1-5 letters, or 6 digits."""
    symbols: list[str] = []
    while len(symbols) < count:
        wanted = 2 * (count - len(symbols))
        if letters:
            lengths = rng.integers(1, 6, size=wanted)
            grid = _LETTERS[rng.integers(0, 26, size=(wanted, 5))]
            drawn = [
                "".join(row[:n]) for row, n in zip(grid.tolist(), lengths.tolist(), strict=True)
            ]
        else:
            drawn = [f"{n:06d}" for n in rng.integers(1, 999999, size=wanted).tolist()]
        for symbol in drawn:
            if symbol not in seen and len(symbols) < count:
                seen.add(symbol)
                symbols.append(symbol)
    return symbols


def _alarm(code: str) -> tuple[str, ...]:
    """A synthetic stock's market alarm: 1 % under 투자경고, 0.3 % 투자위험.

    From its code, not the listings' generator: every other draw stays as it was.
    """
    draw = zlib.crc32(code.encode()) % 1000
    return ("risk",) if draw < 3 else ("warning",) if draw < 13 else ()
