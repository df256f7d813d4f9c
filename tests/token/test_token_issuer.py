"""One token issuer per account: the cache shared across processes, readers, the token job."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from bus.events import AlertResolved
from harness.sim.market import Market
from harness.sim.server import SimConfig
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.errors import KisAuthError
from observer.kis.auth import TokenManager, cached_validity
from observer.kis.credentials import Credentials, Secret
from observer.kis.session import TOKEN_UNAVAILABLE, open_account, rate_limits, token_alert
from observer.kis.token_cache import Cached, cache_path, key_digest, save_cached
from observer.process.state_files import STATE_FILE_UNREADABLE
from observer.supervisor.schedule import due_runs
from tests.kis.test_kis_auth import KEY, SECRET, T0, FakeKis
from tests.support import ROOT, SimThread, WriterProcess, db_rows, set_aside
from workers.token.cli import RENEWAL_FAILED, _resolve, _resolve_unavailable


def manager(tmp_path: Path, kis: FakeKis, clock: ManualClock, **options: object) -> TokenManager:
    """A token manager as one process has it: its own HTTP client, the shared cache folder."""
    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(kis.handle))
    creds = Credentials("acct1", Secret(KEY), Secret(SECRET))
    return TokenManager(http, creds, clock, tmp_path / "tokens", "real", **options)  # type: ignore[arg-type]


def test_managers_sharing_the_cache_issue_once_and_keep_the_minute_between_them(
    tmp_path: Path,
) -> None:
    """Two processes' managers: one issuance each time, never two within KIS's minute."""
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> list[str]:
        first, second = manager(tmp_path, kis, clock), manager(tmp_path, kis, clock)
        token = await first.token()
        assert (await second.token()) == token and kis.tokens == 1  # read, not issued
        clock.advance(20)
        # Both see KIS refuse the token: one issuance, after the minute, taken by both.
        both = [asyncio.create_task(m.refresh("emergency", stale=token)) for m in (first, second)]
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not any(t.done() for t in both) and kis.tokens == 1  # 40 s of the minute left
        clock.advance(40)
        return [t.reveal() for t in await asyncio.gather(*both)]

    assert asyncio.run(scenario()) == ["tok-2", "tok-2"]
    assert kis.tokens == 2


def test_a_refused_approval_key_is_renewed_once_for_all_processes_even_by_readers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two reader processes' sessions see KIS refuse the cached approval key: one emergency
    issuance, under the account's lock and after KIS's minute, taken by both; a process that
    saw the refusal late takes that key too instead of issuing another."""
    caplog.set_level(logging.INFO)
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> list[str]:
        issuer = manager(tmp_path, kis, clock)
        first, second = (manager(tmp_path, kis, clock, issuer=False) for _ in range(2))
        key = await issuer.approval_key()
        assert (await first.approval_key()) == key == (await second.approval_key())
        clock.advance(20)
        stale = key_digest(key.reveal())
        both = [
            asyncio.create_task(m.refresh_approval("emergency", stale=stale))
            for m in (first, second)
        ]
        async with asyncio.timeout(10):
            while "waiting 40s before issuing a new approval_key" not in caplog.text:
                await asyncio.sleep(0.01)  # poll interval of a deadline-bound wait
        assert not any(t.done() for t in both) and kis.approvals == 1  # the minute first
        clock.advance(40)
        renewed = await asyncio.wait_for(asyncio.gather(*both), 10)
        late = await issuer.refresh_approval("emergency", stale=stale)
        return [k.reveal() for k in (*renewed, late, await issuer.approval_key())]

    assert asyncio.run(scenario()) == ["apr-2"] * 4
    assert kis.approvals == 2
    assert "KIS refused the cached approval key: an emergency issuance" in caplog.text
    assert "apr-1" not in caplog.text and "apr-2" not in caplog.text


def test_a_reader_waits_for_the_issuer_alerts_once_and_follows_its_renewals(
    tmp_path: Path,
) -> None:
    kis, clock = FakeKis(), ManualClock(T0)
    waits: list[tuple[str, str]] = []

    async def scenario() -> None:
        reader = manager(
            tmp_path,
            kis,
            clock,
            issuer=False,
            reader_wait_wall_s=30.0,
            on_unavailable=lambda kind, message: waits.append((kind, message)),
            relook_s=0.0,
        )
        lazy = manager(tmp_path, kis, clock, issuer=False, relook_s=3600.0)
        issuer = manager(tmp_path, kis, clock)
        waiting = asyncio.create_task(reader.token())
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert not waiting.done() and kis.tokens == 0 and len(waits) == 1
        assert waits[0][0] == "access_token" and "token job" in waits[0][1]
        issued = await issuer.token()
        assert (await asyncio.wait_for(waiting, 5)) == issued and kis.tokens == 1
        assert (await lazy.token()) == issued
        # The pre-market renewal: the reader takes the new token at its next look at the
        # cache (every call here); until then the one it holds, still valid, serves.
        clock.advance(3600)
        renewed = await issuer.refresh("premarket")
        assert renewed != issued and (await reader.token()) == renewed
        assert (await lazy.token()) == issued
        # A key too old for the session but unexpired is the issuer's to renew, not the
        # reader's: it takes it as it is.
        key = await issuer.approval_key()
        clock.advance(22.5 * 3600)
        assert (await reader.approval_key(lasting_s=3600)) == key
        assert kis.tokens == 2 and kis.approvals == 1 and len(waits) == 1

    asyncio.run(scenario())


def test_a_readers_token_unavailable_names_the_account_and_ends_when_one_is_valid(
    tmp_path: Path,
) -> None:
    """Before, it had no subject and was never resolved: open, reminded every 30 minutes, long
    after the token job had issued. Now one alert per account until a valid token is held."""
    tokens = tmp_path / "tokens"
    settings = msgspec.convert(
        {
            "kis": {
                "environment": "sim",
                "sim_url": "http://127.0.0.1:9",  # a reader asks KIS nothing
                "token_dir": str(tokens),
                "token_issuer": "job",
                "accounts": [{"alias": "acct1"}],
            }
        },
        Settings,
    )
    clock = ManualClock(T0)
    events: list[Any] = []  # the alert and its resolution

    async def scenario() -> None:
        alert = token_alert("acct1", events.append)
        account = open_account(
            settings.kis, "acct1", clock, rate_limits(settings.kis, "jobs"), on_unavailable=alert
        )
        try:
            waiting = asyncio.create_task(account.tokens.token())
            await _until(lambda: events, "the alert")
            path = cache_path(tokens, "acct1", "sim", "access_token")
            save_cached(path, Cached("tok-job", clock.now_ns(), clock.now_ns() + 86400 * 10**9))
            assert (await asyncio.wait_for(waiting, 10)).reveal() == "tok-job"
            assert (await account.tokens.token()).reveal() == "tok-job"  # no news
        finally:
            await account.aclose()

    asyncio.run(scenario())
    assert [(type(e).__name__, e.code, e.severity, e.subject) for e in events] == [
        ("Alert", TOKEN_UNAVAILABLE, "critical", "acct1"),
        ("AlertResolved", TOKEN_UNAVAILABLE, "critical", "acct1"),
    ]


def test_a_reader_alerts_once_across_failed_waits_until_a_token_is_valid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kis, clock = FakeKis(), ManualClock(T0)
    heard: list[tuple[str, str]] = []

    async def scenario() -> None:
        reader = manager(
            tmp_path,
            kis,
            clock,
            issuer=False,
            reader_wait_s=60.0,
            reader_wait_wall_s=0.0,
            on_unavailable=lambda kind, message: heard.append(("unavailable", kind)),
            on_available=lambda kind, message: heard.append(("available", kind)),
        )

        def waited(times: int) -> Callable[[], bool]:
            return lambda: caplog.text.count("no valid access_token") == times

        for times in (1, 2):  # two waits in vain: one alert
            waiting = asyncio.create_task(reader.token())
            await _until(waited(times), "a wait")
            clock.advance(61)
            with pytest.raises(KisAuthError):
                await asyncio.wait_for(waiting, 5)
        issued = await manager(tmp_path, kis, clock).token()
        assert await reader.token() == issued
        assert await reader.token() == issued

    with caplog.at_level(logging.ERROR, logger="observer.kis.auth"):
        asyncio.run(scenario())
    assert heard == [("unavailable", "access_token"), ("available", "access_token")]


async def _until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)  # the poll interval of a deadline-bound wait


def test_the_token_job_resolves_each_mended_accounts_open_alert_only() -> None:
    settings = msgspec.convert(
        {"kis": {"accounts": [{"alias": "acct1"}, {"alias": "acct2"}]}}, Settings
    )
    sent: list[tuple[str, str]] = []

    class Producer:
        def send(self, event: AlertResolved) -> None:
            sent.append((event.code, event.subject))

    producer: Any = Producer()
    _resolve(settings.kis, producer, ["acct1"], {"acct1", "acct2", ""})
    assert sent == [(RENEWAL_FAILED, "acct1")]  # acct2 still fails: its alert stays
    sent.clear()
    _resolve(settings.kis, producer, ["acct1", "acct2"], {"acct2", ""})  # "": before subjects
    assert sent == [(RENEWAL_FAILED, "acct2"), (RENEWAL_FAILED, "")]
    sent.clear()
    _resolve(settings.kis, producer, ["acct1"], None)  # the database could not say: open
    assert sent == [(RENEWAL_FAILED, "acct1")]


def test_the_token_job_ends_a_readers_token_unavailable_once_it_mended_the_account() -> None:
    """A reader that exited waiting (the readiness job) cannot end its own alert: the token
    job, having issued, ends each mended account's that is open, and no other."""
    sent: list[tuple[str, str, str]] = []

    class Producer:
        def send(self, event: AlertResolved) -> None:
            sent.append((event.code, event.subject, event.severity))

    producer: Any = Producer()
    _resolve_unavailable(producer, ["acct1", "acct2"], {"acct2", "acct3"}, TOKEN_UNAVAILABLE)
    assert sent == [(TOKEN_UNAVAILABLE, "acct2", "critical")]  # acct3 is not mended yet
    sent.clear()
    _resolve_unavailable(producer, ["acct1"], None, TOKEN_UNAVAILABLE)  # unknown: none sent
    assert sent == []


def test_a_reader_gives_up_after_its_wait_without_issuing(tmp_path: Path) -> None:
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> None:
        reader = manager(
            tmp_path, kis, clock, issuer=False, reader_wait_s=60.0, reader_wait_wall_s=0.1
        )
        waiting = asyncio.create_task(reader.token())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # the wall floor passed, the clock's wait did not
        clock.advance(61)
        with pytest.raises(KisAuthError) as refused:
            await asyncio.wait_for(waiting, 5)
        assert refused.value.msg_cd == "NO_TOKEN"

    asyncio.run(scenario())
    assert kis.tokens == 0 and kis.approvals == 0


def test_the_shipped_token_job_runs_at_start_daily_and_renews_at_0830_on_sessions() -> None:
    """Every day at 03:20, before the day's first caller (Sunday's 03:30 enrich, the 06:10
    universe): a supervisor left running across a weekend found no valid token on Monday."""
    settings = load_settings(ROOT / "config" / "observer.toml")
    job = settings.programs["token"]
    assert settings.kis.token_issuer == "job" and job.kind == "job" and job.run_on_start
    timeline = timeline_from(settings.phases, settings.calendar)
    since = datetime(2026, 11, 20, 0, 0, tzinfo=KST)  # a Friday session, then the weekend
    runs = due_runs(timeline, job.schedule, since, datetime(2026, 11, 24, 0, 0, tzinfo=KST))
    assert [(at.strftime("%d %H:%M"), e.args) for at, e in runs] == [
        ("20 03:20", ()),
        ("20 08:30", ("--renew",)),
        ("21 03:20", ()),
        ("22 03:20", ()),
        ("23 03:20", ()),
        ("23 08:30", ("--renew",)),
    ]


MARKET = Market(29, TradingCalendar(), stocks=40, etfs=2)


def test_the_token_job_issues_renews_and_runs_degraded_when_renewal_fails(
    tmp_path: Path,
) -> None:
    """The job as a process against the simulator: issue, a failed 08:30 renewal, a retried one."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    # 08:29:30 at 60x: KIS's minute between two issuances is one wall second.
    # KIS answers with the same token within 6 h (kept, not issued): not this test's matter.
    no_reuse = SimConfig(same_token_within_s=1)
    sim = SimThread(MARKET, datetime(2026, 11, 20, 8, 29, 30, tzinfo=KST), no_reuse, 60.0)
    tokens = tmp_path / "tokens"
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{writer.run_dir}"\n'
        f'[database]\nurl = "{url}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tokens}"\n'
        'token_issuer = "job"\n[[kis.accounts]]\nalias = "acct1"\n'
        "[token]\nretries = 3\nretry_initial_s = 1.0\n"
    )
    env = {**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec}

    def job(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "observer", "token", "run", "--config", str(config), *args],
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )

    def faults(body: dict[str, object]) -> None:
        request = json.dumps(body).encode()
        urllib.request.urlopen(f"{sim.url}/_sim/faults", request, timeout=10).read()

    def issued() -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in db_rows(url, "select kind, reason from token_refreshes order by seq")
        ]

    try:
        done = job()
        assert done.returncode == 0, done.stderr.decode()
        assert issued() == [("access_token", "scheduled"), ("approval_key", "scheduled")]
        before = cached_validity(tokens, "acct1", "sim")
        assert before is not None
        assert job().returncode == 0 and len(issued()) == 2  # valid: nothing issued again
        # 08:30: every try of the renewal fails; the old token stays, degraded, alerted.
        faults({"token_failures": 4})
        done = job("--renew")
        assert done.returncode == 0, done.stderr.decode()
        assert cached_validity(tokens, "acct1", "sim") == before
        assert issued()[2:] == [("approval_key", "premarket")]
        alerts = db_rows(
            url, f"select severity, message, subject from alerts where code = '{RENEWAL_FAILED}'"
        )
        assert [(a[0], a[2]) for a in alerts] == [("critical", "acct1")]  # the account's
        assert "running on the previous one" in alerts[0][1] and "access_token" in alerts[0][1]
        resolutions = (
            f"select severity, subject from alert_resolutions where code = '{RENEWAL_FAILED}'"
        )
        assert db_rows(url, resolutions) == []  # its key was renewed, its token was not
        # The next renewal fails three times and succeeds on its last try: no alert.
        faults({"token_failures": 3})
        done = job("--renew")
        assert done.returncode == 0, done.stderr.decode()
        assert issued()[3:] == [("access_token", "premarket"), ("approval_key", "premarket")]
        after = cached_validity(tokens, "acct1", "sim")
        assert after is not None and after[0] > before[0]
        assert len(db_rows(url, f"select 1 from alerts where code = '{RENEWAL_FAILED}'")) == 1
        assert [tuple(r) for r in db_rows(url, resolutions)] == [("critical", "acct1")]
        assert job().returncode == 0  # nothing open: no resolution of nothing
        assert len(db_rows(url, resolutions)) == 1
        for secret in ("sim-acct1-secret",):
            assert secret not in (tmp_path / "tokens" / "acct1-sim-access_token.json").read_text()
    finally:
        writer.kill()
        sim.close()


def test_the_token_job_sets_torn_caches_aside_issues_again_and_exits_0(tmp_path: Path) -> None:
    """A power cut left the token and key caches empty and cut short: the job, as a process,
    keeps them aside, stores one alert per file through the writer, issues both again."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    sim = SimThread(MARKET, datetime(2026, 11, 20, 7, 0, tzinfo=KST), SimConfig(), 60.0)
    tokens = tmp_path / "tokens"
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{writer.run_dir}"\n'
        f'[database]\nurl = "{url}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tokens}"\n'
        'token_issuer = "job"\n[[kis.accounts]]\nalias = "acct1"\n'
    )
    command = [sys.executable, "-m", "observer", "token", "run", "--config", str(config)]
    env = {**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec}
    torn = {"access_token": b"", "approval_key": b'{"value":"'}
    try:
        tokens.mkdir(mode=0o700)
        for kind, data in torn.items():
            cache_path(tokens, "acct1", "sim", kind).write_bytes(data)
        done = subprocess.run(command, capture_output=True, cwd=ROOT, env=env, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        for kind, data in torn.items():
            set_aside(cache_path(tokens, "acct1", "sim", kind), data)
        assert cached_validity(tokens, "acct1", "sim") is not None
        assert cached_validity(tokens, "acct1", "sim", "approval_key") is not None
        issued = db_rows(url, "select kind, reason from token_refreshes order by seq")
        assert [tuple(r) for r in issued] == [
            ("access_token", "scheduled"),
            ("approval_key", "scheduled"),
        ]
        alerts = db_rows(url, "select code, severity, subject from alerts order by seq")
        assert [tuple(a) for a in alerts] == [
            (STATE_FILE_UNREADABLE, "warning", str(cache_path(tokens, "acct1", "sim", kind)))
            for kind in ("access_token", "approval_key")
        ]
    finally:
        writer.kill()
        sim.close()


def test_the_token_job_spaces_its_accounts_issuances_a_second_apart(tmp_path: Path) -> None:
    """Against a gateway that refuses a token within a wall second of another key's: three
    accounts' tokens issued, none refused (the job waits its turn: KIS's 1/s issuance)."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    spaced = SimConfig(token_spacing_s=1.0)
    sim = SimThread(MARKET, datetime(2026, 11, 20, 8, 0, tzinfo=KST), spaced, 60.0)
    accounts = "".join(f'[[kis.accounts]]\nalias = "acct{n}"\n' for n in (1, 2, 3))
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{writer.run_dir}"\n'
        f'[database]\nurl = "{url}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path / "t"}"\n'
        f'token_issuer = "job"\n{accounts}'
    )
    env = {**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "observer", "token", "run", "--config", str(config)],
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert sim.sim.gateway.tokens_refused == 0
        for alias in ("acct1", "acct2", "acct3"):
            assert cached_validity(tmp_path / "t", alias, "sim") is not None
    finally:
        writer.kill()
        sim.close()
