"""Gap recovery's minute bars in the journal, replayed into the rows the live run stored.

A live run against the simulator journals every page of every gap's call with the call's
`GapAsk`; the day replayed from the journal into a scratch database holds the same recovered
bars, row for row: the same gaps, minutes, prices, volumes and sessions, each minute once
however many gaps overlap it, a 45-minute gap's two pages read as one call.
"""

from __future__ import annotations

import signal
from pathlib import Path

from bus.events import GapDetected
from bus.producer import Producer
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from observer.config.load import load_settings
from observer.kis.bars import GapAsk
from observer.kis.journal import read_file
from observer.kis.journal_replay import capture_journal
from observer.writer.replay import replay_into_db
from tests.gap_recovery.conftest import HALF_TEN, STOCKS, Rig
from tests.gap_recovery.test_gap_recovery import MINUTE, TEN_NS, S, _final_states, _gaps
from tests.support import db_rows

BARS = (
    "select symbol, venue, minute_ns, open, high, low, close, volume, gap_id, trading_session "
    "from minute_bars where quality = 'recovered' order by symbol, venue, minute_ns"
)


def test_a_days_recovered_bars_replay_from_the_journal_into_the_rows_stored(
    rig: Rig, tmp_path: Path
) -> None:
    """Twelve silences and disconnects (some overlapping) and one 45-minute disconnect, through
    a 5xx burst: the replay publishes what the live run published, and nothing of the calls
    that failed."""
    url, writer, sim = rig.url, rig.writer, rig.sim
    long_gap = GapDetected(
        gap_id="acct1:long",
        symbol=STOCKS[3],
        start_ns=TEN_NS - 20 * MINUTE + 10 * S,
        end_ns=TEN_NS + 25 * MINUTE,
        reason="disconnect",
        account="acct1",
    )
    gaps = [*_gaps(10), long_gap]
    sim.sim.faults.http_5xx = 3
    with Producer("track_b", writer.ingest, rig.outbox, clock_ns=sim.sim.clock.now_ns) as p:
        for gap in gaps:
            p.send(gap)
        assert p.wait_acked(30)
    rig.start()
    assert _final_states(url, len(gaps)) == {"recovered": len(gaps)}
    assert rig.proc is not None
    rig.proc.send_signal(signal.SIGTERM)
    assert rig.proc.wait(30) == 0
    live = db_rows(url, BARS)
    assert sim.sim.faults.http_5xx == 0  # the burst was met
    # The long gap's 46 minutes but those a shorter gap of its symbol recovered first
    assert len({row[8] for row in live}) >= 8 and sum(r[8] == "acct1:long" for r in live) > 30

    journal = tmp_path / "data" / "journal"
    files = sorted(journal.rglob("gap_recovery.*.kisj.zst"))
    asks = [GapAsk.of(r.context) for f in files for r in read_file(f)]
    long_pages = [a for a in asks if a is not None and a.gap_id == "acct1:long"]
    assert len({a.ask for a in long_pages}) == 1 and len(long_pages) == 2  # one call, 2 pages

    settings = load_settings(rig.config)
    venues = venues_from(settings.venues, timeline_from(settings.phases, settings.calendar))
    out = tmp_path / "replayed.cap"
    parsed = capture_journal(
        journal, HALF_TEN.date(), out, session_of=venues.session_of_ns, process="gap_recovery"
    )
    assert parsed.refused_answers == 0 and parsed.unplaced == 0, parsed.summary()
    scratch = f"sqlite:///{tmp_path / 'replayed.db'}"
    result = replay_into_db(out, scratch, upgrade=True)
    assert not result.not_stored() and result.committed == parsed.events
    assert db_rows(scratch, BARS) == live
