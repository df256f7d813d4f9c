"""The notifier over a real PostgreSQL database that goes away and comes back.

A sweep the database fails is logged, counted (``sweep_failures``, ``failing_s``) and tried
again on a backoff while alerts from the feed go on being sent; the start waits for the
database (beating) instead of ending. The process ends on neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bus.events import Event
from observer.alerts.settings import ChannelSettings
from observer.alerts.states import Notice
from observer.config.load import load_settings
from observer.db import migrate
from observer.process.heartbeat import FAILING_S
from tests.notifier.test_notifier_give_up import Service
from tests.notifier.test_notifier_worker import NOW, worker
from tests.support import database_down, wait_until
from workers.notifier.channels import ChannelTarget

pytestmark = pytest.mark.slow


class Outbox:
    """The producer: keeps what the notifier sends (the writer is away with the database)."""

    def __init__(self) -> None:
        self.sent: list[Event] = []

    def send(self, event: Event) -> int:
        self.sent.append(event)
        return len(self.sent)


def test_a_database_outage_is_counted_and_outlived(pg_url: str, tmp_path: Path) -> None:
    migrate.upgrade(pg_url)
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[database]\nurl = "{pg_url}"\nreader_pool_timeout_s = 1\n'
        '[kis]\nenvironment = "real"\n'
        "[notifier]\nsweep_s = 0.5\nretry_initial_s = 0.1\ngroup_s = 0.01\n"
        "[notifier.channels.ops]\n"
    )
    settings = load_settings(config)
    service = Service()
    ops = ChannelTarget("ops", "ops", ChannelSettings(), service)
    notifier = worker(settings, Outbox(), ops)  # type: ignore[arg-type]

    def alive(condition: Callable[[], object], what: str) -> None:
        """Wait for ``condition``; fail at once if the notifier ended meanwhile."""
        [task] = running
        wait_until(lambda: task.done() or condition(), 30.0, what)
        assert not task.done(), task.exception()

    async def scenario() -> None:
        with database_down(pg_url):  # down at the start: it waits, beating
            running.append(asyncio.create_task(notifier.run()))
            await asyncio.to_thread(
                alive,
                lambda: notifier.counters().get("sweep_failures", 0) >= 2,
                "failed start sweeps",
            )
            assert notifier.counters()[FAILING_S] > 0
        await asyncio.to_thread(alive, lambda: notifier._swept_once, "the start-up sweep")
        assert notifier.counters()[FAILING_S] == 0
        failures = notifier.counters().get("sweep_failures", 0)

        with database_down(pg_url):  # down while running: the feed's alerts still go out
            await asyncio.to_thread(
                alive,
                lambda: notifier.counters().get("sweep_failures", 0) > failures + 1,
                "failed sweeps",
            )
            feed = Notice("track_a:7", "alert", NOW, "error", "feed_dead", "a1", "no ticks")
            notifier._take(feed, None)
            await asyncio.to_thread(alive, lambda: service.got, "the feed's alert sent")
            assert notifier.counters()[FAILING_S] > 0
        await asyncio.to_thread(
            alive, lambda: notifier.counters()[FAILING_S] == 0, "a sweep that works"
        )
        notifier.stop.set()
        await running[0]

    running: list[asyncio.Task[None]] = []
    started = time.monotonic()
    asyncio.run(scenario())
    assert [title for title, _ in service.got] == ["[ERROR] feed_dead (a1)"]
    assert time.monotonic() - started < 60
