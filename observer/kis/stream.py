"""One KIS WebSocket session per app key: registrations, control answers, reconnects.

Facts (KIS's WebSocket protocol): one message registers one (tr_id, tr_key) pair with
the approval key in its header; at most 41 registrations per session (trade and book count
separately; ``OPSP0008`` beyond); one session per app key (``OPSP8996``); registrations are
per connection, so every reconnect re-sends all of them; the server sends JSON ``PINGPONG``
keep-alives, which we echo as a text frame. Reconnects back off 1, 2, 5, 10, 30, 60 s (with
jitter), within a budget per hour; a silent connection is dropped after ``silence_s``.

Any other control answer to a registration it wants (``OPSP0007`` internal error, ``OPSP0008``
beyond the limit, ``OPSP8992`` invalid tr_key, ...) refuses it: the stream stops wanting it, keeps
the code in ``refused`` and tells its owner (``on_refused``), who decides whether and when to ask
again (unanswered for ``ack_timeout_s``: ``NOACK``). `SESSION_REFUSALS` end the session; after a
refusal of the approval key the next one renews it, once (`KeyRenewal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from observer.clock import Clock
from observer.errors import KisError, KisProtocolError
from observer.kis.approval import KeyRenewal
from observer.kis.auth import TokenManager
from observer.kis.parse import SESSION_REFUSALS, ControlMessage, is_data_frame, parse_control
from observer.kis.realtime import DecodedFrame, RealtimeDecoder
from observer.kis.token_cache import key_digest

__all__ = [
    "IDENTIFY",
    "MAX_REGISTRATIONS",
    "NOACK",
    "BudgetSpent",
    "KisStream",
    "Registration",
    "StreamState",
    "SubscriptionError",
    "key_digest",
]

log = logging.getLogger(__name__)

MAX_REGISTRATIONS = 41
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS
# A stop waits at most this long for the server's close frame (websockets' default is 10 s);
# a new session on the same app key is refused while the old one lingers (OPSP8996).
_CLOSE_TIMEOUT_S = 2.0
MIN_SILENCE_WALL_S = 5.0  # a wall-time floor under the silence and answer deadlines
NOACK = "NOACK"  # the refusal of a registration KIS left unanswered (see _watch_answers)

_T = TypeVar("_T")


StreamState = Literal["connecting", "connected", "disconnected", "refused", "stopped"]


@dataclass(frozen=True, slots=True)
class Registration:
    """One (tr_id, tr_key) pair, e.g. ``("H0STCNT0", "005930")``."""

    tr_id: str
    tr_key: str


# What a pre-connected session releases to present its approval key: a registration it does
# not hold, so KIS answers OPSP0003 (UNSUBSCRIBE ERROR, not found) and registers nothing.
IDENTIFY = Registration("H0STCNT0", "005930")


class SubscriptionError(KisError):
    """A registration the session cannot hold (the 41 limit, or refused by KIS)."""


class BudgetSpent(KisError):
    """The hourly reconnect budget is spent; it has room again at ``reopens_ns``."""

    def __init__(self, message: str, reopens_ns: int) -> None:
        super().__init__(message)
        self.reopens_ns = reopens_ns


class KisStream:
    """A self-healing WebSocket session.

    Parameters
    ----------
    url:
        The WebSocket URL (``ws://.../tryitout``).
    tokens:
        Supplies the approval key.
    clock:
        For backoff, silence and the reconnect budget.
    on_frame:
        Called with each data frame, decoded into events by the stream's `RealtimeDecoder`
        (records it refused are in the frame's ``errors``), and its receive time (UTC ns).
    on_state:
        Called with each connection-state change and a reason.
    on_registered:
        Called when KIS acknowledges a registration (after every reconnect, too).
    on_refused:
        Called when KIS refuses a registration the stream wanted, with KIS's ``msg_cd`` and
        ``msg1`` (or `NOACK` when it left it unanswered); the stream no longer wants it.
    on_confirmed:
        Called once per connection KIS confirms (an answer but a session refusal, which sets
        ``identified``, or data); at once if nothing is wanted and ``identify`` is off.
    account:
        The alias of the account the session belongs to; every event carries it.
    max_registrations, backoff_s, reconnects_per_hour, silence_s, ack_timeout_s:
        Limits; the defaults are KIS's limits and a reconnect policy that stays inside them.
    idle_silence_s:
        The silence limit while nothing is wanted (a pre-connected session hears only KIS's
        PINGPONG); None: ``silence_s``.
    identify:
        Whether a session opened with nothing wanted presents its approval key at once, by
        releasing a registration it does not hold (KIS answers ``OPSP0003``), so that KIS
        counts it as the app key's session (``OPSP8996`` shows now) and keeps it alive.
    """

    def __init__(
        self,
        url: str,
        tokens: TokenManager,
        clock: Clock,
        on_frame: Callable[[DecodedFrame, int], None],
        on_state: Callable[[StreamState, str], None] = lambda state, reason: None,
        *,
        on_registered: Callable[[Registration], None] = lambda registration: None,
        on_refused: Callable[[Registration, str, str], None] = lambda r, code, message: None,
        on_confirmed: Callable[[], None] = lambda: None,
        account: str = "",
        max_registrations: int = MAX_REGISTRATIONS,
        backoff_s: tuple[float, ...] = BACKOFF_S,
        reconnects_per_hour: int = 60,
        silence_s: float = 90.0,
        idle_silence_s: float | None = None,
        identify: bool = False,
        ack_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self._tokens = tokens
        self._renewal = KeyRenewal(tokens, account or url)
        self._clock = clock
        self._on_frame = on_frame
        self.decoder = RealtimeDecoder(account)
        self._on_state = on_state
        self._on_registered = on_registered
        self._on_refused = on_refused
        self._max = max_registrations
        self._backoff = backoff_s
        self._budget = reconnects_per_hour
        self._silence = silence_s
        self._idle_silence = silence_s if idle_silence_s is None else idle_silence_s
        self._identify = identify
        self._ack_s, self.on_confirmed = ack_timeout_s, on_confirmed
        self._awaiting: dict[Registration, tuple[int, float]] = {}  # sent -> due (clock, wall)
        # identified: KIS answered a message of the current connection that carried the
        # approval key (the session is the app key's). confirmed: see on_confirmed.
        self.identified = self.confirmed = False
        self._watch: asyncio.Future[None] | None = None  # the connection's _watch_answers
        # A digest of the approval key the current connection last presented (never the key).
        self.presented: bytes | None = None
        self.wanted: set[Registration] = set()
        # The order registrations are re-sent in after a reconnect (most important first,
        # in case the new session takes fewer); the owner may set it. Default: by key.
        self.priority: Callable[[Registration], Any] = lambda r: (r.tr_id, r.tr_key)
        self.registered: set[Registration] = set()
        # Sent on this connection and not released since, acknowledged or not: what the
        # server may hold (a release must follow one still on its way, or the server counts
        # it against the 41 before the next registration arrives).
        self._sent: set[Registration] = set()
        # Released on this connection and not yet confirmed. KIS confirms a release after
        # the registration's last frame, so an owner that stops reads on until this empties.
        self._releasing: set[Registration] = set()
        self.refused: dict[Registration, str] = {}
        self._socket: ClientConnection | None = None
        self._reconnects: deque[int] = deque()
        self._restarting = False  # the current connection is being closed on purpose
        self.frames = 0
        self.dropped = 0  # frames that could not be parsed (logged and skipped)
        self.reconnects = 0

    def __repr__(self) -> str:
        held = f"wanted={len(self.wanted)} registered={len(self.registered)}"
        return f"<KisStream {self.url} {held} frames={self.frames} reconnects={self.reconnects}>"

    async def subscribe(self, tr_id: str, tr_key: str) -> None:
        """Want a registration; it is sent now if connected and again after every reconnect.

        Raises
        ------
        SubscriptionError
            The session already wants ``max_registrations`` pairs.
        """
        registration = Registration(tr_id, tr_key)
        if registration in self.wanted:
            return
        if len(self.wanted) >= self._max:
            raise SubscriptionError(f"{self._max} registrations held: cannot add {tr_id}/{tr_key}")
        self.wanted.add(registration)
        self.refused.pop(registration, None)
        await self._send_registration(registration, register=True)

    async def unsubscribe(self, tr_id: str, tr_key: str) -> None:
        """Stop wanting a registration and release it on the server."""
        registration = Registration(tr_id, tr_key)
        self.wanted.discard(registration)
        if registration in self.registered or registration in self._sent:
            self._releasing.add(registration)
            if not await self._send_registration(registration, register=False):
                self._releasing.discard(registration)  # no connection: nothing will follow
        self.registered.discard(registration)

    @property
    def settled(self) -> bool:
        """Every release sent on this connection is confirmed (or the connection is gone)."""
        return not self._releasing

    async def restart(self) -> None:
        """Close the session on purpose (e.g. on a new approval key).

        It reconnects at once, re-registering everything it wants, without backoff and
        without spending reconnect budget.
        """
        socket = self._socket
        if socket is not None:
            self._restarting = True
            await socket.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the session up until ``stop``; raise `BudgetSpent` when the budget is spent.

        The wanted registrations outlive the call: ``run`` again resumes the session.
        """
        failures = 0
        while not stop.is_set():
            self._on_state("connecting", self.url)
            try:
                if not await _wait(stop, self._renewal.renew()):  # a refused key: a new one
                    break  # stopped
                async with connect(
                    self.url, ping_interval=None, open_timeout=10, close_timeout=_CLOSE_TIMEOUT_S
                ) as socket:
                    self._socket = socket
                    self._forget()
                    self.presented = None
                    self._on_state("connected", self.url)
                    if not self.wanted and not self._identify:
                        self._confirm()  # nothing to confirm: up, as before any answer
                    self._watch = asyncio.ensure_future(self._watch_answers(socket))
                    for registration in sorted(self.wanted, key=self.priority):
                        # One released while an earlier one was being sent is not sent again.
                        if registration in self.wanted:
                            await self._send_registration(registration, register=True)
                    if self._identify and not self.wanted:  # pre-connected: say whose it is
                        await self._send_registration(IDENTIFY, register=False)
                    failures = 0 if await self._read(socket, stop) else failures
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._on_state("disconnected", type(exc).__name__)
            except KisError as exc:
                # The approval key for a registration could not be had: a garbled answer or
                # a transient failure is worth a new session (within the budget); a refusal
                # of the credentials is not.
                if not (exc.retryable or isinstance(exc, KisProtocolError)):
                    raise
                self._on_state("disconnected", f"approval key: {type(exc).__name__}")
            finally:
                self._socket = None
                self._renewal.ended(self.identified)
                self._forget()
            if stop.is_set():
                break
            if self._restarting:
                self._restarting = False
                continue
            self._spend_budget()
            pause = self._backoff[min(failures, len(self._backoff) - 1)]
            failures += 1
            pause = random.uniform(pause / 2, pause)
            log.info("stream %s: reconnecting in %.1fs", self.url, pause)
            await _wait(stop, self._clock.sleep(pause))
        self._on_state("stopped", "")

    # ------------------------------------------------------------------ internals

    def _forget(self) -> None:  # what a connection held, at its start and its end
        self.registered.clear()
        self._sent.clear()
        self._releasing.clear()
        self._awaiting.clear()
        self._close_reason = ""  # why the stream itself closed the connection
        self.identified = self.confirmed = False
        if self._watch is not None:
            self._watch.cancel()

    async def _silence_timer(self) -> None:
        """The silence limit in clock time, and never less than `MIN_SILENCE_WALL_S` wall.

        The server keeps the session alive in its own (clock) time, but an event loop that
        stalls on a busy machine is not a dead server: under a fast simulated clock, 90
        simulated seconds are under a wall second. With nothing wanted the idle limit holds.
        """
        started = time.monotonic()
        await self._clock.sleep(self._silence if self.wanted else self._idle_silence)
        await asyncio.sleep(max(0.0, MIN_SILENCE_WALL_S - (time.monotonic() - started)))

    @property
    def budget(self) -> int:
        """Reconnects allowed within an hour."""
        return self._budget

    def reconnects_in_hour(self) -> int:
        """Reconnects spent from the budget within the last hour."""
        now = self._clock.now_ns()
        while self._reconnects and now - self._reconnects[0] > _HOUR_NS:
            self._reconnects.popleft()
        return len(self._reconnects)

    def _spend_budget(self) -> None:
        if self.reconnects_in_hour() >= self._budget:
            # The oldest reconnect of the hour ages out then, and with it one reconnect's room.
            reopens = self._reconnects[0] + _HOUR_NS + 1 if self._reconnects else 0
            raise BudgetSpent(
                f"{self._budget} reconnects within an hour: reconnect budget spent", reopens
            )
        self._reconnects.append(self._clock.now_ns())
        self.reconnects += 1

    async def _read(self, socket: ClientConnection, stop: asyncio.Event) -> bool:
        """Read until the connection ends; True if it carried data (the backoff resets)."""
        got_data = False
        while not stop.is_set():
            if self._watch is not None and self._watch.done() and not self._watch.cancelled():
                self._watch.result()  # the answer watch failed: its error is the session's
            try:
                message = await _wait(stop, socket.recv(), self._silence_timer())
            except TimeoutError:
                limit = self._silence if self.wanted else self._idle_silence
                self._on_state("disconnected", f"silent for {limit:.0f}s")
                return got_data
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else "no frame"
                self._on_state("disconnected", self._close_reason or f"closed: {code}")
                return got_data
            if message is None:
                return got_data
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            received = self._clock.now_ns()
            try:
                if is_data_frame(text):
                    self.frames += 1
                    got_data = True
                    self._on_frame(self.decoder.decode(text, received), received)
                    self._confirm()
                else:
                    await self._handle_control(socket, text, parse_control(text))
            except KisProtocolError as exc:
                self.dropped += 1
                log.warning("stream %s: dropped a frame: %s", self.url, exc)
        return got_data

    async def _handle_control(
        self, socket: ClientConnection, text: str, control: ControlMessage
    ) -> None:
        if control.is_pingpong:
            await socket.send(text)
            return
        registration = Registration(control.tr_id, control.tr_key)
        self._awaiting.pop(registration, None)  # answered (KIS's "(null)" matches nothing)
        if control.msg_cd.startswith("OPSP") and control.msg_cd not in SESSION_REFUSALS:
            self.identified = True  # KIS took our key, even refusing the symbol (OPSP8992)
            self._confirm()
        if control.msg_cd in ("OPSP0000", "OPSP0002"):  # registered (0002: already was)
            if registration not in self.wanted:
                # Unwanted since it was sent: KIS holds what nobody wants, which would stream
                # beside the account the symbol moved to (each trade twice) and fill a
                # registration this session counts free (OPSP0008). Released, unless its
                # release is already on its way.
                if registration in self._sent:
                    await self._send_registration(registration, register=False)
                return
            self.registered.add(registration)
            self._on_registered(registration)
        elif control.msg_cd in ("OPSP0001", "OPSP0003"):  # released, or was not there
            self.registered.discard(registration)
            self._releasing.discard(registration)
        elif control.msg_cd in SESSION_REFUSALS:  # the key or the session, not the symbol
            self._renewal.refused(self.presented, control.msg_cd)  # a key refusal: renewed
            self._on_state("refused", f"{control.msg_cd} {control.msg1}"[:200])
            await socket.close()
        else:
            log.warning(
                "stream %s: %s %s for %s", self.url, control.msg_cd, control.msg1, registration
            )
            self._releasing.discard(registration)  # a refused release: nothing to wait for
            if registration in self.wanted:
                self.refused[registration] = control.msg_cd
                self.wanted.discard(registration)
                self.registered.discard(registration)
                self._sent.discard(registration)
                self._on_refused(registration, control.msg_cd, control.msg1)

    def _confirm(self) -> None:
        if not self.confirmed:
            self.confirmed = True
            self.on_confirmed()

    async def _watch_answers(self, socket: ClientConnection) -> None:
        """Refuse (`NOACK`, as if KIS said so) and release what is unanswered past its due."""
        while True:
            if not self._awaiting:
                await self._clock.sleep(self._ack_s)  # nothing to wait for: look again later
                continue
            clock_due, wall_due = min(self._awaiting.values())
            await self._clock.sleep((clock_due - self._clock.now_ns()) / _NS)
            await asyncio.sleep(max(0.0, wall_due - time.monotonic()))
            now, wall = self._clock.now_ns(), time.monotonic()
            due = [(r, d) for r, d in self._awaiting.items() if d[0] <= now and d[1] <= wall]
            reason = f"no answer within {self._ack_s:.0f}s"
            if due and not self.confirmed:  # KIS confirmed nothing: the session is at fault,
                self._close_reason = reason  # so a new one (with backoff, within the budget)
                await socket.close()
                return
            for registration, deadline in due:
                if self._awaiting.get(registration) != deadline:
                    continue  # answered (or sent again) meanwhile
                wanted = registration in self.wanted
                no = ControlMessage(registration.tr_id, registration.tr_key, "9", NOACK, reason)
                await self._handle_control(socket, "", no)  # logged, refused if wanted
                if wanted:  # and released, in case KIS holds it
                    await self._send_registration(registration, register=False)

    async def _send_registration(self, registration: Registration, *, register: bool) -> bool:
        """Send a registration or its release on this connection; False if there is none."""
        socket = self._socket
        if socket is None:
            return False
        key = await self._tokens.approval_key()
        self.presented = key_digest(key.reveal())
        message = {
            "header": {
                "approval_key": key.reveal(),
                "custtype": "P",
                "tr_type": "1" if register else "2",
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": registration.tr_id, "tr_key": registration.tr_key}},
        }
        if socket is not self._socket:  # reconnected meanwhile: the new session re-sends
            return False
        if register:
            self._sent.add(registration)
        else:
            self._sent.discard(registration)
        due = self._clock.now_ns() + int(self._ack_s * _NS)
        self._awaiting[registration] = (due, time.monotonic() + MIN_SILENCE_WALL_S)
        # On a dropped connection the reader reconnects; the registration is still wanted.
        with contextlib.suppress(WebSocketException):
            await socket.send(json.dumps(message))
        return True


async def _wait(
    stop: asyncio.Event, work: Awaitable[_T], limit: Awaitable[None] | None = None
) -> _T | None:
    """The result of ``work``, or None if ``stop`` is set first.

    Raises TimeoutError if ``limit`` (a Clock sleep, so simulated time counts) ends first.
    The losers are cancelled.
    """
    task = asyncio.ensure_future(work)
    others: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if limit is not None:
        others.append(asyncio.ensure_future(limit))
    try:
        done, _ = await asyncio.wait({task, *others}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for other in others:
            other.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if stop.is_set():
        return None
    raise TimeoutError
