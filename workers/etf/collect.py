"""The ``etf_daily`` and ``etf_backfill`` runs' calls: KIS per ETF, KRX's table per day.

Daily (`collect_daily`): one FHPST02400000 per ETF over every account's REST share, merged
with KRX's all-ETF table (MDCSTAT04301), backfilling ETFs short of history. Repair
(`repair`, weekly): KRX's table per recent session, else KIS's series. A failed KRX table
is not a failed run: the KIS rows stand alone (`krx_table` says when a table has failed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import httpx

from bus.events import EtfDaily, Event
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.errors import KisError, KrxError, KrxProtocolError
from observer.kis.client import KisClient
from observer.kis.etf import from_price, from_series, with_bars
from observer.kis.session import open_account, rate_limits
from observer.krx.client import KrxClient
from workers.etf.gaps import gap_start
from workers.etf.metrics import backfill_due
from workers.etf.rows import from_krx, merged, repaired, replaces

__all__ = ["Collected", "backfills", "collect_daily", "fan_out", "krx_table", "repair"]

log = logging.getLogger(__name__)

_NAV_STEP = Decimal("0.01")  # KRX's and KIS's NAVs have two decimals: a revision moves 0.01


@dataclass(slots=True)
class Collected:
    """What a run fetched: the day's rows, backfilled rows, failures and the calls made."""

    rows: dict[str, EtfDaily] = field(default_factory=dict)  # symbol -> d0's row
    backfilled: list[EtfDaily] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> error
    kis_calls: int = 0
    krx_calls: int = 0
    krx_error: str = ""  # why KRX's table could not be used ("" when it was)
    krx_rows: int = 0  # ETFs KRX's table answered for
    kept: set[str] = field(default_factory=set)  # stored final rows of d0 standing (not sent)
    charted: int = 0  # rows given their daily high and low from FHKST03010100
    chart_failed: dict[str, str] = field(default_factory=dict)  # symbol -> error
    elapsed_s: float = 0.0
    rate_limit_per_s: float = 0.0  # the REST budget the run was given, every account's
    # account alias -> (calls sent, calls KIS refused as over its rate limit: EGW00201)
    refusals: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def achieved_fraction(self) -> float:
        """KIS calls a second, as a fraction of the budget (1.0: at the bound N / rate)."""
        if not self.elapsed_s or not self.rate_limit_per_s:
            return 0.0
        return self.kis_calls / self.elapsed_s / self.rate_limit_per_s


async def krx_table(
    krx: KrxClient, day: date, listed: Collection[str], min_ratio: float, nav_due: bool = False
) -> dict[str, EtfDaily]:
    """MDCSTAT04301 for ``day`` as rows (symbol -> row).

    Raises `KrxError`; `KrxProtocolError` too for a table that is empty or answers for
    fewer than ``min_ratio`` of the ``listed`` ETFs (load shedding, a partial publish): a
    failed table, not a day without ETFs. So is one whose close (and NAV, when
    ``nav_due``: a past day's is published) reads for fewer than ``min_ratio`` of the rows
    answered: the parsers read an unreadable number as missing, so a changed number format
    would otherwise pass as a table of days without trades or NAVs.
    """
    table = {row.symbol: row for row in (from_krx(day, r) for r in await krx.etf_daily(day))}
    wanted = set(listed)
    answered = [row for symbol, row in table.items() if symbol in wanted]
    if not table:
        raise KrxProtocolError(f"KRX's ETF table for {day} is empty")
    if len(answered) < min_ratio * len(listed):
        raise KrxProtocolError(
            f"KRX's ETF table for {day} answers for {len(answered)} of the {len(listed)} ETFs "
            f"listed, below {min_ratio:.0%}"
        )
    for name in ("close", "nav") if nav_due else ("close",):
        read = sum(getattr(row, name) is not None for row in answered)
        if read < min_ratio * len(answered):
            raise KrxProtocolError(
                f"KRX's ETF table for {day} has a readable {name} in {read} of its "
                f"{len(answered)} rows, below {min_ratio:.0%} (its number format changed?)"
            )
    return table


def _nav_due(clock: Clock, day: date) -> bool:
    """Whether ``day``'s NAVs are published: a day before today (KST) (ref-KRX §1.4)."""
    return day < now_utc(clock).astimezone(KST).date()


async def fan_out(
    settings: Settings,
    clock: Clock,
    symbols: Sequence[str],
    work: Callable[[KisClient, str], object],
    out: Collected,
    progress: Callable[[int, int], None],
    alerts: Callable[[Event], object] | None = None,
) -> None:
    """``await work(client, symbol)`` for every symbol, over every account's share.

    ``alerts`` sends the alert of a token cache file that does not read.
    """
    share = settings.etf.share_of
    limits = rate_limits(settings.kis, share)
    out.rate_limit_per_s = sum(
        settings.kis.usable_per_second(a) * settings.kis.process_share[share]
        for a in settings.kis.accounts
    )
    accounts = [
        open_account(settings.kis, a.alias, clock, limits, alerts=alerts)
        for a in settings.kis.accounts
    ]
    queue = list(reversed(symbols))
    done = 0

    async def worker(client: KisClient) -> None:
        nonlocal done
        while queue:
            symbol = queue.pop()
            try:
                await work(client, symbol)  # type: ignore[misc]
            except (KisError, httpx.HTTPError) as exc:
                out.failed[symbol] = f"{type(exc).__name__}: {exc}"[:200]
            done += 1
            progress(done, len(symbols))

    before = time.monotonic()
    try:
        per = settings.etf.requests_per_account
        await asyncio.gather(*(worker(a.client) for a in accounts for _ in range(per)))
    finally:
        out.elapsed_s += time.monotonic() - before
        out.kis_calls += sum(a.client.requests for a in accounts)
        for account in accounts:
            sent, refused = out.refusals.get(account.alias, (0, 0))
            client = account.client
            out.refusals[account.alias] = (sent + client.requests, refused + client.rate_limited)
            await account.aclose()


def backfills(
    symbols: Iterable[str],
    history: Mapping[str, Mapping[date, EtfDaily]],
    window: Sequence[date],
    listed_on: Mapping[str, date | None],
) -> dict[str, date]:
    """The ETFs whose history should be asked for this run, each from when.

    The whole ``window`` (the backfill's sessions before the day, oldest first) when
    `metrics.backfill_due` says so; else from the first missing session when
    `gaps.gap_start` says so.
    """
    starts = {}
    for symbol in symbols:
        stored, listed = history.get(symbol, {}), listed_on.get(symbol)
        if window and backfill_due(stored, window, listed):
            starts[symbol] = window[0]
        elif (start := gap_start(stored, window, listed)) is not None:
            starts[symbol] = start
    return starts


def _window(settings: Settings, start: date, day: date) -> list[date]:
    """The sessions in ``[start, day)``, by the calendar the jobs use."""
    calendar = TradingCalendar(settings.calendar.extra_closed, settings.calendar.extra_open)
    found = []
    current = start if calendar.is_session(start) else calendar.next_session(start)
    while current < day:
        found.append(current)
        current = calendar.next_session(current)
    return found


async def collect_daily(
    settings: Settings,
    clock: Clock,
    symbols: Sequence[str],
    day: date,
    backfill_from: date | None,
    history: Mapping[str, Mapping[date, EtfDaily]],
    krx: KrxClient | None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    chart_from: Mapping[str, date] | None = None,
    backfill: Mapping[str, date] | None = None,
    alerts: Callable[[Event], object] | None = None,
) -> Collected:
    """``day``'s row for every symbol (KIS merged with KRX), backfilling ETFs short of history.

    ``backfill_from``: the first session of a backfill (None: no backfill); ``backfill``:
    the ETFs whose series to ask, each from when (None: `backfills` judges them, no
    listing day known); a stored row of those days without a final NAV comes back with
    the series' (`rows.repaired`), other stored days are not sent again. ``history``
    holds the stored rows up to ``day``: a stored row of ``day`` with a final NAV stands
    against one without (`workers.etf.rows.replaces`; the ETF is in ``kept`` and its
    stored row in ``rows``). ``chart_from``: ETFs whose rows since that day
    need their daily high and low (`workers.etf.metrics.chart_start`); the rows that get
    them are among ``backfilled``. ``alerts``: as `fan_out`'s.

    An ETF whose stored sessions cover less than 80 % of the last ``backfill_sessions`` (since
    its listing, when known) is backfilled through FHPST02440200 (paged, 100 rows a call), not
    on every run while KIS has no more (`workers.etf.metrics.backfill_due`). An ETF missing
    sessions after its first stored one is asked from the first of them
    (`workers.etf.gaps.gap_start`), one whose recent rows lack a final NAV from the first such
    day (``backfill``: `workers.etf.rows.repaired`). An ETF whose stored 52 weeks lack highs and
    lows gets them from FHKST03010100; a failed chart call leaves the rows as they were (range
    basis ``close``), retried by the next run.
    """
    out = Collected()
    table: dict[str, EtfDaily] = {}
    if krx is not None:
        calls = krx.requests
        try:
            ratio = settings.etf.min_list_ratio
            table = await krx_table(krx, day, symbols, ratio, _nav_due(clock, day))
            out.krx_rows = len(table)
        except KrxError as exc:
            out.krx_error = f"{type(exc).__name__}: {exc}"
            log.warning("KRX table for %s: %s; KIS rows only", day, exc)
        out.krx_calls += krx.requests - calls
    unit = settings.etf.net_assets_unit_krw
    if backfill is None:
        window = _window(settings, backfill_from, day) if backfill_from is not None else []
        backfill = backfills(symbols, history, window, {})
    end = day.strftime("%Y%m%d")

    charts = chart_from or {}

    async def one(client: KisClient, symbol: str) -> None:
        quote = await client.etf_price(symbol)
        row = merged(from_price(symbol, day, quote, unit), table.get(symbol))
        stored = history.get(symbol, {}).get(day)
        if stored is not None and not replaces(row, stored):
            row = stored
            out.kept.add(symbol)
        out.rows[symbol] = row
        fresh: dict[date, EtfDaily] = {}
        if backfill_from is not None and symbol in backfill:
            series = await client.etf_nav_daily(symbol, backfill[symbol].strftime("%Y%m%d"), end)
            kept = history.get(symbol, {})  # a stored day's row is richer (KRX's figures)
            for r in (from_series(symbol, r) for r in series):
                if r is None or r.trade_date >= day:
                    continue
                old = kept.get(r.trade_date)
                if old is None:
                    fresh[r.trade_date] = r
                elif not old.nav_final and r.nav_final:  # the NAV that was not out yet
                    fresh[r.trade_date] = repaired(old, r)
        if symbol in charts:
            fresh |= await _charted(client, symbol, charts[symbol], day, fresh, history, out)
        out.backfilled.extend(fresh.values())

    await fan_out(settings, clock, symbols, one, out, progress, alerts)
    return out


async def _charted(
    client: KisClient,
    symbol: str,
    since: date,
    day: date,
    fresh: Mapping[date, EtfDaily],
    history: Mapping[str, Mapping[date, EtfDaily]],
    out: Collected,
) -> dict[date, EtfDaily]:
    """``symbol``'s rows (this run's, else stored) before ``day`` given their high and low."""
    last = day - timedelta(days=1)
    if since > last:
        return {}
    try:
        bars = await client.daily_chart(symbol, since.strftime("%Y%m%d"), last.strftime("%Y%m%d"))
    except (KisError, httpx.HTTPError) as exc:
        out.chart_failed[symbol] = f"{type(exc).__name__}: {exc}"[:200]
        return {}
    changed = with_bars({**history.get(symbol, {}), **fresh}, bars)
    out.charted += len(changed)
    return changed


def _revised(stored: EtfDaily | None, fresh: EtfDaily) -> bool:
    """Whether ``fresh`` (a final NAV) should replace what is stored for its day.

    A NAV missing or moved by a step, another close (a row stored mid-session), or net
    assets, a high or a low the stored row lacks and ``fresh`` has (a first load's series
    rows have none: KRX's table brings them).
    """
    if fresh.nav is None:
        return False
    if stored is None or stored.nav is None or abs(stored.nav - fresh.nav) >= _NAV_STEP:
        return True
    if fresh.close is not None and fresh.close != stored.close:
        return True
    lacking = ("net_assets_krw", "high", "low")
    return any(getattr(stored, f) is None and getattr(fresh, f) is not None for f in lacking)


async def repair(
    settings: Settings,
    clock: Clock,
    symbols: Sequence[str],
    sessions: Sequence[date],
    history: Mapping[str, Mapping[date, EtfDaily]],
    krx: KrxClient | None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    alerts: Callable[[Event], object] | None = None,
) -> Collected:
    """Rows of ``sessions`` whose NAV is missing or revised, from KRX (else KIS's series).

    One KRX call a day for every ETF, over the last ``repair_sessions`` sessions, sending rows
    whose NAV, net assets, high or low are missing (and the fresh row has them), whose NAV is
    revised, or whose close differs (`_revised`); when any day's KRX table fails, KIS's series
    for each ETF instead.
    """
    out = Collected()
    wanted = set(symbols)
    if krx is not None:
        calls = krx.requests
        try:
            for day in sessions:
                ratio = settings.etf.min_list_ratio
                table = await krx_table(krx, day, symbols, ratio, _nav_due(clock, day))
                for symbol, row in table.items():
                    if symbol in wanted and _revised(history.get(symbol, {}).get(day), row):
                        out.backfilled.append(row)
                out.krx_rows += 1
                progress(out.krx_rows, len(sessions))
        except KrxError as exc:
            out.krx_error = f"{type(exc).__name__}: {exc}"
            out.backfilled.clear()
            log.warning("KRX table: %s; repairing through KIS's series", exc)
        out.krx_calls += krx.requests - calls
        if not out.krx_error:
            return out
    start, end = sessions[0].strftime("%Y%m%d"), sessions[-1].strftime("%Y%m%d")

    async def one(client: KisClient, symbol: str) -> None:
        for raw in await client.etf_nav_daily(symbol, start, end):
            row = from_series(symbol, raw)
            if row is not None and _revised(history.get(symbol, {}).get(row.trade_date), row):
                out.backfilled.append(row)

    await fan_out(settings, clock, symbols, one, out, progress, alerts)
    return out
