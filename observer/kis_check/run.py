"""The whole check: token, REST, WebSocket sessions, the minute-bar label, the master host.

Read-only: nothing is written but the token cache the product already keeps (when no valid
token was cached), and nothing is sent that changes the account (a session's registrations,
the registration count's too, are released before it closes).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from observer.calendar.clock import Clock
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import Venues, venues_from
from observer.config.tree import Settings
from observer.errors import KisError
from observer.kis.client import KisClient
from observer.kis.endpoints import ENDPOINTS
from observer.kis.feeds import venue_of
from observer.kis.keepalive import PingpongAnswer, silence_limit_s
from observer.kis.parse import decode_json
from observer.kis.realtime import EXPECTED_TRS, STATUS_TRS, VI_TRS
from observer.kis.schemas import REALTIME_LAYOUTS, MinuteBarRow
from observer.kis.session import master_http, open_account, rate_limits
from observer.kis.settings import KisSettings
from observer.kis.stream_owner import StreamSettings
from observer.kis_check.after_markets import (
    MeasuredTarget,
    etf_after_market_finding,
    measured_after_market_finding,
)
from observer.kis_check.budget import check_budget
from observer.kis_check.chain import chain_finding
from observer.kis_check.counting import count_registrations, counting_finding
from observer.kis_check.investor import NONE_STORED, StoredPostings
from observer.kis_check.layouts import generation
from observer.kis_check.master_host import check_master_host
from observer.kis_check.minute_label import read_label
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report
from observer.kis_check.rest import Targets, check_rest
from observer.kis_check.session import (
    PAPER_SUBSCRIBED,
    SIDE_FEEDS,
    SUBSCRIBED,
    SessionSeen,
    watch_session,
)
from observer.kis_check.session_codes import session_code_finding
from observer.kis_check.time_trades import time_trades_finding
from observer.kis_check.token import check_token

__all__ = ["MASTER_PROBE", "Configured", "run_check"]

MASTER_PROBE = "kospi_code.mst.zip"  # the first file the master-file job asks for
_KST = timezone(timedelta(hours=9))
_NS = 1_000_000_000
_NO_MEASURED = (
    MeasuredTarget("NXT", unread="no database asked"),
    MeasuredTarget("KRX", unread="no database asked"),
)
# Nextrade's bars outside KRX's 09:00-15:30 tell whether NX bars cover its own hours.
_KRX_OPEN, _KRX_CLOSE = "090000", "153000"
_AFTER_MARKET_MEASURED = "154000"  # ten minutes into Nextrade's after-market


@dataclass(frozen=True, slots=True)
class Configured:
    """What the product is configured to assume, which the check's findings are held against."""

    pingpong_answer: PingpongAnswer = StreamSettings().pingpong_answer
    silence_s: float = StreamSettings().silence_s
    silence_factor: float = StreamSettings().silence_factor
    bar_label: Literal["start", "end"] = "start"
    master_head: Literal["auto", "never"] = "auto"
    investor_etc_cls_code: Literal["", "1"] = ""
    vi_feed: Literal["off", "krx", "combined"] = "off"
    volume_chain: bool = True
    trades: bool = True  # [gap_recovery] trades
    # [venues]: each trade's MARKET_CLS_CODE is held against their hours
    venues: Venues = field(
        default_factory=lambda: venues_from(
            VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings())
        )
    )

    @classmethod
    def of(cls, settings: Settings) -> Configured:
        """The switches of ``settings`` (Track B's PINGPONG, gap recovery's bar label, ...)."""
        return cls(
            pingpong_answer=settings.kis.stream.pingpong_answer,
            silence_s=settings.kis.stream.silence_s,
            silence_factor=settings.kis.stream.silence_factor,
            bar_label=settings.gap_recovery.bar_label,
            master_head=settings.master_file.head,
            investor_etc_cls_code=settings.flows.investor_etc_cls_code,
            vi_feed=settings.track_b.vi_feed,
            volume_chain=settings.track_b.volume_chain,
            trades=settings.gap_recovery.trades,
            venues=venues_from(settings.venues, timeline_from(settings.phases, settings.calendar)),
        )


async def run_check(
    kis: KisSettings,
    alias: str,
    targets: Targets,
    seconds: float,
    clock: Clock,
    *,
    share: float | None = None,
    configured: Configured = Configured(),
    budget_s: float = 0.0,
    postings: StoredPostings = NONE_STORED,
    measured: tuple[MeasuredTarget, ...] = _NO_MEASURED,
) -> Report:
    """Check account ``alias`` against its configured environment; never raises for KIS.

    ``share``: the fraction of the account's REST budget used (default: the ``manual``
    process share, so that the check can run beside the daemon). ``configured``: the switches
    the findings are held against; a mismatch names the one to change. ``budget_s``: that
    long at the account's whole REST budget first (`check_budget`; 0: not measured).
    ``postings``: today's investor postings of ``targets.symbol`` as stored, which KIS's
    answer is held against (none: nothing to hold them against). ``measured``: for each
    venue, the stock under a market measure whose after-market trades are looked for
    (`measured_target`; none: not measured).

    Raises
    ------
    ConfigError
        The account is not configured or its credentials are missing or refused.
    """
    report = Report(
        account=alias, environment=kis.environment, symbol=targets.symbol, seconds=seconds
    )
    limits = rate_limits(kis, "manual", share=share)
    account = open_account(kis, alias, clock, limits, issuer=True)
    try:
        key = await check_token(account.tokens, Path(kis.token_dir), alias, kis.environment, report)
        if key is None:
            return report
        if budget_s:
            await check_budget(kis, alias, targets.symbol, budget_s, clock, report)
        today = datetime.fromtimestamp(clock.now_ns() / _NS, _KST).date()
        targets = Targets(targets.symbol, targets.etf, targets.exchange, targets.overseas, today)
        await check_rest(account.client, targets, report, clock.now_ns, postings)
        if not account.client.paper:
            await _etc_code_finding(account.client, targets, report, configured)
        subscribed = PAPER_SUBSCRIBED if account.client.paper else (*SUBSCRIBED, *SIDE_FEEDS)
        # The VI TRs under the business date too (Track B's key, `[track_b] vi_feed`).
        day = f"{today:%Y%m%d}"
        keyed = () if account.client.paper else tuple((tr, day) for tr in VI_TRS.values())
        seen = await watch_session(
            account.ws_url,
            key,
            targets.symbol,
            seconds,
            clock,
            configured.pingpong_answer,
            subscribed,
            keyed,
        )
        _session_findings(seen, subscribed, report, configured)
        chain_finding(seen.chains, report, configured.volume_chain)
        session_code_finding(seen.coded, configured.venues, report)
        await time_trades_finding(
            account.client, targets.symbol, seen.chains, report, configured.trades
        )
        if keyed:
            _vi_key_finding(seen, (_vi_tr(configured), day), targets.symbol, report, configured)
        # Its own session, once the first has closed (one per app key).
        counted = await count_registrations(account.ws_url, key, configured.pingpong_answer)
        counting_finding(counted, report)
        if not account.client.paper:
            await _nextrade_bars(account.client, targets.symbol, clock, report)
            now = datetime.fromtimestamp(clock.now_ns() / _NS, _KST)
            await etf_after_market_finding(
                account.client, targets.etf, configured.venues, now, report
            )
            for target in measured:
                await measured_after_market_finding(
                    account.client, target, configured.venues, now, report
                )
        bars = await _bars_to(account.client, targets.symbol, clock, report, seen)
        _label_finding(seen, bars, report, configured.bar_label)
    finally:
        await account.aclose()
    async with master_http(kis) as http:
        await check_master_host(http, MASTER_PROBE, report, configured.master_head)
    return report


def _session_findings(
    seen: SessionSeen, subscribed: Sequence[str], report: Report, configured: Configured
) -> None:
    """The subscriptions, each TR's layout by width, the PINGPONG interval and survival."""
    if not seen.opened:
        report.add("websocket", MISMATCH, f"no session: {seen.close_reason}")
        return
    for tr_id in subscribed:
        if tr_id in seen.refusals and _taken_otherwise(seen, tr_id):
            # A VI TR KIS takes under the business date alone: its row says so.
            why = f"refused under the symbol ({seen.refusals[tr_id]}), taken under the date"
            report.add(tr_id, NOT_MEASURED, why)
            continue
        if tr_id in seen.refusals:
            report.add(tr_id, MISMATCH, f"subscription refused: {seen.refusals[tr_id]}")
            continue
        widths = seen.widths.get(tr_id)
        if not widths:
            report.add(tr_id, NOT_MEASURED, f"no record received ({_quiet(tr_id)})")
            continue
        known = {w: generation(tr_id, w) for w in widths}
        unknown = sorted(w for w, g in known.items() if g is None)
        layout = ", ".join(f"{g or '?'} ({w} fields)" for w, g in sorted(known.items()))
        refused = seen.refused_count[tr_id]
        records = sum(widths.values())
        if unknown:
            expected = ", ".join(str(w) for w in REALTIME_LAYOUTS.get(tr_id, {}))
            report.add(
                tr_id, MISMATCH, f"record width {unknown} is no known layout ({expected})", layout
            )
        elif refused:
            errors = "; ".join(seen.refused.get(tr_id, []))
            report.add(
                tr_id, MISMATCH, f"{refused} of {records} record(s) refused: {errors}", layout
            )
        else:
            ranks = _ranks_words(seen.ranks.get(tr_id))
            report.add(tr_id, OK, f"{records} record(s) decoded{ranks}", layout)
    _pingpong_finding(seen, report, configured)


def _ranks_words(ranks: Counter[str] | None) -> str:
    """How a brokers' TR sent its ranks, for its row (`unfilled_ranks`).

    What KIS sends for a rank no broker fills is UNCONFIRMED: empty or zeros are left out, a
    broker with 0 shares is stored.
    """
    if not ranks:
        return ""
    ways = ("filled", "empty", "zeros", "untraded")
    return "; ranks: " + ", ".join(f"{ranks[way]} {way}" for way in ways if ranks[way])


async def _etc_code_finding(
    client: KisClient, targets: Targets, report: Report, configured: Configured
) -> None:
    """FHPTJ04160001 asked with FID_ETC_CLS_CODE blank and "1" (KIS's sources differ).

    The configured value must answer rows; if only the other does, it names the setting.
    """
    day = (targets.today - timedelta(days=1)).strftime("%Y%m%d")
    rows: dict[str, int | str] = {}
    for code in ("", "1"):
        try:
            rows[code] = len(await client.investor_flows(targets.symbol, day, "KRX", code))
        except KisError as exc:
            rows[code] = f"{type(exc).__name__}: {exc}"[:120]
    shown = ", ".join(f"{code or 'blank'}: {n}" for code, n in rows.items())
    item = "FHPTJ04160001 FID_ETC_CLS_CODE"
    mine, other = (
        configured.investor_etc_cls_code,
        "1" if configured.investor_etc_cls_code == "" else "",
    )
    if isinstance(rows[mine], int) and rows[mine]:
        report.add(item, OK, f"rows as configured ({shown})")
    elif isinstance(rows[other], int) and rows[other]:
        report.add(
            item,
            MISMATCH,
            f"rows only with {other or 'blank'} ({shown}): set [flows] investor_etc_cls_code "
            f"= {other!r}",
        )
    else:
        report.add(item, NOT_MEASURED, f"no rows either way ({shown})")


def _taken_otherwise(seen: SessionSeen, tr_id: str) -> bool:
    """Whether ``tr_id`` was taken under another key (a VI TR under the business date)."""
    return any(answered.startswith(f"{tr_id} ") for answered in seen.answers)


def _vi_tr(configured: Configured) -> str:
    """The VI TR Track B registers (KRX's when the feed is off)."""
    return VI_TRS["combined" if configured.vi_feed == "combined" else "KRX"]


def _vi_key_finding(
    seen: SessionSeen,
    vi: tuple[str, str],
    symbol: str,
    report: Report,
    configured: Configured,
) -> None:
    """Whether KIS takes the business date as a VI TR's key, and sends the market's VIs so.

    KIS's workbook describes that key, its example shows a symbol: the session registered
    both. VIs of stocks other than the symbol can only have come under the date.
    """
    tr_id, day = vi
    item = f"{tr_id} key"
    feed = f"[track_b] vi_feed = {configured.vi_feed!r}"
    if (refused := seen.refusals.get(f"{tr_id} {day}")) is not None:
        by_symbol = "taken" if tr_id not in seen.refusals else "refused too"
        off = configured.vi_feed == "off"
        report.add(
            item,
            OK if off else MISMATCH,
            f"the business date {day} refused ({refused}), the symbol {by_symbol}: no "
            f"registration carries the market's VIs; {feed}" + ("" if off else " should be 'off'"),
        )
        return
    others = seen.vi_symbols.get(tr_id, set()) - {symbol}
    if others:
        keep = (
            " (set it to 'krx' or 'combined' to keep them)" if configured.vi_feed == "off" else ""
        )
        report.add(
            item,
            OK,
            f"the business date {day} taken: VIs of {len(others)} other stock(s) heard, the "
            f"whole market's on one registration; {feed}{keep}",
        )
    elif f"{tr_id} {day}" in seen.answers:
        report.add(
            item,
            NOT_MEASURED,
            f"the business date {day} taken, no VI of another stock heard in the session "
            "(VIs come at price moves: run longer, in the session)",
        )
    else:
        report.add(item, NOT_MEASURED, f"no answer to the registration under {day}")


def _quiet(tr_id: str) -> str:
    """Why a TR may have sent nothing within the session."""
    if tr_id in STATUS_TRS.values():
        return "sent at session events, halts and VIs alone"
    if tr_id in EXPECTED_TRS.values():
        return (
            "sent through auctions alone: KRX's 08:40-09:00 and 15:20-15:30, Nextrade's "
            "after-market opening 15:30-15:40 (unconfirmed)"
        )
    if tr_id in VI_TRS.values():
        return "sent when the symbol's VI starts or ends"
    if venue_of(tr_id) == "KRX":
        return "is the market open?"
    return "is Nextrade open, and the symbol on it?"


def _pingpong_finding(seen: SessionSeen, report: Report, configured: Configured) -> None:
    """The PINGPONG interval against the silence limit it sets; whether the answer kept it.

    An early close after a PINGPONG names `[kis.stream] pingpong_answer`.
    """
    pings = seen.pingpongs_ns
    answer = configured.pingpong_answer
    if seen.closed_after_s is not None:
        after = f" after {len(pings)} PINGPONG(s) answered by {answer!r}" if pings else ""
        report.add(
            "PINGPONG",
            MISMATCH,
            f"KIS ended the session {seen.closed_after_s:.0f} s in, {seen.close_reason}{after};"
            " see [kis.stream] pingpong_answer",
        )
        return
    if not pings:
        report.add("PINGPONG", NOT_MEASURED, "none within the session (run longer)")
        return
    marks = pings if len(pings) > 1 else [seen.opened_ns, *pings]  # one: since the opening
    interval = max(b - a for a, b in itertools.pairwise(marks)) / _NS
    what = "interval" if len(pings) > 1 else "first after"
    # As the stream does: the limit follows an interval measured between two PINGPONGs.
    measured = interval if len(pings) > 1 else None
    silence_s = silence_limit_s(configured.silence_s, configured.silence_factor, measured)
    if interval >= silence_s:
        report.add(
            "PINGPONG",
            MISMATCH,
            f"{what} {interval:.0f} s, not under the {silence_s:.0f} s silence limit: quiet "
            "sessions would be recycled",
        )
        return
    report.add(
        "PINGPONG",
        OK,
        f"{len(pings)} seen, {what} {interval:.0f} s (limit {silence_s:.0f} s); the session "
        f"survived the answer {answer!r}",
    )


async def _nextrade_bars(client: KisClient, symbol: str, clock: Clock, report: Report) -> None:
    """Which of today's minutes Nextrade's bars (NX) cover, from 08:00 to now.

    Whether they hold Nextrade's hours outside KRX's (its pre-market from 08:00, its
    after-market to 20:00) is not documented: this reads it off today's bars.
    """
    now = datetime.fromtimestamp(clock.now_ns() / _NS, _KST).strftime("%H%M%S")
    item = "FHKST03010200 Nextrade bars"
    try:
        span = await client.minute_bars_span(symbol, "080000", min(now, "200000"), "", "NXT")
        rows = span.rows
    except KisError as exc:
        report.add(item, MISMATCH, f"NX bars refused: {exc}")
        return
    stamps = sorted(row.stck_cntg_hour for row in rows)
    if not stamps:
        report.add(
            item, NOT_MEASURED, f"no Nextrade bar today (Nextrade closed, or {symbol} not on it)"
        )
        return
    first, last = stamps[0], stamps[-1]
    found = [
        f"{len(stamps)} bars of {symbol} from {first[:2]}:{first[2:4]} to {last[:2]}:{last[2:4]}"
    ]
    if first < _KRX_OPEN:
        found.append("Nextrade's pre-market included")
    elif now >= _KRX_OPEN:
        found.append("none before 09:00 (the pre-market not included, or no trade in it)")
    if last >= _KRX_CLOSE:
        found.append("its after-market included")
    elif now >= _AFTER_MARKET_MEASURED:
        found.append("none after 15:30 (the after-market not included, or no trade in it)")
    report.add(item, OK, "; ".join(found))


async def _bars_to(
    client: KisClient, symbol: str, clock: Clock, report: Report, seen: SessionSeen
) -> dict[str, int]:
    """Today's minute bars (``stck_cntg_hour`` -> volume) to the session's last live trade.

    One page (30 bars) back from the minute after that trade, not from now: the calls after
    the session take a while, and a page from now would miss its first minutes.
    """
    upto_ns = clock.now_ns()
    if seen.trades:
        upto_ns = min(upto_ns, max(t.exchange_ns for t in seen.trades) + 60 * _NS)
    hour = datetime.fromtimestamp(upto_ns / _NS, _KST).strftime("%H%M%S")
    params = {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_INPUT_ISCD": symbol,
        "FID_PW_DATA_INCU_YN": "N",
        "FID_ETC_CLS_CODE": "",
        "FID_INPUT_HOUR_1": hour,
    }
    try:
        page = await client.get(ENDPOINTS["minute_bars_today"], params)
        raw = bytes(page.answer.output2)
        rows = (
            []
            if raw.strip() in (b"null", b"[]", b'""')
            else decode_json(raw, list[MinuteBarRow], "bars")
        )
    except KisError as exc:
        report.add("minute-bar label", NOT_MEASURED, f"bars not read: {exc}")
        return {}
    out: dict[str, int] = {}
    for row in rows:
        try:
            out[row.stck_cntg_hour] = int(row.cntg_vol)
        except ValueError:
            continue
    return out


def _label_finding(
    seen: SessionSeen, bars: dict[str, int], report: Report, configured: str
) -> None:
    """The label the live minutes agree with, against ``[gap_recovery] bar_label``."""
    if not bars and any(f.item == "minute-bar label" for f in report.findings):
        return
    reading = read_label(seen.trades, bars)
    if reading.label is not None:
        what = f"{reading.label} of the minute: {reading.detail}"
        if reading.label == configured:
            report.add("minute-bar label", OK, what, reading.label)
        else:
            report.add(
                "minute-bar label",
                MISMATCH,
                f"{what}; set [gap_recovery] bar_label = {reading.label!r} (now {configured!r})",
                reading.label,
            )
    elif reading.minutes:
        report.add("minute-bar label", MISMATCH, reading.detail)
    else:
        report.add("minute-bar label", NOT_MEASURED, reading.detail)
