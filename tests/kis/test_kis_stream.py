"""KisStream against a real WebSocket server on loopback that speaks §5 of the reference."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from aiohttp import WSMsgType, web

from bus.events import TokenRefreshed
from harness.sim.config import SimConfig
from harness.sim.market import KST, Market
from observer.calendar.clock import Clock, ManualClock, SimulatedClock
from observer.calendar.trading import TradingCalendar
from observer.kis import stream as stream_module
from observer.kis.auth import TokenManager
from observer.kis.credentials import Credentials, Secret
from observer.kis.frames import DroppedFrame
from observer.kis.realtime import RealtimeEvents
from observer.kis.stream import (
    NOACK,
    BudgetSpent,
    Feed,
    KisStream,
    StreamSettings,
    StreamState,
    SubscriptionError,
)
from observer.kis.token_cache import Cached, cache_path, decode_cached, save_cached
from tests.kis.test_kis_parse import TRADE
from tests.support import SimThread, until


class FakeSession:
    """A KIS-like real-time server: answers registrations, can push, ping and drop."""

    def __init__(self, limit: int = 41) -> None:
        self.limit = limit
        self.connections: list[web.WebSocketResponse] = []
        self.messages: list[dict] = []
        self.echoes: list[str] = []
        self.registrations_per_connection: list[int] = []
        self.answering: asyncio.Event | None = None  # cleared: messages wait unanswered
        self.ignored: set[str] = set()  # tr_keys whose registrations are never answered
        self.refusing: tuple[str, str] | None = None  # (code, text) for every registration
        self.bad_keys: set[str] = set()  # approval keys KIS does not accept (OPSP9994)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections.append(ws)
        self.registrations_per_connection.append(0)
        held: set[tuple[str, str]] = set()
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            if message.data.startswith('{"header":{"tr_id":"PINGPONG"'):
                self.echoes.append(message.data)
                continue
            if self.answering is not None:
                await self.answering.wait()
            body = json.loads(message.data)
            self.messages.append(body)
            tr = body["body"]["input"]
            pair = (tr["tr_id"], tr["tr_key"])
            if body["header"]["tr_type"] == "1" and pair[1] in self.ignored:
                continue  # an acknowledgement lost, or an error answer that names no pair
            if body["header"]["tr_type"] == "1":
                if body["header"]["approval_key"] in self.bad_keys:
                    code, text = "OPSP9994", "INVALID appkey"
                elif self.refusing is not None:
                    code, text = self.refusing
                elif len(held) >= self.limit:
                    code, text = "OPSP0008", "MAX SUBSCRIBE OVER"
                else:
                    held.add(pair)
                    self.registrations_per_connection[-1] += 1
                    code, text = "OPSP0000", "SUBSCRIBE SUCCESS"
            else:
                held.discard(pair)
                code, text = "OPSP0001", "UNSUBSCRIBE SUCCESS"
            await ws.send_str(
                json.dumps(
                    {
                        "header": {"tr_id": pair[0], "tr_key": pair[1], "encrypt": "N"},
                        "body": {
                            "rt_cd": "0" if code != "OPSP0008" else "1",
                            "msg_cd": code,
                            "msg1": text,
                        },
                    }
                )
            )
        return ws


@asynccontextmanager
async def serve(session: FakeSession) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/tryitout", session.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/tryitout"
    finally:
        await runner.cleanup()


def tokens(tmp_path: Path, clock: SimulatedClock) -> TokenManager:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"approval_key": "approval-key-36-chars-xxxxxxxxxxxxxx"})

    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(answer))
    creds = Credentials("acct1", Secret("k"), Secret("s"))
    return TokenManager(http, creds, clock, tmp_path / "t", "sim")


class Heard:
    """A `StreamListener` that keeps all it hears; it re-sends registrations by key."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock  # stamps each confirmation (0 without one)
        self.frames: list[tuple[RealtimeEvents, int]] = []
        self.states: list[tuple[StreamState, str]] = []
        self.registered: list[Feed] = []
        self.refused: list[tuple[Feed, str, str]] = []
        self.confirmed: list[int] = []
        self.dropped: list[DroppedFrame] = []
        self.floods: list[str] = []  # each burst's why, then its end's
        self.flood_open = False

    def on_frame(self, frame: RealtimeEvents, received_ns: int) -> None:
        self.frames.append((frame, received_ns))

    def on_state(self, state: StreamState, reason: str) -> None:
        self.states.append((state, reason))

    def on_registered(self, registration: Feed) -> None:
        self.registered.append(registration)

    def on_refused(self, registration: Feed, code: str, message: str) -> None:
        self.refused.append((registration, code, message))

    def on_confirmed(self) -> None:
        self.confirmed.append(0 if self.clock is None else self.clock.now_ns())

    def on_dropped_frame(self, dropped: DroppedFrame) -> None:
        self.dropped.append(dropped)

    def on_flood(self, why: str) -> None:
        self.floods.append(why)
        self.flood_open = True

    def on_flood_over(self, why: str) -> None:
        self.floods.append(why)
        self.flood_open = False

    def flooding(self) -> bool:
        return self.flood_open

    def priority(self, registration: Feed) -> tuple[float, tuple[str, int, str]]:
        return 0.0, registration.order


def test_registrations_frames_pingpong_and_reconnect(tmp_path: Path) -> None:
    session = FakeSession()
    heard = Heard()

    async def scenario() -> KisStream:
        clock = SimulatedClock(0, speed=1000.0)  # backoff seconds pass in milliseconds
        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)
            # before connecting: sent on connect
            await stream.subscribe(Feed("trades", "KRX", "005930"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: Feed("trades", "KRX", "005930") in stream.registered)
            await stream.subscribe(Feed("book", "KRX", "005930"))
            await until(lambda: len(stream.registered) == 2)
            ws = session.connections[0]
            await ws.send_str(f"0|H0STCNT0|001|{TRADE}")
            ping = '{"header":{"tr_id":"PINGPONG","datetime":"20261120093000"}}'
            await ws.send_str(ping)
            await until(lambda: heard.frames and session.echoes)
            assert session.echoes == [ping]
            await ws.close()  # the server drops the session
            await until(lambda: len(session.connections) == 2 and len(stream.registered) == 2)
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    frame = heard.frames[0][0]
    assert frame.tr_id == "H0STCNT0" and frame.ticks[0].symbol == "005930"
    assert frame.ticks[0].account == ""  # a stream made without an account
    assert session.registrations_per_connection == [2, 2]  # every registration re-sent
    assert session.messages[0]["header"]["approval_key"].startswith("approval-key")
    states = [state for state, _ in heard.states]
    assert states[:2] == ["connecting", "connected"] and "disconnected" in states
    assert states[-1] == "stopped" and stream.reconnects == 1


def test_the_41_limit_is_enforced_before_kis_refuses(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = SimulatedClock(0, speed=1000.0)
        stream = KisStream("ws://127.0.0.1:9/x", tokens(tmp_path, clock), clock, Heard())
        for n in range(41):
            await stream.subscribe(Feed("trades", "KRX", f"{n:06d}"))
        with pytest.raises(SubscriptionError, match="41 registrations"):
            await stream.subscribe(Feed("book", "KRX", "000000"))  # a book counts as its own
        await stream.unsubscribe(Feed("trades", "KRX", "000000"))
        await stream.subscribe(Feed("book", "KRX", "000000"))

    asyncio.run(scenario())


def test_a_refused_registration_is_dropped_and_reported(tmp_path: Path) -> None:
    session = FakeSession(limit=1)  # a stricter server than the client's own limit
    heard = Heard()

    async def scenario() -> KisStream:
        clock = SimulatedClock(0, speed=1000.0)
        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await stream.subscribe(Feed("trades", "KRX", "005930"))
            await until(lambda: stream.registered)
            await stream.subscribe(Feed("trades", "KRX", "000660"))
            await until(lambda: stream.refused)
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert stream.refused == {Feed("trades", "KRX", "000660"): "OPSP0008"}
    assert Feed("trades", "KRX", "000660") not in stream.wanted
    # Its owner is told, with KIS's code and text (Track B releases the slot).
    assert heard.refused == [(Feed("trades", "KRX", "000660"), "OPSP0008", "MAX SUBSCRIBE OVER")]


def test_a_silent_session_is_dropped_after_silence_s_of_clock_time_and_a_wall_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = FakeSession()
    reasons: list[str] = []
    monkeypatch.setattr(stream_module, "MIN_SILENCE_WALL_S", 0.4)
    connected: list[float] = []

    class Timed(Heard):
        def on_state(self, state: StreamState, reason: str) -> None:
            reasons.append(reason)
            if state == "connected":
                connected.append(time.monotonic())
            elif reason.startswith("silent"):
                # 60 clock seconds pass in 60 ms, but a stalled loop is not a dead server.
                assert time.monotonic() - connected[-1] >= 0.4

    async def scenario() -> None:
        clock = SimulatedClock(0, speed=1000.0)
        async with serve(session) as url:
            settings = StreamSettings(silence_s=60.0, idle_silence_s=60.0)
            stream = KisStream(url, tokens(tmp_path, clock), clock, Timed(), settings)
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: len(session.connections) >= 2)  # dropped, then reconnected
            stop.set()
            await runner

    asyncio.run(scenario())
    assert "silent for 60s" in reasons


def test_a_session_silent_again_after_a_reconnect_waits_longer_each_time_up_to_the_idle_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration answered and nothing ever traded: dropped at 60 s, then 120 s, then
    the idle limit (200 s). Were KIS's PINGPONGs rarer than the limit, a fixed limit would
    recycle a quiet market's session for as long as nothing traded."""
    session = FakeSession()
    reasons: list[str] = []
    monkeypatch.setattr(stream_module, "MIN_SILENCE_WALL_S", 0.1)

    class Silences(Heard):
        def on_state(self, state: StreamState, reason: str) -> None:
            if reason.startswith("silent"):
                reasons.append(reason)

    async def scenario() -> KisStream:
        clock = SimulatedClock(0, speed=1000.0)
        async with serve(session) as url:
            settings = StreamSettings(silence_s=60.0, idle_silence_s=200.0, backoff_s=(0.1,))
            stream = KisStream(url, tokens(tmp_path, clock), clock, Silences(), settings)
            await stream.subscribe(Feed("trades", "KRX", "005930"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: len(reasons) >= 4)
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert reasons[:4] == [
        "silent for 60s",
        "silent for 120s",
        "silent for 200s",
        "silent for 200s",
    ]
    assert stream.silences >= 4


class _GatedKeys:
    """Approval keys that can be held back: the stream waits on the key for each message."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.calls = 0

    async def approval_key(self) -> Secret:
        self.calls += 1
        await self.open.wait()
        return Secret("approval-key-36-chars-xxxxxxxxxxxxxx")

    def approval_key_now(self) -> Secret | None:
        return Secret("approval-key-36-chars-xxxxxxxxxxxxxx") if self.open.is_set() else None


def test_a_registration_released_while_in_flight_is_not_left_on_the_server(
    tmp_path: Path,
) -> None:
    """Released during a reconnect's re-registration, or before KIS acknowledged it: the
    server must not keep it (it would stream the symbol beside its new account, and hold a
    registration the session counts free)."""
    session = FakeSession()
    held: set[str] = set()

    async def scenario() -> None:
        clock = SimulatedClock(0, speed=1000.0)
        keys = _GatedKeys()
        async with serve(session) as url:
            stream = KisStream(url, keys, clock, Heard())  # type: ignore[arg-type]
            for key in ("000001", "000002", "000003"):
                await stream.subscribe(Feed("trades", "KRX", key))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: len(stream.registered) == 3)
            # The server drops the session; the reconnect re-sends all three, one key each:
            # hold the keys back so that the release happens mid-way.
            keys.open.clear()
            calls = keys.calls
            await session.connections[0].close()
            await until(lambda: len(session.connections) == 2 and keys.calls > calls)
            # not registered yet: nothing sent
            await stream.unsubscribe(Feed("trades", "KRX", "000003"))
            keys.open.set()
            await until(lambda: len(stream.registered) == 2)
            # Released after being sent but before KIS's answer: the answer releases it.
            await stream.subscribe(Feed("trades", "KRX", "000004"))
            await stream.unsubscribe(Feed("trades", "KRX", "000004"))
            await until(
                lambda: (
                    sum(
                        m["body"]["input"]["tr_key"] == "000004" and m["header"]["tr_type"] == "2"
                        for m in session.messages
                    )
                    == 1
                ),
            )
            held.update(r.symbol for r in stream.registered)
            stop.set()
            await runner

    asyncio.run(scenario())
    second = session.messages[3:]  # what the second connection was sent
    sent = [(m["header"]["tr_type"], m["body"]["input"]["tr_key"]) for m in second]
    assert ("1", "000003") not in sent  # released before its turn: never re-sent
    assert sent.count(("1", "000004")) == 1 and sent.count(("2", "000004")) == 1
    assert held == {"000001", "000002"}


def test_registrations_never_wait_for_the_approval_key_the_session_sends_them_with_it(
    tmp_path: Path,
) -> None:
    """No approval key at hand (aged out of the cache; a reader waiting for the token job):
    `subscribe` and `unsubscribe` change what is wanted and return at once, and the session
    sends what it owes once it has a key, the release first (the server never counts more
    than it holds). Before, each call waited for the key: one account's wait (minutes for a
    reader) held up its owner's every other account."""
    session = FakeSession()
    cnt, asp = "trades", "book"

    async def scenario() -> None:
        clock = SimulatedClock(0, speed=1000.0)
        keys = _GatedKeys()
        async with serve(session) as url:
            stream = KisStream(url, keys, clock, Heard())  # type: ignore[arg-type]
            await stream.subscribe(Feed(cnt, "KRX", "000001"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            try:
                await until(lambda: Feed(cnt, "KRX", "000001") in stream.registered)
                keys.open.clear()
                calls = keys.calls
                changes = asyncio.gather(
                    stream.unsubscribe(Feed(cnt, "KRX", "000001")),
                    stream.subscribe(Feed(cnt, "KRX", "000002")),
                    stream.subscribe(Feed(asp, "KRX", "000002")),
                )
                await until(changes.done)  # the key is not there: returned all the same
                wanted = {Feed(cnt, "KRX", "000002"), Feed(asp, "KRX", "000002")}
                assert stream.wanted == wanted
                await until(lambda: keys.calls > calls)  # the session waits for it instead
                assert len(session.messages) == 1  # and sends nothing without it
                keys.open.set()
                await until(lambda: stream.registered == wanted and stream.settled)
            finally:
                keys.open.set()
                stop.set()
                await runner

    asyncio.run(scenario())
    sent = [(m["header"]["tr_type"], *m["body"]["input"].values()) for m in session.messages]
    assert sent == [  # on the wire, KIS's TR ids
        ("1", "H0STCNT0", "000001"),
        ("2", "H0STCNT0", "000001"),  # the release first
        ("1", "H0STCNT0", "000002"),  # then by the owner's priority: a symbol's trades first
        ("1", "H0STASP0", "000002"),
    ]


def test_a_release_follows_a_registration_still_unanswered(tmp_path: Path) -> None:
    """A slot replaced before KIS answered its registration: the release goes out at once,
    so the session's next registration finds its place free (no OPSP0008)."""
    session = FakeSession(limit=1)
    heard = Heard()

    async def scenario() -> set[Feed]:
        clock = SimulatedClock(0, speed=1000.0)
        session.answering = asyncio.Event()
        session.answering.set()
        keys = tokens(tmp_path, clock)
        await keys.approval_key()  # at hand, as the token job leaves it every morning
        async with serve(session) as url:
            # no release of its own: the one asserted is the slot's
            stream = KisStream(url, keys, clock, heard, StreamSettings(identify_idle=False))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            # Connected, and the connection's own sender done: while it works, what is asked
            # is left to it, and a registration released before it ran is never sent at all.
            await until(lambda: stream._sender is not None and stream._sender.done())
            session.answering.clear()  # nothing is answered until all three are sent
            await stream.subscribe(Feed("trades", "KRX", "000001"))
            await stream.unsubscribe(Feed("trades", "KRX", "000001"))
            await stream.subscribe(Feed("trades", "KRX", "000002"))
            session.answering.set()
            await until(lambda: Feed("trades", "KRX", "000002") in stream.registered)
            held = set(stream.registered)
            stop.set()
            await runner
            return held

    held = asyncio.run(scenario())
    sent = [(m["header"]["tr_type"], m["body"]["input"]["tr_key"]) for m in session.messages]
    assert sent == [("1", "000001"), ("2", "000001"), ("1", "000002")]
    assert heard.refused == [] and held == {Feed("trades", "KRX", "000002")}


def test_a_registration_left_unanswered_is_refused_as_noack_and_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KIS answers one registration and never the other: past ``ack_timeout_s`` of clock time
    the silent one is refused (``NOACK``) through ``on_refused`` and released; the session,
    which KIS did confirm, stays up, and a frame it cannot parse is counted as dropped."""
    monkeypatch.setattr(stream_module, "MIN_SILENCE_WALL_S", 0.0)  # clock time alone
    session = FakeSession()
    session.ignored = {"000660"}
    heard = Heard()
    silent, answered, later = (Feed("trades", "KRX", k) for k in ("000660", "005930", "035720"))

    async def scenario() -> KisStream:
        clock = ManualClock(0)
        heard.clock = clock
        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)  # type: ignore[arg-type]
            await stream.subscribe(answered)
            await stream.subscribe(silent)
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: answered in stream.registered and len(session.messages) == 2)
            assert heard.confirmed == [0]  # KIS acknowledged one: the session is confirmed
            clock.advance(9.9)
            await stream.subscribe(later)  # due 10 s from now, not then
            await until(lambda: later in stream.registered)
            assert heard.refused == [] and silent in stream.wanted  # not before its deadline
            clock.advance(0.2)
            await until(lambda: heard.refused)
            await until(lambda: [m for m in session.messages if m["header"]["tr_type"] == "2"])
            await session.connections[0].send_str("0|H0STCNT0|abc|x")  # a bad record count
            await until(lambda: stream.dropped == 1)
            assert stream.registered == {answered, later} and len(session.connections) == 1
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert heard.refused == [(silent, NOACK, "no answer within 10s")]
    assert stream.refused == {silent: NOACK} and silent not in stream.wanted
    # Released in case KIS holds it (its acknowledgement may be what was lost).
    released = [m["body"]["input"]["tr_key"] for m in session.messages[3:]]
    assert released == [silent.symbol]
    assert stream.frames == 1 and stream.dropped == 1


def test_an_answer_behind_a_backlog_is_waited_for_until_the_reader_is_past_its_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A starved reader still reading trades stamped before a registration was sent may not
    have read its answer yet: no ``NOACK`` then, one deadline more each time; once it reads
    trades stamped after the send, an answer still missing is refused."""
    monkeypatch.setattr(stream_module, "MIN_SILENCE_WALL_S", 0.0)
    session = FakeSession()
    session.ignored = {"000660"}
    heard = Heard()
    silent, answered = (Feed("trades", "KRX", k) for k in ("000660", "005930"))
    start = int(datetime(2026, 11, 20, 12, 40, tzinfo=KST).timestamp()) * 1_000_000_000

    async def scenario() -> None:
        clock = ManualClock(start)
        heard.clock = clock
        stamp = ["123929"]  # the trades being read: 12:39:29, before the send at 12:40

        async def backlog(ws: web.WebSocketResponse, done: asyncio.Event) -> None:
            while not done.is_set():
                await ws.send_str(f"0|H0STCNT0|001|{TRADE.replace('123929', stamp[0])}")
                await asyncio.sleep(0.02)

        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)  # type: ignore[arg-type]
            await stream.subscribe(answered)
            await stream.subscribe(silent)
            stop, done = asyncio.Event(), asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: answered in stream.registered and len(session.messages) == 2)
            pusher = asyncio.create_task(backlog(session.connections[0], done))
            try:
                await until(lambda: stream.frames > 2)
                clock.advance(10.5)  # past its deadline, the reader still behind
                await until(lambda: stream._regs.awaiting[silent][0] > clock.now_ns())
                assert heard.refused == [] and silent in stream.wanted
                stamp[0] = "124001"  # read past the send: its answer would have been read
                await until(lambda: stream._read_upto_ns > start)
                clock.advance(10.0)
                await until(lambda: heard.refused)
            finally:
                done.set()
                await pusher
                stop.set()
                await runner

    asyncio.run(scenario())
    assert heard.refused == [(silent, NOACK, "no answer within 10s")]


@pytest.mark.parametrize(
    ("fault", "state"),
    [
        # Nothing answered at all: closed after ``ack_timeout_s``.
        ("unanswered", ("disconnected", "no answer within 10s")),
        # OPSP9994 answers every registration of the session alike.
        ("invalid key", ("refused", "OPSP9994 INVALID appkey")),
    ],
)
def test_a_session_at_fault_is_reopened_and_its_symbol_neither_refused_nor_barred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, state: tuple[str, str]
) -> None:
    """The session is at fault, not the symbol: it is closed and opened again (backoff,
    budget), and the registration is kept for the next session."""
    monkeypatch.setattr(stream_module, "MIN_SILENCE_WALL_S", 0.0)
    session = FakeSession()
    if fault == "unanswered":
        session.ignored = {"005930"}
    else:
        session.refusing = ("OPSP9994", "INVALID appkey")
    heard = Heard()

    async def scenario() -> KisStream:
        clock = ManualClock(0)
        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)  # type: ignore[arg-type]
            await stream.subscribe(Feed("trades", "KRX", "005930"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: session.messages)
            clock.advance(10)
            await until(lambda: stream.reconnects == 1)  # closed, and in its backoff
            assert not stream.confirmed and len(session.connections) == 1
            stop.set()  # ends the backoff
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert state in heard.states
    assert heard.refused == [] and stream.refused == {}
    assert stream.wanted == {Feed("trades", "KRX", "005930")}


def test_a_session_answering_only_with_a_symbols_refusal_is_confirmed(tmp_path: Path) -> None:
    """OPSP8992 (invalid tr_key) refuses the symbol on a session KIS took the key of: the
    session is up (its account healthy), only the symbol is refused."""
    session = FakeSession()
    session.refusing = ("OPSP8992", "SUBSCRIBE ERROR : invalid tr_key")
    heard = Heard()

    async def scenario() -> KisStream:
        clock = ManualClock(0)
        heard.clock = clock
        async with serve(session) as url:
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard)  # type: ignore[arg-type]
            await stream.subscribe(Feed("trades", "KRX", "99999X"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: heard.refused)
            assert stream.confirmed and stream.identified
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    told = [code for _, code, _ in heard.refused]
    assert told == ["OPSP8992"] and heard.confirmed == [0] and len(session.connections) == 1
    assert stream.refused == {Feed("trades", "KRX", "99999X"): "OPSP8992"}


SAMSUNG = Feed("trades", "KRX", "005930")
_NS = 1_000_000_000


def test_an_approval_key_kis_refuses_is_renewed_and_the_session_registers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache holds an approval key KIS does not accept (the simulator answers OPSP9994),
    still inside its reuse time: the next session renews it, by an emergency issuance that
    a reader (``issuer=False``) makes too, and registers on the new key. Before, every
    session presented the refused key again until the reconnect budget was spent (the
    account down for an hour, again and again until the token job's next run). The logs say
    that the key was refused and renewed, and hold neither key."""
    caplog.set_level(logging.DEBUG)
    sim = SimThread(
        Market(23, TradingCalendar(), stocks=40, etfs=2),
        datetime(2026, 11, 20, 10, 0, tzinfo=KST),
        SimConfig(),
        600.0,
    )
    clock = sim.sim.clock
    now = clock.now_ns()
    path = cache_path(tmp_path / "t", "acct1", "sim", "approval_key")
    refused = "f" * 36  # a key the simulator never issued
    save_cached(path, Cached(refused, now - 3600 * _NS, now + 20 * 3600 * _NS))
    heard = Heard()

    async def scenario() -> tuple[KisStream, TokenManager]:
        async with httpx.AsyncClient(base_url=sim.url) as http:
            creds = Credentials("acct1", Secret("sim-acct1-app-key"), Secret("sim-acct1-secret"))
            tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim", issuer=False)
            url = sim.url.replace("http", "ws", 1) + "/tryitout"
            stream = KisStream(url, tokens, clock, heard, account="acct1")
            await stream.subscribe(SAMSUNG)
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: SAMSUNG in stream.registered or runner.done(), timeout=30)
            assert not runner.done(), runner  # before: BudgetSpent after 60 refused sessions
            stop.set()
            await runner
            return stream, tokens

    try:
        stream, tokens = asyncio.run(scenario())
    finally:
        sim.close()
    refusals = [reason for state, reason in heard.states if state == "refused"]
    assert refusals == ["OPSP9994 INVALID appkey"]
    assert tokens.issued == 1 and stream.reconnects == 1
    renewed = decode_cached(path.read_bytes())
    assert renewed.value != refused
    assert "stream acct1: KIS refused the approval key (OPSP9994): renewing it" in caplog.text
    assert "stream acct1: the session presents a renewed approval key" in caplog.text
    assert refused not in caplog.text and renewed.value not in caplog.text


def test_an_approval_key_is_renewed_once_per_episode_then_the_budget_decides(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """apr-1 is refused: renewed, after KIS's minute, to apr-2, which registers. That ends
    the episode, so when KIS later refuses apr-2 it is renewed again, to apr-3; but apr-3,
    refused too, is not renewed: the sessions go on within the reconnect budget until
    `BudgetSpent` (Track B's account down), with no issuance beyond the episode's one."""
    caplog.set_level(logging.INFO)
    session = FakeSession()
    session.bad_keys = {"apr-1"}
    issued: list[TokenRefreshed] = []

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"approval_key": f"apr-{len(issued) + 1}"})

    async def scenario() -> BaseException | None:
        clock = SimulatedClock(0, speed=1000.0)  # backoff and KIS's minute in milliseconds
        http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(answer))
        creds = Credentials("acct1", Secret("k"), Secret("s"))
        tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim", on_issued=issued.append)
        async with serve(session) as url:
            settings = StreamSettings(backoff_s=(1.0,), reconnects_per_hour=5)
            stream = KisStream(url, tokens, clock, Heard(), settings)
            await stream.subscribe(SAMSUNG)
            runner = asyncio.create_task(stream.run(asyncio.Event()))
            await until(lambda: SAMSUNG in stream.registered or runner.done())
            assert not runner.done() and len(issued) == 2 and stream.reconnects == 1
            # The renewal waited out KIS's minute from apr-1's issuance (as the token's does).
            assert issued[1].issued_ns - issued[0].issued_ns >= 60 * _NS
            assert issued[1].reason == "emergency"
            session.bad_keys = {"apr-2", "apr-3"}
            await session.connections[-1].close()  # a new session, on which apr-2 is refused
            await until(runner.done, timeout=30)
            return runner.exception()

    assert isinstance(asyncio.run(scenario()), BudgetSpent)
    assert [event.reason for event in issued] == ["scheduled", "emergency", "emergency"]
    presented = [m["header"]["approval_key"] for m in session.messages]
    changes = [key for n, key in enumerate(presented) if n == 0 or key != presented[n - 1]]
    assert changes == ["apr-1", "apr-2", "apr-3"]
    assert caplog.text.count("KIS refused the renewed approval key too (OPSP9994)") == 1
