"""KIS's PINGPONG: answered as configured, and the silence limit its measured interval sets.

Against one simulator (module-scoped) that pings every 0.2 wall seconds and, told so, drops
a session that does not answer as it accepts within 1 wall second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.config import SimConfig
from observer.kis.feeds import Feed
from observer.kis.keepalive import PingInterval, PingpongAnswer, silence_limit_s
from observer.kis.stream import KisStream, StreamSettings
from tests.harness.test_sim_server import KEY, MARKET, SECRET, START, SYMBOL, client_for
from tests.kis.test_kis_stream import Heard
from tests.support import SimThread

INTERVAL_S, TIMEOUT_S = 0.2, 1.0


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    config = SimConfig(
        app_keys={KEY: SECRET}, pingpong_interval_s=INTERVAL_S, pingpong_timeout_s=TIMEOUT_S
    )
    with SimThread(MARKET, START, config, speed=60.0) as thread:
        yield thread


async def _session(
    sim: SimThread, tmp_path: Path, answer: PingpongAnswer, dropped: bool
) -> tuple[KisStream, Heard, int]:
    """A stream answering as ``answer`` until dropped (``dropped``) or 6 PINGPONGs heard."""
    realtime = sim.sim.realtime
    before = realtime.pingpong_drops
    heard = Heard()
    client, tokens = client_for(sim.sim, sim.url, tmp_path)
    settings = StreamSettings(pingpong_answer=answer, backoff_s=(30.0,))
    url = sim.url.replace("http", "ws") + "/tryitout"
    stream = KisStream(url, tokens, sim.sim.clock, heard, settings)
    await stream.subscribe(Feed("trades", "KRX", SYMBOL))
    stop = asyncio.Event()
    runner = asyncio.create_task(stream.run(stop))

    def done() -> bool:
        if dropped:
            return any(state == "disconnected" for state, _ in heard.states)
        return stream.pings.heard >= 6

    try:
        async with asyncio.timeout(10):
            while not done():
                await asyncio.sleep(0.02)  # poll interval of a deadline-bound wait
    finally:
        stop.set()
        await runner
        await client._http.aclose()
    return stream, heard, realtime.pingpong_drops - before


@pytest.mark.parametrize(
    ("accepts", "answer", "dropped"),
    [
        ("pong", "echo", True),  # python-kis's answer where KIS wants its samples' answer
        ("echo", "pong", True),
        ("pong", "both", False),  # the default answer satisfies either server
        ("echo", "both", False),
        ("any", "echo", False),  # the simulator's default never drops
    ],
)
def test_a_session_is_kept_only_when_it_answers_as_the_server_accepts(
    sim: SimThread, tmp_path: Path, accepts: str, answer: PingpongAnswer, dropped: bool
) -> None:
    sim.sim.realtime.config.pingpong_accepts = accepts  # type: ignore[assignment]
    try:
        stream, heard, drops = asyncio.run(_session(sim, tmp_path, answer, dropped))
    finally:
        sim.sim.realtime.config.pingpong_accepts = "any"
    assert drops == (1 if dropped else 0)
    if dropped:
        assert stream.pings.heard >= 1
        stats = httpx.get(sim.url + "/_sim/stats", timeout=5).json()
        assert stats["pingpong_drops"] == sim.sim.realtime.pingpong_drops >= 1
        return
    assert not [s for s in heard.states if s[0] == "disconnected"], heard.states
    assert stream.frames > 0  # the session streamed throughout
    interval = stream.pings.interval_s
    assert interval is not None and INTERVAL_S / 2 < interval < INTERVAL_S * 5
    # A 0.2 s keep-alive leaves the configured 90 s limit as it is.
    assert stream.silence_limit_s() == stream.settings.silence_s


@given(
    configured=st.floats(1, 10_000),
    factor=st.floats(0, 100),
    interval=st.none() | st.floats(0, 10_000),
)
def test_the_silence_limit_is_never_shorter_than_configured(
    configured: float, factor: float, interval: float | None
) -> None:
    limit = silence_limit_s(configured, factor, interval)
    assert limit >= configured
    if interval is None or factor == 0:
        assert limit == configured  # nothing measured: the configured limit
    else:
        assert limit == max(configured, factor * interval)
        assert limit >= factor * interval  # a quiet session outlives the server's keep-alive


def test_the_interval_is_measured_within_a_connection_and_survives_a_reconnect() -> None:
    now = [100.0]
    pings = PingInterval(lambda: now[0])
    pings.ping()
    assert pings.interval_s is None  # one PINGPONG is no interval
    now[0] = 210.0
    pings.ping()
    assert pings.interval_s == 110.0
    pings.connected()
    now[0] = 500.0
    pings.ping()  # the first of a new connection: the time between does not count
    assert pings.interval_s == 110.0 and pings.heard == 3
    assert silence_limit_s(90.0, 2.5, pings.interval_s) == 275.0
