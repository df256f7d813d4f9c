"""The pre-market readiness check (08:10) and Track B's pre-connect (08:03)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import urllib.request
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from harness.sim.market import Market
from harness.sim.server import SimConfig
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.calendar.venues import venues_from
from observer.config.load import load_settings
from observer.kis.account_health import by_account
from observer.supervisor.schedule import due_runs
from tests.support import ROOT, SimThread, WriterProcess, db_rows, wait_until
from workers.readiness.check import Check, NotReady, ready
from workers.readiness.cli import FAILED, PASSED
from workers.track_b.registrations import TRADE_FEEDS, RegistrationPolicy
from workers.track_b.sessions import pre_market, preconnect_at

MARKET = Market(29, TradingCalendar(), stocks=40, etfs=2)
T0 = int(datetime(2026, 11, 20, 8, 10, tzinfo=KST).timestamp() * 1e9)


# ---------------------------------------------------------------------- timing (manual clock)


def test_the_shipped_schedule_preconnects_before_0810_and_checks_at_0810_on_sessions() -> None:
    """08:03 without Nextrade's pre-market followed, 07:59 with it; the CSAT day, which has
    no pre-market, 09:03 either way."""
    settings = load_settings(ROOT / "config" / "observer.toml")
    timeline = timeline_from(settings.phases, settings.calendar)
    venues = venues_from(settings.venues, timeline)
    trades = TRADE_FEEDS[settings.track_b.feeds.nextrade]
    policy = RegistrationPolicy(trades, nxt=frozenset({"005930"}))
    job = settings.programs["readiness"]
    since = datetime(2026, 11, 20, 0, 0, tzinfo=KST)  # a Friday session, then the weekend
    runs = due_runs(timeline, job.schedule, since, datetime(2026, 11, 24, 0, 0, tzinfo=KST))
    assert [at.strftime("%d %H:%M") for at, _ in runs] == ["20 08:10", "23 08:10"]
    for day, alone, followed in (
        (date(2026, 11, 20), "08:03", "07:59"),
        (date(2026, 11, 19), "09:03", "09:03"),
    ):
        starts = {phase: at for at, phase in timeline.schedule.starts(day)}
        pre = pre_market(settings.track_b, venues, policy, day)
        for within, expected in ((None, alone), (pre, followed)):
            at = preconnect_at(starts, settings.track_b.preconnect_after_s, within)
            assert datetime.fromtimestamp(at, KST).strftime("%H:%M") == expected
    starts = {phase: at for at, phase in timeline.schedule.starts(since.date())}
    assert preconnect_at(starts, 10 * 3600) == starts[Phase.FULL_OPERATION].timestamp()


def test_a_failing_check_is_tried_three_more_times_with_backoff_on_the_clock() -> None:
    clock = ManualClock(T0)
    calls: list[int] = []

    async def failing() -> Check:
        calls.append(clock.now_ns())
        raise NotReady(Check("acct1", True, False, True, ("REST host unreachable",)))

    async def scenario() -> Check:
        task = asyncio.create_task(
            ready(failing, clock=clock, retries=3, initial_s=10.0, max_s=60.0)
        )
        while not task.done():  # the clock moves only when every attempt waits on it
            await asyncio.sleep(0.001)
            clock.advance(1.0)
        return await task

    check = asyncio.run(scenario())
    assert not check.ok and check.attempts == 4 and len(calls) == 4
    assert check.problems == ("REST host unreachable",)
    pauses = [(b - a) / 1e9 for a, b in itertools.pairwise(calls)]
    assert all(p <= 61.0 for p in pauses) and sum(pauses) > 0  # jittered, capped


# ---------------------------------------------------------------------- the job, as a process


class Day:
    """A writer, the simulator at ``start`` (08:10; 60x) and the token job's cache, for the job."""

    def __init__(self, tmp_path: Path, recheck_s: float = 120.0, start: str = "08:10") -> None:
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.writer = WriterProcess(tmp_path, self.url).start()
        at = datetime.combine(date(2026, 11, 20), time.fromisoformat(start), KST)
        self.sim = SimThread(MARKET, at, SimConfig(), 60.0)
        self.tokens = tmp_path / "tokens"
        self.config = tmp_path / "observer.toml"
        self.config.write_text(
            f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{self.writer.run_dir}"\n'
            f'[database]\nurl = "{self.url}"\n'
            f'[kis]\nenvironment = "sim"\nsim_url = "{self.sim.url}"\n'
            f'token_dir = "{self.tokens}"\ntoken_issuer = "job"\n'
            "process_share = { jobs = 0.9 }\n"  # nothing else calls KIS here
            '[[kis.accounts]]\nalias = "acct1"\n[[kis.accounts]]\nalias = "acct2"\n'
            f"[readiness]\nretry_initial_s = 1.0\nretry_max_s = 2.0\nrecheck_s = {recheck_s}\n"
        )
        self.env = {**os.environ, "OBSERVER_CLOCK": self.sim.sim.clock.spec}
        done = self.run("token")
        assert done.returncode == 0, done.stderr.decode()

    def command(self, command: str) -> list[str]:
        return [sys.executable, "-m", "observer", command, "run", "--config", str(self.config)]

    def run(self, command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.command(command), capture_output=True, cwd=ROOT, env=self.env, timeout=180
        )

    def faults(self, body: dict[str, object]) -> None:
        request = json.dumps(body).encode()
        urllib.request.urlopen(f"{self.sim.url}/_sim/faults", request, timeout=10).read()

    def alerts(self) -> list[tuple[str, str, str]]:
        sql = (
            "select code, severity, subject from alerts "
            f"where code in ('{FAILED}', '{PASSED}') order by seq"
        )
        return [(r[0], r[1], r[2]) for r in db_rows(self.url, sql)]

    def resolutions(self) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in db_rows(self.url, "select code, subject from alert_resolutions order by seq")
        ]

    def close(self) -> None:
        self.writer.kill()
        self.sim.close()


def test_a_healthy_morning_every_account_ready_at_the_first_check(tmp_path: Path) -> None:
    day = Day(tmp_path)
    try:
        done = day.run("readiness")
        assert done.returncode == 0, done.stderr.decode()
        assert sorted(day.alerts()) == [(PASSED, "info", "acct1"), (PASSED, "info", "acct2")]
        context = db_rows(day.url, f"select context from alerts where code = '{PASSED}'")
        assert all(
            json.loads(c[0]) | {"account": ""}
            == {
                "account": "",
                "token": "true",
                "rest": "true",
                "websocket": "true",
                "attempts": "1",
            }
            for c in context
        )
        assert day.resolutions() == []
    finally:
        day.close()


@pytest.mark.timeout(300)  # 21 s alone; its waits allow 240 s on a loaded machine
@pytest.mark.parametrize("start", ["08:10", "09:25"])
def test_rest_down_three_retries_then_one_critical_alert_resolved_when_a_later_check_passes(
    tmp_path: Path, start: str
) -> None:
    """At the morning's check, and at a start after full operation (a restart after a crash,
    `observer demo --start 09:25`): failed accounts are checked again until the day's idle
    phase, and the pass that follows resolves their alerts."""
    day = Day(tmp_path, start=start)
    try:
        # Down until the first round (4 checks of 5 failed calls each) has failed and been
        # alerted; the recheck after it passes.
        day.faults({"rest_down": 86_400})
        check = subprocess.Popen(
            day.command("readiness"), stderr=subprocess.PIPE, cwd=ROOT, env=day.env
        )
        try:
            wait_until(lambda: len(day.alerts()) == 2, 120, "both accounts' failure alerted")
            day.faults({"rest_down": 0})
            printed = check.communicate(timeout=120)[1].decode()
        finally:
            check.kill()
        assert check.returncode == 0, printed
        alerts = day.alerts()
        failed = [a for a in alerts if a[0] == FAILED]
        assert sorted(failed) == [(FAILED, "critical", "acct1"), (FAILED, "critical", "acct2")]
        # ... once per account, then ready at a later check and resolved
        assert sorted(a for a in alerts if a[0] == PASSED) == [
            (PASSED, "info", "acct1"),
            (PASSED, "info", "acct2"),
        ]
        assert sorted(day.resolutions()) == [(FAILED, "acct1"), (FAILED, "acct2")]
        message, context = db_rows(
            day.url, f"select message, context from alerts where code = '{FAILED}' limit 1"
        )[0]
        assert "REST host unreachable" in message and "degraded" in message
        assert json.loads(context)["attempts"] == "4" and json.loads(context)["rest"] == "false"
        for secret in ("sim-acct1-secret", "sim-acct2-secret"):
            assert secret not in message and secret not in printed
    finally:
        day.close()


def test_a_websocket_session_held_elsewhere_fails_the_check_until_it_is_let_go(
    tmp_path: Path,
) -> None:
    """Another session on acct1's app key: OPSP8996 to the check's own session."""
    day = Day(tmp_path, recheck_s=240.0)
    settings = load_settings(day.config)
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold_session() -> None:
        from observer.kis.client import RateLimits
        from observer.kis.session import open_account

        account = open_account(settings.kis, "acct1", day.sim.sim.clock, RateLimits({"acct1": 1.0}))
        key = await account.tokens.approval_key()
        async with connect(account.ws_url) as socket:
            await socket.send(
                json.dumps(
                    {
                        "header": {
                            "approval_key": key.reveal(),
                            "custtype": "P",
                            "tr_type": "2",
                            "content-type": "utf-8",
                        },
                        "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}},
                    }
                )
            )
            assert "OPSP0003" in str(await socket.recv())
            held.set()
            while not release.is_set():
                await asyncio.sleep(0.05)
        await account.aclose()

    async def scenario() -> subprocess.CompletedProcess[bytes]:
        holder = asyncio.create_task(hold_session())
        await asyncio.wait_for(held.wait(), 30)
        job = asyncio.create_task(asyncio.to_thread(day.run, "readiness"))
        # The first round fails and is alerted; then the session is let go before the
        # recheck, 4 wall seconds later at 60x (if it comes first, it fails again,
        # unalerted, and the next one passes).
        failed = (FAILED, "critical", "acct1")
        await asyncio.to_thread(wait_until, lambda: failed in day.alerts(), 120)
        release.set()
        await holder
        return await job

    try:
        done = asyncio.run(scenario())
        assert done.returncode == 0, done.stderr.decode()
        message = db_rows(day.url, f"select message from alerts where code = '{FAILED}'")
        assert len(message) == 1 and "OPSP8996" in message[0][0]
        assert (PASSED, "info", "acct2") in day.alerts()
        assert day.resolutions() == [(FAILED, "acct1")]
    finally:
        day.close()


def test_ctl_status_shows_the_last_check_of_each_account() -> None:
    from observer.kis.account_health import by_account
    from observer.supervisor.accounts import readiness_of
    from observer.supervisor.ctl import _ready
    from workers.readiness.cli import report_counters

    at = T0 + 90 * 10**9
    failed = Check("acct1", True, False, False, ("REST host unreachable",), attempts=4)
    counters = {**report_counters(failed, T0), **report_counters(Check("acct2", 1, 1, 1), T0)}
    figures = by_account(counters)
    first, second = readiness_of(figures["acct1"], at), readiness_of(figures["acct2"], at)
    assert first == {"ok": False, "failed": ["rest", "ws"], "attempts": 4, "age_s": 90.0}
    assert second is not None and second["ok"] and second["failed"] == []
    assert readiness_of({}, at) is None
    assert _ready(first) == "NO (rest, ws) 90s ago" and _ready(second) == "yes 90s ago"
    assert _ready(None) == "-"


# ---------------------------------------------------------- earlier failures (a real database)


def _friday_failure(tmp_path: Path) -> Path:
    """A database holding Friday 08:12's open ``readiness_failed`` of acct2, and its config."""
    from sqlalchemy import insert

    from observer.db import models as m
    from observer.db.engine import make_engine
    from observer.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'observer.db'}"
    upgrade(url)
    friday = int(datetime(2026, 11, 20, 8, 12, tzinfo=KST).timestamp() * 1e9)
    failure = {
        "source": "readiness",
        "seq": 1,
        "produced_ns": friday,
        "severity": "critical",
        "code": FAILED,
        "message": "acct2 is not ready after 4 checks",
        "context": {},
        "subject": "acct2",
    }
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(m.AlertRow), [failure])
    engine.dispose()
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n'
        '[[kis.accounts]]\nalias = "acct1"\n[[kis.accounts]]\nalias = "acct2"\n'
    )
    return config


def test_fridays_failure_is_resolved_by_mondays_passing_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three days after Friday's 08:10, Monday's pass ends the failure left open."""
    import observer.kis.session
    from bus.events import AlertResolved, Event
    from observer.process.heartbeat import Heartbeat
    from workers.readiness import cli

    settings = load_settings(_friday_failure(tmp_path))

    class Account:
        def __init__(self, alias: str) -> None:
            self.alias = alias

        async def aclose(self) -> None:
            pass

    async def passes(settings: object, clock: object, account: Account) -> Check:
        return Check(account.alias, True, True, True)

    monkeypatch.setattr(observer.kis.session, "open_account", lambda s, a, *_, **__: Account(a))
    monkeypatch.setattr(cli, "_check", passes)
    sent: list[Event] = []

    class Producer:
        def send(self, event: Event) -> int:
            sent.append(event)
            return len(sent)

    monday = ManualClock(int(datetime(2026, 11, 23, 8, 10, tzinfo=KST).timestamp() * 1e9))
    asyncio.run(cli._check_all(settings, monday, Producer(), Heartbeat(None)))  # type: ignore[arg-type]
    resolved = [(e.code, e.subject) for e in sent if isinstance(e, AlertResolved)]
    assert resolved == [(FAILED, "acct2")]  # acct1 had nothing open: nothing to resolve


def test_a_database_that_cannot_say_resolves_on_a_pass_and_still_alerts_a_failure() -> None:
    from workers.readiness.cli import _Failed

    unknown = _Failed(None)
    assert unknown.passed("acct1")  # one needless resolution beats reminders
    assert unknown.failed("acct2") and not unknown.failed("acct2")  # alerted once
    known = _Failed({"acct2"})
    assert not known.passed("acct1") and not known.failed("acct2")  # open already: no 2nd
    assert known.passed("acct2") and not known.passed("acct2")


PROGRAMS = """
[programs.token]
kind = "job"
command = ["observer", "token", "run"]
depends_on = ["writer"]
run_on_start = true
schedule = [{ at = "08:30", days = "sessions", args = ["--renew"] }]

[programs.readiness]
kind = "job"
command = ["observer", "readiness", "run"]
depends_on = ["writer"]
schedule = [{ at = "08:10", days = "sessions" }]
"""


@pytest.mark.timed
def test_a_morning_under_the_supervisor_preconnect_check_renewal_and_streaming(
    tmp_path: Path,
) -> None:
    """08:01 to 09:31 at 30x (240x from 08:15, 480x from 08:35 to 09:25): Track B
    pre-connects at 08:03, the 08:10 check reads its sessions (no second session, no
    OPSP8996), the 08:30 renewal restarts them, and they stream. The slow start leaves the
    supervisor and Track B 18 wall seconds to be up before the 08:10 check and 29 before
    KRX's opening auction registers its names at 08:20 (with 120x from 08:05 that was 14: on
    a loaded machine Track B was up after 13, its sessions pre-connected and registered
    already, and the test never saw them pre-connected with nothing registered)."""
    from tests.support import WRITER_PROGRAM, SupervisorProcess
    from tests.track_b.test_account_down import STOCKS, TRACK_B, _publish_universe

    def at(hour: int, minute: int) -> datetime:
        return datetime(2026, 11, 20, hour, minute, tzinfo=KST)

    speeds = ((at(8, 15), 240.0), (at(8, 35), 480.0), (at(9, 25), 120.0))
    sim = SimThread(MARKET, at(8, 1), SimConfig(), 30.0, changes=speeds)
    settings = (
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path / "tokens"}"\n'
        'token_issuer = "job"\n[[kis.accounts]]\nalias = "acct1"\n[[kis.accounts]]\n'
        'alias = "acct2"\n[kis.stream]\nmax_registrations = 3\n'
        "[track_b]\nsilence_tolerance_s = 3600\n"
        "[readiness]\nretry_initial_s = 1.0\nretry_max_s = 2.0\n"
    )
    sup = SupervisorProcess(
        tmp_path, WRITER_PROGRAM + TRACK_B + PROGRAMS, clock=sim.sim.clock.spec, settings=settings
    )
    try:
        sup.start(healthy=False)
        _publish_universe(sup.data_dir / "run", tmp_path / "outbox", STOCKS[:3])

        def accounts() -> dict[str, dict[str, Any]]:
            return {a["account"]: a for a in sup.status()["accounts"]}

        def identified() -> bool:
            figures = by_account(sup.program("track_b")["counters"])
            return all(figures.get(a, {}).get("identified") == 1.0 for a in ("acct1", "acct2"))

        wait_until(
            lambda: (
                all(
                    a["stream"] == "connected" and a["registered"] == 0 for a in accounts().values()
                )
                and identified()
            ),
            60,
            "both sessions pre-connected, nothing registered",
        )
        assert sup.status()["phase"] == "warmup"
        # Passed, perhaps at a retry: a loaded machine's first attempt may find a session
        # not yet identified (the heartbeat shows that attempt meanwhile).
        wait_until(
            lambda: all(a["readiness"] and a["readiness"]["ok"] for a in accounts().values()),
            60,
            "the check passed",
        )
        # The heartbeat shows the check; its alerts follow through the writer.
        query = f"select subject from alerts where code = '{PASSED}'"
        passed = wait_until(lambda: len(sup.rows(query)) >= 2 and sup.rows(query), 30, "stored")
        assert sorted(p[0] for p in passed) == ["acct1", "acct2"]
        assert sup.rows(f"select 1 from alerts where code = '{FAILED}'") == []
        refused = sup.rows("select 1 from stream_states where state = 'refused'")
        assert refused == []  # the check opened no session beside Track B's
        # The 08:30 renewal, then streaming (KRX's opening auction from 08:20, then its
        # first half hour and the day) on the renewed keys.
        renewals = (
            "select 1 from token_refreshes where reason = 'premarket' and kind = 'approval_key'"
        )
        wait_until(lambda: len(sup.rows(renewals)) == 2, 120, "the 08:30 renewal")
        wait_until(lambda: all(a["registered"] for a in accounts().values()), 120, "streaming")
        assert sup.rows("select 1 from stream_states where state = 'refused'") == []
    finally:
        sup.terminate()
        sim.close()
