"""A hostile feed: a WebSocket proxy between a KIS client and the simulator that rewrites frames.

The client connects to `FeedProxy.url`; the proxy opens the same session on the simulator
and passes every message both ways. A test hands it rewrites (`FeedProxy.rewrite`): each is
tried on the server's next data frames in turn until it applies (it returns what to send
instead: texts, or bytes sent as a text frame as they are, which need not be UTF-8), then
it is spent. Its connections are counted: a client that reconnected shows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from aiohttp import ClientSession, WSMsgType, web

from tests.support import AppThread

__all__ = ["FeedProxy", "Rewrite", "records", "with_records"]

# A rewrite of one data frame's text: what to send instead, or None (not this frame).
Rewrite = Callable[[str], Sequence[str | bytes] | None]


def records(frame: str) -> tuple[str, list[list[str]]]:
    """A data frame's tr_id and its records' fields (the simulator's layout, any width)."""
    _, tr_id, count, payload = frame.split("|", 3)
    fields = payload.split("^")
    width = len(fields) // int(count)
    return tr_id, [fields[i : i + width] for i in range(0, len(fields), width)]


def with_records(tr_id: str, rows: Sequence[Sequence[str]]) -> str:
    """A data frame of ``rows``."""
    return f"0|{tr_id}|{len(rows):03d}|{'^'.join('^'.join(row) for row in rows)}"


class FeedProxy:
    """``/tryitout`` in front of the simulator's, with rewrites of what the server sends."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream  # ws://.../tryitout
        self.connections = 0
        self.frames = 0  # data frames passed on from the server
        self._lock = threading.Lock()
        self._rewrites: list[Rewrite] = []
        app = web.Application()
        app.router.add_get("/tryitout", self._session)
        self.thread = AppThread(app)
        self.url = self.thread.url.replace("http", "ws", 1) + "/tryitout"

    def rewrite(self, *rewrites: Rewrite) -> None:
        """Apply each, in turn, to the next data frame it applies to."""
        with self._lock:
            self._rewrites.extend(rewrites)

    @property
    def pending(self) -> int:
        """Rewrites not applied yet."""
        with self._lock:
            return len(self._rewrites)

    def close(self) -> None:
        self.thread.close()

    def _rewritten(self, text: str) -> Sequence[str | bytes]:
        with self._lock:
            for n, rewrite in enumerate(self._rewrites):
                out = rewrite(text)
                if out is not None:
                    del self._rewrites[n]
                    return out
        return [text]

    async def _session(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(compress=False)
        await client.prepare(request)
        self.connections += 1
        async with (
            ClientSession() as http,
            http.ws_connect(self.upstream, max_msg_size=0) as server,
        ):

            async def upward() -> None:
                async for message in client:
                    if message.type == WSMsgType.TEXT:
                        await server.send_str(message.data)
                await server.close()

            async def downward() -> None:
                async for message in server:
                    if message.type != WSMsgType.TEXT:
                        continue
                    text: str = message.data
                    out: Sequence[str | bytes] = [text]
                    if text.startswith("0|"):
                        self.frames += 1
                        out = self._rewritten(text)
                    for item in out:
                        if isinstance(item, bytes):
                            await client.send_frame(item, WSMsgType.TEXT)
                        else:
                            await client.send_str(item)
                await client.close()

            tasks = [asyncio.ensure_future(upward()), asyncio.ensure_future(downward())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return client
