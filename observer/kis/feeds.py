"""KIS's real-time feeds by what they carry: a `Feed` is a kind, a venue and a symbol.

A worker asks for a feed (``Feed("trades", "NXT", "005930")``); the adapter alone knows that
KIS calls it the TR H0NXCNT0 keyed by 005930 (`tr_id_of`, `feed_of`). Each kind has one TR
per venue (KIS's 2026-09 material, shared/reference/kis-market-2026-09.md):

============  ==========  ==========  ==========
kind          KRX         NXT         combined
============  ==========  ==========  ==========
trades        H0STCNT0    H0NXCNT0    H0UNCNT0
book          H0STASP0    H0NXASP0    H0UNASP0
status        H0STMKO0    H0NXMKO0    (none)
program       H0STPGM0    H0NXPGM0    H0UNPGM0
auction       H0STANC0    H0NXANC0    H0UNANC0
vi            H0STVIC0    H0NXVIC0    H0UNVIC0
brokers       H0STMBC0    H0NXMBC0    H0UNMBC0
============  ==========  ==========  ==========

``status`` is a venue's market-operation records (halts, VIs, session events): the combined
feed's records name no symbol, so that one is never registered. ``auction`` is an auction's
expected matches. ``vi`` is the whole market's volatility interruptions, keyed by the
business date (``YYYYMMDD``) rather than a symbol (`market_vis`). ``brokers`` is the five
brokers (KIS's 회원사, exchange members) each side's volume ranks first today, and the foreign
brokers' totals. A feed's records on the combined feed name no venue of their own
("combined").
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from bus.events import Venue

__all__ = [
    "FEED_KINDS",
    "TR_IDS",
    "Feed",
    "FeedKind",
    "feed_of",
    "kind_of",
    "market_vis",
    "tr_id_of",
    "venue_of",
]

FeedKind = Literal["trades", "book", "status", "program", "auction", "vi", "brokers"]
# In the order a symbol's feeds are asked for when a session cannot take them all at once.
FEED_KINDS: tuple[FeedKind, ...] = (
    "trades",
    "book",
    "status",
    "program",
    "auction",
    "vi",
    "brokers",
)

TR_IDS: dict[FeedKind, dict[Venue, str]] = {
    "trades": {"KRX": "H0STCNT0", "NXT": "H0NXCNT0", "combined": "H0UNCNT0"},
    "book": {"KRX": "H0STASP0", "NXT": "H0NXASP0", "combined": "H0UNASP0"},
    "status": {"KRX": "H0STMKO0", "NXT": "H0NXMKO0"},
    "program": {"KRX": "H0STPGM0", "NXT": "H0NXPGM0", "combined": "H0UNPGM0"},
    "auction": {"KRX": "H0STANC0", "NXT": "H0NXANC0", "combined": "H0UNANC0"},
    "vi": {"KRX": "H0STVIC0", "NXT": "H0NXVIC0", "combined": "H0UNVIC0"},
    "brokers": {"KRX": "H0STMBC0", "NXT": "H0NXMBC0", "combined": "H0UNMBC0"},
}
_OF_TR: dict[str, tuple[FeedKind, Venue]] = {
    tr_id: (kind, venue) for kind, trs in TR_IDS.items() for venue, tr_id in trs.items()
}
_RANK = {kind: rank for rank, kind in enumerate(FEED_KINDS)}


class Feed(NamedTuple):
    """One real-time feed: ``kind`` of ``symbol`` on ``venue`` (one KIS registration).

    A named tuple: one is made for every record Track B checks against its session's. As a
    tuple it sorts by kind first; `Feed.order` keeps a symbol's feeds together.
    """

    kind: FeedKind
    venue: Venue
    symbol: str  # the stock's code; the business date for `market_vis`

    def __str__(self) -> str:
        return f"{self.label} {self.symbol}"

    @property
    def label(self) -> str:
        """What the feed carries, in words: ``NXT trades``, ``KRX status``."""
        return f"{self.venue} {self.kind}"

    @property
    def order(self) -> tuple[str, int, str]:
        """A sort key: by symbol, then kind as `FEED_KINDS` lists them, then venue."""
        return self.symbol, _RANK[self.kind], self.venue


def market_vis(venue: Venue, business_day: str) -> Feed:
    """The whole market's VIs on ``venue`` (combined: both venues'), keyed by ``YYYYMMDD``."""
    return Feed("vi", venue, business_day)


def tr_id_of(feed: Feed) -> str:
    """The TR KIS carries ``feed`` on. ValueError for a feed KIS has none of."""
    try:
        return TR_IDS[feed.kind][feed.venue]
    except KeyError:
        raise ValueError(f"KIS has no {feed.label} feed") from None


def feed_of(tr_id: str, tr_key: str) -> Feed:
    """The feed a registration of ``(tr_id, tr_key)`` is. ValueError for a TR not a feed here."""
    kind, venue = _kind_and_venue(tr_id)
    return Feed(kind, venue, tr_key)


def kind_of(tr_id: str) -> FeedKind:
    """The kind of feed ``tr_id`` carries. ValueError for a TR not a feed here."""
    return _kind_and_venue(tr_id)[0]


def venue_of(tr_id: str) -> Venue:
    """The venue whose records ``tr_id`` carries. ValueError for a TR not a feed here."""
    return _kind_and_venue(tr_id)[1]


def _kind_and_venue(tr_id: str) -> tuple[FeedKind, Venue]:
    try:
        return _OF_TR[tr_id]
    except KeyError:
        raise ValueError(f"{tr_id} is not a real-time feed the observer knows") from None
