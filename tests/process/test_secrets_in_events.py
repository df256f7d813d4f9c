"""Secrets in events: an upstream that echoes the request never puts a credential on disk.

Error text built from KIS's answers goes into events (alerts, cycle failures, gap details,
master-file errors). Every event passes through `Producer.send` before the outbox; the
producer of every process masks it there with the masker of the log lines. The end-to-end
test runs Track A under the supervisor against an upstream that echoes the request headers
in its error text, and searches every file the system wrote, and what ``observer ctl``
printed, for the app key and any piece of the secret.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import subprocess
import sys
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bus.events import EVENT_TYPES, Alert, UniverseMember, UniverseSnapshot
from bus.producer import Producer
from observer.alerts.settings import NotifierSettings
from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.config.tree import Settings
from observer.errors import ConfigError
from observer.kis.credentials import Secret, load_credentials, read_key_pairs
from observer.kis.settings import KisSettings
from observer.krx.credentials import ENV_ID, ENV_PASSWORD, krx_credentials
from observer.krx.settings import KrxSettings
from observer.process import logs
from observer.process.logs import mask_secrets, mask_struct, register_secret
from observer.process.paths import PathSettings
from observer.runtime import producer_for
from tests.samples import SAMPLES
from tests.support import ROOT, WRITER_PROGRAM, AppThread, SupervisorProcess, wait_until
from workers.notifier.channels import channel_urls, env_name


def random_text(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


APP_KEY = "PS" + random_text(34)  # KIS's shapes: a 36-character key, a 180-character secret
APP_SECRET = random_text(180)


def leaks(data: bytes) -> list[str]:
    """What of the key or the secret ``data`` holds: the key, or any 12 characters of the secret."""
    found = [APP_KEY] if APP_KEY.encode() in data else []
    pieces = {APP_SECRET[i : i + 12] for i in range(len(APP_SECRET) - 11)}
    return found + sorted(p for p in pieces if p.encode() in data)


KIS_HEADERS = ("appkey", "appsecret", "authorization", "tr_id", "custtype")


def echo_of(headers: dict[str, str]) -> str:
    """What a careless upstream answers: the values of the request's KIS headers, no names."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return "request refused: " + " ".join(lowered[h] for h in KIS_HEADERS if h in lowered)


# --------------------------------------------------------------------------- the masker


def test_a_registered_secret_cut_short_is_masked_too() -> None:
    secret = Secret(APP_SECRET)
    text = f"KisApiError: EGW99999 request refused: {secret.reveal()}"[:120]
    assert APP_SECRET[:40] in text
    masked = mask_secrets(text)
    assert leaks(masked.encode()) == [] and masked.endswith("refused: ***")


@contextmanager
def own_registry() -> Iterator[None]:
    """The masker's registry emptied, then restored: a short secret registered here would
    otherwise be masked as a word in every later test of the process."""
    saved = logs._known, logs._known_pattern
    logs._known, logs._known_pattern = set(), None
    try:
        yield
    finally:
        logs._known, logs._known_pattern = saved


def test_a_short_secret_is_masked_as_a_whole_word_and_left_inside_words() -> None:
    with own_registry():
        Secret("pa55"), Secret("zq")  # "zq" is shorter than MIN_SECRET_LENGTH: never masked
        register_secret("hook")  # not a `Secret`: a URL's path segment, maybe an ordinary word
        cases = {
            "login failed for pa55": "login failed for ***",
            "user:pa55@host": "user:***@host",
            "KeyError: 'pa55'": "KeyError: '***'",
            "비밀번호 pa55가 틀렸습니다": "비밀번호 ***가 틀렸습니다",  # a particle is no letter
            "spa555 pa55word pa55_x x_pa55 pa55pa55": "spa555 pa55word pa55_x x_pa55 pa55pa55",
            "zq, not masked: zq": "zq, not masked: zq",
            "channel hook": "channel hook",
        }
        assert {text: mask_secrets(text) for text in cases} == cases


WORD_CHARS = set(string.ascii_letters + string.digits + "_")


def occurrences(secret: str, text: str) -> list[int]:
    return [i for i in range(len(text)) if text.startswith(secret, i)]


def stands_alone(text: str, at: int, length: int) -> bool:
    """True if no letter, digit or _ is next to ``text[at : at + length]``."""
    before = text[at - 1] if at else " "
    after = text[at + length] if at + length < len(text) else " "
    return before not in WORD_CHARS and after not in WORD_CHARS


def inside_a_word(text: str, at: int, secret: str) -> bool:
    """True if a letter, digit or _ extends the ``secret`` at ``at`` at an end that is one."""
    end = at + len(secret)
    return (secret[0] in WORD_CHARS and at > 0 and text[at - 1] in WORD_CHARS) or (
        secret[-1] in WORD_CHARS and end < len(text) and text[end] in WORD_CHARS
    )


# No "*", the mask's own character, and no ".": a JWT masked right after the secret would
# leave it standing alone where it was a piece of a word.
SHORT_SECRET = st.text(
    alphabet=string.ascii_letters + string.digits + "_-!#$%:@/=가",
    min_size=logs.MIN_SECRET_LENGTH,
    max_size=logs.ANYWHERE_SECRET_LENGTH - 1,
)
AROUND = st.text(alphabet=string.ascii_letters + string.digits + "_ -:@/='\"*가", max_size=8)


@given(SHORT_SECRET, st.lists(st.one_of(st.none(), AROUND), max_size=8))
def test_a_short_secret_never_stands_alone_once_masked_and_nothing_else_changes(
    secret: str, parts: list[str | None]
) -> None:
    text = "".join(secret if part is None else part for part in parts)  # None: the secret
    with own_registry():
        unregistered = mask_secrets(text)  # the shapes alone
        Secret(secret)
        masked = mask_secrets(text)
    assert not any(stands_alone(masked, at, len(secret)) for at in occurrences(secret, masked))
    if all(inside_a_word(text, at, secret) for at in occurrences(secret, text)):
        assert masked == unregistered


def test_a_short_secret_never_cuts_into_a_long_one() -> None:
    """A long secret is masked wherever it was before a short one was registered."""
    long_one, cut_one = "-" + random_text(12), "-" + random_text(40)
    with own_registry():
        Secret(long_one), Secret(cut_one), Secret("pa5-")
        text = f"for pa5- and pa5{long_one} and pa5{cut_one[:20]}"
        assert mask_secrets(text) == "for *** and pa5*** and pa5***"


def test_a_short_password_of_the_krx_login_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ID, "kim")
    monkeypatch.setenv(ENV_PASSWORD, "k1!z")
    with own_registry():
        login = krx_credentials(KrxSettings(), KisSettings())
        line = f"KRX login refused for {login.member_id.reveal()}: {login.password.reveal()}"
        masked = mask_secrets(line)
    assert masked == "KRX login refused for ***: ***"


def test_a_short_password_of_an_alert_channel_is_masked_and_its_other_parts_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = "mailtos://ops:m41l@smtp.example.com/hook json://example.com/hook?pass=w3b"
    monkeypatch.setenv(env_name("default"), urls)
    with own_registry():
        channel_urls(NotifierSettings())
        line = "send to hook failed: 535 auth failed for ops/m41l; w3b refused"
        assert mask_secrets(line) == "send to hook failed: 535 auth failed for ops/***; *** refused"


def test_a_kis_value_too_short_to_be_masked_is_refused_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_KEY", APP_KEY)
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_SECRET", "%Z")
    file = tmp_path / "acct2.toml"
    file.write_text(f'app_key = "%Z"\napp_secret = "{APP_SECRET}"\n')
    file.chmod(0o600)
    refused = []
    for read in (
        lambda: load_credentials("acct1"),
        lambda: load_credentials("acct2", file),
        lambda: read_key_pairs(None, f"{APP_KEY}:%Z"),
    ):
        with pytest.raises(ConfigError, match="shorter than 3 characters") as error:
            read()
        refused.append(str(error.value))
    assert not any("%Z" in message for message in refused)
    assert "OBSERVER_KIS_ACCT1_APP_KEY" in refused[0] and "acct2" in refused[1]
    assert "entry 1" in refused[2]


def test_a_krx_login_too_short_to_mask_is_refused_naming_where_never_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ID, "k9")
    monkeypatch.setenv(ENV_PASSWORD, "a-long-enough-password")
    with pytest.raises(ConfigError, match="shorter than 3 characters") as from_env:
        krx_credentials(KrxSettings(), KisSettings())
    assert ENV_ID in str(from_env.value) and "k9" not in str(from_env.value)
    monkeypatch.delenv(ENV_ID)
    file = tmp_path / "krx.toml"
    file.write_text('member_id = "kim-member"\npassword = "%Q"\n')
    file.chmod(0o600)
    settings = msgspec.convert({"krx": {"credentials_file": str(file)}}, Settings)
    with pytest.raises(ConfigError, match="shorter than 3 characters") as from_file:
        krx_credentials(settings.krx, settings.kis)
    assert str(file) in str(from_file.value) and "%Q" not in str(from_file.value)


SHAPED = st.sampled_from(
    [
        "appkey=",
        "APP_SECRET: ",
        "app\u017fecret=",
        "app\u212aey='",
        "secretkey=",
        'access_token"=',
        "Approval_Key:",
        "authorization: Bearer ",
        "Bearer ",
        "passwd=",
        "PASSWORD=",
        "eyJ",
        "eyJhbGciOi.eyJzdWIi.sig",
        "postgresql://u:",
        "://user:pw@",
    ]
)


@given(st.lists(st.one_of(SHAPED, st.text(min_size=1, max_size=12)), max_size=6))
def test_the_quick_check_never_skips_a_text_a_shape_would_mask(parts: list[str]) -> None:
    text = "".join(parts) + "value1234@host"
    shapes = (logs._SHAPES, logs._JWT, logs._BEARER, logs._URL_PASSWORD)
    if any(shape.search(text) for shape in shapes):
        assert logs._may_be_shaped(text)


def every_string_replaced(value: Any, text: str, *, typed: bool = False) -> Any:
    """``value`` with every string in it (nested structs and tuples too) set to ``text``.

    ``typed``: not the strings of a ``Literal`` field, whose values are fixed (`Producer.send`
    refuses an event with another value there, as the writer's decode would).
    """
    if isinstance(value, str):
        return text
    if isinstance(value, tuple):
        return tuple(every_string_replaced(v, text, typed=typed) for v in value)
    if isinstance(value, msgspec.Struct):
        changes = {
            field.name: every_string_replaced(getattr(value, field.name), text, typed=typed)
            for field in msgspec.structs.fields(value)
            if not (typed and _holds_literal(field.type))
        }
        return msgspec.structs.replace(value, **changes)
    return value


def _holds_literal(kind: Any) -> bool:
    """Whether a field's type is a ``Literal`` (alone or in a union)."""
    if typing.get_origin(kind) is typing.Literal:
        return True
    return any(_holds_literal(arg) for arg in typing.get_args(kind))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_string_of_every_event_is_masked(sample: Any) -> None:
    Secret(APP_KEY), Secret(APP_SECRET)
    assert mask_struct(sample) is sample  # nothing to mask: the same object, no copy
    echo = echo_of({"appkey": APP_KEY, "appsecret": APP_SECRET})
    hostile = every_string_replaced(sample, echo)
    masked = mask_struct(hostile)
    assert leaks(msgspec.msgpack.encode(masked)) == []
    if hostile != sample:  # an event with text (a `SeqsLost` holds only numbers)
        assert leaks(msgspec.msgpack.encode(hostile)) != []  # the test's echo did hold them


def test_every_event_type_is_covered_by_the_samples() -> None:
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES)


def test_the_outbox_of_every_process_holds_no_secret(tmp_path: Path) -> None:
    """`producer_for` masks before the outbox: a truncated echo in every event type."""
    Secret(APP_KEY), Secret(APP_SECRET)
    echo = echo_of({"authorization": "Bearer tok", "appkey": APP_KEY, "appsecret": APP_SECRET})
    producer = producer_for(Settings(paths=PathSettings(run_dir=str(tmp_path / "run"))), "t")
    try:
        for sample in SAMPLES:
            producer.send(every_string_replaced(sample, f"KisApiError: {echo}"[:200], typed=True))
        producer.send(Alert(severity="critical", code="x", message=echo, context={"e": echo}))
        producer.flush()
    finally:
        producer.close(drain_timeout=0)
    outbox = b"".join(
        p.read_bytes() for p in (tmp_path / "run" / "outbox").rglob("*") if p.is_file()
    )
    assert outbox.count(b"request refused: ***") > 2 * len(SAMPLES)  # written, masked
    assert leaks(outbox) == []


# ----------------------------------------------------- end to end: Track A and an echo


class EchoUpstream:
    """A KIS look-alike on a loopback port: tokens are issued, every other call is refused
    with an error whose text echoes the request's headers (values only, no names)."""

    def __init__(self) -> None:
        self.calls = 0
        app = web.Application()
        app.router.add_post("/oauth2/tokenP", self.token)
        app.router.add_route("*", "/{tail:.*}", self.refuse)
        self.served = AppThread(app)
        self.url = self.served.url

    async def token(self, request: web.Request) -> web.Response:
        expires = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        return web.json_response(
            {
                "access_token": "tok-" + random_text(40),
                "token_type": "Bearer",
                "expires_in": 86400,
                "access_token_token_expired": expires,
            }
        )

    async def refuse(self, request: web.Request) -> web.Response:
        self.calls += 1
        echo = echo_of(dict(request.headers))
        return web.json_response({"rt_cd": "1", "msg_cd": "EGW99999", "msg1": echo})

    def close(self) -> None:
        self.served.close()


@pytest.fixture
def upstream() -> Iterator[EchoUpstream]:
    server = EchoUpstream()
    yield server
    server.close()


DAY = date(2026, 11, 20)  # a Friday session
TRACK_A = """
[programs.track_a]
kind = "session"
command = ["observer", "track-a", "run"]
phases = ["warmup", "track_a_only", "full_operation", "track_a_closing", "shutdown"]
depends_on = ["writer"]
"""


def database_dump(path: Path) -> bytes:
    with sqlite3.connect(path) as conn:
        return "\n".join(conn.iterdump()).encode()


def test_an_upstream_echoing_the_request_leaves_no_secret_anywhere(
    tmp_path: Path, upstream: EchoUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_KEY", APP_KEY)  # the supervisor's children inherit
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_SECRET", APP_SECRET)
    start = datetime(2026, 11, 20, 8, 59, 40, tzinfo=KST)  # 09:00 two wall seconds after
    clock = SimulatedClock(int(start.timestamp() * 1e9), speed=10.0)
    settings = (
        f'[kis]\nenvironment = "sim"\ntoken_dir = "{tmp_path / "data" / "tokens"}"\n'
        f'sim_url = "{upstream.url}"\n[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 50\n'
    )
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + TRACK_A, clock=clock.spec, settings=settings)
    sup.start()
    ingest = f"ipc://{sup.data_dir / 'run' / 'ingest.sock'}"
    members = tuple(
        UniverseMember(symbol=s, market="KOSPI", rank=n, prev_close=70_000, market_cap=10**12)
        for n, s in enumerate(("005930", "000660", "035420"), start=1)
    )
    with Producer("universe", ingest, tmp_path / "outbox-universe") as producer:
        producer.send(
            UniverseSnapshot(
                trade_date=DAY, based_on=date(2026, 11, 19), min_prev_close=4000, members=members
            )
        )
        assert producer.wait_acked(30)
    wait_until(
        lambda: sup.rows("select count(*) from alerts where code = 'track_a_cycle_failed'")[0][0],
        60,
        "Track A's failed cycle alert",
    )
    assert upstream.calls >= 3
    ctl = subprocess.run(
        [sys.executable, "-m", "observer", "ctl", "--config", str(sup.config), "status"],
        capture_output=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    ctl_json = subprocess.run(
        [sys.executable, "-m", "observer", "ctl", "--config", str(sup.config), "status", "--json"],
        capture_output=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert sup.terminate() == 0
    alert = sup.rows("select message from alerts where code = 'track_a_cycle_failed'")[0][0]
    assert "request refused" in alert and "***" in alert  # the echo is there, masked
    written = {
        "ctl status": ctl.stdout + ctl.stderr,
        "ctl status --json": ctl_json.stdout + ctl_json.stderr,
        "database dump": database_dump(sup.data_dir / "observer.db"),
    }
    for path in tmp_path.rglob("*"):
        if path.is_file():
            written[str(path.relative_to(tmp_path))] = path.read_bytes()
    assert any("outbox" in name for name in written) and any(".log" in n for n in written)
    found = {name: leaks(data) for name, data in written.items() if leaks(data)}
    assert found == {}
    json.loads(ctl_json.stdout)  # the status itself was answered
