"""One KIS WebSocket session per app key: registrations, control answers, reconnects.

A `KisStream` keeps what its owner wants registered across reconnects (KIS's registrations
are per connection: at most 41 a session, one session per app key), answers KIS's PINGPONG
(`observer.kis.keepalive`: its interval sets the silence limit),
and reconnects with backoff within a budget per hour. Nothing waits for an approval key but
the session: what cannot be sent yet is owed (`observer.kis.registrations`). A registration
KIS refuses stops being wanted; `SESSION_REFUSALS` end the session. Its owner configures it
and hears it through `observer.kis.stream_owner`; frames it cannot read: `observer.kis.frames`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from observer.calendar.clock import Clock
from observer.calendar.venues import SessionOf, no_session
from observer.errors import KisError, KisLayoutUnknown, KisProtocolError
from observer.kis.approval import KeyRenewal
from observer.kis.auth import TokenManager
from observer.kis.credentials import Secret
from observer.kis.feeds import Feed, feed_of, tr_id_of
from observer.kis.frames import HARD_MAX_BYTES, MALFORMED, DroppedFrame, FrameGuard, FrameLimits
from observer.kis.journal import Journal
from observer.kis.keepalive import PingInterval, answer_pingpong, silence_limit_s
from observer.kis.parse import SESSION_REFUSALS, ControlMessage, is_data_frame, parse_control
from observer.kis.realtime import KeyedRecord, RealtimeDecoder, RealtimeEvents
from observer.kis.reconnects import BudgetSpent, ReconnectBudget
from observer.kis.registrations import (
    IDENTIFY,
    MAX_REGISTRATIONS,
    Registrations,
    SubscriptionError,
    message,
)
from observer.kis.stream_owner import (
    NOACK,
    PERSISTENT_REFUSALS,
    StreamListener,
    StreamSettings,
    StreamState,
)
from observer.kis.token_cache import key_digest
from observer.kis.waits import QuietGuard, wait_unless

# The stream's API in one place: its owner's part (`observer.kis.stream_owner`), the feeds it
# registers and the frames it hands on.
__all__ = [
    "IDENTIFY",
    "MAX_REGISTRATIONS",
    "NOACK",
    "PERSISTENT_REFUSALS",
    "BudgetSpent",
    "Feed",
    "KeyedRecord",
    "KisStream",
    "RealtimeEvents",
    "StreamListener",
    "StreamSettings",
    "StreamState",
    "SubscriptionError",
    "message",
]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
# A stop waits at most this long for the server's close frame (websockets' default is 10 s);
# a new session on the same app key is refused while the old one lingers (OPSP8996).
_CLOSE_TIMEOUT_S = 2.0
MIN_SILENCE_WALL_S = 5.0  # a wall-time floor under the silence and answer deadlines
# A reader that read a data frame this recently (wall seconds) is busy, maybe behind.
_BUSY_WALL_S = 1.0
# An answer awaited past its deadline while the reader is behind waits at most this many
# deadlines in all before `NOACK`.
_MAX_BEHIND_DEADLINES = 30
_SETTINGS = StreamSettings()
# KIS's answers that register or release (OPSP0002: already registered; 0003: not there).
_ANSWERED = frozenset({"OPSP0000", "OPSP0001", "OPSP0002", "OPSP0003"})


class KisStream:
    """A self-healing WebSocket session to ``url`` for ``account`` (every event carries it).

    ``tokens`` supplies the approval key, ``clock`` paces backoff, silence and the budget;
    ``listener`` hears everything the session reports (`StreamListener`). Every frame
    received goes to ``journal`` first, before its owner hears of it.
    """

    def __init__(
        self,
        url: str,
        tokens: TokenManager,
        clock: Clock,
        listener: StreamListener,
        settings: StreamSettings = _SETTINGS,
        *,
        account: str = "",
        session_of: SessionOf | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.url = url
        self._journal = journal
        self.settings = settings
        self._tokens = tokens
        self._renewal = KeyRenewal(tokens, account or url)
        self._clock = clock
        self._listener = listener
        # Each record's session on its venue: "" for all without a venues table (a test's).
        self.decoder = RealtimeDecoder(account, session_of or no_session)
        self._budget = ReconnectBudget(clock, settings.reconnects_per_hour)
        # identified: KIS answered a message of the current connection that carried the
        # approval key (the session is the app key's). confirmed: `StreamListener.on_confirmed`.
        self.identified = self.confirmed = False
        self._watch: asyncio.Future[None] | None = None  # the connection's _watch_answers
        self._sender: asyncio.Future[None] | None = None  # the connection's _send_owed
        # A digest of the approval key the current connection last presented (never the key).
        self.presented: bytes | None = None
        self._regs = Registrations(settings.max_registrations)
        # The owner's views of it: the same sets, never rebound (`Registrations.forget`).
        self.wanted, self.registered, self.refused = (
            self._regs.wanted,
            self._regs.registered,
            self._regs.refused,
        )
        self._socket: ClientConnection | None = None
        self._restarting = False  # the current connection is being closed on purpose
        self.frames = 0
        # the frames it drops
        limits = FrameLimits(settings.max_frame_bytes, settings.bad_frames_per_minute)
        self.framing = FrameGuard(url, limits, listener, clock.now_ns())
        self.reconnects = 0
        self.pings = PingInterval()  # KIS's keep-alive pace, measured across connections
        self.silences = 0  # connections ended by silence since the last data frame
        # How far the reader has read on this connection: the newest trade's exchange stamp,
        # and when (wall) it last read a data frame (`_behind`).
        self._read_upto_ns = 0
        self._data_wall = 0.0
        self._sent_ns: dict[Feed, int] = {}  # when each was last sent (clock)

    def __repr__(self) -> str:
        held = f"wanted={len(self.wanted)} registered={len(self.registered)}"
        return f"<KisStream {self.url} {held} frames={self.frames} reconnects={self.reconnects}>"

    async def subscribe(self, feed: Feed) -> None:
        """Want ``feed``: wanted at once, sent as `_send` says, again at every reconnect.

        Never waits for an approval key (an owner's other accounts must not wait on this one).

        Raises
        ------
        SubscriptionError
            The session already wants ``max_registrations`` feeds.
        ValueError
            KIS has no such feed (`observer.kis.feeds.tr_id_of`).
        """
        tr_id_of(feed)  # a feed KIS has none of is refused here, not at its sending
        if self._regs.want(feed):
            await self._send(feed, register=True)

    async def unsubscribe(self, feed: Feed) -> None:
        """Stop wanting ``feed`` at once; its release is sent as `_send` says."""
        if self._regs.unwant(feed):
            await self._send(feed, register=False)

    def holds(self, feed: Feed) -> bool:
        """Whether the session asked for ``feed`` (`Registrations.holds`)."""
        return self._regs.holds(feed)

    @property
    def dropped(self) -> int:
        """Frames that could not be read (logged, skipped, handed on), since the start."""
        return self.framing.dropped

    @property
    def settled(self) -> bool:
        """Every release sent on this connection is confirmed (or the connection is gone)."""
        return not self._regs.releasing

    @property
    def unconfirmed(self) -> frozenset[Feed]:
        """The releases sent on this connection and not confirmed yet (`settled`: none)."""
        return frozenset(self._regs.releasing)

    async def restart(self) -> None:
        """Close the session on purpose (e.g. on a new approval key).

        It reconnects at once, re-registering everything it wants, without backoff or budget.
        """
        socket = self._socket
        if socket is not None:
            self._restarting = True
            await socket.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the session up until ``stop``; raise `BudgetSpent` when the budget is spent.

        The wanted registrations outlive the call: ``run`` again resumes the session. After
        a refusal of the approval key the next session renews it, once (`KeyRenewal`).
        """
        failures = 0
        while not stop.is_set():
            self._listener.on_state("connecting", self.url)
            try:
                if not await wait_unless(stop, self._renewal.renew()):  # a refused key: a new one
                    break  # stopped
                async with connect(
                    self.url,
                    ping_interval=None,
                    open_timeout=10,
                    close_timeout=_CLOSE_TIMEOUT_S,
                    max_size=HARD_MAX_BYTES,
                ) as socket:
                    self._socket = socket
                    self._forget()
                    self.pings.connected()
                    self.presented = None
                    self._listener.on_state("connected", self.url)
                    if not self.wanted and not self.settings.identify_idle:
                        self._confirm()  # nothing to confirm: up, as before any answer
                    self._watch = asyncio.ensure_future(self._watch_answers(socket))
                    # pre-connected: say whose it is
                    if self.settings.identify_idle and not self.wanted:
                        self._regs.unreleased.add(IDENTIFY)
                    # Everything wanted, re-sent once the key is had: the session waits for
                    # it here (its failure is the session's, below), before it reads.
                    self._sender = asyncio.ensure_future(self._send_owed(socket))
                    await wait_unless(stop, self._sender)
                    failures = 0 if await self._read(socket, stop) else failures
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._listener.on_state("disconnected", type(exc).__name__)
            except KisError as exc:
                # The approval key for a registration could not be had: a garbled answer or
                # a transient failure is worth a new session (within the budget); a refusal
                # of the credentials is not. The connection is gone either way (its gaps).
                self._listener.on_state("disconnected", f"approval key: {type(exc).__name__}")
                if not (exc.retryable or isinstance(exc, KisProtocolError)):
                    raise
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
            backoff = self.settings.backoff_s
            pause = backoff[min(failures, len(backoff) - 1)]
            failures += 1
            pause = random.uniform(pause / 2, pause)
            log.info("stream %s: reconnecting in %.1fs", self.url, pause)
            await wait_unless(stop, self._clock.sleep(pause))
        self._listener.on_state("stopped", "")

    # ------------------------------------------------------------------ internals

    def _forget(self) -> None:  # what a connection held, at its start and its end
        self._regs.forget()
        self._read_upto_ns, self._data_wall = 0, 0.0
        self._sent_ns.clear()
        self._close_reason = ""  # why the stream itself closed the connection
        self._failure: KisError | None = None  # why the sender closed it
        self._flooded = False  # a burst of bad frames closed it
        self.identified = self.confirmed = False
        for task in (self._watch, self._sender):
            if task is not None:
                task.cancel()
                if task.done() and not task.cancelled():
                    task.exception()  # seen: a failure the connection's end made moot

    def _silence_limit(self) -> float:
        """Clock seconds of quiet that end the connection (the idle limit if nothing is wanted).

        Each connection a silence ended, with no data frame since, doubles the limit up to
        the idle limit; a data frame restores ``silence_s``. The reconnect found KIS
        answering, so a session quiet again is likelier a quiet market (illiquid names in
        Nextrade's pre-market) than a stalled feed; and were KIS's PINGPONGs rarer than the
        limit (UNCONFIRMED: about 110 s was seen, against 90 s), a session recycled before
        its second one could never measure them (`silence_factor`) and would be recycled
        for as long as nothing traded, a disconnect gap per name each time.
        """
        settings = self.settings
        if not self.wanted:
            return settings.idle_silence_s
        ceiling = max(settings.silence_s, settings.idle_silence_s)
        return min(settings.silence_s * 2.0**self.silences, ceiling)

    def silence_limit_s(self) -> float:
        """The silence limit as it stands: the configured one, or longer (`silence_limit_s`)."""
        interval = self.pings.interval_s
        return silence_limit_s(self._silence_limit(), self.settings.silence_factor, interval)

    def _quiet_limits(self) -> tuple[float, float]:
        """The silence limit in clock time, and never less than `MIN_SILENCE_WALL_S` wall.

        The server keeps the session alive in its own (clock) time, but an event loop that
        stalls on a busy machine is not a dead server: under a fast simulated clock, 90
        simulated seconds are under a wall second. With nothing wanted the idle limit holds.
        Once a PINGPONG interval is measured (wall seconds), the quiet must also last
        ``silence_factor`` times it: a server that pings more rarely than the configured limit
        does not have its quiet sessions recycled between two pings.
        """
        wall = silence_limit_s(
            MIN_SILENCE_WALL_S, self.settings.silence_factor, self.pings.interval_s
        )
        return self._silence_limit(), wall

    @property
    def budget(self) -> int:
        """Reconnects allowed within an hour."""
        return self._budget.per_hour

    def reconnects_in_hour(self) -> int:
        """Reconnects spent from the budget within the last hour."""
        return self._budget.in_hour()

    def _spend_budget(self) -> None:
        self._budget.spend()  # raises BudgetSpent
        self.reconnects += 1

    async def _read(self, socket: ClientConnection, stop: asyncio.Event) -> bool:
        """Read until the connection ends; True: it carried data, and no burst ended it."""
        async with QuietGuard(self._clock, stop, self._quiet_limits) as guard:
            return await self._read_until(socket, stop, guard)

    async def _read_until(
        self, socket: ClientConnection, stop: asyncio.Event, guard: QuietGuard
    ) -> bool:
        got_data = False
        while not stop.is_set():
            self._raise_failure()
            try:  # bytes, text frames too: text that is not UTF-8 costs the frame alone
                message = await guard.next(lambda: socket.recv(decode=False))
            except TimeoutError:
                silent = f"silent for {self.silence_limit_s():.0f}s"
                self.silences += 1  # the next connection waits longer (`_silence_limit`)
                self._listener.on_state("disconnected", silent)
                return got_data
            except ConnectionClosed as exc:
                self._raise_failure()  # a helper that failed closed it: `run` reports it
                reason = self._close_reason or self.framing.closed(exc, self._clock.now_ns())
                self._listener.on_state("disconnected", reason)
                return got_data and not self._flooded
            if message is None:
                return got_data
            received = self._clock.now_ns()
            if self._journal is not None:
                self._journal.frame(self.decoder.account, message, received)
            text = self.framing.text(message, received)
            try:
                if isinstance(text, DroppedFrame):
                    await self._drop(socket, text)
                elif is_data_frame(text):
                    self.frames += 1
                    got_data = True
                    self.silences = 0
                    events = self.decoder.decode(text, received)
                    if events.ticks:
                        self._read_upto_ns = max(self._read_upto_ns, events.ticks[-1].exchange_ns)
                    self._data_wall = time.monotonic()
                    self._listener.on_frame(events, received)
                    self._confirm()
                    self.framing.read(received)
                else:
                    await self._handle_control(socket, text, parse_control(text))
            except KisLayoutUnknown as exc:  # a width no known layout has: refused whole
                await self._drop(socket, DroppedFrame.unknown(exc, message, received))
            except KisProtocolError as exc:  # refused whole by the decoder
                await self._drop(socket, DroppedFrame.of(MALFORMED, str(exc), message, received))
        return got_data

    async def _drop(self, socket: ClientConnection, dropped: DroppedFrame) -> None:
        """A frame dropped; the first of a burst closes the connection (`FrameGuard.drop`)."""
        if why := self.framing.drop(dropped):
            self._close_reason, self._flooded = why, True
            await socket.close()

    async def _handle_control(
        self, socket: ClientConnection, text: str, control: ControlMessage
    ) -> None:
        if control.is_pingpong:
            self.pings.ping()
            await answer_pingpong(socket, text, self.settings.pingpong_answer)
            return
        registration: Feed | None = None
        with contextlib.suppress(ValueError):  # an answer naming no feed: KIS's "(null)"
            registration = feed_of(control.tr_id, control.tr_key)
            self._regs.awaiting.pop(registration, None)  # answered
        if control.msg_cd.startswith("OPSP") and control.msg_cd not in SESSION_REFUSALS:
            self.identified = True  # KIS took our key, even refusing the symbol (OPSP8992)
            self._confirm()
        if control.msg_cd in SESSION_REFUSALS:  # the key or the session, not the symbol
            self._renewal.refused(self.presented, control.msg_cd)  # a key refusal: renewed
            self._listener.on_state("refused", f"{control.msg_cd} {control.msg1}"[:200])
            await socket.close()
            return
        if registration is None:  # nothing of ours to mark; a refusal is still said
            if control.msg_cd not in _ANSWERED:
                pair = f"{control.tr_id}/{control.tr_key}"
                log.warning("stream %s: %s %s for %s", self.url, control.msg_cd, control.msg1, pair)
            return
        if control.msg_cd in ("OPSP0000", "OPSP0002"):  # registered (0002: already was)
            if registration not in self.wanted:
                # Unwanted since it was sent: KIS holds what nobody wants, which would stream
                # beside the account the symbol moved to (each trade twice) and fill a
                # registration this session counts free (OPSP0008). Released, unless its
                # release is already on its way.
                if registration in self._regs.sent:
                    self._regs.unreleased.add(registration)
                    await self._send(registration, register=False)
                return
            self.registered.add(registration)
            self._listener.on_registered(registration)
        elif control.msg_cd in ("OPSP0001", "OPSP0003"):  # released, or was not there
            self.registered.discard(registration)
            self._regs.confirm_release(registration)
        else:
            log.warning(
                "stream %s: %s %s for %s", self.url, control.msg_cd, control.msg1, registration
            )
            if self._regs.refuse(registration, control.msg_cd):
                self._listener.on_refused(registration, control.msg_cd, control.msg1)

    def _confirm(self) -> None:
        if not self.confirmed:
            self.confirmed = True
            self._listener.on_confirmed()

    async def _watch_answers(self, socket: ClientConnection) -> None:
        """Refuse (`NOACK`, as if KIS said so) and release what is unanswered past its due."""
        awaiting = self._regs.awaiting
        while True:
            if not awaiting:
                # nothing to wait for: look again later
                await self._clock.sleep(self.settings.ack_timeout_s)
                continue
            clock_due, wall_due = min(awaiting.values())
            await self._clock.sleep((clock_due - self._clock.now_ns()) / _NS)
            await asyncio.sleep(max(0.0, wall_due - time.monotonic()))
            now, wall = self._clock.now_ns(), time.monotonic()
            due = [(r, d) for r, d in awaiting.items() if d[0] <= now and d[1] <= wall]
            reason = f"no answer within {self.settings.ack_timeout_s:.0f}s"
            if due and not self.confirmed:  # KIS confirmed nothing: the session is at fault,
                self._close_reason = reason  # so a new one (with backoff, within the budget)
                await socket.close()
                return
            for registration, deadline in due:
                if awaiting.get(registration) != deadline:
                    continue  # answered (or sent again) meanwhile
                if self._behind(registration, deadline[0]):
                    continue  # its answer may be unread in the socket: waits one more deadline
                wanted = registration in self.wanted
                tr_id = tr_id_of(registration)
                no = ControlMessage(tr_id, registration.symbol, "9", NOACK, reason)
                await self._handle_control(socket, "", no)  # logged, refused if wanted
                if wanted:  # and released, in case KIS holds it: its data until then is ours
                    self._regs.unreleased.add(registration)
                    self._regs.releasing.add(registration)
                    await self._send(registration, register=False)

    def _behind(self, registration: Feed, due_ns: int) -> bool:
        """Whether the reader is still reading what KIS sent before ``registration`` was sent.

        KIS answers a registration before the trades it sends after it: while the reader is
        busy (a data frame read within `_BUSY_WALL_S`) on trades stamped before the
        registration was sent, its answer may be unread in the socket (a starved process
        reads its feed minutes late). Then its deadline moves one ``ack_timeout_s`` on, up to
        `_MAX_BEHIND_DEADLINES` in all; a quiet reader, or one past the send, is not behind.
        """
        timeout_ns = int(self.settings.ack_timeout_s * _NS)
        sent_ns = self._sent_ns.get(registration, due_ns - timeout_ns)
        busy = time.monotonic() - self._data_wall < _BUSY_WALL_S
        behind = busy and 0 < self._read_upto_ns < sent_ns
        if not behind or due_ns - sent_ns >= _MAX_BEHIND_DEADLINES * timeout_ns:
            return False
        wall = time.monotonic() + MIN_SILENCE_WALL_S
        self._regs.awaiting[registration] = (due_ns + timeout_ns, wall)
        return True

    def _raise_failure(self) -> None:
        """A helper of the connection (answer watch, sender) failed: its error is the session's."""
        if self._failure is not None:
            raise self._failure
        for task in (self._watch, self._sender):
            if task is not None and task.done() and not task.cancelled():
                task.result()

    async def _send(self, registration: Feed, *, register: bool) -> None:
        """Send a registration or its release now, if connected with the key at hand.

        Never waits for the key: without one, or while the connection's sender is still at
        work (what it owes goes first: releases before registrations), the sender sends it.
        """
        socket = self._socket
        if socket is None:
            self._regs.drop_release(registration)  # the next connection owes no release
            return
        sender = self._sender
        if sender is not None and not sender.done():
            return  # it sends this too, after what it owes before (`Registrations.owed`)
        if sender is not None and not sender.cancelled() and sender.exception() is not None:
            return  # it failed: the connection ends on it, and the next one owes all again
        key = self._tokens.approval_key_now()
        if key is None:
            self._sender = asyncio.ensure_future(self._send_owed(socket))
        elif self._regs.owes(registration, register):
            await self._send_registration(socket, registration, register, key)

    async def _send_owed(self, socket: ClientConnection) -> None:
        """Send all the connection owes, as soon as the approval key is had (waiting for it).

        A failure to get the key closes the connection: `run` raises it (`_raise_failure`).
        """
        try:
            while socket is self._socket and (owed := self._regs.owed(self._listener.priority)):
                key = await self._tokens.approval_key()
                for registration, register in owed:
                    # What changed while an earlier one was being sent is not sent.
                    if socket is self._socket and self._regs.owes(registration, register):
                        await self._send_registration(socket, registration, register, key)
        except KisError as exc:
            # Said before the close wakes the reader, which raises it (reported by `run`):
            # the reader may run before this task has ended.
            self._failure = exc
            await socket.close()
            raise

    async def _send_registration(
        self, socket: ClientConnection, registration: Feed, register: bool, key: Secret
    ) -> None:
        """Send a registration or its release with ``key`` on ``socket``."""
        self.presented = key_digest(key.reveal())
        now = self._clock.now_ns()
        self._sent_ns[registration] = now
        due = now + int(self.settings.ack_timeout_s * _NS)
        self._regs.on_sent(registration, register, (due, time.monotonic() + MIN_SILENCE_WALL_S))
        # On a dropped connection the reader reconnects; the registration is still wanted.
        with contextlib.suppress(WebSocketException):
            await socket.send(message(registration, key.reveal(), register=register))
