"""The production GET against a real HTTP server on loopback: what it sends, reads and raises."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from observer.calendar.clock import SimulatedClock
from observer.errors import KisTransportError
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.kis.rest_get import AiohttpGet

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


def test_nothing_listening_is_a_connect_error_without_the_requests_secrets() -> None:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        headers = {"appkey": KEY, "appsecret": SECRET, "authorization": "Bearer tok-secret"}

        async def main() -> None:
            rest = AiohttpGet(f"http://127.0.0.1:{port}", connect_s=2, read_s=2)
            try:
                with pytest.raises(httpx.ConnectError, match="ClientConnectorError") as caught:
                    await rest.get("/uapi/x", params={"FID_INPUT_ISCD": "005930"}, headers=headers)
            finally:
                await rest.aclose()
            told = _chain(caught.value)
            assert all(secret not in told for secret in (KEY, SECRET, "tok-secret")), told

        asyncio.run(main())


def test_a_server_that_never_accepts_is_a_connect_timeout_not_a_hang() -> None:
    # A listener whose accept queue is full drops further SYNs, as an overloaded server or
    # a silent firewall does: only the connect bound (0.3 s) ends the wait, not the read
    # bound (60 s), and the suite's own bound (20 s) is never reached.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = server.getsockname()
        queued = [socket.socket() for _ in range(3)]
        for sock in queued:  # fill the accept queue (connections nobody accepts)
            sock.setblocking(False)
            sock.connect_ex(address)

        async def main() -> None:
            rest = AiohttpGet(f"http://127.0.0.1:{address[1]}", connect_s=0.3, read_s=60)
            try:
                with pytest.raises(httpx.TimeoutException, match="Connection timeout"):
                    await asyncio.wait_for(rest.get("/uapi/x", params={}, headers={}), 20)
            finally:
                await rest.aclose()

        try:
            asyncio.run(main())
        finally:
            for sock in queued:
                sock.close()


def test_tls_trusts_what_httpx_trusted_ssl_cert_file_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # a certificate for 127.0.0.1 that no public authority signed
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=ANSWER)

    async def main() -> None:
        runner = web.AppRunner(web.Application())
        runner.app.router.add_get("/uapi/x", handler)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        url = f"https://127.0.0.1:{runner.addresses[0][1]}"
        try:
            untrusted = AiohttpGet(url, connect_s=5, read_s=5)
            with pytest.raises(httpx.ConnectError, match=r"[Cc]ertificate"):
                await untrusted.get("/uapi/x", params={}, headers={})
            await untrusted.aclose()
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as httpx's client honoured it
            trusted = AiohttpGet(url, connect_s=5, read_s=5)
            answer = await trusted.get("/uapi/x", params={}, headers={})
            await trusted.aclose()
            assert answer.status_code == 200 and answer.content == ANSWER
        finally:
            await runner.cleanup()

    asyncio.run(main())


def _chain(exc: BaseException | None) -> str:
    """Everything an exception and those behind it say."""
    told = []
    while exc is not None:
        told.append(f"{exc!r} {exc}")
        exc = exc.__cause__ or exc.__context__
    return " ".join(told)
