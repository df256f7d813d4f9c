"""KIS's real-time feeds by kind, venue and symbol: the one table of TR ids, both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.kis.feeds import (
    FEED_KINDS,
    TR_IDS,
    Feed,
    feed_of,
    kind_of,
    market_vis,
    tr_id_of,
    venue_of,
)

FEEDS = [(kind, venue) for kind, trs in TR_IDS.items() for venue in trs]


@given(st.sampled_from(FEEDS), st.from_regex(r"[0-9A-Z]{6}", fullmatch=True))
def test_every_feed_maps_to_its_tr_and_back(kind_venue: tuple[str, str], symbol: str) -> None:
    feed = Feed(*kind_venue, symbol)  # type: ignore[arg-type]
    tr_id = tr_id_of(feed)
    assert feed_of(tr_id, symbol) == feed
    assert (kind_of(tr_id), venue_of(tr_id)) == kind_venue


def test_one_tr_per_kind_and_venue_and_every_kind_in_the_table() -> None:
    trs = [tr for venues in TR_IDS.values() for tr in venues.values()]
    assert len(trs) == len(set(trs))
    assert set(TR_IDS) == set(FEED_KINDS)


@pytest.mark.parametrize("tr_id", ["H0STCNI0", "PINGPONG", "", "H0STCNT"])
def test_a_tr_that_is_no_feed_here_is_a_value_error_naming_it(tr_id: str) -> None:
    for read in (kind_of, venue_of, lambda tr: feed_of(tr, "005930")):
        with pytest.raises(ValueError, match=f"^{tr_id} is not a real-time feed"):
            read(tr_id)


def test_a_feed_kis_has_none_of_is_a_value_error() -> None:
    # The combined feed's market-operation records name no symbol: it is never registered
    with pytest.raises(ValueError, match="KIS has no combined status feed"):
        tr_id_of(Feed("status", "combined", "005930"))


def test_a_symbols_feeds_sort_together_in_the_order_they_are_asked_for() -> None:
    feeds = [
        Feed("book", "KRX", "000660"),
        Feed("trades", "NXT", "005930"),
        Feed("trades", "KRX", "000660"),
        Feed("book", "KRX", "005930"),
    ]
    assert sorted(feeds, key=lambda f: f.order) == [
        Feed("trades", "KRX", "000660"),
        Feed("book", "KRX", "000660"),
        Feed("trades", "NXT", "005930"),
        Feed("book", "KRX", "005930"),
    ]
    assert str(feeds[1]) == "NXT trades 005930"
    assert tr_id_of(market_vis("KRX", "20261120")) == "H0STVIC0"
