"""A channel down for longer than ``lookback_s``: given up by age, then one summary.

The real notifier's sender over a channel that refuses every send: the alert is given up
once it is ``lookback_s`` old (its failed attempts recorded, the channel alerted down), the
reminders meanwhile wait one per condition, and the channel, back, gets one message saying
where the condition stands instead of a backlog of stale ones.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert, AlertDelivery
from observer.alerts.settings import ChannelSettings
from observer.alerts.states import Notice
from observer.config.load import load_settings
from observer.writer.store import Store
from tests.notifier.test_notifier_worker import NOW, Bus, worker
from tests.support import wait_until
from workers.notifier.channels import ChannelTarget
from workers.notifier.messages import Message, summarize
from workers.notifier.queues import TargetQueue
from workers.notifier.worker import CHANNEL_DOWN

LOOKBACK_S = 1.0  # stands for the day of the shipped configuration


class Service:
    """An apprise stand-in: refuses while ``down``, else keeps what it is sent."""

    def __init__(self) -> None:
        self.down = False
        self.got: list[tuple[str, str]] = []

    def notify(self, body: str, title: str, notify_type: str, timeout: float) -> bool:
        if self.down:
            raise ConnectionRefusedError("connection refused")
        self.got.append((title, body))
        return True


def test_an_outage_past_lookback_ends_in_one_summary_not_a_backlog(
    tmp_path: Path, store: Store
) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[kis]\nenvironment = "real"\n[notifier]\n'
        f"lookback_s = {LOOKBACK_S}\ngroup_s = 0.01\nremind_s = 0.2\n"
        "retry_initial_s = 0.05\nretry_max_s = 0.1\n"
    )
    settings = load_settings(config)
    bus = Bus(store)
    service = Service()
    ops = ChannelTarget("ops", "ops", ChannelSettings(), service)
    notifier = worker(settings, bus, ops)
    alert = Notice("track_a:1", "alert", NOW, "critical", "feed_dead", "a1", "no ticks")
    longest = 0

    async def outage() -> None:
        nonlocal longest
        service.down = True
        sender = asyncio.create_task(notifier._serve(ops))
        notifier._take(alert, None)
        until = time.monotonic() + 3.5 * LOOKBACK_S  # a reminder every 0.2 s meanwhile
        while time.monotonic() < until:
            notifier._dispatch(time.monotonic())
            longest = max(longest, notifier.queues["ops"].qsize())
            await asyncio.sleep(0.05)  # the pace of the daemon's loop, not a wait
        service.down = False
        await asyncio.to_thread(wait_until, lambda: service.got, 10.0, "a send after the outage")
        await asyncio.to_thread(wait_until, notifier.queues["ops"].empty, 10.0, "queue empty")
        sender.cancel()

    asyncio.run(outage())
    assert longest <= 1  # one reminder waiting, the latest
    [(title, body)] = service.got
    assert title == "[CRITICAL, STILL OPEN] feed_dead (a1)"
    assert "messages to this channel were not sent while it failed" in body
    assert "no ticks" in body
    deliveries = [e for e in bus.sent if isinstance(e, AlertDelivery)]
    failed = [d for d in deliveries if d.outcome == "failed"]
    assert failed and failed[0].kind == "alert" and failed[0].alerts == ("track_a:1",)
    [sent] = [d for d in deliveries if d.outcome == "sent"]
    assert "track_a:1" in sent.alerts
    assert [e.code for e in bus.sent if isinstance(e, Alert)] == [CHANNEL_DOWN]  # as ever


def _message(n: int, kind: str, code: str, made_at: float) -> Message:
    return Message(kind, code, "critical", "", (f"x:{n}",), f"{kind} {n}", "b", made_at=made_at)  # type: ignore[arg-type]


messages = st.lists(
    st.tuples(st.sampled_from(["alert", "reminder", "resolved"]), st.sampled_from("abc")),
    min_size=1,
    max_size=30,
)


@given(messages, st.lists(st.integers(1, 5), max_size=6))
def test_a_summary_says_where_each_condition_stands_however_it_was_built(
    drawn: list[tuple[str, str]], cuts: list[int]
) -> None:
    """Summed up at once or a few at a time (a summary taking in what came meanwhile): the
    latest message of each condition, every message counted, the recent ones' alerts."""
    made = [_message(n, kind, code, float(n)) for n, (kind, code) in enumerate(drawn)]
    now, keep_s = float(len(made)), 10.0
    at_once = summarize(made, now, keep_s)
    summary, rest = None, list(made)
    for cut in [*cuts, len(made)]:
        taken, rest = rest[:cut], rest[cut:]
        if taken:
            summary = summarize([*([summary] if summary else []), *taken], now, keep_s)
    assert summary is not None
    for built in (at_once, summary):
        assert built.missed == len(made)
        latest = {m.code: m for m in made}
        assert [p.title for p in built.parts if latest[p.code] is p] == [
            m.title for m in sorted(latest.values(), key=made.index)
        ]
        recent = {i for m in made if now - m.made_at <= keep_s for i in m.alerts}
        assert recent | {i for m in latest.values() for i in m.alerts} == set(built.alerts)
        assert all(m.title in built.body for m in latest.values())


def test_a_reminder_replaces_the_one_of_its_condition_waiting() -> None:
    queue = TargetQueue()
    for n, (kind, code) in enumerate(
        [("reminder", "a"), ("alert", "a"), ("reminder", "b"), ("reminder", "a")]
    ):
        queue.put_nowait(_message(n, kind, code, float(n)))
    assert [m.title for m in queue.take_all()] == ["alert 1", "reminder 2", "reminder 3"]
