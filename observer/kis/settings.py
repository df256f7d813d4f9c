"""``[kis]``: the accounts, their environment and REST budgets, and how processes share them."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from observer.kis.keepalive import PingpongAnswer
from observer.kis.registrations import MAX_REGISTRATIONS
from observer.setting_types import Seconds, Strict

__all__ = [
    "BACKOFF_S",
    "NEW_KEY_DAYS",
    "NEW_KEY_PER_SECOND",
    "PAPER_REFUSAL_CODES",
    "REST_PER_SECOND",
    "TOKEN_SPACING_S",
    "AccountSettings",
    "HaltFrom",
    "JournalSettings",
    "KisSettings",
    "StreamSettings",
    "env_prefix",
]

# KIS's REST budgets per app key, from its portal's notices as quoted publicly
# (shared/reference/kis-market-2026-09.md §5; the 2026-09-16 notice's own text unseen): 18
# calls a second for a real account (20 before), 1 for a paper one (2 before), and 3 for a
# new app key in its first 3 days (from 2026-04-03). The pacer's EGW00201 counts measure
# them (`observer.kis.pacing`), and ``observer kis check --budget`` too.
REST_PER_SECOND = {"real": 18.0, "paper": 1.0}
NEW_KEY_PER_SECOND = 3.0
NEW_KEY_DAYS = 3
TOKEN_SPACING_S = 1.0  # one token issued a second (the token job spaces its accounts')
_KST = timezone(timedelta(hours=9))
# The msg_cd of the paper host's refusal of a TR it does not offer ("모의투자 미지원"):
# KIS documents none. MCA00124 ("해당 서비스를 찾을수 없습니다") is what paper accounts
# have been seen to get for such a call; an answer whose msg1 says 모의투자 is read the same.
PAPER_REFUSAL_CODES = ("MCA00124",)

# Where a halt is read from in FHKST01010100: ``temp_stop_yn == "Y"``, the status code
# ``iscd_stat_cls_code == "58"`` (거래정지 in KIS's workbook), or either.
HaltFrom = Literal["both", "temp_stop_yn", "iscd_stat_cls_code"]


class AccountSettings(Strict, frozen=True):
    """One KIS account (its app key is its WebSocket session). Secrets are never here."""

    alias: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}$")]
    credentials_file: str = ""  # owner-only TOML; empty: OBSERVER_KIS_<ALIAS>_APP_KEY/SECRET
    # The account's REST budget at KIS; 0: its kind's (real or paper), `REST_PER_SECOND`.
    rest_per_second: Annotated[float, Meta(ge=0, le=10_000)] = 0.0
    # The app key's first day (KST), for a key issued lately: KIS allows a new key
    # `NEW_KEY_PER_SECOND` for its first `NEW_KEY_DAYS` days, whatever rest_per_second says.
    key_issued: date | None = None


class JournalSettings(Strict, frozen=True):
    """``[kis.journal]``: every frame and answer received from KIS, kept raw per process and day.

    ``keep_days``: a day's files are removed once older than this (0 keeps them forever).
    ``level``: zstd's; each record is flushed as its own block, so levels above 3 gain little.
    """

    enabled: bool = True
    dir: str = ""  # empty: <data_dir>/journal
    keep_days: Annotated[int, Meta(ge=0, le=36_500)] = 30
    level: Annotated[int, Meta(ge=1, le=19)] = 3


# Between failed WebSocket sessions (jittered down to half; the last repeats).
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class StreamSettings(Strict, frozen=True):
    """``[kis.stream]``: every account's WebSocket session, within KIS's limits.

    One definition for the configuration file and the code (`observer.kis.stream.KisStream`);
    the defaults are KIS's limits and a policy that stays inside them.
    """

    # KIS's registrations per session, one per feed (`observer.kis.feeds`): Track B's slots
    # are counted in them. `observer kis check` counts what KIS holds.
    max_registrations: Annotated[int, Meta(ge=1, le=MAX_REGISTRATIONS)] = MAX_REGISTRATIONS
    backoff_s: Annotated[tuple[Seconds, ...], Meta(min_length=1)] = BACKOFF_S
    # Reconnects per account per hour; when spent the account is down (alerted, its slots
    # fail over) until the oldest of them is an hour old. KIS states no limit (UNCONFIRMED).
    reconnects_per_hour: Annotated[int, Meta(ge=1, le=3600)] = 60
    silence_s: Seconds = 90.0  # a session this quiet (clock time) with data wanted is dropped
    # A session with nothing registered hears only KIS's PINGPONG (about every 110 s,
    # UNCONFIRMED): it is judged silent after this much quiet, not after the data limit.
    idle_silence_s: Seconds = 300.0
    ack_timeout_s: Seconds = 10.0  # a registration unanswered this long is refused (`NOACK`)
    # A frame over this many bytes is dropped and counted, its session kept (1 MiB: 999
    # records of the widest feed are ~400 KB; above 16 MiB the library ends the session);
    # more bad frames (oversized, unreadable) than bad_frames_per_minute: one alert and one
    # reconnect, with backoff, until a quiet minute (`observer.kis.frames`).
    max_frame_bytes: Annotated[int, Meta(ge=65_536, le=16 * 2**20)] = 2**20
    bad_frames_per_minute: Annotated[int, Meta(ge=1, le=100_000)] = 10
    # A pre-connected session presents its approval key with the release of a registration
    # it does not hold (KIS answers OPSP0003): KIS then counts the session as the app key's
    # (OPSP8996 shows at 08:03, not at 09:30) and keeps it alive. UNCONFIRMED that a release
    # binds the session at KIS; false: the connection alone.
    identify_idle: bool = True
    # How KIS's PINGPONG is answered (`observer.kis.keepalive`): "pong", a WebSocket pong
    # control frame (KIS's samples); "echo", the text frame sent back (python-kis); "both"
    # (UNCONFIRMED which KIS requires: an unanswered PINGPONG is reported to end the session
    # ~10 s later).
    pingpong_answer: PingpongAnswer = "both"
    # The silence limits grow to this many times the PINGPONG interval measured on the
    # session (wall seconds), never shorter than configured: KIS's interval is UNCONFIRMED.
    # 0: the configured limits alone.
    silence_factor: Annotated[float, Meta(ge=0, le=100)] = 2.5


class KisSettings(Strict, frozen=True):
    """Where the KIS accounts live and how each process shares their budgets."""

    environment: Literal["real", "paper", "sim"] = "sim"
    sim_url: str = "http://127.0.0.1:8800"  # REST, WebSocket and masters of `observer sim`
    master_url: str = ""  # empty: KIS's public master host (the simulator's in sim)
    token_dir: str = "var/tokens"  # noqa: S105 - a folder name, not a secret
    accounts: tuple[AccountSettings, ...] = (AccountSettings(alias="acct1"),)
    # Fraction of every account's REST budget each kind of process may use; together <= 1.
    # "manual": `gap-recovery verify` run by hand while the daemon holds "gap_recovery".
    process_share: dict[str, Annotated[float, Meta(gt=0, le=1)]] = msgspec.field(
        default_factory=lambda: dict(track_a=0.55, gap_recovery=0.25, jobs=0.15, manual=0.05)
    )
    # Who issues tokens and approval keys: "job", only the `token` job (the workers read the
    # owner-only cache and wait for it); "any", every process when it needs one (a worker
    # run on its own, without the supervisor's token job).
    token_issuer: Literal["any", "job"] = "any"  # noqa: S105 - a mode, not a secret
    token_wait_s: Seconds = 300.0  # a worker waits this long for the job's token (clock s)
    # A pace slowed by EGW00201 refusals climbs back a tenth of its share after this many
    # wall seconds without one (`observer.kis.pacing`).
    pace_recover_s: Seconds = 1.0
    # The share of every account's REST budget no process uses: KIS publishes no budget and
    # python-kis paces at 19 of the 20 calls a second its samples imply.
    rest_headroom: Annotated[float, Meta(ge=0, lt=1)] = 0.05
    # Whether the simulator's accounts are real or paper ones (`environment = "sim"` only):
    # "paper" makes this client refuse what KIS's paper host does not offer.
    sim_accounts: Literal["real", "paper"] = "real"
    # msg_cd values read as the paper host's refusal of a TR it does not offer (UNCONFIRMED).
    paper_refusal_codes: tuple[str, ...] = PAPER_REFUSAL_CODES
    # Which FHKST01010100 field says a symbol is halted (UNCONFIRMED which KIS fills).
    halt_from: HaltFrom = "both"
    journal: JournalSettings = JournalSettings()
    stream: StreamSettings = StreamSettings()  # every account's WebSocket session

    def __post_init__(self) -> None:
        # An account without a budget of its own gets its kind's: a paper account asked at
        # the real one's 18/s would be refused seventeen calls in eighteen.
        default = REST_PER_SECOND["paper" if self.paper else "real"]
        accounts = tuple(
            a if a.rest_per_second else msgspec.structs.replace(a, rest_per_second=default)
            for a in self.accounts
        )
        msgspec.structs.force_setattr(self, "accounts", accounts)

    @property
    def paper(self) -> bool:
        """True if the accounts are paper ones (KIS's paper host, or the simulator's)."""
        return self.environment == "paper" or (
            self.environment == "sim" and self.sim_accounts == "paper"
        )

    def budget(self, account: AccountSettings, today: date | None = None) -> float:
        """``account``'s REST budget at KIS on ``today`` (KST; None: the wall clock's day).

        Its ``rest_per_second``, and no more than `NEW_KEY_PER_SECOND` in its key's first
        `NEW_KEY_DAYS` days. A process reads it when it starts (each runs within a day).
        """
        issued = account.key_issued
        if issued is None:
            return account.rest_per_second
        day = today or datetime.now(_KST).date()
        if issued <= day < issued + timedelta(days=NEW_KEY_DAYS):
            return min(account.rest_per_second, NEW_KEY_PER_SECOND)
        return account.rest_per_second

    def usable_per_second(self, account: AccountSettings, today: date | None = None) -> float:
        """The calls a second the processes together may send as ``account`` on ``today``.

        Its `budget` less `rest_headroom`: every process's share is of this figure.
        """
        return self.budget(account, today) * (1.0 - self.rest_headroom)


def env_prefix(alias: str) -> str:
    """The prefix of the variables holding account ``alias``'s keys (``OBSERVER_KIS_ACCT_1_``)."""
    return f"OBSERVER_KIS_{alias.upper().replace('-', '_')}_"
