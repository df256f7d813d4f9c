"""From alerts to messages: grouping, repeat suppression, reminders, resolutions (no I/O).

Alerts of one condition at one severity from one host are one message per ``group_s``, then
one per ``repeat_s`` with their count; a resolution ends only what `observer.alerts.states.ends`
lets it end; an open critical alert is reminded every ``remind_s`` (`Grouper`). `summarize`
turns a target's undeliverable messages into where each condition stands. Times are wall
seconds passed in, so every rule here is a pure function of the calls made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bus.events import Severity
from observer.alerts.states import SEVERITY_RANK, Notice, ends
from observer.calendar.phases import KST

__all__ = ["SUMMARY_CODE", "Grouper", "Message", "ids_in", "summarize"]

_NS = 1_000_000_000
SUMMARY_CODE = "notify_backlog"  # the code of a summary of several conditions
_PARTS_SHOWN = 20  # conditions a summary spells out; the rest are counted
_PART_BODY = 1000  # characters of each condition's latest message in a summary

Targets = frozenset[str] | None  # only these targets (a resend), or every one routed
Condition = tuple[str, str, str]  # code, subject, host
Key = tuple[str, str, str, str, Targets]  # code, severity, subject, host, targets


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
    targets: Targets = None
    host: str = ""  # the named host its alerts came from; empty for an unnamed one
    made_at: float = field(default_factory=time.monotonic)  # wall seconds: its age
    parts: tuple[Message, ...] = ()  # a summary's: the messages it stands for
    missed: int = 0  # a summary's: how many messages were not sent in its place

    @property
    def notify_severity(self) -> str:
        """How a channel should show it: the alerts' severity, or "ok" for a resolution."""
        return "ok" if self.kind == "resolved" else self.severity

    @property
    def condition(self) -> Condition:
        """What it is about: ``(code, subject, host)``."""
        return (self.code, self.subject, self.host)


@dataclass(slots=True)
class _Open:
    """A critical condition still open: its unacknowledged alerts and the next reminder."""

    notices: list[Notice]
    next_at: float


def _condition(notice: Notice) -> Condition:
    return (notice.code, notice.subject, notice.host)


def _overlap(one: Targets, other: Targets) -> bool:
    return one is None or other is None or bool(one & other)


@dataclass(slots=True)
class Grouper:
    """Turns notices into due messages.

    A *condition* is code, severity, subject and the named host of the source
    (`observer.cluster.hosts`). Its alerts are held for ``group_s`` after the first, then go
    out as one message with their count; the next message of that kind waits until
    ``repeat_s`` after the previous one: 50 identical warnings are one message. A resolution
    goes out once no alert it ends waits for its message to a target it goes to, right after
    that alert's message; one followed by an alert of its condition and host is told in that
    alert's message ("resolved 2 times meanwhile"), so a flapping condition is two messages per
    ``repeat_s``. A critical alert stays open until resolved or acknowledged, reminded every
    ``remind_s`` (one per condition and host). A message about a named host says which.
    """

    group_s: float
    repeat_s: float
    remind_s: float
    _pending: dict[Key, list[Notice]] = field(default_factory=dict)
    _due_at: dict[Key, float] = field(default_factory=dict)
    _last_sent: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    _superseded: dict[Key, list[Notice]] = field(default_factory=dict)  # resolutions
    # Resolutions waiting, by code, subject, host and targets.
    _resolutions: dict[tuple[str, str, str, Targets], list[Notice]] = field(default_factory=dict)
    _open: dict[Condition, _Open] = field(default_factory=dict)

    @property
    def held(self) -> int:
        """Alerts waiting for their message."""
        return sum(len(notices) for notices in self._pending.values())

    @property
    def open_critical(self) -> int:
        """Critical conditions open (reminded about), each host's apart."""
        return len(self._open)

    def add(self, notice: Notice, now: float, targets: Targets = None) -> None:
        """Take an alert or a resolution; ``targets`` limits where it goes (a resend)."""
        code, subject, host = _condition(notice)
        if notice.kind == "resolved":
            self._resolutions.setdefault((code, subject, host, targets), []).append(notice)
            self._end(lambda alert: ends(notice, alert))
            return
        key = (code, notice.severity, subject, host, targets)
        self._pending.setdefault(key, []).append(notice)
        earlier = self._resolutions.pop((code, subject, host, targets), [])
        self._superseded.setdefault(key, []).extend(earlier)
        if key not in self._due_at:
            last = self._last_sent.get(key[:4])
            earliest = now + self.group_s
            self._due_at[key] = earliest if last is None else max(earliest, last + self.repeat_s)
        if notice.severity == "critical":
            self.track_open(notice, now)

    def track_open(self, notice: Notice, now: float) -> None:
        """Remind about a critical alert while it is open (one already sent: at start-up)."""
        condition = _condition(notice)
        held = self._open.get(condition)
        if held is None:
            self._open[condition] = _Open([notice], now + self.remind_s)
        elif all(each.id != notice.id for each in held.notices):
            held.notices.append(notice)

    def acked(self, alert: str) -> None:
        """``alert`` is no longer open (acknowledged, or resolved as the database says).

        A condition with nothing unacknowledged rests: no more reminders.
        """
        self._end(lambda notice: notice.id == alert)

    def open_in_store(self, critical: Iterable[Notice], now: float) -> None:
        """The critical alerts the database holds open: remind about these, and no other.

        The stored state wins: an alert taken in before the database was read and not
        among them was acknowledged or resolved (an ack the feed dropped, or a resolution).
        """
        still = {}
        for notice in critical:
            still[notice.id] = notice
            self.track_open(notice, now)
        self._end(lambda notice: notice.id not in still)

    def _end(self, ended: Callable[[Notice], bool]) -> None:
        for condition, held in list(self._open.items()):
            held.notices = [notice for notice in held.notices if not ended(notice)]
            if not held.notices:
                del self._open[condition]

    def due(self, now: float) -> list[Message]:
        """The messages due at ``now``, in order; each notice is in exactly one."""
        messages = []
        for key, at in sorted(self._due_at.items(), key=lambda item: item[1]):
            if at > now:
                continue
            del self._due_at[key]
            notices = self._pending.pop(key)
            self._last_sent[key[:4]] = now
            messages.append(_alert_message(notices, self._superseded.pop(key, []), key[4], now))
            held = self._open.get((key[0], key[2], key[3]))
            if held is not None and key[1] == "critical":
                held.next_at = now + self.remind_s
        for where, notices in list(self._resolutions.items()):
            if not self._holds(where, notices):
                del self._resolutions[where]
                messages.append(_resolution_message(notices, where[3], now))
        for condition, held in self._open.items():
            if held.next_at <= now:
                held.next_at = now + self.remind_s
                messages.append(_reminder(condition, held, now))
        return messages

    def _holds(self, where: tuple[str, str, str, Targets], resolutions: list[Notice]) -> bool:
        """True while an alert these resolutions end waits for a target they go to."""
        code, subject, _host, targets = where
        return any(
            key[0] == code
            and key[2] == subject
            and _overlap(targets, key[4])
            and any(ends(resolution, alert) for alert in alerts for resolution in resolutions)
            for key, alerts in self._pending.items()
        )


def _about(code: str, subject: str, host: str) -> str:
    about = f"{code} ({subject})" if subject else code
    return f"{about} on {host}" if host else about


def _kst(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, KST).strftime("%Y-%m-%d %H:%M:%S KST")


def _alert_message(
    notices: list[Notice], resolved: list[Notice], targets: Targets, now: float
) -> Message:
    last = notices[-1]
    about = _about(last.code, last.subject, last.host)
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
        last.host,
        now,
    )


def _resolution_message(notices: list[Notice], targets: Targets, now: float) -> Message:
    last = notices[-1]
    return Message(
        "resolved",
        last.code,
        last.severity,
        last.subject,
        tuple(n.id for n in notices),
        f"[RESOLVED] {_about(last.code, last.subject, last.host)}",
        f"{last.message}\n\n{_kst(last.produced_ns)}",
        targets,
        last.host,
        now,
    )


def _reminder(condition: Condition, held: _Open, now: float) -> Message:
    code, subject, host = condition
    ids = [notice.id for notice in held.notices]
    since_ns = min(notice.produced_ns for notice in held.notices)
    return Message(
        "reminder",
        code,
        "critical",
        subject,
        tuple(ids),
        f"[CRITICAL, STILL OPEN] {_about(code, subject, host)}",
        f"{held.notices[-1].message}\n\nopen since {_kst(since_ns)}; "
        f"acknowledge with: observer alerts ack {' '.join(ids)}",
        None,
        host,
        now,
    )


def summarize(messages: Sequence[Message], now: float, keep_s: float) -> Message:
    """One message in place of ``messages``, which a target could not be sent.

    It says where each of their conditions stands (the latest message of each, newest
    last) and how many messages it replaces. Its ``alerts`` name those of the latest
    messages and of every message made within ``keep_s`` (what a sweep could send again);
    older ones are not carried on, so a summary stays bounded however long a channel fails.
    A summary given again takes in the messages it stood for.
    """
    parts = [part for message in messages for part in (message.parts or (message,))]
    missed = sum(message.missed or 1 for message in messages)
    latest: dict[Condition, Message] = {}
    for part in parts:
        latest.pop(part.condition, None)  # the newest last
        latest[part.condition] = part
    kept = tuple(p for p in parts if now - p.made_at <= keep_s or latest[p.condition] is p)
    shown = list(latest.values())
    standing = [p for p in shown if p.kind != "resolved"]
    worst = max(standing or shown, key=lambda p: SEVERITY_RANK[p.severity])
    head = (
        f"{missed} messages to this channel were not sent while it failed; "
        "where each condition stands now:"
    )
    listed = [f"{p.title}\n{_cut(p.body, _PART_BODY)}" for p in shown[:_PARTS_SHOWN]]
    if len(shown) > _PARTS_SHOWN:
        listed.append(f"... and {len(shown) - _PARTS_SHOWN} more conditions")
    body = "\n\n".join([head, *listed])
    alerts = tuple(dict.fromkeys(each for p in kept for each in p.alerts))
    if len(shown) == 1:
        (last,) = shown
        return Message(
            last.kind,
            last.code,
            last.severity,
            last.subject,
            alerts,
            last.title,
            body,
            None,
            last.host,
            now,
            kept,
            missed,
        )
    kind: Literal["alert", "resolved"] = "alert" if standing else "resolved"
    mark = "RESOLVED" if kind == "resolved" else worst.severity.upper()
    return Message(
        kind,
        SUMMARY_CODE,
        worst.severity,
        "",
        alerts,
        f"[{mark}] {len(shown)} conditions while this channel failed",
        body,
        None,
        "",
        now,
        kept,
        missed,
    )


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def ids_in(messages: Iterable[Message]) -> list[str]:
    """Every alert id the messages stand for (for tests and counters)."""
    return [each for message in messages for each in message.alerts]
