"""The token job runs degraded only on a previous token that lasts; else it fails, retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert

from harness.sim.market import Market
from harness.sim.server import SimConfig
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.db.engine import make_engine
from observer.db.models import AlertRow
from observer.kis.auth import cached_validity
from observer.kis.session import TOKEN_UNAVAILABLE
from observer.kis.token_cache import Cached, cache_path, save_cached
from tests.support import ROOT, SimThread, WriterProcess, db_rows
from workers.token.cli import RENEWAL_FAILED, _fallback

NS = 1_000_000_000
MARKET = Market(29, TradingCalendar(), stocks=40, etfs=2)


@given(
    now=st.integers(0, 2**50),
    lasting_s=st.integers(0, 86_400),
    expires_in_s=st.one_of(st.none(), st.integers(-86_400, 2 * 86_400)),
)
def test_degraded_only_when_the_previous_one_lasts_as_long_as_required(
    now: int, lasting_s: int, expires_in_s: int | None
) -> None:
    validity = None if expires_in_s is None else (now - NS, now + expires_in_s * NS)
    outcome, why = _fallback(validity, now, float(lasting_s))
    lasts = expires_in_s is not None and expires_in_s > 0 and expires_in_s >= lasting_s
    assert outcome == ("degraded" if lasts else "invalid")
    if expires_in_s is not None and expires_in_s > 0:
        assert "+09:00" in why  # the alert says when the previous one expires


def test_a_failed_0320_run_on_a_token_expiring_at_0430_fails_and_its_retry_mends_it(
    tmp_path: Path,
) -> None:
    """03:20, KIS's token endpoint failing, the cached token issued yesterday 04:30: exit 1
    (the supervisor retries it) and the alert names 04:30; the retry issues one that lasts."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    start = datetime(2026, 11, 20, 3, 20, 0, tzinfo=KST)
    sim = SimThread(MARKET, start, SimConfig(), 60.0)
    tokens = tmp_path / "tokens"
    tokens.mkdir(mode=0o700)
    now = int(start.timestamp() * NS)
    yesterday_0430 = now - (22 * 3600 + 50 * 60) * NS
    save_cached(
        cache_path(tokens, "acct1", "sim", "access_token"),
        Cached("old-token-value-xxxxxxxxxxxxxxxx", yesterday_0430, yesterday_0430 + 86400 * NS),
    )
    save_cached(  # a key that lasts the day: only the token is asked for
        cache_path(tokens, "acct1", "sim", "approval_key"),
        Cached("old-approval-key-xxxxxxxxxxxxxxxx", now - 3600 * NS, now + 22 * 3600 * NS),
    )
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{writer.run_dir}"\n'
        f'[database]\nurl = "{url}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tokens}"\n'
        'token_issuer = "job"\n[[kis.accounts]]\nalias = "acct1"\n'
        "[token]\nretries = 3\nretry_initial_s = 1.0\nretry_max_s = 2.0\n"
    )
    env = {**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec}

    def job() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "observer", "token", "run", "--config", str(config)],
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )

    # The readiness job exited waiting for acct1's token: its critical alert is left open.
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(AlertRow),
            [
                {
                    "source": "readiness",
                    "seq": 1,
                    "produced_ns": now - NS,
                    "severity": "critical",
                    "code": TOKEN_UNAVAILABLE,
                    "message": "acct1: no valid access_token in the cache",
                    "context": {},
                    "subject": "acct1",
                }
            ],
        )
    engine.dispose()
    unavailable = f"select subject from alert_resolutions where code = '{TOKEN_UNAVAILABLE}'"
    try:
        body = json.dumps({"token_failures": 4}).encode()  # every try of the first run
        urllib.request.urlopen(f"{sim.url}/_sim/faults", body, timeout=10).read()
        done = job()
        assert done.returncode == 1, done.stderr.decode()  # not degraded: retried
        assert b"lasts the day" in done.stderr
        alerts = db_rows(
            url, f"select severity, message, subject from alerts where code = '{RENEWAL_FAILED}'"
        )
        assert [(a[0], a[2]) for a in alerts] == [("critical", "acct1")]
        assert "expires at 2026-11-20T04:30+09:00" in alerts[0][1], alerts[0][1]
        assert db_rows(url, unavailable) == []  # nothing mended: the reader's alert stays
        # The supervisor's retry: the endpoint answers again, a token that lasts the day.
        done = job()
        assert done.returncode == 0, done.stderr.decode()
        validity = cached_validity(tokens, "acct1", "sim")
        midnight = int(datetime(2026, 11, 21, 0, 0, tzinfo=KST).timestamp() * NS)
        assert validity is not None and validity[1] >= midnight
        resolved = db_rows(
            url, f"select subject from alert_resolutions where code = '{RENEWAL_FAILED}'"
        )
        assert [r[0] for r in resolved] == ["acct1"]
        assert [r[0] for r in db_rows(url, unavailable)] == ["acct1"]  # the reader's, ended
    finally:
        writer.kill()
        sim.close()
