"""Data KIS sent that the decoder refuses, per account: counted, and alerted once an episode.

A refused record loses its trade or book (a refused trade of a streamed symbol is also a
``dropped_record`` gap); a refused frame loses all its records. The first refusal of an
episode raises a ``track_b_data_undecoded`` error about its account, naming what and why
(open in the process's `AlertBook`); the episode ends, resolved with its counts, once the
account's data has been read without a refusal for `QUIET_S`. One alert an episode, however
many records: a format change that refuses every record raises one, open while nothing reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock
from workers.track_b.outages import resolve

__all__ = ["DATA_UNDECODED", "QUIET_S", "RefusedData"]

DATA_UNDECODED = "track_b_data_undecoded"  # the alert of an account's data the decoder refuses
# Clock seconds of data read without a refusal that end an episode (a format change refuses
# every record; a damaged frame is one of thousands a minute).
QUIET_S = 600.0
_NS = 1_000_000_000


@dataclass(slots=True)
class _Episode:
    last_ns: int  # the latest refusal (or the take-over)
    records: int = 0
    frames: int = 0


class RefusedData:
    """Every account's refused records and frames, and its ``track_b_data_undecoded`` episodes."""

    def __init__(self, clock: Clock, alerts: AlertBook, quiet_s: float = QUIET_S) -> None:
        self.clock = clock
        self.alerts = alerts
        self.quiet_ns = int(quiet_s * _NS)
        self.records: Counter[str] = Counter()  # alias -> records refused, since the start
        self.open: dict[str, _Episode] = {}  # alias -> its episode, while alerted

    def taken_over(self, aliases: Collection[str]) -> None:
        """Accounts whose alert an earlier run left open: an episode from now (quiet data ends)."""
        now = self.clock.now_ns()
        for alias in aliases:
            self.open.setdefault(alias, _Episode(now))

    def resolve(self, alias: str, why: str) -> None:
        """End the account's episode now (``why``), if one is open."""
        episode = self.open.pop(alias, None)
        if episode is None:
            return
        counts = f"{episode.records} records and {episode.frames} frames refused"
        resolve(self.alerts, DATA_UNDECODED, alias, f"{why} ({counts} in the episode)")

    def on_records(self, alias: str, feed: str, count: int, error: str) -> None:
        """``count`` records of a ``feed`` frame ("KRX trades") refused, the first for ``error``."""
        self.records[alias] += count
        self._refused(alias, f"{count} {feed} record{'s' * (count > 1)}", error).records += count

    def on_frame(self, alias: str, error: str) -> None:
        """A whole data frame refused (its records unread) for ``error``."""
        self._refused(alias, "a data frame", error).frames += 1

    def on_data(self, alias: str, received_ns: int) -> None:
        """Data of the account read without a refusal: the end of an episode quiet long enough."""
        episode = self.open.get(alias)
        if episode is not None and received_ns - episode.last_ns >= self.quiet_ns:
            self.resolve(alias, f"no data refused for {self.quiet_ns / _NS:.0f}s")

    def _refused(self, alias: str, what: str, error: str) -> _Episode:
        now = self.clock.now_ns()
        episode = self.open.get(alias)
        if episode is not None:
            episode.last_ns = now
            return episode
        episode = self.open[alias] = _Episode(now)
        message = (
            f"account {alias}: KIS sent data the decoder refuses ({what}: {error}); refused "
            "trades of streamed symbols are gaps recovered from the minute bars, the rest "
            "shows in the day's reconciliation"
        )
        self.alerts.raise_(DATA_UNDECODED, alias, "error", message[:500], {"account": alias})
        return episode
