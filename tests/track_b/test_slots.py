"""The slot manager: the seed's allocation rules as properties over random rounds."""

from __future__ import annotations

import copy
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.track_b.slots import Holding, SlotAction, SlotBook, SlotCandidate

SYMBOLS = [f"{n:06d}" for n in range(1, 40)]
MIN_HOLD = 5


def candidate(symbol: str, score: float, expires: int = 0, pinned: bool = False) -> SlotCandidate:
    return SlotCandidate(
        symbol,
        "manual" if pinned else "volume_surge",
        score,
        market_cap=int(symbol),
        expires_ns=expires,
        pinned=pinned,
    )


candidates = st.builds(
    candidate,
    st.sampled_from(SYMBOLS),
    st.floats(1, 30, allow_nan=False),
    st.integers(0, 40),
    st.sampled_from([False] * 6 + [True]),  # pins are rare
)
rounds = st.lists(
    st.tuples(
        st.lists(candidates, max_size=25),
        st.integers(1, 5),  # time passing before the round
        st.sets(st.sampled_from(["a", "b", "c"])),  # accounts that are unhealthy
    ),
    min_size=1,
    max_size=8,
)


def each_round(
    book: SlotBook, plan: list[tuple[list[SlotCandidate], int, set[str]]]
) -> Iterator[tuple[int, list[SlotAction]]]:
    """Each round of ``plan`` evaluated: its time and decisions (the book as they left it)."""
    now = 0
    for pool, step, sick in plan:
        now += step
        healthy = {a for a in book.accounts if a not in sick}
        yield now, book.evaluate(pool, now, healthy, threshold=1.2, min_hold_ns=MIN_HOLD)


def play(
    book: SlotBook, plan: list[tuple[list[SlotCandidate], int, set[str]]]
) -> list[list[SlotAction]]:
    return [decisions for _, decisions in each_round(book, plan)]


@settings(max_examples=300, deadline=None)
@given(plan=rounds, accounts=st.integers(1, 3), capacity=st.integers(1, 6))
def test_the_allocator_keeps_its_promises(
    plan: list[tuple[list[SlotCandidate], int, set[str]]], accounts: int, capacity: int
) -> None:
    names = ["a", "b", "c"][:accounts]
    book = SlotBook(names, capacity)
    now = 0
    for pool, step, sick in plan:
        now += step
        healthy = {a for a in names if a not in sick}
        decisions = book.evaluate(pool, now, healthy, threshold=1.2, min_hold_ns=MIN_HOLD)
        holdings = book.holdings()
        # Never above capacity, one symbol per slot, each symbol in at most one slot.
        for account in names:
            assert len(book.slots[account]) == capacity
        symbols = [h.candidate.symbol for h in holdings]
        assert len(symbols) == len(set(symbols))
        # Nothing is left on an unhealthy account, and nothing lapsed is held.
        assert all(h.account in healthy for h in holdings)
        assert all(
            h.candidate.pinned or not h.candidate.expires_ns or h.candidate.expires_ns > now
            for h in holdings
        )
        # No candidate overflowed while a replaceable slot holds one scoring below its
        # score / 1.2 (pins are never replaced; new holdings are protected for MIN_HOLD).
        replaceable = [
            h for h in holdings if not h.candidate.pinned and now - h.since_ns >= MIN_HOLD
        ]
        for d in decisions:
            if d.action == "overflow" and not d.candidate.pinned:
                assert all(h.candidate.score * 1.2 >= d.candidate.score for h in replaceable)
            if d.action == "overflow":
                assert all(
                    book.slots[a][s] is not None for a in healthy for s in range(capacity)
                ), "an overflow while a healthy account had a free slot"
        # Every wanted symbol is held or overflowed in this round.
        best = {c.symbol for c in pool if c.pinned or not c.expires_ns or c.expires_ns > now}
        placed = {d.candidate.symbol for d in decisions if d.action in ("allocate", "replace")}
        overflowed = {d.candidate.symbol for d in decisions if d.action == "overflow"}
        assert best <= set(symbols) | overflowed | placed


@settings(max_examples=150, deadline=None)
@given(plan=rounds, accounts=st.integers(1, 3), capacity=st.integers(1, 6))
def test_the_same_inputs_give_the_same_allocation(
    plan: list[tuple[list[SlotCandidate], int, set[str]]], accounts: int, capacity: int
) -> None:
    names = ["a", "b", "c"][:accounts]
    first, second = SlotBook(names, capacity), SlotBook(names, capacity)
    shuffled = [(list(reversed(pool)), step, sick) for pool, step, sick in copy.deepcopy(plan)]
    assert play(first, plan) == play(second, shuffled)  # input order does not matter
    assert first.holdings() == second.holdings() and first.cursor == second.cursor


def test_free_slots_go_round_robin_and_replacement_needs_twenty_percent_more() -> None:
    book = SlotBook(["a", "b"], 2)
    first = book.evaluate(
        [candidate(s, 10.0 + n) for n, s in enumerate(SYMBOLS[:4])], 0, ["a", "b"]
    )
    assert [(d.action, d.account, d.slot) for d in first] == [
        ("allocate", "a", 0),
        ("allocate", "b", 0),
        ("allocate", "a", 1),
        ("allocate", "b", 1),
    ]
    assert [d.candidate.score for d in first] == [13.0, 12.0, 11.0, 10.0]
    # 11.9 is not above 1.2 x 10; 12.1 is, and takes the weakest slot.
    tight = book.evaluate([candidate(SYMBOLS[10], 11.9)], 100, ["a", "b"], min_hold_ns=10)
    assert tight[0].action == "overflow" and tight[0].lowest_held == 10.0
    won = book.evaluate([candidate(SYMBOLS[11], 12.1)], 100, ["a", "b"], min_hold_ns=10)
    assert won[0].action == "replace" and won[0].replaced is not None
    assert won[0].replaced.symbol == SYMBOLS[0] and (won[0].account, won[0].slot) == ("b", 1)


def test_a_new_holding_is_protected_for_the_minimum_hold() -> None:
    book = SlotBook(["a"], 1)
    book.evaluate([candidate(SYMBOLS[0], 5.0)], 0, ["a"])
    early = book.evaluate([candidate(SYMBOLS[1], 20.0)], 5, ["a"], min_hold_ns=10)
    assert early[0].action == "overflow"
    later = book.evaluate([candidate(SYMBOLS[1], 20.0)], 10, ["a"], min_hold_ns=10)
    assert later[0].action == "replace"


def test_lapsed_triggers_expire_and_renewals_keep_the_slot() -> None:
    book = SlotBook(["a"], 2)
    book.evaluate(
        [candidate(SYMBOLS[0], 9.0, expires=10), candidate(SYMBOLS[1], 9.0, 10)], 0, ["a"]
    )
    decisions = book.evaluate([candidate(SYMBOLS[1], 9.5, expires=20)], 10, ["a"])
    assert [(d.action, d.candidate.symbol) for d in decisions] == [("expire", SYMBOLS[0])]
    assert book.held()[SYMBOLS[1]].candidate.score == 9.5


def test_an_unhealthy_accounts_symbols_fail_over_to_free_capacity() -> None:
    book = SlotBook(["a", "b"], 2)
    book.evaluate([candidate(s, 10.0) for s in SYMBOLS[:3]], 0, ["a", "b"])
    assert {h.account for h in book.holdings()} == {"a", "b"}
    decisions = book.evaluate([], 1, ["b"])
    moved = [d for d in decisions if d.action == "release"]
    assert moved and all(d.account == "a" and "failover" in d.reason for d in moved)
    assert all(h.account == "b" for h in book.holdings())
    assert len(book.holdings()) == 2  # b's capacity; the third overflowed
    assert [d.action for d in decisions].count("overflow") == 1


def test_pins_take_a_slot_and_are_never_replaced() -> None:
    book = SlotBook(["a"], 1)
    book.evaluate([candidate(SYMBOLS[0], 25.0)], 0, ["a"])
    pinned = book.evaluate([candidate(SYMBOLS[1], 6.0, pinned=True)], 1, ["a"], min_hold_ns=10)
    assert pinned[0].action == "replace" and pinned[0].reason == "pinned"
    pin = candidate(SYMBOLS[1], 6.0, pinned=True)  # a pin comes as a candidate each round
    strong = book.evaluate([pin, candidate(SYMBOLS[2], 29.0)], 50, ["a"])
    assert [(d.action, d.reason) for d in strong] == [("overflow", "every slot pinned")]
    # Unpinned (no pin candidate any more) and claimed by nothing else: released.
    lifted = book.evaluate([candidate(SYMBOLS[2], 29.0)], 60, ["a"])
    assert [(d.action, d.candidate.symbol, d.reason) for d in lifted] == [
        ("release", SYMBOLS[1], "unpinned"),
        ("allocate", SYMBOLS[2], "volume_surge (score 29.00): free slot"),
    ]


closing_rounds = st.lists(
    st.tuples(
        st.lists(candidates, max_size=25),
        st.integers(1, 5),
        st.sets(st.sampled_from(SYMBOLS[:12])),  # barred in this round
        st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5)), max_size=2),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(plan=closing_rounds, accounts=st.integers(1, 3), capacity=st.integers(1, 6))
def test_barred_symbols_leave_their_slots_and_closed_slots_stay_empty(
    plan: list[tuple[list[SlotCandidate], int, set[str], list[tuple[str, int]]]],
    accounts: int,
    capacity: int,
) -> None:
    names = ["a", "b", "c"][:accounts]
    book = SlotBook(names, capacity)
    now = 0
    for pool, step, barred_symbols, closures in plan:
        now += step
        for account, slot in closures:  # KIS counted these sessions full
            if account in names and slot < capacity:
                holding = book.slots[account][slot]
                closed = book.close(account, slot, "full")
                # its holding released first, and only it where every slot costs one
                assert [(c.action, c.candidate) for c in closed] == (
                    [] if holding is None else [("release", holding.candidate)]
                )
        barred = {s: f"barred: {s}" for s in barred_symbols}
        before = book.held()
        decisions = book.evaluate(
            pool, now, names, threshold=1.2, min_hold_ns=MIN_HOLD, barred=barred
        )
        # A barred symbol holds no slot: each one held is released with its bar's reason,
        # and none is placed or counted as an overflow.
        assert not set(book.held()) & set(barred)
        released = {d.candidate.symbol: d.reason for d in decisions if d.action == "release"}
        assert {s: released.get(s) for s in set(before) & set(barred)} == {
            s: barred[s] for s in set(before) & set(barred)
        }
        placed = {d.candidate.symbol for d in decisions if d.action != "release"}
        assert not placed & set(barred)
        # A closed slot never holds anything again; an overflow means every open slot is held.
        assert all(book.slots[a][n] is None for a, n in book.closed)
        if any(d.action == "overflow" for d in decisions):
            assert all(
                book.slots[a][n] is not None or (a, n) in book.closed
                for a in names
                for n in range(capacity)
            ), "an overflow while an open slot was free"


def test_a_pin_lifted_keeps_its_slot_under_another_claim() -> None:
    # Unpinned while the market-cap placement (or a live trigger) still wants the symbol: it
    # stays where it is, under that claim: no release, no new registration, no new hold.
    book = SlotBook(["a"], 2)
    book.evaluate([candidate(SYMBOLS[0], 11.0, pinned=True)], 0, ["a"])
    cap = SlotCandidate(SYMBOLS[0], "market_cap", 2.3, market_cap=10**12)
    assert book.evaluate([cap], 10, ["a"], min_hold_ns=MIN_HOLD) == []
    assert book.held()[SYMBOLS[0]] == Holding("a", 0, cap, 0)  # held since it was placed


@settings(max_examples=300, deadline=None)
@given(plan=rounds, accounts=st.integers(1, 3), capacity=st.integers(1, 6))
def test_an_overflow_names_what_kept_it_out(
    plan: list[tuple[list[SlotCandidate], int, set[str]]], accounts: int, capacity: int
) -> None:
    # An overflow's reason and lowest held score agree with the slots: the lowest score it
    # could have replaced, or, when every unpinned slot is newer than the minimum hold, that
    # it waits, with the lowest held score. (It said "not above 1.2 x the lowest replaceable
    # score" with the score of a holding that was not replaceable.)
    book = SlotBook(["a", "b", "c"][:accounts], capacity)
    for now, decisions in each_round(book, plan):
        # Nothing is placed after the first overflow: the slots are as the overflows saw them.
        unpinned = [h for h in book.holdings() if not h.candidate.pinned]
        young = [h for h in unpinned if now - h.since_ns < MIN_HOLD]
        replaceable = [h for h in unpinned if now - h.since_ns >= MIN_HOLD]
        for d in decisions:
            if d.action != "overflow" or d.reason.startswith(("replaced by", "no healthy")):
                continue
            if not unpinned:
                assert (d.reason, d.lowest_held, d.waiting) == ("every slot pinned", 0.0, False)
            elif not replaceable:
                assert d.waiting and d.reason == (
                    f"every slot held for less than the minimum hold ({MIN_HOLD / 1e9:g} s)"
                )
                assert d.lowest_held == min(h.candidate.score for h in young)
            else:
                lowest = min(h.candidate.score for h in replaceable)
                assert not d.waiting and d.lowest_held == lowest
                assert d.reason == f"not above 1.2 x the lowest replaceable score ({lowest:.2f})"
                assert d.candidate.score <= 1.2 * lowest


def test_a_registration_reserved_beside_the_slots_is_room_its_account_lacks() -> None:
    # The VI feed's one registration on the first account: it holds one symbol fewer.
    book = SlotBook(["a", "b"], 2, reserved={"a": 1, "gone": 3})
    decisions = book.evaluate([candidate(s, 10.0 + n) for n, s in enumerate(SYMBOLS[:4])], 0, "ab")
    assert [(d.action, d.account) for d in decisions] == [
        ("allocate", "a"),
        ("allocate", "b"),
        ("allocate", "b"),
        ("overflow", ""),
    ]
    assert (book.room("a"), book.room("b")) == (0, 0)
    assert book.reserved == {"a": 1}  # an account not configured reserves nothing


def test_a_costlier_policy_releases_the_lowest_ranked_holdings_until_each_account_fits() -> None:
    costs = {"000001": 1, "000002": 1, "000003": 1, "000004": 1}
    book = SlotBook(["a", "b"], 3, lambda s: costs[s], reserved={"b": 1})
    now = 10
    held = book.evaluate(
        [candidate(s, float(n)) for n, s in enumerate(costs, start=1)], now, {"a", "b"}
    )
    assert len([d for d in held if d.action == "allocate"]) == 4
    assert book.beyond(lambda s: costs[s]) == []  # as they are, every account fits
    twice = {s: 2 for s in costs}
    # each account keeps its best that fit beside what is aside (b's one reserved)
    out = book.beyond(lambda s: twice[s])
    by_account = {h.candidate.symbol: h.account for h in book.holdings()}
    for account, room in (("a", 3), ("b", 2)):
        kept = [s for s, a in by_account.items() if a == account and s not in out]
        assert 2 * len(kept) <= room
        dropped = [s for s, a in by_account.items() if a == account and s in out]
        assert all(float(k) > float(d) for k in kept for d in dropped)  # the best are kept
