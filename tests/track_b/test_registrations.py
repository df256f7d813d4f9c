"""The registration policy: what a watched symbol holds, and slots counted in registrations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.events import (
    Event,
    GapDetected,
    MarketStatus,
    ProgramTrade,
    SlotDecision,
    SlotOverflow,
    TradeTick,
    Venue,
)
from harness.sim.config import SimConfig
from observer.config.workers import Kinds
from observer.kis.feeds import Feed
from observer.kis.session import open_account, rate_limits
from tests.support import SimThread, until
from tests.track_b.conftest import MARKET, STOCKS, TEN
from tests.track_b.test_collect import settings_for
from tests.track_b.test_slots import SYMBOLS, rounds
from workers.track_b.collect import Collector, CollectorSettings, decision_event
from workers.track_b.gaps import SilenceRule
from workers.track_b.registrations import RegistrationPolicy, TradeFeeds, swaps
from workers.track_b.slots import Room, SlotBook, SlotCandidate

NXT_NAME, KRX_NAME = "005930", "900110"
KRX_CLOSING: tuple[Venue, ...] = ("KRX", "combined")  # the feeds in KRX's closing auction
S = 1_000_000_000
TRADES: tuple[TradeFeeds, ...] = ("krx", "venues", "combined")
VENUES: tuple[Venue, ...] = ("KRX", "NXT", "combined")
TRADES_ROW: Kinds = ("trades",)


def labels(feeds: tuple[Feed, ...]) -> tuple[str, ...]:
    """What ``feeds`` carry, in words ("KRX trades"), in order; all of one symbol."""
    assert len({f.symbol for f in feeds}) <= 1
    return tuple(f.label for f in feeds)


def test_each_policy_gives_a_nextrade_name_its_feeds_and_the_others_krx_alone() -> None:
    nxt = frozenset({NXT_NAME})
    venues = RegistrationPolicy("venues", nxt=nxt)
    assert labels(venues.feeds(NXT_NAME)) == ("KRX trades", "NXT trades")
    assert venues.venues(NXT_NAME) == ("KRX", "NXT")
    assert labels(venues.feeds(KRX_NAME)) == ("KRX trades",) and venues.cost(KRX_NAME) == 1
    books = RegistrationPolicy("venues", ("trades", "book"), nxt=nxt)
    assert labels(books.feeds(NXT_NAME)) == ("KRX trades", "NXT trades", "KRX book", "NXT book")
    assert books.cost(NXT_NAME) == 4 and books.widest == 4
    combined = RegistrationPolicy("combined", ("trades", "book"), nxt=nxt)
    assert labels(combined.feeds(NXT_NAME)) == ("combined trades", "combined book")
    assert combined.venues(NXT_NAME) == ("combined",)
    assert labels(combined.feeds(KRX_NAME)) == ("KRX trades", "KRX book")
    krx = RegistrationPolicy("krx", nxt=nxt)
    assert labels(krx.feeds(NXT_NAME)) == ("KRX trades",) and krx.widest == 1


def test_a_stock_under_a_measure_holds_no_nextrade_feed_in_the_after_markets() -> None:
    """``nxt_day_only`` (투자경고, ...: Nextrade's after-market excludes them) changes nothing
    before KRX's close; after it the name is no Nextrade name: nothing while Nextrade trades
    alone (and says why), KRX's feed alone in KRX's after-market, on every policy."""
    warned, plain = NXT_NAME, "000660"
    for trades in ("venues", "combined"):
        day = RegistrationPolicy(trades, nxt=frozenset({warned, plain})).with_nxt_day_only({warned})
        assert day.venues(warned) == day.venues(plain) != ("KRX",)
        assert day.with_nxt_day_only({warned}) is day
        alone = day.without_krx(("trades",), after_close=True)
        assert alone.venues(warned) == () and alone.venues(plain) != ()
        assert "market measure" in alone.why_no_feed(warned)
        evening = alone.with_krx(("trades",), ("trades",))
        assert evening.venues(warned) == ("KRX",)
        assert evening.venues(plain) == day.venues(plain)
        pre = day.without_krx(("trades",))  # the pre-market: not an after-market
        assert pre.venues(warned) == pre.venues(plain) != ()


def test_a_stock_krx_s_after_market_excludes_holds_no_krx_feed_there() -> None:
    """``krx_day_only`` (``[venues.krx] after_market_excludes``) changes nothing before KRX's
    after-market, nor in Nextrade's alone; in KRX's a Nextrade name holds Nextrade's feed
    alone (or the combined one), and another nothing, saying why."""
    warned, plain, krx_only = NXT_NAME, "000660", KRX_NAME
    for trades in ("venues", "combined"):
        day = RegistrationPolicy(trades, nxt=frozenset({warned, plain}))
        day = day.with_krx_day_only({warned, krx_only})
        assert day.with_krx_day_only({warned}) is day
        assert day.venues(warned) == day.venues(plain) and day.venues(krx_only) == ("KRX",)
        alone = day.without_krx(("trades",), after_close=True)
        assert alone.venues(warned) == alone.venues(plain) != ()
        evening = alone.with_krx(("trades",), ("trades",))
        assert evening.venues(warned) == (("NXT",) if trades == "venues" else ("combined",))
        assert evening.venues(plain) == day.venues(plain)
        assert evening.venues(krx_only) == () and evening.cost(krx_only) == 0
        assert "KRX's after-market does not trade it" in evening.why_no_feed(krx_only)
        # Nextrade's feeds off in KRX's after-market: the Nextrade name holds nothing either
        krx_alone = alone.with_krx(("trades",))
        assert krx_alone.venues(warned) == () and krx_alone.venues(plain) == ("KRX",)
    paper = RegistrationPolicy("venues", nxt=frozenset({warned}), paper=True)
    evening = paper.with_krx_day_only({warned}).with_krx(("trades",), ("trades",))
    assert evening.venues(warned) == ()  # a paper account holds KRX's feeds alone


def test_market_status_and_program_trading_are_a_registration_each_per_venue() -> None:
    nxt = frozenset({NXT_NAME})
    row: Kinds = ("trades", "status", "program")
    venues = RegistrationPolicy("venues", row, nxt=nxt)
    feeds = ("KRX trades", "NXT trades", "KRX status", "NXT status", "KRX program", "NXT program")
    assert labels(venues.feeds(NXT_NAME)) == feeds
    assert venues.cost(NXT_NAME) == 6 == venues.widest
    assert labels(venues.feeds(KRX_NAME)) == ("KRX trades", "KRX status", "KRX program")
    # The combined feed's market status names no symbol: KRX's is registered in its place.
    combined = RegistrationPolicy("combined", ("trades", "book", "status", "program"), nxt=nxt)
    assert labels(combined.feeds(NXT_NAME)) == (
        "combined trades",
        "combined book",
        "KRX status",
        "combined program",
    )
    assert combined.cost(NXT_NAME) == 4 == len(combined.registrations([NXT_NAME]))
    assert "book, market status, program trading on the combined feed" in combined.describe()
    # Outside KRX's trading a Nextrade name holds Nextrade's alone, its row.
    after = venues.without_krx(("trades", "program"))
    assert labels(after.feeds(NXT_NAME)) == ("NXT trades", "NXT program")
    assert labels(after.feeds(KRX_NAME)) == () and after.cost(KRX_NAME) == 0


def test_in_an_auction_its_row_s_auction_kind_holds_expected_matches_then_program_trading() -> None:
    nxt = frozenset({NXT_NAME})
    venues = RegistrationPolicy("venues", ("trades", "program"), nxt=nxt)
    closing = venues.during(KRX_CLOSING, ("trades", "auction"))  # KRX's closing auction
    assert labels(closing.feeds(NXT_NAME)) == (
        "KRX trades",
        "NXT trades",
        "KRX auction",
        "NXT program",
    )
    assert closing.cost(NXT_NAME) == venues.cost(NXT_NAME)  # the same registrations, reused
    matched = closing.in_auction(KRX_CLOSING, False)  # 10 s before the match: program again
    assert labels(matched.feeds(NXT_NAME)) == labels(venues.feeds(NXT_NAME))
    # Nextrade's after-market opening, KRX's match's minute still streamed: Nextrade's row,
    # and on after KRX's feeds are released.
    both = matched.during(("NXT",), ("trades", "auction"))
    assert labels(both.feeds(NXT_NAME)) == (
        "KRX trades",
        "NXT trades",
        "KRX program",
        "NXT auction",
    )
    after = both.without_krx(("trades", "auction"))
    assert labels(after.feeds(NXT_NAME)) == ("NXT trades", "NXT auction")
    assert labels(after.in_auction(("NXT",), False).feeds(NXT_NAME)) == (
        "NXT trades",
        "NXT program",
    )
    combined = RegistrationPolicy("combined", ("trades", "program"), nxt=nxt)
    combined = combined.during(KRX_CLOSING, ("trades", "auction"))
    assert labels(combined.feeds(NXT_NAME)) == ("combined trades", "combined auction")
    plain = RegistrationPolicy().during(KRX_CLOSING, TRADES_ROW)
    assert labels(plain.feeds(KRX_NAME)) == ("KRX trades",)
    # A row with fewer kinds: the auction's names hold less (never more: checked at load).
    fewer = RegistrationPolicy("venues", ("trades", "book"), nxt=nxt).during(
        KRX_CLOSING, TRADES_ROW
    )
    assert labels(fewer.feeds(NXT_NAME)) == ("KRX trades", "NXT trades", "NXT book")
    # Nothing for a paper account, offered neither.
    paper = RegistrationPolicy(paper=True).during(KRX_CLOSING, ("trades", "auction"))
    assert labels(paper.feeds(KRX_NAME)) == ("KRX trades",)


def test_through_krx_s_opening_names_hold_the_opening_rows() -> None:
    nxt = frozenset({NXT_NAME})
    policy = RegistrationPolicy("venues", ("trades", "program"), nxt=nxt)
    auction = policy.opening_feeds(NXT_NAME, ("auction", "book"), auction=True)
    assert labels(auction) == ("KRX auction", "KRX book")  # KRX's alone: its auction
    assert labels(policy.opening_auction_feeds(KRX_NAME)) == ("KRX auction",)
    half_hour = policy.opening_feeds(NXT_NAME, ("trades", "book"), auction=False)
    assert labels(half_hour) == ("KRX trades", "NXT trades", "KRX book", "NXT book")
    paper = RegistrationPolicy(paper=True)
    assert paper.opening_auction_feeds(KRX_NAME) == ()  # KIS offers paper accounts none


def test_a_paper_account_holds_the_feeds_paper_offers_whatever_the_policy() -> None:
    row: Kinds = ("trades", "book", "status", "program")
    for trades in TRADES:
        paper = RegistrationPolicy(trades, row, nxt=frozenset({NXT_NAME}), paper=True)
        assert labels(paper.feeds(NXT_NAME)) == ("KRX trades", "KRX book")
        assert paper.widest == 2 == paper.cost(NXT_NAME)
        assert "paper accounts are offered KRX's trades and books" in paper.describe()


@settings(max_examples=300, deadline=None)
@given(
    plan=rounds,
    accounts=st.integers(1, 3),
    capacity=st.integers(1, 9),
    costs=st.dictionaries(st.sampled_from(SYMBOLS), st.integers(1, 4)),
    closing=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8)), max_size=3),
)
def test_no_account_holds_more_registrations_than_its_session_takes(
    plan: list[tuple[list[SlotCandidate], int, set[str]]],
    accounts: int,
    capacity: int,
    costs: dict[str, int],
    closing: list[tuple[int, int]],
) -> None:
    names = ["a", "b", "c"][:accounts]
    book = SlotBook(names, capacity, lambda symbol: costs.get(symbol, 1))
    now = 0
    for n, (pool, step, sick) in enumerate(plan):
        now += step
        if n < len(closing) and closing[n][0] < accounts and closing[n][1] < capacity:
            book.close(names[closing[n][0]], closing[n][1], "KIS counts the session full")
        healthy = {a for a in names if a not in sick}
        decisions = book.evaluate(pool, now, healthy, threshold=1.2, min_hold_ns=5)
        symbols = [h.candidate.symbol for h in book.holdings()]
        assert len(symbols) == len(set(symbols))
        for account in names:
            closed = sum(1 for a, _ in book.closed if a == account)
            assert book.registrations(account) + closed <= capacity
            assert book.room(account) >= 0
        assert not [h for h in book.holdings() if (h.account, h.slot) in book.closed]
        # A symbol that takes more than any session can is never placed, and says why.
        for d in decisions:
            if d.action in ("allocate", "replace"):
                assert book.cost(d.candidate.symbol) <= capacity


def test_an_overflow_of_a_wide_symbol_leaves_room_to_a_narrow_one() -> None:
    costs = {"000001": 2, "000002": 2, "000003": 1}
    book = SlotBook(["a"], 3, costs.__getitem__)
    pool = [SlotCandidate(s, "volume_surge", 10.0 - n) for n, s in enumerate(costs)]
    decisions = book.evaluate(pool, 0, {"a"})
    assert [(d.action, d.candidate.symbol) for d in decisions] == [
        ("allocate", "000001"),
        ("overflow", "000002"),  # 1 registration left: it takes 2
        ("allocate", "000003"),
    ]
    assert book.registrations("a") == 3 and book.room("a") == 0
    assert Room(3, costs.__getitem__).fitting(costs) == 1  # the first two take 4


def test_a_replacement_frees_as_many_registrations_as_the_new_symbol_takes() -> None:
    costs = {"000001": 1, "000002": 2, "000003": 2}
    book = SlotBook(["a"], 3, costs.__getitem__)
    held = [
        SlotCandidate("000001", "volume_surge", 2.0),
        SlotCandidate("000002", "volume_surge", 5.0),
    ]
    book.evaluate(held, 0, {"a"})
    # The weakest holding takes one registration, too few for the newcomer's two: the
    # newcomer replaces the stronger holding that frees two, if it outscores it enough.
    strong = SlotCandidate("000003", "volume_surge", 7.0)
    decisions = book.evaluate([*held, strong], 10, {"a"}, threshold=1.2)
    assert [(d.action, d.candidate.symbol) for d in decisions][:1] == [("replace", "000003")]
    assert decisions[0].replaced is not None and decisions[0].replaced.symbol == "000002"
    assert book.registrations("a") == 3


def test_a_decision_is_one_event_per_venue_it_registers() -> None:
    policy = RegistrationPolicy("venues", nxt=frozenset({NXT_NAME}))
    allocate = SlotCandidate(NXT_NAME, "volume_surge", 3.0)
    event = decision_event(
        SlotBook(["a"], 2, policy.cost).evaluate([allocate], 0, {"a"})[0], "regular", "NXT"
    )
    assert isinstance(event, SlotDecision) and event.venue == "NXT"
    overflow = SlotBook(["a"], 1, policy.cost).evaluate([allocate], 0, {"a"})[0]
    assert overflow.action == "overflow"
    assert isinstance(decision_event(overflow), SlotOverflow)


def test_a_nextrade_name_streams_both_venues_and_a_drop_is_a_gap_on_each(
    sim: SimThread, tmp_path: Path
) -> None:
    """On the simulator at 10:00 (both venues trade): the policy's registrations, each
    trade with its venue, one decision per venue, and a dropped session's gaps per venue."""
    settings = settings_for(tmp_path, sim.url, "acct1")
    clock = sim.sim.clock
    eligible = MARKET.nxt_eligible(TEN.date())
    both = [s for s in STOCKS if s in eligible][:2]
    krx_only = [s for s in STOCKS if s not in eligible][:2]
    fed = {(s, "KRX") for s in [*both, krx_only[0]]} | {(s, "NXT") for s in both}
    events: list[Event] = []

    def of(kind: type[Any]) -> list[Any]:
        return [e for e in events if isinstance(e, kind)]

    async def scenario() -> None:
        account = open_account(settings.kis, "acct1", clock, rate_limits(settings.kis, "track_a"))
        quiet = CollectorSettings(trades="venues", silence=SilenceRule(5.0, 900.0))
        collector = Collector([account], clock, events.append, quiet, nxt=eligible)
        stop = asyncio.Event()
        running = asyncio.ensure_future(collector.run(stop))
        try:
            book = SlotBook(["acct1"], 5, collector.policy.cost)
            wanted = [*both, *krx_only]  # 2 + 2 + 1 registrations fit; the last does not
            pool = [SlotCandidate(s, "volume_surge", 10.0 - n) for n, s in enumerate(wanted)]
            decisions = book.evaluate(pool, clock.now_ns(), collector.healthy())
            assert [d.action for d in decisions] == ["allocate"] * 3 + ["overflow"]
            await collector.apply(decisions, book.holdings())
            assert collector.streams["acct1"].wanted == {
                *(Feed("trades", "KRX", s) for s in [*both, krx_only[0]]),
                *(Feed("trades", "NXT", s) for s in both),
            }
            await until(
                lambda: {(t.symbol, t.venue) for t in of(TradeTick)} == fed,
                "each venue's trades",
                timeout=30,
            )
            dropped = asyncio.run_coroutine_threadsafe(sim.sim.drop_websockets(), sim.loop)
            assert dropped.result(10) == 1
            await until(lambda: len(of(GapDetected)) == len(fed), "a gap per feed", timeout=30)
        finally:
            stop.set()
            await running
            await account.aclose()

    asyncio.run(scenario())
    placed = [(d.symbol, d.venue) for d in of(SlotDecision)]
    assert sorted(placed) == sorted(fed)  # one decision per venue registered
    assert [o.symbol for o in of(SlotOverflow)] == [krx_only[1]]
    gaps = of(GapDetected)
    assert {(g.symbol, g.venue) for g in gaps} == fed
    assert all(g.reason == "disconnect" and g.start_ns < g.end_ns for g in gaps)
    nxt_gaps = [g for g in gaps if g.venue == "NXT"]
    assert all(g.gap_id == f"acct1:{g.symbol}@NXT:{g.start_ns}" for g in nxt_gaps)
    # Nextrade's trades are stored as its own: the same symbol's KRX trades are apart.
    assert {t.venue for t in of(TradeTick) if t.symbol == krx_only[0]} == {"KRX"}


def test_paper_accounts_register_krx_feeds_alone_and_are_refused_nothing(tmp_path: Path) -> None:
    """The default policy on KIS's paper host: Nextrade's names stream KRX's trades and book,
    and nothing is asked that the host refuses (no OPSP8991 loop)."""
    eligible = MARKET.nxt_eligible(TEN.date())
    names = [s for s in STOCKS if s in eligible][:2]
    events: list[Event] = []
    with SimThread(MARKET, TEN, SimConfig(paper=True), speed=30) as sim:
        settings = settings_for(tmp_path, sim.url, "acct1", kis='sim_accounts = "paper"\n')
        assert settings.kis.paper
        clock = sim.sim.clock

        async def scenario() -> Collector:
            limits = rate_limits(settings.kis, "track_a")
            account = open_account(settings.kis, "acct1", clock, limits)
            policy = CollectorSettings(
                trades="venues", kinds=("trades", "book"), silence=SilenceRule(5.0, 900.0)
            )
            collector = Collector([account], clock, events.append, policy, nxt=eligible, paper=True)
            stop = asyncio.Event()
            running = asyncio.ensure_future(collector.run(stop))
            try:
                book = SlotBook(["acct1"], 4, collector.policy.cost)
                pool = [SlotCandidate(s, "volume_surge", 10.0 - n) for n, s in enumerate(names)]
                await collector.apply(book.evaluate(pool, clock.now_ns(), {"acct1"}))
                await until(
                    lambda: {e.symbol for e in events if isinstance(e, TradeTick)} == set(names),
                    "KRX's trades",
                    timeout=30,
                )
                await until(
                    lambda: (
                        collector.streams["acct1"].registered == collector.streams["acct1"].wanted
                    ),
                    "every registration confirmed",
                    timeout=30,
                )
                return collector
            finally:
                stop.set()
                await running
                await account.aclose()

        collector = asyncio.run(scenario())
    assert collector.streams["acct1"].wanted == {
        Feed(kind, "KRX", s) for s in names for kind in ("trades", "book")
    }
    assert collector.refusals == 0
    assert {t.venue for t in events if isinstance(t, TradeTick)} == {"KRX"}
    assert sorted((d.symbol, d.venue) for d in events if isinstance(d, SlotDecision)) == [
        (s, "KRX") for s in sorted(names)
    ]


def test_past_krx_s_close_a_nextrade_name_keeps_the_feeds_of_nextrade_s_trades() -> None:
    nxt = frozenset({NXT_NAME})
    row: Kinds = ("trades", "book")
    after = {t: RegistrationPolicy(t, nxt=nxt).without_krx(row) for t in TRADES}
    assert labels(after["venues"].feeds(NXT_NAME)) == ("NXT trades", "NXT book")
    assert labels(after["combined"].feeds(NXT_NAME)) == ("combined trades", "combined book")
    assert labels(after["krx"].feeds(NXT_NAME)) == ()
    assert all(labels(policy.feeds(KRX_NAME)) == () for policy in after.values())
    paper = RegistrationPolicy("venues", nxt=nxt, paper=True).without_krx(row)
    assert labels(paper.feeds(NXT_NAME)) == ()


def test_in_krx_s_after_market_every_name_holds_krx_s_feeds_again() -> None:
    nxt = frozenset({NXT_NAME})
    after = RegistrationPolicy("venues", nxt=nxt).without_krx(("trades", "auction"))
    evening = after.with_krx(("trades", "book"), ("trades", "auction"))
    assert labels(evening.feeds(NXT_NAME)) == (
        "KRX trades",
        "NXT trades",
        "KRX book",
        "NXT program",
    )
    assert evening.cost(NXT_NAME) == 4
    assert labels(evening.feeds(KRX_NAME)) == ("KRX trades", "KRX book")
    # without Nextrade's after-market followed: KRX's feeds alone, for its names too
    alone = after.with_krx(TRADES_ROW)
    assert labels(alone.feeds(NXT_NAME)) == ("KRX trades",) and alone.cost(NXT_NAME) == 1


feeds = st.sets(
    st.builds(Feed, st.just("trades"), st.sampled_from(VENUES), st.sampled_from(SYMBOLS[:6]))
)


@settings(max_examples=400, deadline=None)
@given(current=feeds, target=feeds, spare=st.integers(0, 4))
def test_a_swap_never_exceeds_the_session_and_adds_before_it_drops_where_room_allows(
    current: set[Feed], target: set[Feed], spare: int
) -> None:
    capacity = max(len(current), len(target)) + spare
    plan = swaps(current, target, capacity)
    held = set(current)
    dropped_before_added: set[str] = set()
    for step, registration in plan:
        if step == "add":
            assert registration not in held
            held.add(registration)
        else:
            assert registration in held
            held.remove(registration)
            if any(r.symbol == registration.symbol for r in target - held):
                dropped_before_added.add(registration.symbol)
        assert len(held) <= capacity
    assert held == set(target)
    # With room for every addition, each goes before any release: no trade falls between.
    if len(current | target) <= capacity:
        assert [step for step, _ in plan] == sorted((s for s, _ in plan), key="add drop".index)
        assert not dropped_before_added


def test_market_status_and_program_trading_stream_beside_the_trades_and_a_halt_is_seen(
    sim: SimThread, tmp_path: Path
) -> None:
    """On the simulator at 10:00 (30x): each venue's program trading every minute, and KRX's
    market status at a halt's start and end, which the collector keeps for the slot guard."""
    settings = settings_for(tmp_path, sim.url, "acct1")
    clock = sim.sim.clock
    eligible = MARKET.nxt_eligible(TEN.date())
    nxt_name = next(s for s in STOCKS if s in eligible)
    krx_name = next(s for s in STOCKS if s not in eligible)
    events: list[Event] = []

    def of(kind: type[Any]) -> list[Any]:
        return [e for e in events if isinstance(e, kind)]

    async def scenario() -> None:
        account = open_account(settings.kis, "acct1", clock, rate_limits(settings.kis, "track_a"))
        options = CollectorSettings(
            trades="venues",
            kinds=("trades", "status", "program"),
            silence=SilenceRule(5.0, 900.0),
        )
        collector = Collector([account], clock, events.append, options, nxt=eligible)
        stop = asyncio.Event()
        running = asyncio.ensure_future(collector.run(stop))
        try:
            book = SlotBook(["acct1"], 9, collector.policy.cost)
            pool = [SlotCandidate(s, "volume_surge", 1.0) for s in (nxt_name, krx_name)]
            decisions = book.evaluate(pool, clock.now_ns(), collector.healthy())
            assert [d.action for d in decisions] == ["allocate", "allocate"]
            await collector.apply(decisions, book.holdings())
            assert len(collector.streams["acct1"].wanted) == 9  # 6 + 3
            stream = collector.streams["acct1"]
            await until(lambda: stream.registered == stream.wanted, "registered", timeout=60)
            now = clock.now_ns()  # a halt from 10 s after KIS holds the status registration
            sim.sim.faults.halts[krx_name] = (now + 10 * S, now + 70 * S)
            await until(
                lambda: (
                    {(p.symbol, p.venue) for p in of(ProgramTrade)}
                    == {(nxt_name, "KRX"), (nxt_name, "NXT"), (krx_name, "KRX")}
                ),
                "each venue's program trading",
                timeout=60,
            )
            await until(
                lambda: (
                    [s.halted for s in of(MarketStatus) if s.symbol == krx_name] == [True, False]
                ),
                "the halt's start and end",
                timeout=60,
            )
            assert collector.statuses[krx_name].halted is False  # the latest, for the guard
        finally:
            stop.set()
            await running
            await account.aclose()
            sim.sim.faults.halts.pop(krx_name, None)

    asyncio.run(scenario())
    halt = [s for s in of(MarketStatus) if s.symbol == krx_name]
    assert [(s.status, s.venue, s.exchange) for s in halt] == [
        ("58", "KRX", "1"),
        ("55", "KRX", "1"),
    ]
    assert halt[0].halt_reason and halt[1].halt_reason == ""
    programs = [p for p in of(ProgramTrade) if (p.symbol, p.venue) == (krx_name, "KRX")]
    assert all(p.net_qty == p.buy_qty - p.sell_qty for p in programs)
    assert [p.sell_qty for p in programs] == sorted(p.sell_qty for p in programs)  # the day's
    assert all(p.account == "acct1" for p in programs)
