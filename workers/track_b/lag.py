"""How far behind each account's feed delivers its trades, and the alert of a feed behind.

A data frame's lag is its receive time less its newest trade stamp (stamped to the second).
A feed behind by more than ``lag_alert_s`` in continuous trading is a ``track_b_feed_lagging``
warning about its account (open in the process's `AlertBook`), resolved once every frame has
been within half the limit for as long as the limit. `FeedLag.behind` says whether the feed
runs behind when a symbol leaves its slot (a delivery-lag gap): a recent frame later than the
limit, or nothing for `STALL_FACTOR` usual intervals.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection
from itertools import takewhile

from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock, wall_seconds_between
from workers.track_b.outages import resolve

__all__ = ["FEED_LAGGING", "LAG_WALL_FLOOR_S", "FeedLag"]

log = logging.getLogger(__name__)

FEED_LAGGING = "track_b_feed_lagging"  # the alert of a feed delivering trades late
# A delay of less wall time than this is a busy event loop's under a fast simulated clock,
# not a feed behind: no lag alert and no delivery-lag gap (at wall pace every limit is more).
LAG_WALL_FLOOR_S = 0.5
# The frames whose lag `behind` judges (a catch-up's late ones among them): those of the last
# RECENT_S, or of the last RECENT_WALL_S of wall time under a fast clock (at 121x, 5 s are
# 41 ms: a push of the simulator's holds the lag's frames, the next may come 50 ms later).
RECENT_S = 5.0
RECENT_WALL_S = 1.0
PACE_WINDOW_S = 60.0  # an account's usual interval between frames: this long over its frames
STALL_FACTOR = 10.0  # nothing for this many usual intervals: the feed stopped, not quiet
_NS = 1_000_000_000


class FeedLag:
    """Every account's delivery lag, and its ``track_b_feed_lagging`` episodes."""

    def __init__(
        self,
        clock: Clock,
        alerts: AlertBook,
        in_session: Callable[[int], bool],
        alert_after_s: float,
    ) -> None:
        self.clock = clock
        self.alerts = alerts  # each lagging account's alert is open there
        self.in_session = in_session
        self.limit_ns = int(alert_after_s * _NS)  # 0: no alert
        self.lag_ns: dict[str, int] = {}  # alias -> its latest data frame's delivery lag
        # alias -> since when its frames are on time (receive time), while lagging
        self.on_time_since: dict[str, int] = {}
        # alias -> (receive time, lag) of its frames of the last PACE_WINDOW_S, up to its last
        self.frames: dict[str, deque[tuple[int, int]]] = {}
        self.first_ns: dict[str, int] = {}  # alias -> its first frame's receive time

    def taken_over(self, aliases: Collection[str]) -> None:
        """Accounts whose alert an earlier run left open: judged here as if raised here.

        Resolved at once with the alert off (``lag_alert_s = 0``): nothing would judge it.
        """
        if not self.limit_ns:
            for alias in sorted(aliases):
                resolve(self.alerts, FEED_LAGGING, alias, "lag alerts are off")

    def behind(self, alias: str, now_ns: int, limit_ns: int) -> int:
        """How far behind the account's feed runs at ``now_ns`` (ns), or 0 if within the limit.

        Behind: a frame of the last `RECENT_S` (or `RECENT_WALL_S` of wall time, if longer)
        arrived more than ``limit_ns`` after its newest
        trade, or nothing has arrived for `STALL_FACTOR` usual intervals (at least the limit;
        unknown until the account has had frames for `PACE_WINDOW_S`). Either needs
        `LAG_WALL_FLOOR_S` of wall time too, whatever the clock's speed.
        """
        frames = self.frames.get(alias)
        if not frames:
            return 0
        recent = now_ns - int(RECENT_S * _NS)

        def is_recent(frame: tuple[int, int]) -> bool:
            at = frame[0]
            return at >= recent or wall_seconds_between(self.clock, at, now_ns) < RECENT_WALL_S

        peak = max((lag for _, lag in takewhile(is_recent, reversed(frames))), default=0)
        if peak > limit_ns and self._wall(now_ns - peak, now_ns):
            return peak
        last = frames[-1][0]
        window = int(PACE_WINDOW_S * _NS)
        if last - self.first_ns[alias] < window:
            return 0  # its pace is not known yet
        quiet, usual = now_ns - last, window / len(frames)
        if quiet > max(limit_ns, STALL_FACTOR * usual) and self._wall(last, now_ns):
            return quiet
        return 0

    def _wall(self, earlier_ns: int, later_ns: int) -> bool:
        return wall_seconds_between(self.clock, earlier_ns, later_ns) >= LAG_WALL_FLOOR_S

    def on_frame(self, alias: str, traded_ns: int, received_ns: int) -> None:
        """A data frame whose newest trade is stamped ``traded_ns`` arrived: judge the lag.

        Only continuous trading raises the alert (an auction's stamps are its match time).
        """
        lag = self.lag_ns[alias] = max(0, received_ns - traded_ns)
        frames = self.frames.setdefault(alias, deque())
        frames.append((received_ns, lag))
        self.first_ns.setdefault(alias, received_ns)
        while frames[0][0] < received_ns - int(PACE_WINDOW_S * _NS):
            frames.popleft()
        if not self.limit_ns:
            return
        wall = wall_seconds_between(self.clock, traded_ns, received_ns)
        if self.alerts.is_open(FEED_LAGGING, alias):
            if lag > self.limit_ns // 2 and wall >= LAG_WALL_FLOOR_S / 2:
                self.on_time_since.pop(alias, None)  # still behind
                return
            since = self.on_time_since.setdefault(alias, received_ns)
            if (
                received_ns - since >= self.limit_ns
                and wall_seconds_between(self.clock, since, received_ns) >= 2 * LAG_WALL_FLOOR_S
            ):
                del self.on_time_since[alias]
                resolve(self.alerts, FEED_LAGGING, alias, "its feed is on time again")
            return
        if lag > self.limit_ns and wall >= LAG_WALL_FLOOR_S and self.in_session(traded_ns):
            behind = f"its trades arrive {lag / _NS:.0f}s after they happen"
            log.warning("account %s: %s", alias, behind)
            self.alerts.raise_(
                FEED_LAGGING,
                alias,
                "warning",
                f"account {alias}: {behind} (more than {self.limit_ns / _NS:.0f}s); a symbol "
                "leaving its slot meanwhile gets a delivery-lag gap",
                {"account": alias},
            )
