"""The REST client's one HTTP need, a GET, and its production implementation over aiohttp.

`KisClient` asks for what `RestGet` describes, which ``httpx.AsyncClient`` also offers, so
tests hand it httpx's ``MockTransport``. In production `AiohttpGet` sends the GETs through
aiohttp itself: httpx's request and response models (URL parsing, header merging, cookie
extraction) cost about 1 ms of CPU a call even over aiohttp's transport, four times what
aiohttp spends, and Track A's whole-universe cycles are CPU-bound in the demo.
Transport failures surface as httpx's exceptions, the contract `KisClient` classifies.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

__all__ = ["AiohttpGet", "RestGet", "RestResponse", "environment_proxy"]


def environment_proxy(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``, ...)."""
    parts = urllib.parse.urlsplit(base_url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


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

    ``connect_s`` bounds the connection, ``read_s`` each wait for the server's bytes. As
    httpx's client did: the environment's proxy applies (read when it is made), and a redirect
    is an answer, not followed.
    """

    def __init__(self, base_url: str, *, connect_s: float, read_s: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_s, sock_read=read_s)
        self._session: aiohttp.ClientSession | None = None
        # Looked up once: aiohttp's trust_env looks up the proxy and reads ~/.netrc (in a
        # thread) on every request, 0.8 ms of CPU a call, four times the rest of it.
        self.proxy = environment_proxy(self._base_url)

    async def get(
        self, url: str, *, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> _Answer:
        """One GET; a timeout raises httpx.TimeoutException, any other failure httpx's own."""
        if self._session is None:  # inside the event loop, as aiohttp wants
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(
                self._base_url + url,
                params=params,
                headers=headers,
                allow_redirects=False,
                proxy=self.proxy,
            ) as response:
                return _Answer(response.status, await response.read(), response.headers)
        except TimeoutError as exc:  # aiohttp's socket timeouts are TimeoutErrors too
            raise httpx.TimeoutException(f"{type(exc).__name__}: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.TransportError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
