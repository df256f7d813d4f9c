"""The whole market's volatility interruptions on one registration (`[track_b] vi_feed`).

KIS's VI feeds (KRX's, and the combined one with each record's venue) are documented, in its
2026-09 workbook export alone, with the business date as their key: one registration would
carry every VI of the market as it starts and ends, where the market-status feeds
(`statuses`) carry only the watched symbols'. Its example shows a symbol there instead;
`observer kis check` registers both and says which KIS answers.

The registration is the first account's, held beside the slots (`Collector.hold`) from the
sessions' first registrations to their end, and its slot book counts it (`reserved`). A
refusal raises `VI_FEED_REFUSED` (warning) about the account: the slots go on without it, and
the feed is asked again at the next change of what is held beside the slots (an auction's
start or end). KIS taking it resolves the alert, as does a run with the feed off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from datetime import date

from bus.events import Venue
from observer.config.workers import TrackBSettings
from observer.kis.feeds import market_vis
from observer.kis.stream import Feed

__all__ = ["VI_FEED_REFUSED", "merged", "vi_registrations"]

VI_FEED_REFUSED = "track_b_vi_feed_refused"


def vi_registrations(
    config: TrackBSettings, paper: bool, accounts: Sequence[str], day: date
) -> dict[str, set[Feed]]:
    """The VI feed's registration on the first of ``accounts`` for ``day``, if configured.

    None on paper accounts: KIS offers them no VI TR.
    """
    if config.vi_feed == "off" or paper or not accounts:
        return {}
    venue: Venue = "KRX" if config.vi_feed == "krx" else "combined"
    return {accounts[0]: {market_vis(venue, f"{day:%Y%m%d}")}}


def merged(*holds: Mapping[str, Set[Feed]]) -> dict[str, set[Feed]]:
    """Each account's registrations of every one of ``holds``."""
    out: dict[str, set[Feed]] = {}
    for hold in holds:
        for alias, registrations in hold.items():
            out.setdefault(alias, set()).update(registrations)
    return out
