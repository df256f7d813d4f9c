"""A threshold rule whose heartbeat counter its program does not report is alerted.

Before, a rule with a misspelled counter (``gap_recovery.sucess_pct``) loaded, was judged
against nothing and never fired, and nothing said so: a shipped rule redefined with a typo
switched its alert off. Now the supervisor, once a program has shown its counters, alerts
each such rule once (``rule_metric_unknown``, the rule's code as subject, naming the counters
there are) and resolves it when the counter appears. Real supervisors and real processes:
a daemon whose counters a file sets, and a job whose last beat brings its final figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bus.events import Alert, AlertResolved, Event
from observer.calendar.clock import SystemClock
from observer.config.load import load_settings
from observer.supervisor.core import Supervisor
from observer.supervisor.rule_counters import RULE_METRIC_UNKNOWN
from tests.support import until

# READY, then beats of the counters in the file `argv[2]` (with `n`, the beats so far); a
# daemon for ever, a job until the file `release` exists, then its final counters (the file
# `argv[2]`.final) in a last beat, and exit 0.
FAKE = """
import json, os, sys, time
from observer.process.heartbeat import Heartbeat
mode, path = sys.argv[1], sys.argv[2]
n = 0
def counters():
    global n
    n += 1
    with open(path) as file:
        return {**json.load(file), "n": n}
notifier = Heartbeat.from_env()
notifier.ready(counters())
deadline = time.monotonic() + 60
while mode == "daemon" or not os.path.exists("release"):
    assert time.monotonic() < deadline, "never released"
    notifier.beat(counters)
    time.sleep(0.01)
with open(path + ".final") as file:
    notifier.beat_now(json.load(file))
"""

SUPERVISOR = "heartbeat_interval_s = 0.1\nsample_interval_s = 0.05\ndata_age_s = 0.1\n"


def set_counters(path: Path, counters: dict[str, float]) -> None:
    """Replace the file at once: the program never reads half of it."""
    path.with_suffix(".tmp").write_text(json.dumps(counters))
    path.with_suffix(".tmp").replace(path)


def configure(tmp_path: Path, rules: str, name: str, kind: str, extra: str = "") -> Path:
    (tmp_path / "fake.py").write_text(FAKE)
    mode = "daemon" if kind == "daemon" else "job"
    command = [sys.executable, str(tmp_path / "fake.py"), mode, str(tmp_path / "counters")]
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "data" / "o.db"}"\n'
        f"[supervisor]\nmetrics_port = 0\n{SUPERVISOR}rules = [\n{rules}]\n"
        f"[programs.{name}]\nkind = {kind!r}\ncommand = {json.dumps(command)}\n{extra}\n"
    )
    return config


def notices(events: list[Event]) -> list[tuple[str, str]]:
    """The rule_metric_unknown alerts and resolutions: (kind, the rule's code)."""
    return [
        (type(e).__name__, e.subject)
        for e in events
        if isinstance(e, Alert | AlertResolved) and e.code == RULE_METRIC_UNKNOWN
    ]


def beats(sup: Supervisor, name: str) -> float:
    """The beats the program has sent, as far as the supervisor has read them."""
    return sup.programs[name].counters.get("n", 0.0)


def judged(sup: Supervisor) -> Callable[[], int]:
    """A count of the supervisor's judgements of the rules' counters from now on."""
    calls = [0]
    check = sup.sampler.counters
    judge = check.judge

    def counted() -> list[Event]:
        calls[0] += 1
        return judge()

    check.judge = counted  # type: ignore[method-assign]
    return lambda: calls[0]


def test_a_misspelled_counter_of_a_daemon_is_alerted_once_and_resolved_when_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published: list[Event]
) -> None:
    monkeypatch.chdir(tmp_path)
    set_counters(tmp_path / "counters", {"success_pct": 40.0, "queue_depth": 1.0})
    rules = (
        '{ code = "gap_success_low", metric = "gap_recovery.sucess_pct", below = 95.0 },\n'
        '{ code = "gap_queue_high", metric = "gap_recovery.queue_depth", above = 100.0 },\n'
        '{ code = "gap_slow", metric = "gap_recovery.running_s", above = 3600.0 },\n'
    )
    config = configure(tmp_path, rules, "gap_recovery", "daemon")
    sup = Supervisor(load_settings(config), config, SystemClock())

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(lambda: notices(published), "the rule alerted")
            assert beats(sup, "gap_recovery") >= 3  # the READY's counters and two beats
            count = judged(sup)
            await until(lambda: count() >= 5, "five more judgements")
            assert notices(published) == [("Alert", "gap_success_low")]  # once
            set_counters(tmp_path / "counters", {"success_pct": 40.0, "sucess_pct": 1.0})
            await until(lambda: len(notices(published)) > 1, "the rule resolved")
        finally:
            stop.set()
            await task

    asyncio.run(scenario())
    assert notices(published) == [
        ("Alert", "gap_success_low"),
        ("AlertResolved", "gap_success_low"),
    ]
    alert = next(e for e in published if isinstance(e, Alert) and e.code == RULE_METRIC_UNKNOWN)
    assert alert.severity == "warning"
    assert alert.message == (
        "rule gap_success_low: gap_recovery reports no counter 'sucess_pct', so "
        "gap_recovery.sucess_pct is never judged (it reports n, queue_depth, success_pct)"
    )
    # The misspelled rule judged now: 1 is below 95.
    assert any(isinstance(e, Alert) and e.code == "gap_success_low" for e in published)


def test_a_jobs_counters_are_judged_with_its_final_beat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published: list[Event]
) -> None:
    """A job's figures may come in its last beat: none is missing while it runs."""
    monkeypatch.chdir(tmp_path)
    set_counters(tmp_path / "counters", {"regions": 1.0})
    (tmp_path / "counters.final").write_text(json.dumps({"regions": 6, "kr_success_pct": 97}))
    rules = (
        '{ code = "kr_low", metric = "enrich.kr_success_pct", below = 90.0 },\n'
        '{ code = "kr_typo", metric = "enrich.kr_sucess_pct", below = 90.0 },\n'
    )
    config = configure(tmp_path, rules, "enrich", "job", "run_on_start = true")
    sup = Supervisor(load_settings(config), config, SystemClock())
    job = sup.programs["enrich"]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(lambda: beats(sup, "enrich") >= 5, "the job's beats")
            count = judged(sup)
            await until(lambda: count() >= 5, "five more judgements")
            assert notices(published) == []  # running: its final figures are still to come
            (tmp_path / "release").touch()
            await until(lambda: notices(published), "the misspelled rule alerted")
            assert job.last_exit == 0
        finally:
            stop.set()
            await task

    asyncio.run(scenario())
    assert notices(published) == [("Alert", "kr_typo")]
    message = next(
        e.message for e in published if isinstance(e, Alert) and e.code == RULE_METRIC_UNKNOWN
    )  # not another rule's (a loaded machine's CPU alert came first)
    assert message.endswith("(it reports kr_success_pct, n, regions)"), message


def _predecessors_alerts(url: str) -> None:
    """The rule alerts a supervisor left open when it was restarted, and another host's."""
    from bus.codec import decode_parts, encode_frame
    from bus.envelope import Envelope
    from observer.db import migrate
    from observer.db.engine import make_engine
    from observer.writer.store import Store

    def alert(rule: str) -> Alert:
        return Alert(severity="warning", code=RULE_METRIC_UNKNOWN, subject=rule, message=rule)

    ours = [alert("gap_success_low"), alert("corrected")]
    others = [alert("elsewhere")]
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        store = Store(engine)
        store.load_marks()
        now = time.time_ns() - 60 * 10**9
        frames = [
            [Envelope("supervisor", n, now + n, e) for n, e in enumerate(ours, start=1)],
            [Envelope("supervisor_collectors", n, now + n, e) for n, e in enumerate(others, 1)],
        ]
        store.apply([decode_parts(encode_frame(f)) for f in frames])
    finally:
        engine.dispose()


def test_a_supervisor_started_again_takes_over_its_predecessors_rule_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published: list[Event]
) -> None:
    """Not alerted again while the counter is missing, resolved when it appears; the alert of
    a rule that names no missing counter any more (corrected) is resolved at once."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    set_counters(tmp_path / "counters", {"success_pct": 40.0})
    rules = '{ code = "gap_success_low", metric = "gap_recovery.sucess_pct", below = 95.0 },\n'
    config = configure(tmp_path, rules, "gap_recovery", "daemon")
    settings = load_settings(config)
    _predecessors_alerts(settings.database.url)
    sup = Supervisor(settings, config, SystemClock())

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(lambda: notices(published), "the corrected rule's alert resolved")
            await until(lambda: beats(sup, "gap_recovery") >= 5, "the daemon's beats")
            count = judged(sup)
            await until(lambda: count() >= 5, "five more judgements")
            assert notices(published) == [("AlertResolved", "corrected")]
            set_counters(tmp_path / "counters", {"sucess_pct": 99.0})
            await until(lambda: len(notices(published)) > 1, "the rule resolved")
        finally:
            stop.set()
            await task

    asyncio.run(scenario())
    assert notices(published) == [
        ("AlertResolved", "corrected"),
        ("AlertResolved", "gap_success_low"),
    ]
