"""Track B's failure modes against the simulator's faults: refused registrations, halts, locks.

The collector's tests run the streams in this process against the simulator (what the faults
make KIS send, and what reaches the slot manager); the worker's tests run ``observer track-b
run`` with a writer, and read what it recorded: slot events with their reasons, alerts, the
slots list.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from typer.testing import CliRunner

from bus.events import Event, TradeTick
from bus.producer import Producer
from harness.sim.server import SimConfig
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.kis.parse import price_snapshot
from observer.kis.schemas import CurrentPriceOutput
from observer.kis.session import open_account, rate_limits
from tests.support import (
    SimThread,
    WriterProcess,
    sim_accounts_config,
    start_on_sim_clock,
    until,
    wait_until,
)
from tests.track_b.conftest import STOCKS
from tests.track_b.test_track_b import MARKET, MOVERS, NINE, UNIVERSE, publish_morning, rows
from workers.track_b.cli import app
from workers.track_b.collect import Collector, CollectorSettings, Refusal
from workers.track_b.gaps import SilenceRule
from workers.track_b.slots import SlotBook, SlotCandidate

NS = 1_000_000_000


def settings_for(sim: SimThread, tmp_path: Path) -> Settings:
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path}"\n'
        '[[kis.accounts]]\nalias = "acct1"\n[[kis.accounts]]\nalias = "acct2"\n'
    )
    return load_settings(config)


def inject(sim: SimThread, faults: dict[str, Any]) -> None:
    """``POST /_sim/faults``, as the demo and an operator do."""
    answer = httpx.post(f"{sim.url}/_sim/faults", json=faults, timeout=10)
    assert answer.status_code == 200, answer.text


def kst(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, KST).strftime("%H:%M:%S")


def quote(sim: SimThread, symbol: str) -> dict[str, str]:
    """The simulator's FHKST01010100 answer for ``symbol`` now."""
    answer: dict[str, Any] = json.loads(sim.sim.inquire_price({"FID_INPUT_ISCD": symbol}).body)
    output: dict[str, str] = answer["output"]
    return output


# --------------------------------------------------------------------------- the collector


def test_each_refusal_code_reaches_the_slot_manager_and_a_counted_one_clears(
    sim: SimThread, tmp_path: Path
) -> None:
    settings = settings_for(sim, tmp_path)
    codes = {
        STOCKS[0]: "OPSP0007",
        STOCKS[1]: "OPSP0008",
        STOCKS[2]: "OPSP8991",
        STOCKS[3]: "OPSP8992",
        STOCKS[4]: "OPSP0009",
    }
    inject(
        sim,
        {
            "refuse_registrations": {
                s: {"code": c, "count": 1} if c == "OPSP0007" else c for s, c in codes.items()
            }
        },
    )
    bad = httpx.post(f"{sim.url}/_sim/faults", json={"refuse_registrations": {"1": "E1"}})
    assert bad.status_code == 400  # not a control code: nothing applied
    clock = sim.sim.clock
    events: list[Event] = []
    refusals: list[Refusal] = []
    where: dict[str, str] = {}

    async def scenario() -> None:
        limits = rate_limits(settings.kis, "track_a")
        accounts = [
            open_account(settings.kis, a.alias, clock, limits) for a in settings.kis.accounts
        ]
        collector = Collector(
            accounts,
            clock,
            events.append,
            CollectorSettings(silence=SilenceRule(5.0, 900.0)),
            on_refused=refusals.append,
        )
        stop = asyncio.Event()
        running = asyncio.ensure_future(collector.run(stop))
        try:
            book = SlotBook(["acct1", "acct2"], 3)
            wanted = [SlotCandidate(s, "market_cap", 10.0 - n) for n, s in enumerate(STOCKS[:6])]
            decisions = book.evaluate(wanted, clock.now_ns(), collector.healthy())
            where.update({d.candidate.symbol: d.account for d in decisions})
            await collector.apply(decisions)
            await until(lambda: len(refusals) == 5, "five refusals", timeout=20)
            clean = STOCKS[5]
            await until(
                lambda: any(isinstance(e, TradeTick) and e.symbol == clean for e in events),
                "the clean symbol's ticks",
                timeout=20,
            )
            # Refused registrations are no longer wanted: nothing streams them.
            streamed = collector.symbols("acct1") | collector.symbols("acct2")
            assert streamed == {clean} and collector.refusals == 5
            # The transient refusal was counted once: asked again, it is registered.
            again = STOCKS[0]
            released = book.release(again, "retry")
            assert released is not None
            await collector.apply([released])
            await collector.apply(
                book.evaluate(
                    [SlotCandidate(again, "manual", 9.0)], clock.now_ns(), collector.healthy()
                )
            )
            await until(
                lambda: any(isinstance(e, TradeTick) and e.symbol == again for e in events),
                "the retried symbol's ticks",
                timeout=20,
            )
        finally:
            stop.set()
            await running
            for account in accounts:
                await account.aclose()

    asyncio.run(scenario())
    texts = {
        "OPSP0007": "SUBSCRIBE INTERNAL ERROR",
        "OPSP0008": "MAX SUBSCRIBE OVER",
        "OPSP8991": "SUBSCRIBE ERROR : invalid tr_id",
        "OPSP8992": "SUBSCRIBE ERROR : invalid tr_key",
        "OPSP0009": "SUBSCRIBE ERROR : mci send failed",
    }
    assert {(r.symbol, r.account, r.feed_label, r.code, r.message) for r in refusals} == {
        (s, where[s], "KRX trades", c, texts[c]) for s, c in codes.items()
    }
    stats = httpx.get(f"{sim.url}/_sim/stats", timeout=10).json()
    assert stats["registrations_refused"] == dict.fromkeys(codes, 1)


def test_a_halted_symbol_trades_nothing_and_a_locked_one_trades_at_its_upper_limit(
    sim: SimThread, tmp_path: Path
) -> None:
    settings = settings_for(sim, tmp_path)
    clock = sim.sim.clock
    halted, locked = STOCKS[:2]
    upper = int(quote(sim, locked)["stck_mxpr"])
    ticks: list[TradeTick] = []
    seen: dict[str, dict[str, str]] = {}
    window: list[int] = []

    def halt_soon() -> None:
        """The halt and the lock from 20 s on: after trades of both were seen, however late
        the sessions came up (the market clock does not wait for a loaded machine)."""
        start = clock.now_ns() + 20 * NS
        end = (start // (60 * NS) + 3) * 60 * NS  # two whole minutes inside the halt
        windows = [kst(start), kst(end)]
        inject(sim, {"halt": {halted: windows}, "limit_lock": {locked: windows}})
        window[:] = [start // NS * NS, end // NS * NS]  # the windows, to the second

    async def scenario() -> None:
        limits = rate_limits(settings.kis, "track_a")
        accounts = [
            open_account(settings.kis, a.alias, clock, limits) for a in settings.kis.accounts
        ]
        collector = Collector(
            accounts,
            clock,
            lambda e: ticks.append(e) if isinstance(e, TradeTick) else None,
            CollectorSettings(silence=SilenceRule(5.0, 900.0)),
        )
        stop = asyncio.Event()
        running = asyncio.ensure_future(collector.run(stop))
        try:
            book = SlotBook(["acct1", "acct2"], 3)
            wanted = [SlotCandidate(s, "market_cap", 10.0 - n) for n, s in enumerate(STOCKS[:2])]
            await collector.apply(book.evaluate(wanted, clock.now_ns(), collector.healthy()))
            await until(
                lambda: {halted, locked} <= {t.symbol for t in ticks}, "trades of both", timeout=60
            )
            halt_soon()
            start, end = window
            await until(lambda: clock.now_ns() > start + 5 * NS, "the halt", timeout=20)
            seen["halted"], seen["locked"] = quote(sim, halted), quote(sim, locked)
            await until(
                lambda: any(t.symbol == halted and t.exchange_ns >= end for t in ticks),
                "trades after the halt",
                timeout=60,
            )
            seen["resumed"] = quote(sim, halted)
        finally:
            stop.set()
            await running
            for account in accounts:
                await account.aclose()

    asyncio.run(scenario())
    start, end = window
    # Halted: no trade between its start and end, then trading resumes; the quote says so.
    during = [t for t in ticks if t.symbol == halted and start <= t.exchange_ns < end]
    assert during == [] and any(t.symbol == halted and t.exchange_ns < start for t in ticks)
    assert (seen["halted"]["temp_stop_yn"], seen["resumed"]["temp_stop_yn"]) == ("Y", "N")
    # Locked: every trade in the window at the upper limit (sign 1), none outside it.
    inside = [t for t in ticks if t.symbol == locked and start <= t.exchange_ns < end]
    assert inside and {t.price for t in inside} == {upper}
    assert all(t.price < upper for t in ticks if t.symbol == locked and t.exchange_ns < start)
    assert (seen["locked"]["stck_prpr"], seen["locked"]["prdy_vrss_sign"]) == (str(upper), "1")
    # KIS has no minute bar for a minute halted throughout (nothing traded).
    bars = json.loads(
        sim.sim.minute_bars_today(
            {"FID_INPUT_ISCD": halted, "FID_INPUT_HOUR_1": kst(end + 120 * NS).replace(":", "")}
        ).body
    )["output2"]
    minutes = {datetime.strptime(b["stck_cntg_hour"], "%H%M%S").time() for b in bars}
    first_whole = datetime.fromtimestamp(-(-start // (60 * NS)) * 60, KST).time()
    assert first_whole not in minutes and len(minutes) == len(bars) > 0


# --------------------------------------------------------------------------- the worker


def run_track_b(
    tmp_path: Path, sim: SimThread, writer: WriterProcess, extra: str
) -> subprocess.Popen[bytes]:
    track_b = (
        "[kis.stream]\nmax_registrations = 3\n"
        "[track_b]\nsilence_tolerance_s = 600\nmin_hold_s = 0\n"
        # Started at 09:29: the first half hour's last seconds would take the faults meant
        # for the slots' first registrations (`test_track_b_opening_auction` has them).
        "feeds.krx_opening_half_hour = []\n"
        # The context sync's candidates stay live all test long.
        "volume_surge = { threshold = 3.0, full_at = 5.0, ttl_s = 7200.0, weight = 10.0 }\n"
    )
    config = sim_accounts_config(tmp_path, sim, writer, track_b + extra)
    return start_on_sim_clock(
        ["track-b", "run", "--config", str(config)], sim, tmp_path / "track_b.log"
    )


def slot_events(url: str, symbol: str = "") -> list[Any]:
    where = f"where symbol = '{symbol}' " if symbol else ""
    return rows(
        url,
        f"select seq, account, action, symbol, slot, reason from slot_events {where}order by seq",
    )


def placed_after(
    url: str, seq: int, *, symbol: str = "", where: tuple[str, int] | None = None
) -> list[Any]:
    """Allocations and replacements after ``seq`` (of ``symbol``, into slot ``where``)."""
    return [
        e
        for e in slot_events(url, symbol)
        if e[0] > seq and e[2] in ("allocate", "replace") and where in (None, (e[1], e[4]))
    ]


def publish_quotes(writer: WriterProcess, outbox: Path, sim: SimThread, *symbols: str) -> None:
    """Track A's snapshots of ``symbols`` now, from the simulator's answers."""
    now = sim.sim.clock.now_ns()
    cycle = datetime.fromtimestamp(now / NS, KST).strftime("%Y%m%d-%H%M")
    with Producer("track_a", writer.ingest, outbox / "track_a") as producer:
        for symbol in symbols:
            out = msgspec.convert(quote(sim, symbol), CurrentPriceOutput)
            producer.send(price_snapshot(out, symbol, "KOSPI", cycle, now))
        assert producer.wait_acked(30)


@pytest.fixture
def day(tmp_path: Path) -> Iterator[tuple[SimThread, WriterProcess]]:
    """The simulator at 09:29 (20x), a writer, the universe and Track A's morning."""
    writer = WriterProcess(tmp_path, f"sqlite:///{tmp_path / 'observer.db'}").start()
    sim = SimThread(MARKET, NINE + timedelta(minutes=29), SimConfig(), speed=20)
    try:
        publish_morning(writer, tmp_path / "outbox")
        yield sim, writer
    finally:
        writer.kill()
        sim.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def test_refused_registrations_free_their_slots_retry_when_transient_and_alert(
    day: tuple[SimThread, WriterProcess], tmp_path: Path
) -> None:
    sim, writer = day
    url = writer.url
    # The 6 slots go to the three movers (context sync), then the three largest caps.
    transient, permanent, full = MOVERS[0], UNIVERSE[0], UNIVERSE[1]
    inject(
        sim,
        {
            "refuse_registrations": {
                transient: {"code": "OPSP0007", "count": 1},
                permanent: "OPSP8992",
                full: {"code": "OPSP0008", "count": 1},
            }
        },
    )
    proc = run_track_b(tmp_path, sim, writer, "refusal_retry_s = 30\nrefused_error_share = 0.5\n")
    try:
        released = wait_until(
            lambda: (
                {e[3]: e for e in slot_events(url) if e[2] == "release"}.keys()
                >= {transient, permanent, full}
                and {e[3]: e for e in slot_events(url) if e[2] == "release"}
            ),
            60,
            "the refused symbols released",
        )
        assert released[transient][5] == (
            "registration refused: OPSP0007 SUBSCRIBE INTERNAL ERROR (retry in 30 s)"
        )
        assert released[permanent][5] == (
            "registration refused: OPSP8992 SUBSCRIBE ERROR : invalid tr_key (not retried today)"
        )
        assert (
            released[full][5] == "registration refused: OPSP0008 MAX SUBSCRIBE OVER (slot closed)"
        )
        # The transient one is asked again after its backoff, and streams.
        back = wait_until(
            partial(placed_after, url, released[transient][0], symbol=transient),
            60,
            "the transient refusal retried",
        )
        wait_until(
            lambda: (
                rows(url, f"select count(*) from trade_ticks where symbol = '{transient}'")
                != [(0,)]
            ),
            60,
            "its ticks",
        )
        events = slot_events(url)
        # The permanent one's slot went to the next candidate; it was never asked again.
        seq, account, slot = released[permanent][0], released[permanent][1], released[permanent][4]
        taken = placed_after(url, seq, where=(account, slot))
        assert taken and taken[0][3] != permanent
        assert [e[2] for e in events if e[3] == permanent] == ["allocate", "release"]
        assert sim.sim.realtime.refused[permanent] == 1
        # The slot KIS counted full stays closed; its symbol streams on another slot.
        seq, account, slot = released[full][0], released[full][1], released[full][4]
        assert not [e for e in events if e[0] > seq and (e[1], e[4]) == (account, slot)]
        assert placed_after(url, seq, symbol=full)
        # One alert per refused symbol, none for the retry (the registration alerts: once, on a
        # loaded machine, another alert whose context names no symbol came beside them).
        alerts = rows(
            url,
            "select severity, code, context from alerts "
            "where code in ('track_b_registration_refused', 'track_b_registration_limit') "
            "order by seq",
        )
        found = [(a[0], a[1], json.loads(a[2])["symbol"]) for a in alerts]
        assert sorted(found) == sorted(
            [
                ("warning", "track_b_registration_refused", transient),
                ("warning", "track_b_registration_refused", permanent),
                ("error", "track_b_registration_limit", full),
            ]
        )
        # The slots list shows the barred symbol and why, and the closed slot.
        listed = CliRunner().invoke(
            app, ["slots", "--data-dir", str(tmp_path / "data"), "list", "--json"]
        )
        shown = json.loads(listed.output)
        assert [(b["symbol"], b["kind"], b["code"]) for b in shown["barred"]] == [
            (permanent, "refused", "OPSP8992")
        ]
        assert shown["closed"] == [{"account": account, "slot": slot}]
        assert len(shown["slots"]) == 5 and back
        text = CliRunner().invoke(app, ["slots", "--data-dir", str(tmp_path / "data"), "list"])
        assert "invalid tr_key (not retried today)" in text.output and "closed" in text.output
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_a_halted_or_limit_locked_symbol_leaves_its_slot_and_returns_when_it_trades_again(
    day: tuple[SimThread, WriterProcess], tmp_path: Path
) -> None:
    sim, writer = day
    url = writer.url
    outbox = tmp_path / "outbox"
    halted, locked = MOVERS[1], MOVERS[2]
    proc = run_track_b(tmp_path, sim, writer, "limit_lock_s = 10\n")
    try:
        wait_until(
            lambda: len([e for e in slot_events(url) if e[2] == "allocate"]) >= 6,
            60,
            "six allocations",
        )
        publish_quotes(writer, outbox, sim, halted, locked)  # the day's limits, trading
        now = sim.sim.clock.now_ns()
        # Both until the test ends them (an hour: 3 wall minutes at 20x): beside a timed test
        # this one's processes get a tenth of the CPU, and a halt of a simulated minute was
        # over before Track B looked (a CI run: neither released in 180 wall seconds).
        until = now + 3600 * NS
        inject(
            sim,
            {
                "halt": {halted: [kst(now), kst(until)]},
                "limit_lock": {locked: [kst(now), kst(until)]},
            },
        )
        publish_quotes(writer, outbox, sim, halted)  # Track A's next look: halted
        gone = wait_until(
            lambda: (
                {e[3]: e for e in slot_events(url) if e[2] == "release"}.keys() >= {halted, locked}
                and {e[3]: e for e in slot_events(url) if e[2] == "release"}
            ),
            60,
            "the halted and the locked symbols released",
        )
        assert gone[halted][5] == "trading halted"
        upper = quote(sim, locked)["stck_mxpr"]
        assert gone[locked][5] == f"locked at its upper limit ({int(upper):,} KRW)"
        # Their slots go to the next candidates.
        for symbol in (halted, locked):
            seq, account, slot = gone[symbol][0], gone[symbol][1], gone[symbol][4]
            wait_until(partial(placed_after, url, seq, where=(account, slot)), 30, "a freed slot")
        alerts = rows(url, "select severity, code, context from alerts order by seq")
        # (a loaded machine may add an account's: its feed lagging at 20x)
        assert {(a[0], a[1], json.loads(a[2]).get("symbol")) for a in alerts} >= {
            ("info", "track_b_halted", halted),
            ("info", "track_b_limit_locked", locked),
        }
        # Trading resumes; Track A's next snapshots say so, and both return.
        inject(sim, {"halt": {halted: None}, "limit_lock": {locked: None}})
        publish_quotes(writer, outbox, sim, halted, locked)
        for symbol in (halted, locked):
            wait_until(partial(placed_after, url, gone[symbol][0], symbol=symbol), 60, symbol)
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


@pytest.mark.timeout(300)
def test_with_market_status_a_halt_releases_its_symbol_before_track_a_looks_again(
    day: tuple[SimThread, WriterProcess], tmp_path: Path
) -> None:
    """KRX's market status says the halt at once: no Track A snapshot after it is needed."""
    sim, writer = day
    url = writer.url
    proc = run_track_b(tmp_path, sim, writer, 'feeds.regular = ["trades", "status"]\n')
    try:
        placed = wait_until(
            lambda: [e for e in slot_events(url) if e[2] == "allocate"], 60, "an allocation"
        )
        halted = placed[0][3]
        publish_quotes(writer, tmp_path / "outbox", sim, halted)  # the day's limits, trading
        start = sim.sim.clock.now_ns() + 10 * NS  # KIS says a halt as it starts
        # An hour (3 wall minutes): beside a timed test this one's processes get a tenth
        # of the CPU (4 s alone took 67 s in a full run), and a halt over before the
        # simulator pushed its status is never said.
        inject(sim, {"halt": {halted: [kst(start), kst(start + 3600 * NS)]}})
        gone = wait_until(
            lambda: [e for e in slot_events(url, halted) if e[2] == "release"],
            150,
            "the halted symbol released",
        )
        assert gone[0][5] == "trading halted"
        statuses = rows(
            url, f"select halted, status, venue from market_status where symbol = '{halted}'"
        )
        assert (1, "58", "KRX") in [tuple(s) for s in statuses]
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
