"""Tokens and approval keys against httpx.MockTransport, on a manual clock."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import httpx
import pytest
from httpx import MockTransport

from bus.events import Alert, TokenRefreshed
from bus.lock import InstanceLock
from observer.calendar.clock import ManualClock
from observer.errors import KisAuthError, KisProtocolError, KisServerError, KisTokenThrottled
from observer.kis.auth import TokenManager
from observer.kis.credentials import Credentials, Secret
from observer.process.state_files import STATE_FILE_UNREADABLE
from tests.support import set_aside

KEY, SECRET = "PSfakeAppKey0000000000000000000000ab", "fakeAppSecret" + "x" * 167
T0 = 1_795_132_800 * 10**9  # 2026-11-20 00:00 UTC


class FakeKis:
    """Answers token and approval requests as §2.1/§2.3 describe; counts them."""

    def __init__(self) -> None:
        self.tokens = 0
        self.approvals = 0
        self.refuse: str = ""

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["appkey"] == KEY
        if self.refuse:
            text = "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"
            return httpx.Response(403, json={"error_code": self.refuse, "error_description": text})
        if request.url.path == "/oauth2/tokenP":
            assert body["appsecret"] == SECRET and body["grant_type"] == "client_credentials"
            self.tokens += 1
            answer = {
                "access_token": f"tok-{self.tokens}",
                "token_type": "Bearer",
                "expires_in": 86400,
                "access_token_token_expired": "2026-11-21 09:00:00",
            }
            return httpx.Response(200, json=answer)
        assert request.url.path == "/oauth2/Approval" and body["secretkey"] == SECRET
        self.approvals += 1
        return httpx.Response(200, json={"approval_key": f"apr-{self.approvals}"})


def manager(tmp_path: Path, kis: FakeKis, clock: ManualClock, events: list | None = None):
    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(kis.handle))
    creds = Credentials("acct1", Secret(KEY), Secret(SECRET))
    return TokenManager(
        http,
        creds,
        clock,
        tmp_path / "tokens",
        "real",
        on_issued=None if events is None else events.append,
    )


def test_a_token_is_issued_once_cached_owner_only_and_reused_after_restart(tmp_path: Path) -> None:
    kis, clock, events = FakeKis(), ManualClock(T0), []

    async def scenario() -> None:
        first = manager(tmp_path, kis, clock, events)
        assert (await first.token()).reveal() == "tok-1"
        assert (await first.token()).reveal() == "tok-1"
        again = manager(tmp_path, kis, clock)  # a restarted process
        assert (await again.token()).reveal() == "tok-1"

    asyncio.run(scenario())
    assert kis.tokens == 1
    (cache,) = [p for p in (tmp_path / "tokens").iterdir() if "access_token" in p.name]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert KEY not in cache.read_text() and SECRET not in cache.read_text()
    assert events == [
        TokenRefreshed(
            account="acct1",
            kind="access_token",
            reason="scheduled",
            issued_ns=T0,
            expires_ns=T0 + 86400 * 10**9,
        )
    ]


def test_the_stated_kst_expiry_wins_when_earlier(tmp_path: Path) -> None:
    kis, clock = FakeKis(), ManualClock(T0 + 10 * 3600 * 10**9)  # 19:00 KST

    async def scenario() -> int:
        tokens = manager(tmp_path, kis, clock)
        await tokens.token()
        return tokens._cached["access_token"].expires_ns  # type: ignore[union-attr]

    # 2026-11-21 09:00 KST = 2026-11-21 00:00 UTC = T0 + 24 h, before issue + 86400 s
    assert asyncio.run(scenario()) == T0 + 24 * 3600 * 10**9


def test_proactive_refresh_after_23_hours(tmp_path: Path) -> None:
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> list[str]:
        tokens = manager(tmp_path, kis, clock)
        seen = [(await tokens.token()).reveal()]
        clock.advance(22 * 3600)
        seen.append((await tokens.token()).reveal())
        clock.advance(3600)
        seen.append((await tokens.token()).reveal())
        return seen

    assert asyncio.run(scenario()) == ["tok-1", "tok-1", "tok-2"]


def test_an_emergency_refresh_waits_out_the_minute_and_happens_once(tmp_path: Path) -> None:
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> list[str]:
        tokens = manager(tmp_path, kis, clock)
        stale = await tokens.token()
        clock.advance(20)
        callers = [asyncio.create_task(tokens.refresh("emergency", stale=stale)) for _ in range(3)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(c.done() for c in callers) and kis.tokens == 1  # 40 s left to wait
        clock.advance(40)
        return [t.reveal() for t in await asyncio.gather(*callers)]

    assert asyncio.run(scenario()) == ["tok-2"] * 3
    assert kis.tokens == 2


def test_approval_keys_are_issued_and_reused(tmp_path: Path) -> None:
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> list[str]:
        tokens = manager(tmp_path, kis, clock)
        return [(await tokens.approval_key()).reveal() for _ in range(2)]

    assert asyncio.run(scenario()) == ["apr-1", "apr-1"]


def test_a_key_that_would_age_out_during_the_session_is_renewed_before_it(
    tmp_path: Path,
) -> None:
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> list[str]:
        tokens = manager(tmp_path, kis, clock)
        seen = [(await tokens.approval_key()).reveal()]
        clock.advance(17 * 3600)  # 6 h of its 23 h left: enough for a 5.5 h session
        seen.append((await tokens.approval_key(lasting_s=5.5 * 3600)).reveal())
        clock.advance(2 * 3600)  # 4 h left: not enough
        seen.append((await tokens.approval_key(lasting_s=5.5 * 3600)).reveal())
        seen.append((await tokens.approval_key()).reveal())
        return seen

    assert asyncio.run(scenario()) == ["apr-1", "apr-1", "apr-2", "apr-2"]


def test_refusals_are_typed_and_never_show_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kis, clock = FakeKis(), ManualClock(T0)
    tokens = manager(tmp_path, kis, clock)
    kis.refuse = "EGW00133"

    async def throttled_twice() -> None:
        caller = asyncio.create_task(tokens.token())
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(60)  # the one retry, a minute later, is refused again
        await caller

    with pytest.raises(KisTokenThrottled) as throttled:
        asyncio.run(throttled_twice())
    kis.refuse = "EGW00103"
    with pytest.raises(KisAuthError) as refused:
        asyncio.run(tokens.token())
    for text in (str(throttled.value), repr(refused.value), caplog.text, repr(tokens)):
        assert KEY not in text and SECRET not in text
    assert throttled.value.msg_cd == "EGW00133" and refused.value.status == 403


def test_a_throttled_issuance_waits_out_the_minute_then_succeeds(tmp_path: Path) -> None:
    """EGW00133 (another process of this key asked within the minute) costs one minute."""
    kis, clock = FakeKis(), ManualClock(T0)

    async def scenario() -> str:
        tokens = manager(tmp_path, kis, clock)
        kis.refuse = "EGW00133"
        callers = [asyncio.create_task(tokens.token()) for _ in range(3)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(c.done() for c in callers)  # waiting, not failing
        kis.refuse = ""
        clock.advance(59)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(c.done() for c in callers) and kis.tokens == 0
        clock.advance(1)
        values = {(await c).reveal() for c in callers}
        return values.pop() if len(values) == 1 else str(values)

    assert asyncio.run(scenario()) == "tok-1"
    assert kis.tokens == 1


def test_a_renewal_answered_with_the_same_token_is_kept_as_the_earlier_issuance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """KIS answers with the token it issued within 6 h: no new issuance is counted, reported
    or stamped, so its age (and the renewal it is due for) stays the truth."""

    class SameWithinSixHours(FakeKis):
        def handle(self, request: httpx.Request) -> httpx.Response:
            answer = super().handle(request)
            if request.url.path != "/oauth2/tokenP":
                return answer
            return httpx.Response(200, json={**json.loads(answer.content), "access_token": "tok-1"})

    kis, clock, events = SameWithinSixHours(), ManualClock(T0), []

    async def scenario() -> TokenManager:
        tokens = manager(tmp_path, kis, clock, events)
        await tokens.token()
        clock.advance(4 * 3600)
        with caplog.at_level(logging.WARNING, logger="observer.kis.auth"):
            assert (await tokens.refresh("premarket")).reveal() == "tok-1"
        clock.advance(60)
        return tokens

    tokens = asyncio.run(scenario())
    assert kis.tokens == 2  # asked twice, issued once
    assert tokens.issued == 1 and [e.issued_ns for e in events] == [T0]
    assert tokens._cached["access_token"].issued_ns == T0  # type: ignore[union-attr]
    assert "it issued at 11-20 09:00 KST" in caplog.text


def test_the_token_jobs_daily_run_makes_the_key_and_token_last_the_day(tmp_path: Path) -> None:
    """Renewed Tuesday 08:30, then Wednesday's 03:20 run: what would age out before the
    day's end (the approval key at 07:30, the token at 07:30 by its refresh age) is issued
    then, so the 08:03 pre-connect and the 06:10 universe find them."""
    from workers.token.cli import _until_midnight_s

    tuesday_0830 = T0 - 9 * 3600 * 10**9 - 3 * 86400 * 10**9 + int(8.5 * 3600) * 10**9
    kis, clock = FakeKis(), ManualClock(tuesday_0830)

    async def scenario() -> tuple[str, str]:
        tokens = manager(tmp_path, kis, clock)
        await tokens.refresh("premarket")
        await tokens.refresh_approval("premarket")
        clock.advance((24 * 60 - 8 * 60 - 30 + 3 * 60 + 20) * 60)  # Wednesday 03:20 KST
        lasting = _until_midnight_s(clock)
        assert lasting == (24 * 60 - 3 * 60 - 20) * 60
        token = await tokens.token(lasting_s=lasting)
        key = await tokens.approval_key(lasting_s=lasting)
        return token.reveal(), key.reveal()

    assert asyncio.run(scenario()) == ("tok-2", "apr-2")


@pytest.mark.parametrize(
    ("status", "raised"), [(502, KisServerError), (503, KisServerError), (404, KisProtocolError)]
)
def test_a_gateway_error_page_with_a_5xx_is_a_retryable_server_error(
    tmp_path: Path, status: int, raised: type[Exception]
) -> None:
    """A proxy's HTML page instead of KIS's JSON: with HTTP 5xx the gateway failed, and the
    token job retries it (a `KisServerError`, as the REST client's `classify` says for the
    same answer); before, the body was decoded first and it was a `KisProtocolError`, never
    retried. Below 500 the page is still no answer of KIS's: a protocol error."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=page, headers={"content-type": "text/html"})

    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(handle))
    creds = Credentials("acct1", Secret(KEY), Secret(SECRET))
    tokens = TokenManager(http, creds, ManualClock(T0), tmp_path / "tokens", "real")
    for issue in (tokens.token, tokens.approval_key):
        with pytest.raises(raised) as failed:
            asyncio.run(issue())
        assert failed.value.retryable is (status >= 500)
        assert getattr(failed.value, "status", status) == status
        assert KEY not in repr(failed.value) and SECRET not in repr(failed.value)


def test_a_torn_cache_file_is_set_aside_alerted_and_a_new_token_issued(tmp_path: Path) -> None:
    """After a power cut the cache held zeros: it was read as none and overwritten, without a
    word. It is now kept aside, alerted once, and the token issued again."""
    kis, clock = FakeKis(), ManualClock(T0)
    sent: list[Alert] = []

    async def issue() -> str:
        tokens = manager(tmp_path, kis, clock)
        return (await tokens.token()).reveal()

    assert asyncio.run(issue()) == "tok-1"
    (cache,) = (tmp_path / "tokens").glob("*access_token.json")
    cache.write_bytes(b"\x00" * 90)
    clock.advance(120)

    async def again() -> str:
        http = httpx.AsyncClient(base_url="https://kis.test", transport=MockTransport(kis.handle))
        creds = Credentials("acct1", Secret(KEY), Secret(SECRET))
        tokens = TokenManager(
            http, creds, clock, tmp_path / "tokens", "real", on_unreadable=sent.append
        )
        return (await tokens.token()).reveal()

    assert asyncio.run(again()) == "tok-2" and kis.tokens == 2
    set_aside(cache, b"\x00" * 90)
    (alert,) = sent
    assert (alert.code, alert.severity, alert.subject) == (
        STATE_FILE_UNREADABLE,
        "warning",
        str(cache),
    )
    assert "(90 bytes of nothing)" in alert.message and "a new entry is issued" in alert.message
    assert json.loads(cache.read_text())["value"] == "tok-2"  # the cache reads again
    assert asyncio.run(again()) == "tok-2" and len(sent) == 1  # nothing more to say


def test_a_torn_cache_file_another_process_is_replacing_is_left_to_it(tmp_path: Path) -> None:
    """Under the account's issuance lock (held by another process's issuance), the file is
    not moved: that issuance replaces it, and a good entry is never the one set aside."""
    kis, clock = FakeKis(), ManualClock(T0)
    folder = tmp_path / "tokens"
    manager(tmp_path, kis, clock)  # makes the folders
    (folder / "acct1-real-access_token.json").write_bytes(b'{"value": "tok-')
    sent: list[Alert] = []
    issuing = InstanceLock(folder / "locks" / "acct1-real-access_token.lock")
    try:
        http = httpx.AsyncClient(base_url="https://kis.test", transport=MockTransport(kis.handle))
        creds = Credentials("acct1", Secret(KEY), Secret(SECRET))
        TokenManager(http, creds, clock, folder, "real", on_unreadable=sent.append)
    finally:
        issuing.close()
    assert sent == [] and not list(folder.glob("*.bad-*"))
    assert (folder / "acct1-real-access_token.json").read_bytes() == b'{"value": "tok-'
