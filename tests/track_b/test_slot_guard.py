"""The slots' guard: refused registrations barred or their slots closed, halts and limit locks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.events import MarketStatus, PriceSnapshot, TradeTick
from observer.config.workers import TrackBSettings
from workers.track_b.barred import PERMANENT_REFUSALS, Barred, refusal_kind
from workers.track_b.collect import Refusal
from workers.track_b.guard import SlotGuard
from workers.track_b.halts import Tradability
from workers.track_b.slots import SlotBook, SlotCandidate

S = 1_000_000_000
DAY_END = 86_400 * S
SETTINGS = TrackBSettings(
    refusal_retry_s=30.0, refusal_retry_max_s=120.0, refused_error_share=0.5, limit_lock_s=10.0
)
SYMBOLS = [f"{n:06d}" for n in range(1, 9)]


def guard() -> tuple[SlotGuard, list[tuple[Any, ...]]]:
    alerts: list[tuple[Any, ...]] = []
    return SlotGuard(SETTINGS, DAY_END, lambda *alert: alerts.append(alert)), alerts


def snapshot(symbol: str, at: int, price: int, halted: bool = False) -> PriceSnapshot:
    return PriceSnapshot(
        cycle_id="20261120-1000",
        symbol=symbol,
        market="KOSPI",
        observed_ns=at,
        price=price,
        change=0,
        change_rate=Decimal(0),
        open=price,
        high=price,
        low=price,
        volume=1,
        traded_value=price,
        upper_limit=13_000,
        lower_limit=7_000,
        halted=halted,
    )


def tick(symbol: str, at: int, price: int) -> TradeTick:
    return TradeTick(
        symbol=symbol,
        exchange_ns=at,
        received_ns=at,
        price=price,
        qty=1,
        cum_volume=1,
        cum_value=price,
        change_rate=Decimal(0),
    )


def test_refusal_codes_are_sorted_into_three_kinds() -> None:
    assert refusal_kind("OPSP8992") == refusal_kind("OPSP8991") == "permanent"
    assert refusal_kind("OPSP0007") == refusal_kind("OPSP9999") == "transient"  # unknown too
    assert refusal_kind("OPSP0008") == "limit"
    assert refusal_kind("OPSP0009", permanent=["OPSP0009"]) == "permanent"  # configurable
    assert TrackBSettings().refusal_permanent_codes == PERMANENT_REFUSALS


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 600), min_size=1, max_size=8),
    code=st.sampled_from(["OPSP0007", "OPSP0009", "OPSP8992"]),
)
def test_a_transient_refusal_bars_for_a_doubling_backoff_a_permanent_one_for_the_day(
    gaps: list[int], code: str
) -> None:
    barred = Barred(30.0, 120.0, DAY_END)
    now = 0
    for strike, gap in enumerate(gaps, start=1):
        now += gap * S
        bar = barred.refuse("005930", code, "SUBSCRIBE ERROR", now)
        assert bar.kind == "refused" and bar.code == code and bar.since_ns == now
        assert bar.reason.startswith(f"registration refused: {code} SUBSCRIBE ERROR")
        if code == "OPSP8992":
            assert bar.until_ns == DAY_END and "not retried today" in bar.reason
        else:
            pause = min(30 * 2 ** (strike - 1), 120)
            assert bar.until_ns == now + pause * S and f"retry in {pause} s" in bar.reason
        assert "005930" in barred.active(bar.until_ns - 1)
        # A halt neither shortens nor replaces a refusal's bar, and is not what lifts it.
        assert barred.hold("005930", "halted", "trading halted", now) is None
        assert barred.lift("005930") is None
    assert barred.active(now + 121 * S) == ({} if code != "OPSP8992" else barred.active(0))
    assert barred.active(DAY_END) == {}


def test_refusals_bar_their_symbols_close_a_full_sessions_slot_and_alert_once() -> None:
    g, alerts = guard()
    book = SlotBook(["acct1", "acct2"], 2)
    held = book.evaluate(
        [SlotCandidate(s, "market_cap", 5.0 - n) for n, s in enumerate(SYMBOLS[:4])],
        0,
        ["acct1", "acct2"],
    )
    where = {d.candidate.symbol: d.account for d in held}
    s0, s1, s2, s3 = SYMBOLS[:4]

    def refused(symbol: str, code: str, account: str = "", feed: str = "KRX trades") -> None:
        g.on_refused(Refusal(account or where[symbol], symbol, feed, code, "KIS says no", 0))

    refused(s0, "OPSP8992")
    refused(s0, "OPSP8992", feed="KRX book")  # its book too: one refusal of the symbol
    refused(s1, "OPSP0007")
    refused(s2, "OPSP0008")
    other = "acct2" if where[s3] == "acct1" else "acct1"
    refused(s3, "OPSP8992", account=other)  # not held there (any more): nothing to do
    assert g.wake.is_set()
    closed = g.review(book, set(), S)
    assert [(d.action, d.candidate.symbol) for d in closed] == [("release", s2)]
    assert closed[0].reason == "registration refused: OPSP0008 KIS says no (slot closed)"
    assert book.closed == {(where[s2], closed[0].slot)}
    barred = g.barred(S)
    assert barred == {
        s0: "registration refused: OPSP8992 KIS says no (not retried today)",
        s1: "registration refused: OPSP0007 KIS says no (retry in 30 s)",
    }
    # One alert per symbol: a warning, then an error once half the slots are refused.
    assert [(a[0], a[1], a[3]["symbol"]) for a in alerts] == [
        ("warning", "track_b_registration_refused", s0),
        ("error", "track_b_registration_refused", s1),
        ("error", "track_b_registration_limit", s2),
    ]
    assert alerts[0][3] == {
        "symbol": s0,
        "account": where[s0],
        "feed": "KRX trades",
        "code": "OPSP8992",
    }
    # The evaluation releases the barred symbols with their reasons; the next candidates
    # take the slots, except the closed one. The symbol KIS refused as one too many is not
    # at fault: it competes as before.
    pool = [SlotCandidate(s, "market_cap", 5.0 - n) for n, s in enumerate(SYMBOLS)]
    decisions = book.evaluate(pool, S, ["acct1", "acct2"], barred=barred)
    assert {
        (d.action, d.candidate.symbol, d.reason) for d in decisions if d.action == "release"
    } == {("release", s, barred[s]) for s in (s0, s1)}
    assert sorted(book.held()) == [s2, s3, SYMBOLS[4]]
    assert all(book.slots[a][n] is None for a, n in book.closed)
    # After its backoff the transient one competes again; refused again, it waits twice as
    # long, with no second alert.
    assert s1 not in g.barred(31 * S)
    book.evaluate([SlotCandidate(s1, "manual", 9.0, pinned=True)], 31 * S, ["acct1", "acct2"])
    g.on_refused(Refusal(book.held()[s1].account, s1, "KRX trades", "OPSP0007", "again", 31 * S))
    g.review(book, {s1}, 31 * S)
    assert g.barred(31 * S)[s1] == "registration refused: OPSP0007 again (retry in 60 s)"
    assert len(alerts) == 3


def test_halted_and_limit_locked_symbols_are_barred_until_they_trade_again() -> None:
    g, alerts = guard()
    book = SlotBook(["acct1"], 4)
    halted, locked, pinned, lower = SYMBOLS[:4]
    for symbol in SYMBOLS[:4]:
        g.on_snapshot(snapshot(symbol, 0, 10_000))  # the day's limits: 7,000 - 13,000
    g.on_snapshot(snapshot(halted, 10 * S, 10_000, halted=True))
    g.on_snapshot(snapshot(pinned, 10 * S, 10_000, halted=True))
    g.on_snapshot(snapshot(lower, 10 * S, 7_000))  # a snapshot at a limit: locked at once
    g.review(book, {pinned}, 10 * S)
    assert g.barred(10 * S) == {
        halted: "trading halted",
        lower: "locked at its lower limit (7,000 KRW)",
    }
    assert [(a[0], a[1], a[3]) for a in alerts] == [
        ("info", "track_b_halted", {"symbol": halted}),
        ("info", "track_b_limit_locked", {"symbol": lower}),
    ]
    # Trades at the upper limit are a lock once they have stayed there limit_lock_s (10 s).
    g.on_tick(tick(locked, 11 * S, 13_000))
    g.review(book, {pinned}, 20 * S)
    assert locked not in g.barred(20 * S)
    g.on_tick(tick(locked, 20 * S, 13_000))
    g.review(book, {pinned}, 21 * S)
    assert g.barred(21 * S)[locked] == "locked at its upper limit (13,000 KRW)"
    # An older snapshot changes nothing; a later one inside the limits, not halted, lifts.
    g.on_snapshot(snapshot(halted, 5 * S, 10_000))
    g.review(book, {pinned}, 22 * S)
    assert set(g.barred(22 * S)) == {halted, locked, lower}
    for symbol in (halted, locked, lower):
        g.on_snapshot(snapshot(symbol, 30 * S, 10_100))
    g.review(book, {pinned}, 30 * S)
    assert g.barred(30 * S) == {} and len(alerts) == 3
    # A trade off the limit before the lock time: never a lock.
    g.on_tick(tick(locked, 31 * S, 13_000))
    g.on_tick(tick(locked, 35 * S, 12_900))
    g.review(book, {pinned}, 60 * S)
    assert g.barred(60 * S) == {}


def test_only_the_latest_observation_counts() -> None:
    trading = Tradability(10.0)
    trading.on_snapshot(snapshot("005930", 10 * S, 10_000, halted=True))
    trading.on_tick(tick("005930", 9 * S, 10_000))  # older than the snapshot
    assert trading.state("005930", 10 * S) == ("halted", "trading halted")
    trading.on_tick(tick("005930", 11 * S, 10_000))
    assert trading.state("005930", 11 * S) is None and trading.flagged == set()
    trading.on_tick(tick("000660", 11 * S, 13_000))  # no snapshot yet: no limits known
    assert trading.state("000660", 99 * S) is None


def status(symbol: str, at: int, halted: bool = False, code: str = "55") -> MarketStatus:
    codes = dict.fromkeys(("operation", "expected_operation", "extension", "allocation"), "")
    return MarketStatus(
        symbol=symbol,
        received_ns=at,
        halted=halted,
        halt_reason="",
        status=code,
        vi="N",
        overtime_vi="N",
        **codes,
    )


def test_a_market_status_halt_bars_at_once_and_its_end_lifts_keeping_the_limit() -> None:
    """KIS's market status says a halt before Track A's next snapshot (a halted symbol
    sends no trade), and its end; a status says nothing of the price: a lock stays."""
    g, alerts = guard()
    book = SlotBook(["acct1"], 4)
    halted, by_code, locked = SYMBOLS[:3]
    for symbol in SYMBOLS[:3]:
        g.on_snapshot(snapshot(symbol, 0, 10_000))
    g.on_status(status(halted, 5 * S, halted=True))
    g.on_status(status(by_code, 5 * S, code="58"))  # ISCD_STAT_CLS_CODE 거래정지
    g.on_snapshot(snapshot(locked, 5 * S, 13_000))
    g.review(book, set(), 5 * S)
    assert set(g.barred(5 * S)) == {halted, by_code, locked}
    g.on_status(status(halted, 4 * S))  # older than the halt: nothing
    g.on_status(status(by_code, 6 * S))
    g.on_status(status(locked, 6 * S))  # the lock is the price's, not the status's
    g.review(book, set(), 6 * S)
    assert set(g.barred(6 * S)) == {halted, locked}
    g.on_status(status(halted, 7 * S))
    g.review(book, set(), 7 * S)
    assert set(g.barred(7 * S)) == {locked}
    assert [a[1] for a in alerts].count("track_b_halted") == 2


def test_a_halt_seen_behind_a_refusals_bar_bars_the_symbol_when_that_bar_ends() -> None:
    # A transient refusal (30 s), then a snapshot saying the symbol is halted: the refusal's
    # bar is kept while it runs, and the halt's takes over in the review at which it ends.
    # (The review judged halts before the ended bar was dropped: the halted symbol was
    # placed again for a round.)
    g, alerts = guard()
    book = SlotBook(["acct1"], 2)
    book.evaluate([SlotCandidate(SYMBOLS[0], "market_cap", 2.3)], 0, ["acct1"])
    g.on_snapshot(snapshot(SYMBOLS[0], 0, 10_000))
    g.on_refused(Refusal("acct1", SYMBOLS[0], "KRX trades", "OPSP0007", "KIS says no", 0))
    g.review(book, set(), 0)
    g.on_snapshot(snapshot(SYMBOLS[0], 10 * S, 10_000, halted=True))
    for now in (10 * S, 29 * S):
        g.review(book, set(), now)
        assert g.barred(now)[SYMBOLS[0]].startswith("registration refused: OPSP0007")
    g.review(book, set(), 30 * S)
    assert g.barred(30 * S) == {SYMBOLS[0]: "trading halted"}
    assert [a[1] for a in alerts] == ["track_b_registration_refused", "track_b_halted"]
