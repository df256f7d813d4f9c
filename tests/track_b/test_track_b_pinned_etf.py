"""A pinned ETF that Nextrade trades (from November 2026): Track B asks its standing, since the
universe (stocks) has none for it, and registers it on both venues' feeds; an ask that fails
holds it on KRX's alone, alerted, until KIS answers, when its held slot gains Nextrade's feed;
every trade the simulator sends on either venue is stored."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support import wait_until
from tests.track_b.test_track_b import rows, rows_once, stored_as_sent
from tests.track_b.test_track_b_after_market import DAY, MARKET, NXT, UNIVERSE, VENUES, sim_day
from workers.track_b.pin_standing import PIN_STANDING_UNKNOWN
from workers.track_b.pins import write_pins

ETFS = sorted(s for s, x in MARKET.listings.items() if x.group == "EF" and not x.suspended)
NXT_ETF = next(s for s in ETFS if s in MARKET.nxt_eligible(DAY))
KRX_ETF = next(s for s in ETFS if s not in MARKET.nxt_eligible(DAY))


def test_a_pinned_etf_nextrade_trades_gains_its_feed_once_kis_answers_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """10:30-10:31 at 10x, then 60x, two accounts of 6 registrations: the universe's four
    names (6 registrations) and two pinned ETFs. KIS fails the first asks (5xx on every
    try): both ETFs hold KRX's trades, each alerted; once KIS answers (a minute later) the
    one Nextrade trades gains Nextrade's feed, its alert and the other's resolved; each
    venue's trades sent are stored."""
    write_pins(tmp_path / "data", {NXT_ETF, KRX_ETF})
    with sim_day(tmp_path, VENUES, "10:30", "10:31", registrations=6) as day:
        url, sim, proc = day.url, day.sim, day.start()
        sim.sim.faults.http_5xx = 1_000  # Track B's only REST calls are the pins' asks
        alerted = rows_once(
            url,
            f"select subject from alerts where code = '{PIN_STANDING_UNKNOWN}'",
            2,
            "both pins' standing alerted unknown",
        )
        assert sorted(s for (s,) in alerted) == sorted([NXT_ETF, KRX_ETF])
        sim.sim.faults.http_5xx = 0
        ticks = f"select count(*) from trade_ticks where symbol = '{NXT_ETF}' and venue = 'NXT'"

        def stored() -> bool:
            assert proc.poll() is None, day.log.read_text()[-2000:]
            return rows(url, ticks)[0][0] >= 3

        wait_until(stored, 120, "the pinned ETF's Nextrade trades stored")
        resolved = rows_once(
            url,
            f"select subject from alert_resolutions where code = '{PIN_STANDING_UNKNOWN}'",
            2,
            "both pins' standing known",
        )
        assert sorted(s for (s,) in resolved) == sorted([NXT_ETF, KRX_ETF])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        placed = rows(
            url, "select symbol, venue, reason from slot_events where action = 'allocate'"
        )
        held = {(symbol, venue) for symbol, venue, _ in placed}
        assert held == {
            *((s, "KRX") for s in [*UNIVERSE, NXT_ETF, KRX_ETF]),
            *((s, "NXT") for s in [*NXT, NXT_ETF]),
        }
        # The same answer names it an ETF, which no after-market trades (the other may have
        # been answered at the same evaluation, or before)
        (joined,) = [r for s, v, r in placed if (s, v) == (NXT_ETF, "NXT")]
        assert joined.startswith(f"Nextrade trades the pins {NXT_ETF}; no after-market trades ")
        sent = sim.sim.realtime.records_sent
        stored_as_sent(url, {"KRX": sent["H0STCNT0"], "NXT": sent["H0NXCNT0"]})
        assert f"the pin {NXT_ETF} (etf) is outside the universe: Nextrade trades it today" in (
            day.log.read_text()
        )
