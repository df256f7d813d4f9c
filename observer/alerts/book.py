"""The alert book: one per process, the conditions it has alerted and not yet resolved.

A condition is ``(code, subject)``. `AlertBook.raise_` publishes an `Alert` of one that is not
open, or open at a lower severity; `AlertBook.resolve` publishes an `AlertResolved` of one that
is, at the highest severity raised: a resolution of nothing open would still be sent to every
channel. `AlertBook.take_over` makes an earlier run's open alerts (`observer.alerts.stored`)
the book's own; `AlertBook.take_over_when_read` does so from a read that may fail, asking it
again before a resolution while it has not answered. `alert` and `resolution` change the
book and return the event, for an owner that sends its own (the writer commits its alerts).
Safe to share between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from bus.events import Alert, AlertResolved, Event, Severity
from observer.alerts.states import SEVERITY_RANK, Notice

__all__ = ["AlertBook", "Publish"]

Publish = Callable[[Event], object]


def _key(code: str, subject: str) -> tuple[str, str]:
    """The condition as the events carry it (cut to their columns' sizes, NUL written out)."""
    short = len(code) <= Alert.CODE_LENGTH and len(subject) <= Alert.SUBJECT_LENGTH
    if short and "\x00" not in code and "\x00" not in subject:
        return code, subject
    cut = AlertResolved(code=code, severity="info", message="", subject=subject)
    return cut.code, cut.subject


def _higher(a: Severity, b: Severity | None) -> Severity:
    return a if b is None or SEVERITY_RANK[a] > SEVERITY_RANK[b] else b


class AlertBook:
    """The open conditions of one process (its bus ``source``), and what publishes them."""

    def __init__(self, publish: Publish | None, source: str = "") -> None:
        self.source = source
        self.publish = publish  # None: the owners send the events (`alert`, `resolution`)
        self._open: dict[tuple[str, str], Severity] = {}  # condition -> highest severity open
        self._lock = threading.Lock()
        self._unread: Callable[[], Iterable[Notice] | None] | None = None  # `take_over_when_read`

    def __repr__(self) -> str:
        return f"AlertBook({self.source!r}, {len(self._open)} open)"

    def is_open(self, code: str, subject: str = "") -> bool:
        """True while the condition is open (raised here or taken over, not resolved)."""
        return _key(code, subject) in self._open

    def severity(self, code: str, subject: str = "") -> Severity | None:
        """The highest severity the open condition was raised at; None if it is not open."""
        return self._open.get(_key(code, subject))

    def subjects(self, code: str) -> set[str]:
        """The subjects of ``code``'s open conditions."""
        return {subject for (each, subject) in list(self._open) if each == code}

    def conditions(self) -> Mapping[tuple[str, str], Severity]:
        """Every open condition and its severity, as of now (a copy)."""
        return dict(self._open)

    def alert(
        self,
        code: str,
        subject: str,
        severity: Severity,
        message: str,
        context: Mapping[str, str] | None = None,
        *,
        again: bool = False,
    ) -> Alert | None:
        """The `Alert` to send, the condition open from now; None if it is open already.

        Open already at ``severity`` or higher: None, unless ``again`` (each alert of a
        condition that repeats, one resolution ending them all). An info alert is open here
        too until resolved, though never in the database: a restart takes none over.
        """
        event = Alert(
            severity=severity,
            code=code,
            message=message,
            context=dict(context or {}),
            subject=subject,
        )
        key = (event.code, event.subject)
        with self._lock:
            held = self._open.get(key)
            if held is not None and not again and SEVERITY_RANK[severity] <= SEVERITY_RANK[held]:
                return None
            self._open[key] = _higher(severity, held)
        return event

    def resolution(self, code: str, subject: str = "", message: str = "") -> AlertResolved | None:
        """The `AlertResolved` to send, the condition over; None if it is not open.

        Not open here while an earlier run's alerts are unread (`take_over_when_read`): they
        are read again first.
        """
        key = _key(code, subject)
        with self._lock:
            severity = self._open.pop(key, None)
        if severity is None and self._read_again():
            with self._lock:
                severity = self._open.pop(key, None)
        if severity is None:
            return None
        return AlertResolved(code=key[0], severity=severity, message=message, subject=key[1])

    def raise_(
        self,
        code: str,
        subject: str,
        severity: Severity,
        message: str,
        context: Mapping[str, str] | None = None,
        *,
        again: bool = False,
    ) -> bool:
        """Publish `alert`'s event, if any; True if one went out."""
        event = self.alert(code, subject, severity, message, context, again=again)
        if event is None:
            return False
        self.send(event)
        return True

    def resolve(self, code: str, subject: str = "", message: str = "") -> bool:
        """Publish `resolution`'s event, if any; True if one went out."""
        event = self.resolution(code, subject, message)
        if event is None:
            return False
        self.send(event)
        return True

    def send(self, event: Event) -> None:
        """Publish ``event`` (one `alert` or `resolution` handed over) the book's way."""
        if self.publish is None:
            raise TypeError(f"{self!r} publishes nothing: its owners send what it hands them")
        self.publish(event)

    def take_over_when_read(self, read: Callable[[], Iterable[Notice] | None]) -> None:
        """`take_over` what ``read`` returns (an earlier run's open alerts), once it can say.

        None: it cannot say now (the database out). It is asked again before each resolution
        of a condition not open here, until it answers: a run that started while the
        database was out still ends what an earlier run left open (a rate warning that a
        clean run's judgement resolves), where taking over nothing would leave it open.
        """
        self._unread = read
        self._read_again()

    def _read_again(self) -> bool:
        """Whether the unread earlier alerts were read now (and taken over)."""
        read = self._unread
        if read is None:
            return False
        found = read()
        if found is None:
            return False
        self._unread = None
        self.take_over(found)
        return True

    def take_over(self, notices: Iterable[Notice]) -> list[Notice]:
        """Make an earlier run's open alerts this book's; those taken (no info alert), in order.

        Each condition is open from now at the highest severity of its alerts (and of this
        run's, if it raised the condition too); nothing is published.
        """
        taken = [n for n in notices if n.severity != "info"]
        with self._lock:
            for notice in taken:
                key = _key(notice.code, notice.subject)
                self._open[key] = _higher(notice.severity, self._open.get(key))
        return taken
