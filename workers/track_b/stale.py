"""A session that answers but streams nothing: restarted once an episode, with a warning.

Quiet for ``stale_after_s`` of clock time (and `MIN_SILENCE_WALL_S` of wall time) with its
registrations held, in continuous trading where the feeds print often (``busy``: the regular
sessions), a session restarts with a ``track_b_stream_stale`` warning about its account (open
in the process's `AlertBook`, an earlier run's too). In the thinner continuous sessions (the
pre- and after-markets, where an account's few names may print nothing for minutes) it takes
``stale_after_thin_s``, since each restart costs a gap per name and a warning to people. Data
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
        *,
        busy: Callable[[int], bool] | None = None,
        thin_after_s: float = 0.0,
    ) -> None:
        """A watch of ``stale_after_s`` (0: none) where the feeds print often.

        ``in_session``: continuous trading (a trade may print); ``busy``: the part of it where
        the feeds print often (None: all of it), stale after ``stale_after_s``; the rest after
        ``thin_after_s`` (0: never).
        """
        self.clock = clock
        self.alerts = alerts
        self.in_session = in_session
        self.busy = in_session if busy is None else busy
        self.stale_ns = int(stale_after_s * _NS)  # 0: not watched
        self.thin_ns = int(thin_after_s * _NS)  # 0: the thin sessions not judged
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

    def stuck(self, since_ns: int, now_ns: int) -> bool:
        """Whether no data from ``since_ns`` to ``now_ns`` is a stuck session.

        ``stale_after_s`` or more where the feeds print often throughout, or
        ``thin_after_s`` or more (when set) in continuous trading throughout.
        """
        quiet = now_ns - since_ns
        if quiet >= self.stale_ns and throughout(self.busy, since_ns, now_ns):
            return True
        return 0 < self.thin_ns <= quiet and throughout(self.in_session, since_ns, now_ns)

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
                    or time.monotonic() - self.heard_wall[alias] < MIN_SILENCE_WALL_S
                    or not self.stuck(since, now)
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
