"""What the simulator enforces (`SimConfig`) and what it is told to break (`Faults`)."""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "MASTER_DAMAGE",
    "REALTIME_LAYOUTS",
    "Faults",
    "MasterDamage",
    "RealtimeLayout",
    "RegistrationRefusal",
    "SimConfig",
    "TickLoss",
]


RealtimeLayout = Literal["2026-05", "2026-09"]
REALTIME_LAYOUTS: tuple[RealtimeLayout, ...] = typing.get_args(RealtimeLayout)


@dataclass(slots=True)
class SimConfig:
    """What the simulator accepts and enforces."""

    app_keys: dict[str, str] | None = None  # key -> secret; None accepts any pair
    # REST calls a wall-clock second per app key, beyond which KIS answers EGW00201, by kind
    # of key: a real account's (18 since KIS's 2026 notices; 20 before), a paper account's
    # (`paper`: 1; 2 before), a key in its first 3 days (`new_keys`: 3).
    calls_per_second: int = 18
    paper_calls_per_second: int = 1
    new_keys: frozenset[str] = frozenset()
    new_key_calls_per_second: int = 3
    # Token issuances across every app key within this many wall seconds of the last one
    # are refused (EGW00201): KIS's 1/s issuance, if it counts per customer (UNCONFIRMED;
    # per app key, its 1/min, token_min_interval_s, is stricter). 0: not counted.
    token_spacing_s: float = 0.0
    token_ttl_s: int = 86_400
    token_min_interval_s: int = 60
    same_token_within_s: int = 6 * 3600
    max_registrations: int = 41
    # What counts against max_registrations (UNCONFIRMED at KIS): each TR and symbol ("feed",
    # as Track B assumes: 005930's trades and book are two) or each symbol ("symbol").
    registrations_counted: Literal["feed", "symbol"] = "feed"
    pingpong_s: float = 110.0  # clock seconds between keep-alives (UNCONFIRMED at KIS)
    # WALL seconds between keep-alives instead (a network timer, not the market's); None:
    # pingpong_s of simulated time.
    pingpong_interval_s: float | None = None
    # Which answer to a PINGPONG keeps a session (UNCONFIRMED at KIS): "pong", a WebSocket
    # pong control frame (KIS's samples); "echo", the text frame sent back (python-kis);
    # "any" never drops a session. A session not answering as accepted within
    # pingpong_timeout_s WALL seconds is dropped (a third party saw KIS close ~10 s after
    # an unanswered PINGPONG), and counted (`Realtime.pingpong_drops`).
    pingpong_accepts: Literal["any", "pong", "echo"] = "any"
    pingpong_timeout_s: float = 10.0
    push_interval_s: float = 0.05  # wall seconds between real-time pushes
    # The order of a push's records across a session's registrations (UNCONFIRMED at KIS):
    # "time", as they were stamped, each symbol's own in turn where stamps tie (a consolidated
    # feed, believed); "symbol", each registration's records in turn, every one of a symbol
    # before the next symbol's: after a catch-up, another symbol's newer trade arrives before
    # this one's older ones (a client must not take it as proof that this one was quiet).
    push_order: Literal["time", "symbol"] = "time"
    master_validators: bool = True  # ETag / Last-Modified on master files (UNCONFIRMED at KIS)
    master_head: bool = True  # HEAD answered; False: 405, as a host serving GET only would
    # Rows with codes the .h files do not list, as real files hold (etp_prod_cls_code 8 on a
    # KOSPI ETF, scrt_grp_cls_code PF on a KOSPI stock, a made-up QX on a KOSDAQ stock)
    master_new_codes: bool = False
    master_extra_columns: int = 0  # .cod columns after the known 24 (KIS has added some before)
    krx_members: dict[str, str] | None = None  # KRX member id -> password; None accepts any
    krx_session_ttl_s: int = 3600  # simulated seconds a KRX login lasts (pykrx: about 1 h)
    krx_login_required: bool = True  # KRX data to logged-in sessions only (since 2026-02-27)
    # The fallback sector source (harness.sim.yahoo): a sliding window per client address,
    # 1/s sustained with a burst of 5 by default; Retry-After on its 429s when set.
    yahoo_limit: int = 5
    yahoo_window_s: float = 5.0
    yahoo_retry_after_s: int | None = None
    # The minute a bar's stck_cntg_hour names (UNCONFIRMED at KIS): "start", the minute it
    # opens (09:00 covers 09:00:00-09:00:59); "end", the minute it closes (09:01, the same).
    bar_label: Literal["start", "end"] = "start"
    # FHPTJ04160001's FID_ETC_CLS_CODE it answers rows for ("1" in KIS's workbook, blank in
    # its samples: UNCONFIRMED); "any": both.
    investor_etc_cls_code: Literal["any", "", "1"] = "any"
    # The key the VI TRs (H0STVIC0...) take: the business date (KIS's workbook: the whole
    # market's VIs), a symbol (its example; a date refused), or "any": both.
    vi_tr_key: Literal["any", "date", "symbol"] = "any"
    # FHKST121600C0 is one answer, never continued (KIS's workbook). Whether KIS caps its
    # lines is UNCONFIRMED: a cap here cuts the answer short (its count still says all);
    # ``etf_component_repeat`` lists one constituent twice, as a malformed answer would.
    etf_component_max_rows: int | None = None
    etf_component_repeat: bool = False
    # Paper accounts: every app key is a paper one, and the TRs KIS's paper host does not
    # offer ("모의투자 미지원" in the workbook) are answered with rt_cd "1" and this msg_cd
    # (KIS's code for it is UNCONFIRMED; paper accounts have been seen to get MCA00124).
    paper: bool = False
    paper_refusal_code: str = "MCA00124"
    # Which FHKST01010100 field says a symbol is halted: temp_stop_yn "Y", the status code
    # iscd_stat_cls_code "58" (거래정지), or both (UNCONFIRMED which KIS fills).
    halt_signal: Literal["both", "temp_stop_yn", "iscd_stat_cls_code"] = "both"
    # The real-time records' layout generation: the 2026-09 workbook's (H0STCNT0 47 fields,
    # H0STASP0 63: the session code, and the book's mid-point), what KIS sends today, or the
    # 2026-05 one's (46 and 59). Then ``realtime_extra_fields`` more fields on every record,
    # as a layout newer than both would have.
    realtime_layout: RealtimeLayout = "2026-09"
    # HHPTJ04160200 (no date asked, none answered) before the day's first posting: nothing
    # ("today"), or the last session's postings ("last_session"), as KIS may (UNCONFIRMED).
    investor_before_postings: Literal["today", "last_session"] = "today"
    # From this KST time the day's postings are answered with other figures (KIS's staff
    # revising them; UNCONFIRMED): None, never.
    investor_revised_from: str | None = None
    realtime_extra_fields: int = 0
    # CTPF1002R's answer names the product (scty_grp_id_cd: ST, EF, EN, ...), as the
    # workbook's layout lists it; False: the field left out, as an older layout would (the
    # client then knows no product, and keeps an ETF pin's after-market feeds: the safe way).
    stock_info_group: bool = True
    # KRX's after-market (from 2026-09-14: stocks, 16:00-20:00 KST, `Market.krx_after_day`):
    # its trades on H0STCNT0/H0STASP0 and the combined feed (session code "3"), in the
    # current price and today's daily bar; False: no KRX trade after 15:30 (the old belief).
    # Served when the `Market`'s switch of the same name is on too.
    krx_after_market: bool = True
    # KRX's minute bars (FHKST03010200 / FHKST03010230, J; and KRX's part of UN's) of its
    # 16:00-20:00 minutes, from the after-market's trades (UNCONFIRMED at KIS); False: none.
    krx_after_market_bars: bool = True
    # The MARKET_CLS_CODE of KRX's after-market records on its own feeds: "3" as the 2026-09-20
    # export reads (1 pre, 2 regular, 3 after); another ("2", "") the other ways, which the
    # client stores as the code says and counts against its hours (`session_by_code`).
    krx_after_market_code: str = "3"
    # The MARKET_CLS_CODE of Nextrade's 종가매매 records (trades at KRX's close, 15:30-16:00,
    # `Market.nxt_closing_day`) on its feed and the combined one: "5" as believed
    # (UNCONFIRMED); another ("3", "2") the other ways, stored as the code says.
    nxt_closing_price_code: str = "5"
    # What the brokers' records (H0STMBC0 and its venues') send for a rank no broker fills (a
    # broker not traded yet: a quiet name's first minutes), UNCONFIRMED at KIS: "empty", every
    # field of the rank empty, as believed; "zeros", its numbers "0" and names empty; "filled",
    # the untraded brokers ranked with 0 shares.
    broker_unfilled: Literal["empty", "zeros", "filled"] = "empty"
    # KRX's trade records' ACML_VOL: "exact" each the last one's plus its quantity, as
    # believed (UNCONFIRMED); "beyond" counting a trade of 100 shares the feed never sends
    # before every tenth trade from the sixth of a regular-session minute (the other way: a
    # chain that breaks with nothing lost on the way). FHPST01060000 lists those trades.
    volume_chain: Literal["exact", "beyond"] = "exact"
    # What the real-time trade records' ACML_VOL counts from (UNCONFIRMED at KIS): "day", the
    # venue's whole day, the same whenever registered (as believed, and as FHPST01060000's
    # acml_vol); "registration", the registration's own trades only, from 0 at each
    # registration (the other way: a chain that cannot run on across an outage).
    acml_vol_from: Literal["day", "registration"] = "day"
    # FHPST01060000 (today's trades by time, `harness.sim.tape`), each as KIS is believed to
    # answer it and each UNCONFIRMED: ``time_trades_rows`` rows a page (KIS's documentation:
    # 30); ``time_trades_per`` "trade", a row per trade ("second": a row per second, its
    # trades summed: cnqn their quantities, price and acml_vol the last one's);
    # ``time_trades_cum_offset`` added to every acml_vol it answers (0: the same cumulative
    # volume the venue's real-time trade records carry; another: a chain shifted from theirs,
    # as one counting the pre-market or another venue would be); ``time_trades_inclusive``
    # False, the trades stamped before FID_INPUT_HOUR_1 (True: at or before it).
    time_trades_rows: int = 30
    time_trades_per: Literal["trade", "second"] = "trade"
    time_trades_cum_offset: int = 0
    time_trades_inclusive: bool = False

    def __post_init__(self) -> None:
        if self.realtime_layout not in REALTIME_LAYOUTS:
            raise ValueError(
                f"realtime_layout {self.realtime_layout!r}: one of {', '.join(REALTIME_LAYOUTS)}"
            )
        if not 0 <= self.realtime_extra_fields <= 100:
            raise ValueError(f"realtime_extra_fields {self.realtime_extra_fields}: 0 to 100")
        if self.time_trades_rows < 1:
            raise ValueError(f"time_trades_rows {self.time_trades_rows}: 1 at least")


@dataclass(frozen=True, slots=True)
class FeedDelay:
    """The real-time server sends trades ``delay_s`` (simulated seconds) after they happen.

    KIS's feed falling behind at a busy moment: every session's records go out late, in
    order, and catch up when the delay ends. What a released registration had not been sent
    yet is never sent (UNCONFIRMED for KIS; the server stops a registration's records at its
    release).
    """

    start_ns: int  # simulated time, inclusive
    end_ns: int  # exclusive
    delay_s: float


@dataclass(frozen=True, slots=True)
class TickLoss:
    """Trade records the real-time server never sends, while the session stays up.

    A silent loss on KIS's side: no disconnect, no error, the minute bars over REST still
    count those trades. Which records are withheld is a hash of the trade, so a share of
    them goes missing evenly and the same trades on every run.
    """

    start_ns: int  # simulated time, inclusive
    end_ns: int  # exclusive
    share: float  # of the trade records in the span, 0..1
    symbols: frozenset[str] = frozenset()  # empty: every symbol
    # The trade feeds withholding them: KRX's by default; H0NXCNT0 a Nextrade-only loss,
    # H0UNCNT0 the combined feed's (each feed loses its own records, the others send theirs).
    feeds: frozenset[str] = frozenset({"H0STCNT0"})

    def withholds(self, symbol: str, at_ns: int, nth: int) -> bool:
        """True if the ``nth`` trade of its minute, stamped ``at_ns``, is not sent."""
        if not self.start_ns <= at_ns < self.end_ns:
            return False
        if self.symbols and symbol not in self.symbols:
            return False
        key = f"{symbol}:{at_ns}:{nth}".encode()
        draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64
        return draw < self.share


MasterDamage = Literal["truncated", "crc", "encoding", "columns", "empty", "short_body"]
MASTER_DAMAGE: tuple[MasterDamage, ...] = typing.get_args(MasterDamage)


@dataclass(slots=True)
class RegistrationRefusal:
    """Refuse a symbol's WebSocket registrations with ``code`` (``count`` times; 0: always)."""

    code: str
    count: int = 0


@dataclass(slots=True)
class NxtChanges:
    """Nextrade's changes between its quarterly selections, as KIS's flags will show them.

    Names removed (as the 50 of 2026-02-12, under the volume cap), added, or halted there.
    """

    removed: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)
    halted: set[str] = field(default_factory=set)

    def apply(self, body: dict[str, list[str]]) -> None:
        """``{"remove": [...], "add": [...], "halt": [...], "resume": [...]}``."""
        for symbol in body.get("remove", ()):
            self.removed.add(symbol)
            self.added.discard(symbol)
        for symbol in body.get("add", ()):
            self.added.add(symbol)
            self.removed.discard(symbol)
        self.halted |= set(body.get("halt", ()))
        self.halted -= set(body.get("resume", ()))

    def standing(self, symbol: str, selected: frozenset[str], suspended: bool) -> tuple[bool, bool]:
        """Whether Nextrade trades ``symbol`` (of its quarter's ``selected``), and halts it."""
        eligible = (symbol in selected or symbol in self.added) and symbol not in self.removed
        return eligible, eligible and (suspended or symbol in self.halted)


@dataclass(slots=True)
class Faults:
    """Faults to inject; counters are consumed as requests arrive."""

    http_5xx: int = 0  # answer the next N REST calls with EGW00002 / HTTP 500
    rate_limited: int = 0  # answer the next N REST calls with EGW00201
    latency_s: float = 0.0  # added to every REST answer
    master_damage: dict[str, MasterDamage] = field(default_factory=dict)  # file name -> how
    delisted: set[str] = field(default_factory=set)  # symbols left out of the masters
    renamed: dict[str, str] = field(default_factory=dict)  # symbol -> new name
    new_listings: int = 0  # synthetic KOSDAQ listings added to the masters
    # symbol -> the control code its registrations are answered with (trade and book alike)
    refuse_registrations: dict[str, RegistrationRefusal] = field(default_factory=dict)
    # Nextrade's ad-hoc changes to its quarter's list, from now on (CTPF1002R's flags)
    nxt: NxtChanges = field(default_factory=lambda: NxtChanges())
    # symbol -> [start_ns, end_ns) of simulated time: no trades, temp_stop_yn "Y", no bars
    halts: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Investor-estimate postings (HHPTJ04160200's bsop_hour_gb) KIS's staff do not make today
    missed_postings: set[int] = field(default_factory=set)
    # symbols every REST quote answers "no data" for (KIOK0560), as KIS does a code unknown
    no_data_symbols: set[str] = field(default_factory=set)
    # tr_id -> the msg_cd every call of that TR is refused with (rt_cd "1", HTTP 500): a TR
    # KIS does not offer an account or withdrew (gap recovery falls back from FHPST01060000)
    refused_trs: dict[str, str] = field(default_factory=dict)
    # symbol -> its VIs of the day by FHPST01390000 (one every three minutes from 10:00, a
    # static VI each): KIS lists the latest 30, their counts saying how many the day had
    busy_vis: dict[str, int] = field(default_factory=dict)
    # symbol -> [start_ns, end_ns): every trade at the upper price limit (sign "1")
    limit_locks: dict[str, tuple[int, int]] = field(default_factory=dict)

    def take_refusal(self, symbol: str) -> str | None:
        """The code to refuse a registration of ``symbol`` with now, if any (a count is used)."""
        refusal = self.refuse_registrations.get(symbol)
        if refusal is None:
            return None
        if refusal.count:
            refusal.count -= 1
            if not refusal.count:
                del self.refuse_registrations[symbol]
        return refusal.code

    def halted(self, symbol: str, ns: int) -> bool:
        """Whether trading in ``symbol`` is halted at ``ns``."""
        window = self.halts.get(symbol)
        return window is not None and window[0] <= ns < window[1]

    def locked(self, symbol: str, ns: int) -> bool:
        """Whether ``symbol`` is locked at its upper price limit at ``ns``."""
        window = self.limit_locks.get(symbol)
        return window is not None and window[0] <= ns < window[1]

    # symbol -> "HHMM" minutes in which it does not trade: no minute bar (KIS has none for a
    # minute without trades), no real-time trade and nothing in any volume (the REST quote's
    # price, high, low and value still follow the path through them).
    no_trades: dict[str, set[str]] = field(default_factory=dict)
    # app key -> simulated instant (ns) until which its WebSocket sessions are cut as soon
    # as they identify themselves (their first message): an account whose sessions fail
    ws_down_until: dict[str, int] = field(default_factory=dict)
    token_failures: int = 0  # answer the next N token requests with HTTP 500 (EGW00002)
    # simulated instant (ns) until which the REST quote calls find no server: their
    # connections are reset, as when the REST host is unreachable
    rest_down_until: int = 0
    tick_loss: list[TickLoss] = field(default_factory=list)  # trades silently never sent
    # Data the client cannot read: the next N trade records pushed carry a cumulative value
    # (ACML_TR_PBMN) that is no integer; the next N data frames a record count that is none.
    garbled_records: int = 0
    garbled_frames: int = 0
    feed_delay: list[FeedDelay] = field(default_factory=list)  # trades sent late
    # Releases (tr_type "2") never answered and not carried out: the registration streams on
    # (a confirmation KIS lost, or one later than the client waits)
    unanswered_releases: bool = False

    def delay_ns(self, at_ns: int) -> int:
        """How far behind the real-time server sends trades at ``at_ns`` (0: on time)."""
        delays = (d.delay_s for d in self.feed_delay if d.start_ns <= at_ns < d.end_ns)
        return int(max(delays, default=0.0) * 1e9)

    krx_5xx: int = 0  # answer the next N KRX data calls with HTTP 500
    krx_empty: int = 0  # ... with an empty output
    krx_logout: int = 0  # ... with LOGOUT, ending the asking session
    krx_latency_s: float = 0.0  # wall seconds added to every KRX data answer
    krx_password_change: bool = False  # KRX logins answered CD010
    # "HH:MM" KST: today's ETF NAV (and net assets) are not published before then
    etf_nav_late_until: str | None = None
    yahoo_429: int = 0  # answer the next N fallback-source calls with 429
    yahoo_5xx: int = 0  # ... with HTTP 502
    yahoo_latency_s: float = 0.0  # wall seconds added to every fallback-source answer
