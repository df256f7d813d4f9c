"""Build the day's universe: candidates from the domestic masters, metrics from daily charts.

Candidates are KOSPI and KOSDAQ stocks (``ST``) not halted (nor administrative issues, when
configured), from the master-file worker's archives (`stale_masters` names old ones); a
malformed record counts as a failed candidate (``Built.malformed``), never one left out
unsaid. One daily chart (FHKST03010100) per candidate gives its `Metrics`; members close at
or above the threshold, ranked by market cap (ties by code); one CTPF1002R per member
records its Nextrade standing. `market_shortfall` and `shortfall` refuse what must not
become the day's universe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import msgspec

from bus.events import Event, UniverseMember
from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock, SystemClock
from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import Timeline
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.config.workers import UniverseSettings
from observer.errors import MasterFileError
from observer.kis.client import KisClient
from observer.kis.daily_bars import DailyBar
from observer.kis.master import DomesticRows, download_master, extract_single, parse_domestic
from observer.kis.rate_alert import RateWatch
from observer.kis.session import master_http, open_account, rate_limits
from observer.reference.instruments import current_archive, installed_ns, master_file
from workers.universe import SOURCE
from workers.universe.asking import ask_each

__all__ = [
    "MARKETS",
    "Built",
    "Metrics",
    "UniverseCandidate",
    "build_universe",
    "candidates",
    "market_shortfall",
    "masters",
    "metrics",
    "shortfall",
    "stale_masters",
]

log = logging.getLogger(__name__)

WINDOW = 21  # sessions fetched: 20 volumes, and 14 true ranges need 15 closes
MARKETS = ("KOSPI", "KOSDAQ")
# A market's candidates below this share of the previous universe's were lost by its master
# (a damaged file, a layout KIS changed), not by the exchange: listings never halve overnight.
MIN_MARKET_SHARE = 0.5
_BIGINT_MAX = 2**63 - 1  # market_cap's column
_NUMERIC_MAX = Decimal(10**16)  # atr_14's column, NUMERIC(24,8)


@dataclass(frozen=True, slots=True)
class UniverseCandidate:
    """A stock that may join the universe."""

    symbol: str
    name: str
    market: str
    listed_shares: int
    measures: tuple[str, ...] = ()  # the market measures the masters list it under


@dataclass(frozen=True, slots=True)
class Metrics:
    """What the daily chart says of one candidate.

    Over the 21 sessions up to the previous one: ``prev_close`` (no bar on that day: did not
    trade, left out); ``avg_volume_20d``, the mean volume of the last 20 sessions (fewer for new
    listings); ``atr_14``, the mean true range of the last 14 sessions, true range being
    ``max(high - low, |high - previous close|, |low - previous close|)``; ``market_cap``,
    ``prev_close`` times the master file's listed shares.
    """

    prev_close: int
    avg_volume_20d: int
    atr_14: Decimal


@dataclass(slots=True)
class Built:
    """A built universe and how it went."""

    trade_date: date
    based_on: date
    members: list[UniverseMember]
    candidates: int
    below_threshold: int = 0
    not_traded: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> error, failed twice
    malformed: set[str] = field(default_factory=set)  # of `failed`: its master record unread
    retried: int = 0  # candidates asked a second time after the first pass failed them
    candidates_by_market: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    elapsed_s: float = 0.0
    rate_limit_per_s: float = 0.0
    masters_installed: dict[str, int] = field(default_factory=dict)  # market -> ns
    nxt_unknown: dict[str, str] = field(default_factory=dict)  # member -> why not known
    nxt_not_asked: str = ""  # why no member's Nextrade standing was asked ("": asked)

    @property
    def excluded(self) -> int:
        """Candidates that are not members, for any reason."""
        return self.candidates - len(self.members)

    @property
    def achieved_fraction(self) -> float:
        """Requests per second achieved, as a fraction of the limit the job was given."""
        if not self.elapsed_s or not self.rate_limit_per_s:
            return 0.0
        return self.requests / self.elapsed_s / self.rate_limit_per_s


async def _domestic(settings: Settings, market: str, clock: Clock) -> tuple[DomesticRows, int]:
    """The master-file worker's archive in use, or a fresh download when there is none.

    With when it was installed (ns): the worker's record, else the archive's time; a fresh
    download is installed now.
    """
    data_dir = Path(settings.paths.data_dir)
    file = master_file(market)
    path = current_archive(data_dir, file)
    if path.exists():
        installed = installed_ns(data_dir, file) or path.stat().st_mtime_ns
    else:
        path = data_dir / "universe" / f".{file.name}.download"
        path.parent.mkdir(parents=True, exist_ok=True)
        async with master_http(settings.kis) as http:
            await download_master(http, file.name, path)
        installed = clock.now_ns()
    try:
        data = extract_single(path.read_bytes(), file.member)
        return parse_domestic(data, market), installed  # type: ignore[arg-type]
    finally:
        if path.name.endswith(".download"):
            path.unlink(missing_ok=True)


async def masters(
    settings: Settings, clock: Clock
) -> tuple[list[UniverseCandidate], dict[str, int], dict[str, str]]:
    """KOSPI and KOSDAQ stocks that trade, by code, and when each master was installed.

    Third, the records that cannot be read (symbol -> why): any may be a stock that trades.
    """
    found = []
    installed = {}
    malformed: dict[str, str] = {}
    for market in MARKETS:
        listings, installed[market] = await _domestic(settings, market, clock)
        listed = {x.symbol for x in listings}
        for record in listings.malformed:
            if record.symbol not in listed:
                malformed[record.symbol] = f"malformed {market} master record: {record}"
        for x in listings:
            if x.security_group != "ST" or x.kind != "stock" or x.halted:
                continue  # an ETN by its product type too, whatever its group code says
            if x.administrative and settings.universe.exclude_administrative:
                continue
            found.append(UniverseCandidate(x.symbol, x.name, market, x.listed_shares, x.measures))
    if not found:
        raise MasterFileError("the domestic masters list no stock")
    return sorted(found, key=lambda c: c.symbol), installed, malformed


async def candidates(settings: Settings, clock: Clock | None = None) -> list[UniverseCandidate]:
    """KOSPI and KOSDAQ stocks that trade, by code."""
    return (await masters(settings, clock or SystemClock()))[0]


def stale_masters(
    installed: dict[str, int], timeline: Timeline, day: date
) -> tuple[datetime, list[str]]:
    """The bound the day's masters must be newer than, and those that are not.

    A master installed before the previous session closed cannot hold what that session
    changed (a halt, a 관리종목 designation): the bound is that close, as the day's phases
    place it (a late day's shifted close included).
    """
    previous = timeline.calendar.previous_session(day)
    close = next(at for at, phase in timeline.schedule.starts(previous) if phase is Phase.SHUTDOWN)
    bound_ns = int(close.timestamp()) * 10**9
    return close, sorted(m for m, ns in installed.items() if ns < bound_ns)


def metrics(bars: Sequence[DailyBar], prev: date) -> Metrics | None:
    """Metrics from daily bars (oldest first); None if there is no bar on ``prev``."""
    if not bars or bars[-1].day != prev:
        return None
    closes = [b.close for b in bars]
    volumes = [b.volume for b in bars[-20:]]
    highs = [b.high for b in bars[1:]]
    lows = [b.low for b in bars[1:]]
    ranges = [
        max(high - low, abs(high - before), abs(low - before))
        for high, low, before in zip(highs, lows, closes[:-1], strict=True)
    ][-14:]
    atr = Decimal(sum(ranges)) / len(ranges) if ranges else Decimal(0)
    return Metrics(closes[-1], sum(volumes) // len(volumes), atr.quantize(Decimal("0.01")))


async def build_universe(
    settings: Settings,
    clock: Clock,
    calendar: TradingCalendar,
    day: date,
    progress: Callable[[int, int], None] = lambda done, total: None,
    *,
    before: Mapping[str, int] | None = None,
    retry_until_ns: int | None = None,
    alerts: Callable[[Event], object] | None = None,
    rates: AlertBook | None = None,
) -> Built:
    """Fetch, compute, filter and rank.

    Raises if nothing could be fetched at all, or if a market's candidates fall short of
    ``before`` (the previous universe's candidates per market; `market_shortfall`). The
    candidates whose call failed are asked once more after the first pass, unless the clock
    has reached ``retry_until_ns`` (the day's warm-up: Track A is waiting for the universe).
    ``alerts`` sends the alert of a token cache file that does not read; ``rates``, when given,
    judges KIS's rate-limit refusals of the build's calls once its accounts are closed
    (`RateWatch`).

    Calls are spread over every account, each paced by its limiter (`ask_each`); a candidate
    whose call failed is asked once more after the others, and those failing again are in
    ``Built.failed``. The members' Nextrade standing follows (`_nxt_standing`).
    """
    prev = calendar.previous_session(day)
    window = calendar.sessions_before(day, WINDOW)
    pool, installed, malformed = await masters(settings, clock)
    # A record that cannot be read counts as a candidate that failed: named, never dropped.
    built = Built(day, prev, [], len(pool) + len(malformed), masters_installed=installed)
    built.failed.update(malformed)
    built.malformed = set(malformed)
    built.candidates_by_market = {m: sum(c.market == m for c in pool) for m in MARKETS}
    reason = market_shortfall(built.candidates_by_market, before or {})
    if reason is not None:
        raise MasterFileError(reason)  # before thousands of calls for a universe not kept
    limits = rate_limits(settings.kis, settings.universe.share_of)
    built.rate_limit_per_s = sum(
        settings.kis.usable_per_second(a) * settings.kis.process_share[settings.universe.share_of]
        for a in settings.kis.accounts
    )
    accounts = [
        open_account(settings.kis, a.alias, clock, limits, alerts=alerts)
        for a in settings.kis.accounts
    ]
    clients = [account.client for account in accounts]
    per_account = settings.universe.requests_per_account
    start, end = window[0].strftime("%Y%m%d"), prev.strftime("%Y%m%d")

    async def chart(client: KisClient, symbol: str) -> Metrics | None:
        return metrics(await client.daily_bars(symbol, start, end), prev)

    started = time.monotonic()
    try:
        charts = await ask_each(
            clients,
            [c.symbol for c in pool],
            chart,
            per_account=per_account,
            clock=clock,
            retry_until_ns=retry_until_ns,
            progress=progress,
        )
        built.requests, built.retried = charts.requests, charts.retried
        built.failed.update(charts.failed)
        built.members = _ranked(built, pool, charts.answers, settings.universe.min_prev_close)
        await _nxt_standing(built, clients, per_account, clock, retry_until_ns, progress)
    finally:
        built.elapsed_s = time.monotonic() - started
        for account in accounts:
            await account.aclose()
        if rates is not None:
            RateWatch(settings.kis, accounts, SOURCE).judge(rates)
    if built.failed:
        log.warning(
            "%d candidates failed (their daily chart%s, or a malformed master record) and are "
            "left out: %s",
            len(built.failed),
            " twice" if built.retried else "",
            "; ".join(f"{s} ({e})" for s, e in sorted(built.failed.items())),
        )
    return built


def _ranked(
    built: Built,
    pool: Sequence[UniverseCandidate],
    found: Mapping[str, Metrics | None],
    min_prev_close: int,
) -> list[UniverseMember]:
    """The members: candidates with a bar on the previous session, at or above the close.

    Counts the candidates left out in ``built`` (absurd figures count as failed).
    """
    ranked = []
    for c in pool:
        if c.symbol in built.failed:
            continue
        m = found.get(c.symbol)
        if m is None:
            built.not_traded += 1
        elif m.prev_close * c.listed_shares > _BIGINT_MAX or m.atr_14 >= _NUMERIC_MAX:
            # Each figure fits its column, but not what is made of them: the symbol fails
            # rather than the universe event the database would refuse whole.
            built.failed[c.symbol] = f"absurd figures: close {m.prev_close}, atr {m.atr_14}"
        elif m.prev_close < min_prev_close:
            built.below_threshold += 1
        else:
            ranked.append((c, m))
    ranked.sort(key=lambda cm: (-cm[1].prev_close * cm[0].listed_shares, cm[0].symbol))
    return [
        UniverseMember(
            symbol=c.symbol,
            market=c.market,
            rank=rank,
            prev_close=m.prev_close,
            market_cap=m.prev_close * c.listed_shares,
            name=c.name,
            avg_volume_20d=m.avg_volume_20d,
            atr_14=m.atr_14,
            measures=c.measures,
        )
        for rank, (c, m) in enumerate(ranked, start=1)
    ]


async def _nxt_standing(
    built: Built,
    clients: Sequence[KisClient],
    per_account: int,
    clock: Clock,
    retry_until_ns: int | None,
    progress: Callable[[int, int], None],
) -> None:
    """Each member's Nextrade standing (CTPF1002R) as KIS answers it this morning.

    KIS keeps no history of it: the day's universe is its record, so it is asked for
    today's universe alone (another day's would record today's answer as that day's). A
    member failing twice (the second try only before ``retry_until_ns``, as the charts')
    stays unknown (``None``), named in ``Built.nxt_unknown``. A paper account cannot ask
    (the TR is real-only): every member stays unknown, said in ``Built.nxt_not_asked``.
    """
    today = datetime.fromtimestamp(clock.now_ns() / 1e9, KST).date()
    if not clients[0].offers_nxt_status:
        built.nxt_not_asked = "paper accounts: KIS answers CTPF1002R on real accounts alone"
    elif built.trade_date != today:
        built.nxt_not_asked = (
            f"built on {today}: KIS answers the standing of today, not of {built.trade_date}"
        )
    if built.nxt_not_asked:
        log.info("Nextrade standing not asked (%s); recorded as unknown", built.nxt_not_asked)
        return
    symbols = [m.symbol for m in built.members]
    done = built.requests

    def step(count: int, total: int) -> None:
        progress(done + count, done + total)

    asked = await ask_each(
        clients,
        symbols,
        lambda client, symbol: client.nxt_status(symbol),
        per_account=per_account,
        clock=clock,
        retry_until_ns=retry_until_ns,
        progress=step,
    )
    built.requests += asked.requests
    built.nxt_unknown = asked.failed
    built.members = [
        msgspec.structs.replace(m, nxt_eligible=status.eligible, nxt_halted=status.halted)
        if (status := asked.answers.get(m.symbol)) is not None
        else m
        for m in built.members
    ]


def market_shortfall(found: Mapping[str, int], before: Mapping[str, int]) -> str | None:
    """Why the candidates per market cannot make the day's universe (None: they can).

    A market without candidates, or with fewer than `MIN_MARKET_SHARE` of ``before`` (the
    previous universe's), lost them to its master: a universe of the other market alone
    would pass every other check and leave Track A without half the exchange all day.
    """
    for market in MARKETS:
        count, earlier = found.get(market, 0), before.get(market, 0)
        if count == 0:
            return f"the {market} master lists no stock that may join the universe (damaged?)"
        if count < earlier * MIN_MARKET_SHARE:
            return (
                f"the {market} master lists {count} candidates, fewer than "
                f"{MIN_MARKET_SHARE:.0%} of the previous universe's {earlier} (damaged?)"
            )
    return None


def shortfall(built: Built, limits: UniverseSettings) -> str | None:
    """Why ``built`` must not become the day's universe (None: it may).

    More than ``max_failed_pct`` of the candidates failed, or more than
    ``max_not_traded_pct`` have no bar on the previous session. Suspended stocks are no
    candidates, so on a real session nearly every candidate has that bar: when many lack it,
    the session's bars are missing (a day the market was closed counted as a session, or a
    chart source answering without them), and the universe would shrink for no market reason.
    """
    total = max(built.candidates, 1)
    failed_pct = 100 * len(built.failed) / total
    if failed_pct > limits.max_failed_pct:
        sample = "; ".join(f"{s}: {e}" for s, e in list(built.failed.items())[:3])
        return (
            f"{len(built.failed)} of {built.candidates} candidates failed "
            f"({failed_pct:.1f}% > {limits.max_failed_pct:g}%): {sample}"
        )
    missing_pct = 100 * built.not_traded / total
    if missing_pct > limits.max_not_traded_pct:
        return (
            f"{built.not_traded} of {built.candidates} candidates have no daily bar on "
            f"{built.based_on} ({missing_pct:.1f}% > {limits.max_not_traded_pct:g}%): the "
            "previous session's bars are missing (was the market closed that day, or did the "
            "chart source answer without them?)"
        )
    return None
