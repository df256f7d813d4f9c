"""Another session holds the app key (OPSP8996): the account's down alert comes once it is
unhealthy, not when its reconnect budget is spent (about 45 minutes of refusals)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bus.events import Alert, AlertResolved, Event
from observer.kis.stream import StreamSettings
from tests.kis.test_kis_stream import serve
from tests.support import until
from tests.track_b.test_account_confirmed import Account, KeyInUse, WatchedClock
from workers.track_b.collect import Collector, CollectorSettings
from workers.track_b.outages import ACCOUNT_DOWN
from workers.track_b.slots import SlotBook, SlotCandidate

_NS = 1_000_000_000
GRACE_S = 30.0  # unhealthy_after_s


def _down_alerts(events: list[Event]) -> list[Alert | AlertResolved]:
    return [e for e in events if isinstance(e, Alert | AlertResolved) and e.code == ACCOUNT_DOWN]


@asynccontextmanager
async def _collecting(
    url: str, tmp_path: Path, clock: WatchedClock, publish: Callable[[Event], object]
) -> AsyncIterator[Collector]:
    """A running collector on one account (1 s backoff, KIS's hourly budget) holding one
    slot; stopped on the way out, a failed test's too (its failure raised there)."""
    collector = Collector(
        [Account(url, tmp_path, clock)],  # type: ignore[list-item]
        clock,
        publish,
        CollectorSettings(unhealthy_after_s=GRACE_S, stream=StreamSettings(reconnects_per_hour=60)),
    )
    held = SlotBook(["acct1"], 1).evaluate(
        [SlotCandidate("005930", "manual", 9.0)], clock.now_ns(), {"acct1"}
    )
    await collector.apply(held)
    stop = asyncio.Event()
    running = asyncio.ensure_future(collector.run(stop))
    try:
        yield collector
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


def _reconnect_wait(collector: Collector, clock: WatchedClock) -> Callable[[], float | None]:
    """The stream's backoff (<= 1 s) while disconnected, or the spent budget's wait."""

    def wait() -> float | None:
        state = collector.state["acct1"][0]
        if state == "down":
            return max(clock.sleeping) if clock.sleeping else None
        backoff = [s for s in clock.sleeping if s <= 1.0]
        return backoff[0] if state == "disconnected" and backoff else None

    return wait


def test_a_session_refused_as_in_use_alerts_once_unhealthy_and_once_per_outage(
    tmp_path: Path,
) -> None:
    """Refused session after session: no alert within ``unhealthy_after_s`` (a session of ours
    lingering at KIS lets go sooner), then one critical alert naming OPSP8996 while the budget
    still has room; the stream keeps retrying, the spent budget raises no second alert, and the
    next confirmation resolves it."""
    kis = KeyInUse()
    clock = WatchedClock(1_000 * _NS)
    events: list[Event] = []
    seen: list[tuple[float, int, bool]] = []  # (outage seconds, down alerts, budget spent)

    async def scenario() -> None:
        async with (
            serve(kis) as url,  # type: ignore[arg-type]
            _collecting(url, tmp_path, clock, events.append) as collector,
        ):
            await until(
                lambda: collector.outages.down_since["acct1"] is not None, "the start", timeout=5
            )
            started = collector.outages.down_since["acct1"]
            assert started is not None
            wait = _reconnect_wait(collector, clock)
            while collector.state["acct1"][0] != "down":
                pause = await until(wait, "the stream waiting to reconnect", timeout=10)
                dead = "acct1" in collector.outages.dead
                seen.append(((clock.now_ns() - started) / _NS, len(_down_alerts(events)), dead))
                woken = clock.woken
                clock.advance(pause)
                await until(lambda: clock.woken > woken, "the wait over", timeout=10)  # noqa: B023
            assert len(_down_alerts(events)) == 1  # the spent budget: no second alert
            kis.accepting = True  # the other session let go: the next one is acknowledged
            clock.advance(await until(wait, "the budget's wait", timeout=10))
            await until(
                lambda: collector.streams["acct1"].registered, "an acknowledgement", timeout=10
            )
            assert collector.symbols("acct1") == {"005930"}  # the slot kept throughout

    asyncio.run(scenario())
    assert kis.sessions > 40  # it kept retrying after the alert
    assert all(n == 0 for t, n, _ in seen if t < GRACE_S)
    alerted = [(t, dead) for t, n, dead in seen if n == 1]
    assert alerted and alerted[0][0] < GRACE_S + 2 and not alerted[0][1]  # before the budget
    assert {n for t, n, _ in seen if t >= GRACE_S + 2} == {1}
    alert, resolved = _down_alerts(events)
    assert isinstance(alert, Alert) and isinstance(resolved, AlertResolved)
    assert (alert.severity, alert.subject) == ("critical", "acct1")
    assert "OPSP8996" in alert.message and "another session holds the app key" in alert.message
    assert (resolved.severity, resolved.subject) == ("critical", "acct1")


def test_a_refusal_let_go_within_the_grace_is_not_alerted(tmp_path: Path) -> None:
    """OPSP8996 at the first session only (our own session lingering at KIS, say), then a
    confirmation: no alert and no resolution, then or later."""
    kis = KeyInUse()
    clock = WatchedClock(1_000 * _NS)
    events: list[Event] = []

    async def scenario() -> None:
        async with (
            serve(kis) as url,  # type: ignore[arg-type]
            _collecting(url, tmp_path, clock, events.append) as collector,
        ):
            wait = _reconnect_wait(collector, clock)
            pause = await until(wait, "the first refusal's backoff", timeout=10)
            assert kis.sessions == 1
            due = collector.outages.refusing["acct1"]  # its alert, due at the end of the grace
            kis.accepting = True
            clock.advance(pause)
            await until(
                lambda: collector.streams["acct1"].registered, "an acknowledgement", timeout=10
            )
            clock.advance(2 * GRACE_S)
            await until(due.done, "the due alert's end", timeout=10)
            assert due.cancelled() and not collector.outages.refusing  # confirmed within the grace

    asyncio.run(scenario())
    assert _down_alerts(events) == []


def test_a_down_alert_that_cannot_be_sent_ends_the_collector(tmp_path: Path) -> None:
    """The alert of a refused session is a task of its own: one that fails (the outbox full,
    say) ends the collector, and so the process, instead of dying unseen."""
    kis = KeyInUse()
    clock = WatchedClock(1_000 * _NS)

    def publish(event: Event) -> None:
        if isinstance(event, Alert):
            raise RuntimeError("the outbox refused the alert")

    async def scenario() -> None:
        async with serve(kis) as url:  # type: ignore[arg-type]
            with pytest.raises(RuntimeError, match="outbox refused"):
                async with _collecting(url, tmp_path, clock, publish) as collector:
                    await until(
                        lambda: "acct1" in collector.outages.refusing,
                        "the first refusal",
                        timeout=10,
                    )
                    clock.advance(GRACE_S + 1)
                    await until(
                        lambda: not collector.outages.refusing, "the alert's try", timeout=10
                    )

    asyncio.run(scenario())
