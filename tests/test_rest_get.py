"""The production GET against a real HTTP server on loopback: what it sends, reads and raises."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from observer.clock import SimulatedClock
from observer.errors import KisTransportError
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.kis.rest_get import AiohttpGet, environment_proxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KEY, SECRET = "PSrestGetTestKey0000000000000000000", "restGetSecret" + "z" * 167
ANSWER = b'{"rt_cd":"0","msg_cd":"MCA00000","msg1":"ok","output":{"stck_prpr":"71000"}}'


async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(handler: Handler, body: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        server = serve(handler)
        url = await anext(server)
        try:
            await body(url)
        finally:
            await server.aclose()

    asyncio.run(main())


def test_a_get_carries_its_path_query_and_headers_and_reads_the_whole_answer() -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        if request.path == "/moved":
            raise web.HTTPFound("/uapi/x")
        return web.Response(body=ANSWER * 200, headers={"TR_CONT": "M"})

    async def body(url: str) -> None:
        rest = AiohttpGet(url + "/", connect_s=5, read_s=5)
        try:
            params = {"FID_INPUT_ISCD": "005930", "FID_ETC_CLS_CODE": ""}
            answer = await rest.get("/uapi/x", params=params, headers={"tr_id": "T1"})
            moved = await rest.get("/moved", params={}, headers={})
        finally:
            await rest.aclose()
        assert answer.status_code == 200 and answer.content == ANSWER * 200
        assert answer.headers.get("tr_cont") == "M"  # header names are case-insensitive
        assert seen[0].path == "/uapi/x" and dict(seen[0].query) == params
        assert seen[0].headers["tr_id"] == "T1"
        assert moved.status_code == 302 and len(seen) == 2  # an answer, not followed

    run(handler, body)


def test_a_server_that_stalls_is_a_timeout_and_the_client_a_transport_error(
    tmp_path: Path,
) -> None:
    released = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/oauth2/tokenP":
            return web.json_response({"access_token": "tok", "expires_in": 86400})
        await released.wait()  # past the GET's read timeout: the client gives up first
        return web.Response(body=ANSWER)

    async def body(url: str) -> None:
        rest = AiohttpGet(url, connect_s=5, read_s=0.3)
        async with httpx.AsyncClient(base_url=url) as http:
            creds = Credentials("stall", Secret(KEY), Secret(SECRET))
            clock = SimulatedClock(start_ns=0, speed=1e6)
            tokens = TokenManager(http, creds, clock, tmp_path, "sim", min_issue_interval_s=0)
            limiter = RateLimits({creds.alias: 1000}).for_account(creds.alias)
            client = KisClient(rest, creds, tokens, clock, limiter, max_attempts=2)
            try:
                with pytest.raises(httpx.TimeoutException):
                    await rest.get("/uapi/x", params={}, headers={})
                with pytest.raises(KisTransportError, match="timed out") as caught:
                    await client.current_price("005930")
            finally:
                released.set()
                await rest.aclose()
        assert client.requests == 2 and client.retries == 1
        assert KEY not in str(caught.value) and SECRET not in str(caught.value)

    run(handler, body)


def test_nothing_listening_is_an_httpx_transport_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        rest = AiohttpGet(f"http://127.0.0.1:{port}", connect_s=2, read_s=2)
        try:
            with pytest.raises(httpx.TransportError, match="ClientConnectorError"):
                await rest.get("/uapi/x", params={}, headers={})
        finally:
            await rest.aclose()

    asyncio.run(main())


def test_the_environments_proxy_is_read_once_and_carries_the_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forwarded: list[str] = []

    async def proxy(request: web.Request) -> web.Response:  # a forward proxy's view
        forwarded.append(str(request.url))
        return web.Response(body=ANSWER)

    async def body(url: str) -> None:
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("NO_PROXY", "localhost")
        assert environment_proxy("http://localhost:9443") is None  # NO_PROXY
        rest = AiohttpGet("http://kis.invalid:9443", connect_s=5, read_s=5)
        monkeypatch.delenv("HTTP_PROXY")  # read when it was made
        assert rest.proxy == url
        try:
            answer = await rest.get("/uapi/x", params={"FID_INPUT_ISCD": "005930"}, headers={})
        finally:
            await rest.aclose()
        assert answer.status_code == 200 and answer.content == ANSWER
        assert forwarded == ["http://kis.invalid:9443/uapi/x?FID_INPUT_ISCD=005930"]

    run(proxy, body)
