"""Deeply nested input (bus frames, KIS's REST, token and WebSocket answers) is a clear
refusal (a frame or protocol error), never a recursion error; the stream survives it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.codec import decode_ack, decode_frame, decode_parts
from bus.errors import FrameError
from observer.calendar.clock import SimulatedClock
from observer.errors import KisProtocolError, KisServerError
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits, classify
from observer.kis.credentials import Credentials, Secret
from observer.kis.feeds import Feed
from observer.kis.parse import parse_control
from observer.kis.stream import KisStream
from tests.kis.test_kis_parse import TRADE
from tests.kis.test_kis_stream import FakeSession, Heard, serve
from tests.support import until

NESTED_MSGPACK = b"\x91" * 1000 + b"\xc0"  # 1,001 bytes: 1,000 nested one-element arrays
NESTED_JSON = "[" * 100_000 + "]" * 100_000


def nested_in(key: str) -> bytes:
    """A KIS-shaped JSON object whose ``key`` holds 100,000 nested arrays."""
    return f'{{"rt_cd":"0","{key}":{NESTED_JSON}}}'.encode()


@pytest.mark.parametrize("decode", [decode_parts, decode_frame, decode_ack])
def test_a_deeply_nested_frame_is_a_frame_error(decode: Callable[[bytes], Any]) -> None:
    with pytest.raises(FrameError):
        decode(NESTED_MSGPACK)
    with pytest.raises(FrameError):
        decode(b"\x91\x94\xa1s\x01\x00" + b"\x91" * 5000 + b"\xc0")  # nested inside an envelope


@pytest.mark.parametrize("status", [200, 500])
def test_a_deeply_nested_rest_answer_is_a_protocol_error(status: int) -> None:
    for body in (NESTED_JSON.encode(), nested_in("output"), nested_in("unknown_field")):
        answer, failure = classify(status, body, "FHKST01010100")
        assert answer is None
        assert type(failure) is (KisServerError if status >= 500 else KisProtocolError)


def kis_client(tmp_path: Path, token_body: bytes, rest_body: bytes) -> KisClient:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/tokenP":
            return httpx.Response(200, content=token_body)
        return httpx.Response(200, content=rest_body)

    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(route))
    creds = Credentials("hostile", Secret("k" * 36), Secret("s" * 180))
    clock = SimulatedClock(start_ns=0, speed=1e6)
    tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim", min_issue_interval_s=0)
    return KisClient(
        http, creds, tokens, clock, RateLimits({"hostile": 1000}).for_account("hostile")
    )


def test_deeply_nested_token_and_rest_answers_are_protocol_errors(tmp_path: Path) -> None:
    good_token = json.dumps({"access_token": "tok", "expires_in": 86400}).encode()
    good_price = json.dumps({"rt_cd": "0", "output": {"stck_prpr": "73100"}}).encode()
    cases = [
        (nested_in("access_token"), good_price),  # the token answer
        (nested_in("unknown_field"), good_price),
        (good_token, nested_in("output")),  # the REST answer's envelope
        (good_token, json.dumps({"rt_cd": "0"}).encode()[:-1] + b',"output":' + b"[" * 9999),
    ]
    for n, (token_body, rest_body) in enumerate(cases):
        client = kis_client(tmp_path / str(n), token_body, rest_body)
        with pytest.raises(KisProtocolError):
            asyncio.run(client.current_price("005930"))


def test_a_token_answer_with_an_absurd_lifetime_is_a_protocol_error(tmp_path: Path) -> None:
    token = json.dumps({"access_token": "tok", "expires_in": 2**70}).encode()
    client = kis_client(
        tmp_path, token, json.dumps({"rt_cd": "0", "output": {"stck_prpr": "1"}}).encode()
    )
    with pytest.raises(KisProtocolError):
        asyncio.run(client.current_price("005930"))


def test_the_stream_survives_nested_control_frames_and_approval_answers(tmp_path: Path) -> None:
    """A nested control frame is dropped; a nested approval answer costs one reconnect."""
    session = FakeSession()
    heard = Heard()
    approvals = iter([nested_in("approval_key"), nested_in("approval_key")])

    def answer(request: httpx.Request) -> httpx.Response:
        body = next(approvals, b'{"approval_key": "approval-key-36-chars-xxxxxxxxxxxxxx"}')
        return httpx.Response(200, content=body)

    async def scenario() -> KisStream:
        clock = SimulatedClock(0, speed=1000.0)  # backoff seconds pass in milliseconds
        http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(answer))
        creds = Credentials("acct1", Secret("k"), Secret("s"))
        tokens = TokenManager(http, creds, clock, tmp_path / "t", "sim", min_issue_interval_s=0)
        async with serve(session) as url:
            stream = KisStream(url, tokens, clock, heard)
            await stream.subscribe(Feed("trades", "KRX", "005930"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: Feed("trades", "KRX", "005930") in stream.registered)
            ws = session.connections[-1]
            await ws.send_str('{"header":{"tr_id":"H0STCNT0"},"body":{"output":' + NESTED_JSON)
            await ws.send_str(f"0|H0STCNT0|001|{TRADE}")
            await until(lambda: heard.frames)
            assert not runner.done()
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    assert stream.reconnects >= 1 and heard.frames[0][0].ticks[0].symbol == "005930"


def test_a_nested_control_frame_is_a_protocol_error() -> None:
    with pytest.raises(KisProtocolError):
        parse_control('{"header":{"tr_id":"x"},"body":{"output":' + NESTED_JSON + "}}")
    with pytest.raises(KisProtocolError):
        parse_control(NESTED_JSON)
