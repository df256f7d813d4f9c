"""A session that answers but streams nothing: restarted once an episode, with a warning.

Quiet for ``stale_after_s`` of clock time (and `MIN_SILENCE_WALL_S` of wall time) with its
registrations held, in continuous trading, a session restarts with a ``track_b_stream_stale``
warning about its account (open in the process's `AlertBook`, an earlier run's too). Data
flowing again resolves it: a market-wide halt costs each account one restart and one alert,
not a reconnect loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock
from observer.kis.stream import MIN_SILENCE_WALL_S, KisStream
from observer.runtime import sleep_unless
from workers.track_b.gaps import throughout
from workers.track_b.outages import resolve

__all__ = ["STREAM_STALE", "StaleWatch"]

log = logging.getLogger(__name__)

STREAM_STALE = "track_b_stream_stale"  # the alert of a session that answers but streams nothing
_NS = 1_000_000_000


class StaleWatch:
    """When each account last heard from KIS, and its stale episodes (``stale_after_s``)."""

    def __init__(
        self,
        clock: Clock,
        alerts: AlertBook,
        in_session: Callable[[int], bool],
        stale_after_s: float,
    ) -> None:
        self.clock = clock
        self.alerts = alerts
        self.in_session = in_session
        self.stale_ns = int(stale_after_s * _NS)  # 0: not watched
        self.stale: set[str] = set()  # accounts in a stale episode (restarted once for it)
        # alias -> its last data frame or confirmation, in clock time and in wall time
        self.heard_ns: dict[str, int] = {}
        self.heard_wall: dict[str, float] = {}

    def heard(self, alias: str, at_ns: int) -> None:
        """KIS confirmed the account's session: data is due from ``at_ns``."""
        self.heard_ns[alias] = at_ns
        self.heard_wall[alias] = time.monotonic()

    def on_data(self, alias: str, received_ns: int) -> None:
        """A data frame of the account arrived: the end of its stale episode, if any."""
        self.heard(alias, received_ns)
        if alias in self.stale or self.alerts.is_open(STREAM_STALE, alias):
            self.stale.discard(alias)
            resolve(self.alerts, STREAM_STALE, alias, "data flows again")

    async def watch(self, streams: Mapping[str, KisStream], stop: asyncio.Event) -> None:
        """Restart (once per episode) each session that answers but delivers no data."""
        while not stop.is_set():
            await sleep_unless(self.clock, self.stale_ns / _NS / 4, stop)
            now = self.clock.now_ns()
            for alias, stream in streams.items():
                since = self.heard_ns.get(alias)
                if (
                    alias in self.stale
                    or since is None
                    or not (stream.confirmed and stream.registered)
                    or now - since < self.stale_ns
                    or time.monotonic() - self.heard_wall[alias] < MIN_SILENCE_WALL_S
                    or not throughout(self.in_session, since, now)
                ):
                    continue
                self.stale.add(alias)
                quiet = f"no data for {(now - since) / _NS:.0f}s"
                log.warning("account %s: %s with its registrations held: restarting", alias, quiet)
                self.alerts.raise_(  # none if an earlier run's alert stands for it
                    STREAM_STALE,
                    alias,
                    "warning",
                    f"account {alias}: {quiet} with {len(stream.registered)} registrations "
                    "held in continuous trading; its session restarts",
                    {"account": alias},
                )
                await stream.restart()
