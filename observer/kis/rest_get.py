"""The REST client's one HTTP need, a GET, and its production implementation over aiohttp.

`KisClient` asks for what `RestGet` describes, which ``httpx.AsyncClient`` also offers, so tests
hand it httpx's ``MockTransport``; transport failures surface as httpx's exceptions, which
`KisClient` classifies. Production sends through aiohttp itself (`AiohttpGet`): a GET through
httpx's client costs about 1 ms of CPU, four times a bare aiohttp GET, and Track A's cycles are
CPU-bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

__all__ = ["AiohttpGet", "RestGet", "RestResponse"]


class RestResponse(Protocol):
    """What the client reads of an answer."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def content(self) -> bytes:
        """The whole body."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (case-insensitive lookups)."""
        ...


class RestGet(Protocol):
    """A GET relative to the account's REST host; transport failures raise httpx.HTTPError."""

    async def get(
        self, url: str, *, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> RestResponse:
        """Send one GET and read its whole answer."""
        ...


@dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    content: bytes
    headers: Mapping[str, str]


class AiohttpGet:
    """GETs to ``base_url`` on one aiohttp session, opened at the first request.

    Like httpx's client: the certificates are certifi's (or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), no
    proxy comes from the environment, and a redirect is an answer, not followed. ``connect_s``
    bounds the connection and its TLS handshake, ``read_s`` each wait for the server's bytes and the
    wait for a name and a free connection.
    """

    def __init__(self, base_url: str, *, connect_s: float, read_s: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            connect=read_s, sock_connect=connect_s, sock_read=read_s
        )
        self._session: aiohttp.ClientSession | None = None

    async def get(
        self, url: str, *, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> _Answer:
        """One GET; a timeout raises httpx.TimeoutException, a failed transport httpx's own."""
        if self._session is None:  # inside the event loop, as aiohttp wants
            connector = aiohttp.TCPConnector(ssl=httpx.create_ssl_context())  # ~30 ms: once
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        try:
            async with self._session.get(
                self._base_url + url, params=params, headers=headers, allow_redirects=False
            ) as response:
                return _Answer(response.status, await response.read(), response.headers)
        except TimeoutError as exc:  # aiohttp's socket timeouts are TimeoutErrors too
            raise httpx.TimeoutException(f"{type(exc).__name__}: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            failure = next((to for fr, to in _FAILURES if isinstance(exc, fr)), httpx.NetworkError)
            raise failure(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        """Close the connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


# aiohttp's failures as httpx's transport named them (the first that matches).
_FAILURES: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, name, certificate
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed answer
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
)
