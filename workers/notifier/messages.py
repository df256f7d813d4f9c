"""From alerts to messages: grouping, repeat suppression, reminders, resolutions (no I/O).

Alerts of one *condition at one severity* (same code, severity and subject) are held for
``group_s`` after the first and then go out as one message with their count; the next
message of that kind waits until ``repeat_s`` after the previous one, counting what came
meanwhile. So 50 identical warnings are one message, and a condition that fires every
minute is one message every ``repeat_s``. A resolution goes out once its condition holds
no alert back (at once, usually), right after that alert's message; one that an alert of
its condition followed is told in that alert's message ("resolved 2 times meanwhile"), so
a flapping condition is two messages per ``repeat_s``, not two a flap. A critical alert
stays *open* until it is resolved or acknowledged, and while it is, a reminder goes out
every ``remind_s``.

Times are wall seconds (`time.monotonic` in the daemon), passed in, so every rule here is a
pure function of the calls made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bus.events import Severity
from observer.alerts import Notice
from observer.phases import KST

__all__ = ["Grouper", "Message", "ids_in"]

_NS = 1_000_000_000

Key = tuple[str, str, str, frozenset[str] | None]  # code, severity, subject, targets


@dataclass(frozen=True, slots=True)
class Message:
    """One message for the targets that take it (``targets``: only these, when set)."""

    kind: Literal["alert", "reminder", "resolved"]
    code: str
    severity: Severity
    subject: str
    alerts: tuple[str, ...]  # the ids of every alert (or resolution) it stands for
    title: str
    body: str
    targets: frozenset[str] | None = None

    @property
    def notify_severity(self) -> str:
        """How a channel should show it: the alerts' severity, or "ok" for a resolution."""
        return "ok" if self.kind == "resolved" else self.severity


@dataclass(slots=True)
class _Open:
    """A critical condition still open: its unacknowledged alerts and the next reminder."""

    ids: list[str]
    since_ns: int
    message: str
    next_at: float


@dataclass(slots=True)
class Grouper:
    """Turns notices into due messages (see the module docstring)."""

    group_s: float
    repeat_s: float
    remind_s: float
    _pending: dict[Key, list[Notice]] = field(default_factory=dict)
    _due_at: dict[Key, float] = field(default_factory=dict)
    _last_sent: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _superseded: dict[Key, list[Notice]] = field(default_factory=dict)  # resolutions
    _resolutions: dict[tuple[str, str, frozenset[str] | None], list[Notice]] = field(
        default_factory=dict
    )
    _open: dict[tuple[str, str], _Open] = field(default_factory=dict)

    @property
    def held(self) -> int:
        """Alerts waiting for their message."""
        return sum(len(notices) for notices in self._pending.values())

    @property
    def open_critical(self) -> int:
        """Critical conditions open (reminded about)."""
        return len(self._open)

    def add(self, notice: Notice, now: float, targets: frozenset[str] | None = None) -> None:
        """Take an alert or a resolution; ``targets`` limits where it goes (a resend)."""
        code, subject = notice.condition
        if notice.kind == "resolved":
            self._resolutions.setdefault((code, subject, targets), []).append(notice)
            self._open.pop(notice.condition, None)
            return
        key = (code, notice.severity, subject, targets)
        self._pending.setdefault(key, []).append(notice)
        earlier = self._resolutions.pop((code, subject, targets), [])
        self._superseded.setdefault(key, []).extend(earlier)
        if key not in self._due_at:
            last = self._last_sent.get(key[:3])
            earliest = now + self.group_s
            self._due_at[key] = earliest if last is None else max(earliest, last + self.repeat_s)
        if notice.severity == "critical":
            self.track_open(notice, now)

    def track_open(self, notice: Notice, now: float) -> None:
        """Remind about a critical alert while it is open (one already sent: at start-up)."""
        held = self._open.get(notice.condition)
        if held is None:
            self._open[notice.condition] = _Open(
                [notice.id], notice.produced_ns, notice.message, now + self.remind_s
            )
        elif notice.id not in held.ids:
            held.ids.append(notice.id)
            held.message = notice.message

    def acked(self, alert: str) -> None:
        """``alert`` is no longer open (acknowledged, or resolved as the database says).

        A condition with nothing unacknowledged rests: no more reminders.
        """
        for condition, held in list(self._open.items()):
            if alert in held.ids:
                held.ids.remove(alert)
                if not held.ids:
                    del self._open[condition]

    def due(self, now: float) -> list[Message]:
        """The messages due at ``now``, in order; each notice is in exactly one."""
        messages = []
        for key, at in sorted(self._due_at.items(), key=lambda item: item[1]):
            if at > now:
                continue
            del self._due_at[key]
            notices = self._pending.pop(key)
            self._last_sent[key[:3]] = now
            messages.append(_alert_message(notices, self._superseded.pop(key, []), key[3]))
            held = self._open.get((key[0], key[2]))
            if held is not None and key[1] == "critical":
                held.next_at = now + self.remind_s
        holding = {(key[0], key[2], key[3]) for key in self._pending}
        for where, notices in list(self._resolutions.items()):
            if where not in holding:
                del self._resolutions[where]
                messages.append(_resolution_message(notices, where[2]))
        for (code, subject), held in self._open.items():
            if held.next_at <= now:
                held.next_at = now + self.remind_s
                messages.append(_reminder(code, subject, held))
        return messages


def _about(code: str, subject: str) -> str:
    return f"{code} ({subject})" if subject else code


def _kst(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, KST).strftime("%Y-%m-%d %H:%M:%S KST")


def _alert_message(
    notices: list[Notice], resolved: list[Notice], targets: frozenset[str] | None
) -> Message:
    last = notices[-1]
    about = _about(last.code, last.subject)
    if len(notices) == 1:
        title = f"[{last.severity.upper()}] {about}"
        body = f"{last.message}\n\n{_kst(last.produced_ns)}, alert {last.id}"
    else:
        title = f"[{last.severity.upper()}] {about} x{len(notices)}"
        body = (
            f"{len(notices)} alerts {_kst(notices[0].produced_ns)} to "
            f"{_kst(last.produced_ns)}; the latest: {last.message}\n\n"
            f"alerts {notices[0].id} ... {last.id}"
        )
    if resolved:
        body += f"\n(resolved {len(resolved)} times meanwhile, and raised again)"
    return Message(
        "alert",
        last.code,
        last.severity,
        last.subject,
        tuple(n.id for n in [*notices, *resolved]),
        title,
        body,
        targets,
    )


def _resolution_message(notices: list[Notice], targets: frozenset[str] | None) -> Message:
    last = notices[-1]
    return Message(
        "resolved",
        last.code,
        last.severity,
        last.subject,
        tuple(n.id for n in notices),
        f"[RESOLVED] {_about(last.code, last.subject)}",
        f"{last.message}\n\n{_kst(last.produced_ns)}",
        targets,
    )


def _reminder(code: str, subject: str, held: _Open) -> Message:
    about = _about(code, subject)
    return Message(
        "reminder",
        code,
        "critical",
        subject,
        tuple(held.ids),
        f"[CRITICAL, STILL OPEN] {about}",
        f"{held.message}\n\nopen since {_kst(held.since_ns)}; "
        f"acknowledge with: observer alerts ack {' '.join(held.ids)}",
    )


def ids_in(messages: Iterable[Message]) -> list[str]:
    """Every alert id the messages stand for (for tests and counters)."""
    return [each for message in messages for each in message.alerts]
