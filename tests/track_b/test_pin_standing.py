"""A pin outside the universe: Track B asks its Nextrade standing of the simulator (CTPF1002R)
once a day, a few at an evaluation, never for a member or on a paper account; a failed ask is
alerted per pin, tried again a minute later, and resolved when KIS answers or the pin is lifted;
the registration policy then gives the pin Nextrade's feeds while they are followed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved, Event, ListingChanged
from harness.sim.config import SimConfig
from harness.sim.market import Market
from observer.alerts.book import AlertBook
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.db.queries import Listed, listed_as
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.kis.master import group_kind
from observer.kis.stream import Feed
from observer.writer.store import Store
from tests.support import SimThread
from workers.track_b import pin_standing
from workers.track_b.pin_standing import ASK_AT_ONCE, PIN_STANDING_UNKNOWN, RETRY_S, PinStandings
from workers.track_b.registrations import TRADES, RegistrationPolicy

MARKET = Market(48, TradingCalendar(), stocks=40, etfs=30)
TEN = datetime(2026, 11, 20, 10, 0, tzinfo=KST)
ELIGIBLE = MARKET.nxt_eligible(TEN.date())
ETFS = sorted(s for s, x in MARKET.listings.items() if x.group == "EF" and not x.suspended)
NXT_ETF = next(s for s in ETFS if s in ELIGIBLE)
KRX_ETFS = [s for s in ETFS if s not in ELIGIBLE]
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and s in ELIGIBLE)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(MARKET, TEN, SimConfig(token_min_interval_s=0)) as thread:
        yield thread


def _client(sim: SimThread, folder: Path) -> KisClient:
    """A real account's client of the simulator that tries each request once."""
    http = httpx.AsyncClient(base_url=sim.url)
    creds = Credentials("acct1", Secret("PSacct1TestAppKey".ljust(36, "0")), Secret("a" * 180))
    tokens = TokenManager(http, creds, sim.sim.clock, folder, "sim", min_issue_interval_s=0)
    pace = RateLimits({"acct1": 200}).for_account("acct1")
    return KisClient(http, creds, tokens, sim.sim.clock, pace, max_attempts=1)


class _Alerts:
    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.book = AlertBook(self.sent.append, "track_b")

    def raised(self) -> list[str]:
        return [e.subject for e in self.sent if isinstance(e, Alert)]

    def resolved(self) -> list[str]:
        return [e.subject for e in self.sent if isinstance(e, AlertResolved)]


def test_pins_outside_the_universe_are_asked_once_and_nextrade_s_are_given_its_feeds(
    sim: SimThread, tmp_path: Path
) -> None:
    """Of an eligible ETF, ineligible ones and a member: the ETFs are asked (at most
    `ASK_AT_ONCE` an evaluation), once; the member never; Nextrade's ETF alone comes back,
    and joins the policy's Nextrade names while they are followed."""
    member = STOCKS[0]
    pins = {member, NXT_ETF, *KRX_ETFS[:ASK_AT_ONCE]}
    alerts = _Alerts()
    clock = ManualClock(0)

    async def run() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        client = _client(sim, tmp_path)
        standings = PinStandings(client, clock, alerts.book, {member})
        try:
            first = await standings.nextrade(pins)
            second = await standings.nextrade(pins)
            third = await standings.nextrade(pins)
        finally:
            await client._http.aclose()  # type: ignore[attr-defined]
        return first, second, third

    before = sim.sim.calls["CTPF1002R"]
    first, second, third = asyncio.run(run())
    asked = ASK_AT_ONCE + 1  # the ETFs, outside the universe
    assert sim.sim.calls["CTPF1002R"] - before == asked  # each once, over two evaluations
    assert NXT_ETF in first or NXT_ETF in second
    assert second == third == {NXT_ETF}
    assert alerts.sent == []

    policy = RegistrationPolicy("venues", ("trades",), frozenset({member}))
    joined = policy.with_nxt(third)
    assert joined.feeds(NXT_ETF) == (Feed("trades", "KRX", NXT_ETF), Feed("trades", "NXT", NXT_ETF))
    assert joined.with_nxt(third) is joined  # nothing new: the same policy, no switch
    evening = policy.with_krx(("trades",))  # KRX's after-market without Nextrade's feeds
    assert evening.with_nxt(third) is evening and evening.feeds(NXT_ETF) == (
        Feed("trades", "KRX", NXT_ETF),
    )
    pre_market = policy.without_krx(("trades",)).with_nxt(third)
    assert pre_market.feeds(NXT_ETF) == (Feed("trades", "NXT", NXT_ETF),)
    assert pre_market.venues(KRX_ETFS[0]) == ()  # not Nextrade's: nothing while KRX is shut


def _asked(sim: SimThread, folder: Path, pins: set[str]) -> tuple[PinStandings, frozenset[str]]:
    """Standings that asked ``pins`` once, and the Nextrade names of the answers."""
    standings = PinStandings(_client(sim, folder), ManualClock(0), _Alerts().book, ())

    async def run() -> frozenset[str]:
        try:
            return await standings.nextrade(pins)
        finally:
            await standings.client._http.aclose()  # type: ignore[union-attr]

    return standings, asyncio.run(run())


def test_an_etf_pin_holds_its_feeds_in_the_main_sessions_and_none_in_the_after_markets(
    sim: SimThread, tmp_path: Path
) -> None:
    """The answer names each pin's product (CTPF1002R's group code): the ETFs are no
    after-market's (kis-market-2026-09.md §1, §3); a stock pin outside the universe is."""
    stock = next(s for s in sorted(MARKET.listings) if MARKET.listings[s].group == "ST")
    standings, nextrade = _asked(sim, tmp_path, {NXT_ETF, KRX_ETFS[0], stock})
    assert standings.day_only == {NXT_ETF, KRX_ETFS[0]}
    day = RegistrationPolicy("venues").with_nxt(nextrade).with_day_only(standings.day_only)
    assert day.with_day_only(standings.day_only) is day  # nothing new: no switch
    assert day.venues(NXT_ETF) == ("KRX", "NXT") and day.venues(KRX_ETFS[0]) == ("KRX",)
    assert day.without_krx(TRADES).venues(NXT_ETF) == ("NXT",)  # Nextrade's pre-market
    evening = [day.without_krx(TRADES, after_close=True), day.with_krx(TRADES, TRADES)]
    for after in evening:  # Nextrade's after-market; KRX's, with Nextrade's feeds
        assert after.venues(NXT_ETF) == after.venues(KRX_ETFS[0]) == ()
        assert after.why_no_feed(NXT_ETF) == "an ETF or ETN: no after-market trades it"
    assert evening[1].venues(stock) == ("KRX", "NXT")[: 1 + (stock in nextrade)]


def test_an_answer_without_the_group_code_keeps_an_etf_pin_s_after_market_feeds(
    sim: SimThread, tmp_path: Path
) -> None:
    """Where CTPF1002R's answer does not name the product (an older layout), the pin's
    product is not known: it holds its feeds through the after-markets, as a stock would
    (a slot spent on a name that may print nothing, never a trade missed)."""
    sim.sim.config.stock_info_group = False
    try:
        standings, nextrade = _asked(sim, tmp_path, {NXT_ETF, KRX_ETFS[0]})
    finally:
        sim.sim.config.stock_info_group = True
    assert nextrade == {NXT_ETF} and standings.day_only == frozenset()
    day = RegistrationPolicy("venues").with_nxt(nextrade).with_day_only(standings.day_only)
    krx_evening = day.with_krx(TRADES, TRADES)  # KRX's after-market, with Nextrade's feeds
    assert krx_evening.venues(NXT_ETF) == ("KRX", "NXT")
    assert krx_evening.venues(KRX_ETFS[0]) == ("KRX",)
    assert day.without_krx(TRADES, after_close=True).venues(NXT_ETF) == ("NXT",)


def _listed(
    read: list[list[str]], fail: list[bool]
) -> Callable[[Collection[str]], dict[str, Listed]]:
    """The master files' listings (the simulator's, as the master-file job stores them), each
    read noted in ``read``; raising while ``fail[0]``."""

    def listed(symbols: Collection[str]) -> dict[str, Listed]:
        read.append(sorted(symbols))
        if fail[0]:
            raise OperationalError("select", {}, Exception("the database is down"))
        return {
            s: Listed(group_kind(MARKET.listings[s].group), MARKET.listings[s].measures)
            for s in symbols
            if s in MARKET.listings
        }

    return listed


def test_a_paper_account_asks_nothing_and_its_etf_pins_are_the_master_s_etfs(
    sim: SimThread,
) -> None:
    """No client (paper accounts: the TR is real-only): nothing asked, nothing alerted; the
    pins' products are the master files', read once a pin: an ETF holds no feed in the
    after-markets, a stock does."""
    alerts = _Alerts()
    read: list[list[str]] = []
    standings = PinStandings(None, ManualClock(0), alerts.book, (), _listed(read, [False]))
    before = sim.sim.calls["CTPF1002R"]
    assert asyncio.run(standings.nextrade({NXT_ETF, STOCKS[0]})) == frozenset()
    assert sim.sim.calls["CTPF1002R"] == before and alerts.sent == []
    assert standings.day_only == {NXT_ETF} and read == [sorted({NXT_ETF, STOCKS[0]})]
    asyncio.run(standings.nextrade({NXT_ETF, STOCKS[0], KRX_ETFS[0]}))
    assert standings.day_only == {NXT_ETF, KRX_ETFS[0]} and read[1:] == [[KRX_ETFS[0]]]
    # Without the master's listings (None): not known, so followed (the safe way)
    unread = PinStandings(None, ManualClock(0), alerts.book, ())
    asyncio.run(unread.nextrade({NXT_ETF}))
    assert unread.day_only == frozenset()


def test_listings_that_do_not_read_keep_the_pins_feeds_and_are_read_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, read, fail = ManualClock(0), [], [True]
    standings = PinStandings(None, clock, _Alerts().book, (), _listed(read, fail))
    asyncio.run(standings.nextrade({NXT_ETF}))
    assert standings.day_only == frozenset() and len(read) == 1
    assert f"the pins {NXT_ETF}: their products and measures are not known" in caplog.text
    fail[0] = False
    clock.advance(RETRY_S - 1)
    asyncio.run(standings.nextrade({NXT_ETF}))
    assert len(read) == 1  # not before RETRY_S
    clock.advance(1)
    asyncio.run(standings.nextrade({NXT_ETF}))
    assert standings.day_only == {NXT_ETF} and len(read) == 2


def test_listings_that_do_not_answer_hold_the_evaluation_no_longer_than_their_bound(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that does not answer: the evaluation goes on after the bound, the pin's
    feeds held, and the listings are read again `RETRY_S` later."""
    monkeypatch.setattr(pin_standing, "_LISTED_TIMEOUT_S", 0.05)
    answer = threading.Event()
    clock = ManualClock(0)

    def stuck(symbols: Collection[str]) -> dict[str, Listed]:
        answer.wait(30)
        return {s: Listed("etf", ()) for s in symbols}

    standings = PinStandings(None, clock, _Alerts().book, (), stuck)

    async def evaluations() -> frozenset[str]:
        try:
            await standings.nextrade({NXT_ETF})  # had it waited, the read would have answered
            held = standings.day_only
        finally:
            answer.set()
        clock.advance(RETRY_S)
        await standings.nextrade({NXT_ETF})
        return held

    assert asyncio.run(evaluations()) == frozenset()
    assert "products and measures are not known (the master's listings did not read: " in (
        caplog.text
    )
    assert standings.day_only == {NXT_ETF}


def test_kis_s_answer_names_the_product_over_the_master_s(sim: SimThread, tmp_path: Path) -> None:
    """KIS's answer of today is the product where it names one; the master's where it does
    not (CTPF1002R without its group code)."""
    stock = STOCKS[0]

    def listed_wrong(symbols: Collection[str]) -> dict[str, Listed]:
        return {s: Listed("etf" if s == stock else "stock", ()) for s in symbols}  # stale

    for group in (True, False):
        sim.sim.config.stock_info_group = group
        try:
            standings = PinStandings(
                _client(sim, tmp_path), ManualClock(0), _Alerts().book, (), listed_wrong
            )

            async def run(standings: PinStandings = standings) -> None:
                try:
                    await standings.nextrade({NXT_ETF, stock})
                finally:
                    await standings.client._http.aclose()  # type: ignore[union-attr]

            asyncio.run(run())
        finally:
            sim.sim.config.stock_info_group = True
        assert standings.day_only == ({NXT_ETF} if group else {stock}), group


def test_the_master_s_products_and_measures_of_pins_are_read_from_the_instruments_table(
    store: Store,
) -> None:
    changes = [
        ListingChanged(
            change="new", market=m, symbol=s, name=s, security_type=k, region=r, measures=w
        )
        for m, s, k, r, w in (
            ("kospi", "069500", "etf", "KR", ()),
            ("kospi", "005930", "stock", "KR", ("administrative", "warning")),
            ("nasdaq", "069500", "stock", "US", ()),  # another region's code: not the pin's
        )
    ]
    envelopes = [Envelope("master_file", i + 1, i + 1, c) for i, c in enumerate(changes)]
    store.apply([decode_parts(encode_frame(envelopes))])
    with store.engine.connect() as conn:
        found = listed_as(conn, ["069500", "005930", "999999"])
    assert found == {
        "069500": Listed("etf", ()),
        "005930": Listed("stock", ("administrative", "warning")),
    }
    # a later file lifts the measures: the listing changes in place
    lifted = ListingChanged(
        change="changed",
        market="kospi",
        symbol="005930",
        name="005930",
        security_type="stock",
        region="KR",
        changed_fields=("measures",),
    )
    store.apply([decode_parts(encode_frame([Envelope("master_file", 4, 4, lifted)]))])
    with store.engine.connect() as conn:
        assert listed_as(conn, ["005930"]) == {"005930": Listed("stock", ())}


def test_a_failed_ask_is_alerted_tried_again_a_minute_later_and_resolved(
    sim: SimThread, tmp_path: Path
) -> None:
    """A 5xx answer: one warning for the pin, the pin not Nextrade's meanwhile, and no other
    pin asked in that evaluation (KIS failing); the next asks the others; the failed pin not
    again before `RETRY_S`, then answered and its warning resolved. A pin lifted while its
    ask fails has its warning resolved too."""
    first, second = sorted([NXT_ETF, KRX_ETFS[0]])
    lifted = KRX_ETFS[1]
    alerts = _Alerts()
    clock = ManualClock(0)
    asked: list[int] = []

    async def run() -> list[frozenset[str]]:
        client = _client(sim, tmp_path)
        standings = PinStandings(client, clock, alerts.book, ())

        async def evaluate(pins: set[str]) -> frozenset[str]:
            before = sim.sim.calls["CTPF1002R"]
            found = await standings.nextrade(pins)
            asked.append(sim.sim.calls["CTPF1002R"] - before)
            return found

        try:
            await client.nxt_status(lifted)  # the token issued before the faults
            sim.sim.faults.http_5xx = 1
            seen = [await evaluate({first, second})]  # the first fails: the second waits
            seen.append(await evaluate({first, second}))  # the second answers
            clock.advance(RETRY_S / 2)
            seen.append(await evaluate({first, second}))  # the first not due yet
            clock.advance(RETRY_S / 2)
            seen.append(await evaluate({first, second}))  # due: answered, resolved
            sim.sim.faults.http_5xx = 1
            seen.append(await evaluate({first, second, lifted}))  # fails, alerted
            seen.append(await evaluate({first, second}))  # lifted: resolved
            return seen
        finally:
            await client._http.aclose()  # type: ignore[attr-defined]

    seen = asyncio.run(run())
    nextrade = frozenset({NXT_ETF})
    assert seen == [
        frozenset(),
        nextrade & {second},
        nextrade & {second},
        nextrade,
        nextrade,
        nextrade,
    ]
    assert asked == [0, 1, 0, 1, 0, 0]  # answered asks (a failed one is not counted)
    assert alerts.raised() == [first, lifted]
    assert alerts.resolved() == [first, lifted]
    assert {e.code for e in alerts.sent} == {PIN_STANDING_UNKNOWN}
    assert not alerts.book.subjects(PIN_STANDING_UNKNOWN)
