"""The notifier as a real process with a real writer: a local webhook receiver (aiohttp) and a
local SMTP server (aiosmtpd) are its apprise targets.

Each alert is delivered once per channel that takes it, identical ones are grouped, a
receiver that is down gets its messages once it is back (every failed attempt recorded),
resolutions are sent, a notifier killed before delivering delivers after its restart, and
the URLs' secrets are nowhere in the database, the logs or the outboxes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from bus.events import Alert, AlertResolved
from bus.producer import Producer
from tests.support import (
    ROOT,
    WEBHOOK_TOKEN,
    Receiver,
    WriterProcess,
    db_rows,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.slow

PASSWORD = "hookpass-Zp4Wn6Kd1Yc3"  # the webhook's basic-auth password


class Mailbox:
    """aiosmtpd's handler: every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in list(self.messages)]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


NOTIFIER = """
[notifier]
group_s = 1.0
repeat_s = 60.0
remind_s = 4.0
retry_initial_s = 0.2
retry_max_s = 0.5
down_after = 2
sweep_s = 1.0
[notifier.channels.hook]
min_severity = "info"
[notifier.channels.mail]
min_severity = "critical"
"""


class Rig:
    """A writer, a notifier process over the two channels, and a producer of alerts."""

    def __init__(self, tmp: Path, receiver: Receiver, smtp_port: int) -> None:
        self.tmp = tmp
        self.writer = WriterProcess(
            tmp, f"sqlite:///{tmp / 'observer.db'}", capture=tmp / "run.cap", extra=NOTIFIER
        )
        self.writer.start()
        self.log = tmp / "notifier.log"
        hook = f"json://observer:{PASSWORD}@127.0.0.1:{receiver.port}/hook/{WEBHOOK_TOKEN}"
        mail = (
            f"mailto://127.0.0.1:{smtp_port}?mode=insecure"
            "&from=observer@example.com&to=ops@example.com"
        )
        self.env = os.environ | {
            "OBSERVER_NOTIFY_HOOK_URLS": hook,
            "OBSERVER_NOTIFY_MAIL_URLS": mail,
            "PYTHONPATH": str(ROOT),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.producer = Producer("tester", self.writer.ingest, tmp / "outbox-tester")

    def start_notifier(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "observer",
                    "notifier",
                    "run",
                    "--config",
                    str(self.writer.config),
                ],
                stdout=log,
                stderr=log,
                cwd=self.tmp,
                env=self.env,
            )
        self.starts += 1
        wait_until(
            lambda: (
                self.log.read_text().count("notifier ready") >= self.starts
                or self.proc.poll() is not None
            ),  # type: ignore[union-attr]
            60,
            "notifier ready",
        )
        assert self.proc.poll() is None, self.log.read_text()

    def kill_notifier(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def send(self, *events: Alert | AlertResolved) -> list[str]:
        """Publish the events at once (one commit, one feed message); their alert ids."""
        seqs = [self.producer.send(event) for event in events]
        assert self.producer.wait_acked(30)
        return [f"tester:{seq}" for seq in seqs]

    def rows(self, sql: str) -> list[Any]:
        return db_rows(self.writer.url, sql)

    def sent_to(self, channel: str) -> list[list[str]]:
        """The alert ids of each sent alert message on ``channel``, in order (reminders of
        an open one, due a few seconds later here, are not counted)."""
        return [
            json.loads(r[0]) if isinstance(r[0], str) else r[0]
            for r in self.rows(
                "select alerts from alert_deliveries where outcome = 'sent' and kind = 'alert' "
                f"and channel = '{channel}' order by produced_ns"
            )
        ]

    def observer(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "observer", *args, "--config", str(self.writer.config)],
            capture_output=True,
            text=True,
            cwd=self.tmp,
            env=self.env,
            timeout=120,
        )

    def close(self) -> None:
        self.producer.close(drain_timeout=0)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.writer.kill()


@pytest.fixture
def rig(tmp_path: Path, receiver: Receiver, smtp: tuple[Mailbox, int]) -> Iterator[Rig]:
    r = Rig(tmp_path, receiver, smtp[1])
    yield r
    r.close()


def warning(n: int) -> Alert:
    return Alert(severity="warning", code="disk_slow", message=f"disk answered in {n} ms")


def test_grouped_delivered_once_retried_resolved_and_secret_free(
    rig: Rig, receiver: Receiver, smtp: tuple[Mailbox, int]
) -> None:
    mailbox = smtp[0]
    rig.start_notifier()
    *warnings, critical = rig.send(
        *(warning(n) for n in range(50)),
        Alert(severity="critical", code="feed_dead", subject="acct1", message="no ticks for 60 s"),
    )
    # 50 identical warnings: one message with their count; the critical one: its own.
    wait_until(lambda: any("x50" in t for t in receiver.titles()), 60, "the grouped message")
    wait_until(lambda: mailbox.subjects(), 60, "the critical one by mail")
    wait_until(
        lambda: any("feed_dead" in t for t in receiver.titles()), 60, "the critical one by hook"
    )
    assert [t for t in receiver.titles() if "disk_slow" in t] == ["[WARNING] disk_slow x50"]
    assert receiver.paths[0] == f"/hook/{WEBHOOK_TOKEN}"
    # mail takes critical only (its reminder may follow, `remind_s` later)
    assert [s for s in mailbox.subjects() if "STILL OPEN" not in s] == [
        "[CRITICAL] feed_dead (acct1)"
    ]
    # Every alert is covered by exactly one sent message per channel that takes it. The
    # delivery records reach the database after the messages reach their servers.
    wait_until(
        lambda: rig.sent_to("mail") and sum(map(len, rig.sent_to("hook"))) >= len(warnings) + 1,
        60,
        "the deliveries recorded",
    )
    hook_ids = [i for ids in rig.sent_to("hook") for i in ids]
    assert sorted(hook_ids) == sorted([*warnings, critical])
    assert rig.sent_to("mail") == [[critical]]

    # The critical one stays open: a reminder comes, until it is acknowledged.
    wait_until(lambda: any("STILL OPEN" in t for t in receiver.titles()), 30, "a reminder")
    listed = rig.observer("alerts", "--open", "--json")
    assert listed.returncode == 0, listed.stderr
    open_ids = [json.loads(line)["id"] for line in listed.stdout.splitlines()]
    assert critical in open_ids and warnings[0] in open_ids
    acked = rig.observer("alerts", "ack", critical, critical, "--note", "looking at it")
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.count(critical) == 1  # named twice, acknowledged once
    wait_until(lambda: rig.rows("select by, note from alert_acks"), 60, "the ack stored")
    assert [r[1] for r in rig.rows("select by, note from alert_acks")] == ["looking at it"]
    listed = rig.observer("alerts", "--json")
    states = {json.loads(line)["id"]: json.loads(line) for line in listed.stdout.splitlines()}
    assert states[critical]["state"] == "acked"
    assert states[critical]["delivered"] == ["hook", "mail"]
    table = rig.observer("alerts").stdout
    assert f"(acked by {states[critical]['acked_by']})" in table and states[critical]["acked_by"]
    # Acknowledging it again ends nothing: said, and nothing more is published.
    again = rig.observer("alerts", "ack", critical)
    assert again.returncode == 0 and again.stdout.strip() == f"{critical} is acked already"
    assert len(rig.rows("select by from alert_acks")) == 1

    # The receiver goes down: each failed attempt is recorded, the channel is alerted down
    # (through the channels that work), and once it is back everything arrives.
    receiver.down()
    [late] = rig.send(Alert(severity="error", code="writer_slow", message="commit took 9 s"))
    wait_until(
        lambda: (
            rig.rows(
                "select count(*) from alert_deliveries "
                "where outcome = 'failed' and channel = 'hook'"
            )[0][0]
            >= 2
        ),
        60,
        "failed attempts",
    )
    wait_until(
        lambda: rig.rows("select subject from alerts where code = 'notify_channel_down'"),
        60,
        "the channel alerted down",
    )
    attempts = rig.rows(
        "select attempt, error from alert_deliveries where outcome = 'failed' order by attempt"
    )
    assert [a for a, _ in attempts[:2]] == [1, 2] and "127.0.0.1" in attempts[0][1]
    receiver.up()
    wait_until(lambda: any("writer_slow" in t for t in receiver.titles()), 60, "the late alert")
    wait_until(
        lambda: any("[RESOLVED] notify_channel_down (hook)" in t for t in receiver.titles()),
        60,
        "the channel's recovery",
    )
    assert [t for t in receiver.titles() if "writer_slow" in t] == ["[ERROR] writer_slow"]
    assert rig.sent_to("hook").count([late]) == 1

    # A resolution goes to the channels that take its condition's severity.
    rig.send(
        AlertResolved(
            code="feed_dead", subject="acct1", severity="critical", message="ticks flow again"
        )
    )
    wait_until(lambda: "[RESOLVED] feed_dead (acct1)" in mailbox.subjects(), 60, "resolved by mail")
    wait_until(lambda: "[RESOLVED] feed_dead (acct1)" in receiver.titles(), 60, "resolved by hook")
    body = next(m for m in receiver.received if m["title"] == "[RESOLVED] feed_dead (acct1)")
    assert body["type"] == "success" and "ticks flow again" in body["message"]

    # The URLs' secrets are nowhere: database (and WAL), capture, logs, outboxes, the CLI.
    rig.kill_notifier()
    files = [p for p in rig.tmp.rglob("*") if p.is_file()]
    assert {"observer.db", "run.cap", "notifier.log", "writer.log"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        for secret in (WEBHOOK_TOKEN, PASSWORD):
            assert secret.encode() not in data, f"{secret} in {path}"
    assert WEBHOOK_TOKEN not in listed.stdout + listed.stderr


def test_alerts_committed_while_the_notifier_was_down_are_delivered_once(
    rig: Rig, receiver: Receiver
) -> None:
    receiver.down()
    rig.start_notifier()
    [first] = rig.send(Alert(severity="warning", code="first", message="before the kill"))
    wait_until(
        lambda: rig.rows("select 1 from alert_deliveries where outcome = 'failed'"),
        60,
        "a failed attempt",
    )
    rig.kill_notifier()  # between the alert's commit and its delivery
    [second] = rig.send(Alert(severity="warning", code="second", message="while it was down"))
    receiver.up()
    rig.start_notifier()
    wait_until(
        lambda: {"[WARNING] first", "[WARNING] second"} <= set(receiver.titles()), 60, "both"
    )

    # The receiver has them; the deliveries' records follow through the writer. The
    # notifier's own alert of its failing channel (a slow machine's retries reach it) is no
    # matter of this test's.
    def tested() -> list[list[str]]:
        return [ids for ids in rig.sent_to("hook") if not ids[0].startswith("notifier:")]

    wait_until(lambda: len(tested()) >= 2, 60, "both recorded")
    assert tested() == [[first], [second]] or tested() == [[second], [first]]
    titles = receiver.titles()
    assert titles.count("[WARNING] first") == titles.count("[WARNING] second") == 1


def test_a_channel_url_apprise_refuses_stops_the_start_without_showing_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "observer.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n{NOTIFIER}')
    secret = "nonsense-Hq2Lp8Xw5Tz1"
    env = os.environ | {"OBSERVER_NOTIFY_HOOK_URLS": f"nosuchscheme://{secret}"}
    done = subprocess.run(
        [sys.executable, "-m", "observer", "notifier", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert "URL 1 of alert channel 'hook' is not an apprise URL" in done.stderr
    assert secret not in done.stdout + done.stderr


def test_under_the_supervisor_fatal_and_rules_are_alerted_and_resolved(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor's own alerts reach a person, and so does their end."""
    from tests.support import WRITER_PROGRAM, SupervisorProcess

    flag = tmp_path / "healthy"
    flaky = (
        "import pathlib, runpy, sys\n"
        f"pathlib.Path({str(flag)!r}).exists() or sys.exit(3)\n"
        "sys.argv = ['loadgen', '--source', 'flaky', '--events', '0', '--rate', '10']\n"
        "runpy.run_module('harness.loadgen', run_name='__main__')\n"
    )
    programs = f"""
[programs.notifier]
kind = "daemon"
command = ["observer", "notifier", "run"]
depends_on = ["writer"]
[programs.flaky]
kind = "daemon"
command = ["python", "-c", {json.dumps(flaky)}]
depends_on = ["writer"]
max_failures = 2
backoff_initial_s = 0.05
"""
    # Inside [supervisor], which SupervisorProcess writes just before these lines.
    settings = """
rules = [{ code = "flaky_long", metric = "flaky.running_s", above = 2.0 }]
[notifier]
group_s = 0.5
[notifier.channels.hook]
min_severity = "warning"
"""
    hook = f"json://127.0.0.1:{receiver.port}/hook/{WEBHOOK_TOKEN}"
    monkeypatch.setenv("OBSERVER_NOTIFY_HOOK_URLS", hook)
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + programs, settings=settings)
    sup.start(healthy=False)
    wait_until(lambda: sup.program("flaky")["state"] == "fatal", 60, "flaky parked")
    wait_until(
        lambda: "[CRITICAL] program_fatal (flaky)" in receiver.titles(), 60, "the FATAL alert"
    )
    flag.touch()
    assert sup.ctl("start", "flaky").ok
    wait_until(lambda: "[RESOLVED] program_fatal (flaky)" in receiver.titles(), 60, "its end")
    wait_until(lambda: "[WARNING] flaky_long" in receiver.titles(), 60, "the rule's alert")
    assert sup.ctl("stop", "flaky").ok  # running_s is 0 again: the rule is back within limit
    wait_until(lambda: "[RESOLVED] flaky_long" in receiver.titles(), 60, "the rule's end")
    # The resolutions of this test's conditions (a busy machine may add cpu_high's).
    resolved = sup.rows(
        "select code, subject from alert_resolutions where code in ('program_fatal', "
        "'flaky_long') order by produced_ns"
    )
    assert resolved == [("program_fatal", "flaky"), ("flaky_long", "")]
    message = sup.rows("select message from alerts where code = 'flaky_long'")[0][0]
    assert message.startswith("flaky.running_s is above 2: ")
    assert sup.terminate() == 0
