"""Track B's approval keys before streaming (`sessions.rekey`): none waits for the token job."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec

from observer.calendar.clock import ManualClock
from observer.config.tree import Settings
from observer.kis.session import open_account, rate_limits
from observer.kis.token_cache import Cached, cache_path, key_digest, save_cached
from tests.track_b.test_track_b_resume import FULL, Sent
from workers.track_b.sessions import rekey
from workers.track_b.worker import TrackB

_NS = 1_000_000_000


class Stream:
    """An account's pre-connected session: the digest of the key it presented."""

    def __init__(self, presented: bytes | None) -> None:
        self.presented = presented
        self.restarts = 0

    async def restart(self) -> None:
        self.restarts += 1


def test_a_reader_without_an_approval_key_holds_up_no_other_account(tmp_path: Path) -> None:
    """``token_issuer = "job"``: the job renewed acct1's key at 08:30 and left none for acct2.
    At 09:30 acct1's session restarts on its new key at once, and acct2 is left to its own
    session (which waits for the job, down alone). Before, the accounts were taken one by
    one, each a reader's whole wait (``token_wait_s``, 30 wall seconds at least) for a key
    that was not there, before the first evaluation."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    settings = msgspec.convert(
        {
            "database": {"url": url},
            "paths": {"data_dir": str(tmp_path)},
            "kis": {
                "accounts": [{"alias": "acct2"}, {"alias": "acct1"}],  # the keyless one first
                "token_dir": str(tmp_path / "tokens"),
                "token_issuer": "job",
                "sim_url": "http://127.0.0.1:9",  # nothing listens: nothing may be asked
            },
        },
        Settings,
    )
    now = int(FULL.timestamp()) * _NS
    worker = TrackB(settings, ManualClock(now), Sent(), None, asyncio.Event())  # type: ignore[arg-type]
    renewed = "approval-key-renewed-at-0830-xxxxxxx"
    path = cache_path(tmp_path / "tokens", "acct1", "sim", "approval_key")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    save_cached(path, Cached(renewed, now - 3600 * _NS, now + 22 * 3600 * _NS))
    streams = {"acct1": Stream(key_digest("approval-key-of-0803")), "acct2": Stream(None)}

    async def scenario() -> None:
        limits = rate_limits(settings.kis, "track_a")
        accounts = {a: open_account(settings.kis, a, worker.clock, limits) for a in streams}
        assert not any(account.tokens.issuer for account in accounts.values())
        collector: Any = SimpleNamespace(accounts=accounts, streams=streams)
        rekeying = asyncio.ensure_future(
            rekey(collector, worker.clock, FULL.timestamp() + 5.5 * 3600)
        )
        try:
            # A reader's wait lasts 30 wall seconds at least: done within 10, it waited for
            # nothing.
            deadline = time.monotonic() + 10
            while not rekeying.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # the poll interval of a deadline-bound wait
            assert rekeying.done(), "the approval keys waited for the token job"
            await rekeying
        finally:
            rekeying.cancel()
            for account in accounts.values():
                await account.aclose()

    asyncio.run(scenario())
    assert streams["acct1"].restarts == 1  # on the renewed key
    assert streams["acct2"].restarts == 0  # its session meets the missing key itself
