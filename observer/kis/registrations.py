"""One WebSocket session's registrations: what its owner wants, what its connection owes KIS.

Bookkeeping only, no I/O (`observer.kis.stream.KisStream` sends and reads). A message, with the
approval key in its header, registers or releases one feed (`observer.kis.feeds.Feed`: KIS's
(tr_id, tr_key) pair); a session holds at most 41 (trade and book count separately), and each
new connection owes every wanted one again. What the owner wants changes at once; what the
connection cannot send yet stays owed (`Registrations.owed`), releases first, so that the
server never counts more than it holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from observer.errors import KisError
from observer.kis.feeds import Feed, tr_id_of

__all__ = ["IDENTIFY", "MAX_REGISTRATIONS", "Registrations", "SubscriptionError", "message"]

MAX_REGISTRATIONS = 41
# A registration whose release KIS confirmed still holds for this long: KIS's material does
# not say no frame of it follows the confirmation, and one that does is a trade asked for.
RELEASE_GRACE_S = 10.0

# What a pre-connected session releases to present its approval key: a registration it does
# not hold, so KIS answers OPSP0003 (UNSUBSCRIBE ERROR, not found) and registers nothing.
IDENTIFY = Feed("trades", "KRX", "005930")


def message(feed: Feed, approval_key: str, *, register: bool) -> str:
    """The text that registers ``feed`` (or, not ``register``, releases it) with the key.

    It holds the approval key: it is sent, never logged or kept.
    """
    header = {
        "approval_key": approval_key,
        "custtype": "P",
        "tr_type": "1" if register else "2",
        "content-type": "utf-8",
    }
    body = {"input": {"tr_id": tr_id_of(feed), "tr_key": feed.symbol}}
    return json.dumps({"header": header, "body": body})


class SubscriptionError(KisError):
    """A registration the session cannot hold (the 41 limit, or refused by KIS)."""


class Registrations:
    """The registrations of one session: wanted across connections, held and owed on one."""

    def __init__(self, limit: int = MAX_REGISTRATIONS) -> None:
        self.limit = limit
        self.wanted: set[Feed] = set()
        self.refused: dict[Feed, str] = {}  # refused by KIS -> its code
        # The current connection's, emptied by `forget` at its start and its end:
        self.registered: set[Feed] = set()  # acknowledged by KIS
        # Sent and not released since, acknowledged or not: what the server may hold (a
        # release must follow one still on its way, or the server counts it against the 41
        # before the next registration arrives).
        self.sent: set[Feed] = set()
        # Released and not yet confirmed. KIS confirms a release after the registration's
        # last frame, so an owner that stops reads on until this empties.
        self.releasing: set[Feed] = set()
        self.unreleased: set[Feed] = set()  # releases owed, not sent yet
        self.released: dict[Feed, float] = {}  # confirmed -> until (monotonic)
        self.awaiting: dict[Feed, tuple[int, float]] = {}  # sent -> due (clock, wall)

    def want(self, registration: Feed) -> bool:
        """Want ``registration``; False if it was wanted already.

        Raises
        ------
        SubscriptionError
            ``limit`` pairs are wanted already.
        """
        if registration in self.wanted:
            return False
        self.refused.pop(registration, None)  # asked for again: no longer a refusal to handle
        if len(self.wanted) >= self.limit:
            raise SubscriptionError(f"{self.limit} registrations held: cannot add {registration}")
        self.wanted.add(registration)
        if registration in self.unreleased:  # its release never went out: the server holds it,
            self.unreleased.discard(registration)  # and a registration sent again is answered
            self.releasing.discard(registration)  # OPSP0002, which makes it registered again
            self.sent.discard(registration)
        return True

    def unwant(self, registration: Feed) -> bool:
        """Stop wanting ``registration``; True if the server may hold it: its release is owed."""
        self.wanted.discard(registration)
        held = registration in self.registered or registration in self.sent
        self.registered.discard(registration)
        if held:
            self.releasing.add(registration)
            self.unreleased.add(registration)
        return held

    def owed(self, priority: Callable[[Feed], Any]) -> list[tuple[Feed, bool]]:
        """What the connection owes KIS, as (registration, register): releases first."""
        releases = [(r, False) for r in sorted(self.unreleased, key=priority)]
        return releases + [(r, True) for r in sorted(self.wanted - self.sent, key=priority)]

    def owes(self, registration: Feed, register: bool) -> bool:
        """Whether ``registration`` (``register``) or its release is still owed."""
        if register:
            return registration in self.wanted and registration not in self.sent
        return registration in self.unreleased

    def on_sent(self, registration: Feed, register: bool, due: tuple[int, float]) -> None:
        """``registration`` or its release went out; KIS's answer is due by ``due``."""
        if register:
            self.sent.add(registration)
        else:
            self.sent.discard(registration)
            self.unreleased.discard(registration)
        self.awaiting[registration] = due

    def holds(self, registration: Feed) -> bool:
        """Whether the owner asked for ``registration``: its data may come, and only its.

        Wanted, or sent on the current connection and not yet confirmed released (KIS
        confirms a release after the registration's last frame), or confirmed released
        less than `RELEASE_GRACE_S` ago.
        """
        r = registration
        if r in self.wanted or r in self.sent or r in self.registered or r in self.releasing:
            return True
        return self.released.get(r, 0.0) > time.monotonic()  # `RELEASE_GRACE_S`

    def confirm_release(self, registration: Feed) -> None:
        """KIS confirmed the release: its frames still count for `RELEASE_GRACE_S`."""
        self.releasing.discard(registration)
        now = time.monotonic()
        if len(self.released) > 4 * self.limit:  # the expired ones go, a few at a time
            self.released = {r: until for r, until in self.released.items() if until > now}
        self.released[registration] = now + RELEASE_GRACE_S

    def drop_release(self, registration: Feed) -> None:
        """A release that will not go out (no connection): nothing to wait for."""
        self.unreleased.discard(registration)
        self.releasing.discard(registration)

    def refuse(self, registration: Feed, code: str) -> bool:
        """KIS refused ``registration`` (or its release); True if it was wanted (no longer)."""
        self.releasing.discard(registration)  # a refused release: nothing to wait for
        if registration not in self.wanted:
            return False
        self.refused[registration] = code
        self.wanted.discard(registration)
        self.registered.discard(registration)
        self.sent.discard(registration)
        return True

    def forget(self) -> None:
        """A connection starts or ends: it holds and owes nothing (the wanted stay wanted)."""
        self.registered.clear()
        self.sent.clear()
        self.releasing.clear()
        self.unreleased.clear()
        self.released.clear()
        self.awaiting.clear()
