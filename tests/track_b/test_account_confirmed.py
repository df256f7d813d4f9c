"""An account is up again once KIS has confirmed its session, never at the handshake alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import WSMsgType, web
from msgspec.structs import replace

from bus.events import Alert, AlertResolved, Event
from observer.calendar.clock import ManualClock
from observer.kis.stream import KisStream, StreamListener, StreamSettings
from tests.kis.test_kis_stream import serve, tokens
from tests.support import until
from workers.track_b.collect import Collector, CollectorSettings
from workers.track_b.outages import ACCOUNT_DOWN
from workers.track_b.slots import SlotBook, SlotCandidate

_NS = 1_000_000_000
GRACE_S = 30  # unhealthy_after_s


class KeyInUse:
    """Accepts every handshake, then answers each registration with KIS's own OPSP8996 frame
    (which names no registration: "(null)", "") and closes, until ``accepting``: then it
    acknowledges registrations as KIS does."""

    def __init__(self) -> None:
        self.accepting = False
        self.sessions = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sessions += 1
        async for message in ws:
            if message.type != WSMsgType.TEXT or "PINGPONG" in message.data:
                continue
            tr = json.loads(message.data)["body"]["input"]
            if not self.accepting:
                header, code, text = {"tr_id": "(null)", "tr_key": ""}, "OPSP8996", "IN USE"
            else:
                header, code, text = {"tr_id": tr["tr_id"], "tr_key": tr["tr_key"]}, "OPSP0000", ""
            body = {"rt_cd": "9" if code == "OPSP8996" else "0", "msg_cd": code, "msg1": text}
            await ws.send_str(json.dumps({"header": {**header, "encrypt": "N"}, "body": body}))
            if not self.accepting:
                await ws.close()
        return ws


class WatchedClock(ManualClock):
    """A ManualClock that knows what its sleepers asked for (to advance exactly past them)."""

    def __init__(self, start_ns: int) -> None:
        super().__init__(start_ns)
        self.sleeping: list[float] = []
        self.woken = 0  # sleeps ended

    async def sleep(self, seconds: float) -> None:
        self.sleeping.append(seconds)
        try:
            await super().sleep(seconds)
        finally:
            self.sleeping.remove(seconds)
            self.woken += 1


class Account:
    """What the collector needs of a `KisAccount`: its alias and a stream (1 s backoff)."""

    alias = "acct1"

    def __init__(self, url: str, tmp_path: Path, clock: ManualClock) -> None:
        self.url, self.clock = url, clock
        self.tokens = tokens(tmp_path, clock)  # type: ignore[arg-type]

    def stream(
        self, listener: StreamListener, settings: StreamSettings, session_of: object = None
    ) -> KisStream:
        settings = replace(settings, backoff_s=(1.0,))
        return KisStream(self.url, self.tokens, self.clock, listener, settings, account=self.alias)


def test_a_session_kis_refuses_after_the_handshake_never_counts_as_up(tmp_path: Path) -> None:
    """Handshake, then OPSP8996 and a close, session after session for over an hour: the
    account is down from its first session on and unhealthy past ``unhealthy_after_s`` (no
    flapping), one critical alert and no "streams again" through three budget reopenings;
    once a registration is acknowledged, exactly one resolution."""
    kis = KeyInUse()
    clock = WatchedClock(1_000 * _NS)
    events: list[Event] = []
    seen: list[tuple[float, bool]] = []  # (clock seconds since the start, healthy)

    def alerts() -> list[Alert | AlertResolved]:
        return [
            e for e in events if isinstance(e, Alert | AlertResolved) and e.code == ACCOUNT_DOWN
        ]

    async def scenario() -> None:
        async with serve(kis) as url:  # type: ignore[arg-type]
            account = Account(url, tmp_path, clock)
            collector = Collector(
                [account],  # type: ignore[list-item]
                clock,
                events.append,
                CollectorSettings(
                    unhealthy_after_s=30,
                    # over 40 s of 0.5-1 s backoffs: past the 30
                    stream=StreamSettings(reconnects_per_hour=80),
                ),
            )
            book = SlotBook(["acct1"], 1)
            held = book.evaluate(
                [SlotCandidate("005930", "manual", 9.0)], clock.now_ns(), {"acct1"}
            )
            await collector.apply(held)
            stop = asyncio.Event()
            running = asyncio.ensure_future(collector.run(stop))
            await until(
                lambda: collector.outages.down_since["acct1"] is not None, "the start", timeout=5
            )
            started = collector.outages.down_since["acct1"]
            assert started is not None

            def reconnect_wait() -> float | None:
                """The stream's backoff (<= 1 s), or down, the budget's wait: then only it."""
                state = collector.state["acct1"][0]
                if state == "down" and len(clock.sleeping) == 1:
                    return clock.sleeping[0]
                backoff = [s for s in clock.sleeping if s <= 1.0]
                return backoff[0] if state == "disconnected" and backoff else None

            reopenings = 0
            while reopenings < 3:
                wait = await until(reconnect_wait, "the stream waiting to reconnect", timeout=10)
                assert collector.outages.down_since["acct1"] == started  # never up since the start
                seen.append(((clock.now_ns() - started) / _NS, "acct1" in collector.healthy()))
                reopenings += collector.state["acct1"][0] == "down"
                # OPSP8996 is alerted once unhealthy (30 s), not when the budget is spent.
                down_s = seen[-1][0]
                if not GRACE_S <= down_s <= GRACE_S + 1:  # the second its alert wakes in
                    assert [a.severity for a in alerts()] == ["critical"] * (down_s > GRACE_S)
                # After the third reopening's wait, KIS takes the app key again: the next
                # session's registration is acknowledged.
                kis.accepting = reopenings == 3
                woken = clock.woken
                clock.advance(wait)
                await until(lambda: clock.woken > woken, "the wait over", timeout=10)  # noqa: B023
            await until(
                lambda: collector.streams["acct1"].registered, "an acknowledgement", timeout=10
            )
            assert collector.outages.down_since["acct1"] is None
            assert collector.healthy() == {"acct1"}
            assert collector.symbols("acct1") == {"005930"}  # the slot kept throughout
            stop.set()
            await running

    asyncio.run(scenario())
    assert kis.sessions > 80  # the hour's budget of reconnects, then 2 per reopening
    assert seen[-1][0] > 3600  # the budget reopened (an hour after the first reconnect)
    assert [t for t, healthy in seen if healthy and t >= 30] == []  # unhealthy throughout
    assert max(t for t, _ in seen if t < 60) >= 30  # including while it flapped, before down
    assert [(type(a).__name__, a.severity, a.subject) for a in alerts()] == [
        ("Alert", "critical", "acct1"),
        ("AlertResolved", "critical", "acct1"),
    ]
