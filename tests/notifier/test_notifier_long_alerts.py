"""An alert longer than its columns is cut to them, stored and delivered, never refused.

Producers put whole exception texts in a message: the writer would refuse the event (a
``rejected_events`` row) and no one would hear of it. `Alert` and `AlertResolved` cut
``code``, ``subject`` and ``message`` to the columns' sizes when made or decoded, ending in
"…" so that the reader sees the text was cut.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import String, text

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved, Event
from observer.db import models as m
from observer.writer.store import Store
from tests.notifier.test_notifier_worker import NOW, Bus, settings_for, target, worker

COLUMNS = {"code": "CODE_LENGTH", "subject": "SUBJECT_LENGTH", "message": "MESSAGE_LENGTH"}


def test_the_lengths_are_the_columns() -> None:
    for model in (m.AlertRow, m.AlertResolvedRow):
        for column, constant in COLUMNS.items():
            kind = model.__table__.c[column].type
            assert isinstance(kind, String) and kind.length == getattr(Alert, constant)


@given(st.text(max_size=2100), st.text(max_size=250), st.text(min_size=1, max_size=80))
@example(message="a\x00b" * 500, subject="\x00", code="\x00")  # written out, then cut
def test_a_text_too_long_is_cut_to_its_column_with_a_mark(
    message: str, subject: str, code: str
) -> None:
    made = Alert(severity="error", code=code, message=message, subject=subject)
    raw = {"type": "alert", "severity": "error", "code": code, "message": message}
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(raw | {"subject": subject}), type=Alert)
    resolved = AlertResolved(severity="error", code=code, message=message, subject=subject)
    # A NUL is written out first (PostgreSQL text cannot hold it), then the text is cut.
    texts = {
        "code": code.replace("\x00", "\\x00"),
        "subject": subject.replace("\x00", "\\x00"),
        "message": message.replace("\x00", "\\x00"),
    }
    for event in (made, decoded, resolved):
        for column, constant in COLUMNS.items():
            given_text, kept = texts[column], getattr(event, column)
            length = getattr(Alert, constant)
            if len(given_text) <= length:
                assert kept == given_text
            else:
                assert len(kept) == length and kept == given_text[: length - 1] + "…"


def test_an_over_long_alert_is_stored_and_delivered_cut(tmp_path: Path, store: Store) -> None:
    failure = "HTTPStatusError: " + "x" * 3000  # an exception's whole text
    long_subject = "s" * 300
    events: list[Event] = [
        Alert(severity="error", code="kis_catalog_failed", message=failure, subject=long_subject),
        AlertResolved(
            severity="error", code="kis_catalog_failed", message=failure, subject=long_subject
        ),
    ]
    # Through the wire and the writer, as a producer sends them.
    envelopes = [Envelope("enrich", n + 1, NOW - 60 * 10**9 + n, e) for n, e in enumerate(events)]
    store.apply([decode_parts(encode_frame(envelopes))])
    with store.engine.connect() as conn:
        stored = conn.execute(text("select message, subject from alerts")).all()
        ended = conn.execute(text("select message from alert_resolutions")).all()
        refused = conn.execute(text("select count(*) from rejected_events")).scalar()
    assert refused == 0
    [(message, subject)] = stored
    assert len(message) == 2000 and message.endswith("x…") and message.startswith("HTTP")
    assert len(subject) == 200 and subject.endswith("…")
    assert len(ended[0][0]) == 2000

    notifier = worker(settings_for(tmp_path, store), Bus(store), target("ops"))
    notifier._sweep(start=True)
    notifier._dispatch(time.monotonic() + notifier.config.group_s + 1)
    queue = notifier.queues["ops"]
    alert = queue.get_nowait()
    assert alert.kind == "alert" and alert.body.startswith(message)
    assert queue.get_nowait().kind == "resolved"


@given(
    st.text(max_size=300),
    st.dictionaries(st.text(max_size=80), st.text(max_size=600), max_size=40),
)
def test_nul_characters_and_a_large_context_are_made_storable(
    message: str, context: dict[str, str]
) -> None:
    # A NUL (PostgreSQL text cannot hold one) got the alert refused by the writer; a context
    # of any size rode along whole. Both are now made storable, and nothing else changes.
    made = Alert(severity="error", code="c\x00", message=message, context=context)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(made), type=Alert)
    for alert in (made, decoded):
        assert alert.code == "c\\x00"
        assert "\x00" not in alert.message + "".join(f"{k}{v}" for k, v in alert.context.items())
        if "\x00" not in message and len(message) <= Alert.MESSAGE_LENGTH:
            assert alert.message == message
        assert len(alert.context) <= Alert.CONTEXT_ENTRIES + 1
        assert all(len(k) <= Alert.CONTEXT_KEY_LENGTH for k in alert.context)
        assert all(len(v) <= Alert.CONTEXT_VALUE_LENGTH for v in alert.context.values())
    plain = {
        k: v
        for k, v in context.items()
        if "\x00" not in k + v
        and len(k) <= Alert.CONTEXT_KEY_LENGTH
        and len(v) <= Alert.CONTEXT_VALUE_LENGTH
    }
    if len(context) <= Alert.CONTEXT_ENTRIES and plain == context:
        assert made.context == context  # an ordinary context is kept as it is


def test_an_alert_with_a_nul_is_stored_not_refused(store: Store) -> None:
    events: list[Event] = [
        Alert(severity="error", code="peer_text", message="got b'\x00\x01'", context={"k": "\x00"}),
        AlertResolved(severity="error", code="peer_text", message="over\x00"),
    ]
    envelopes = [Envelope("w", n + 1, NOW + n, e) for n, e in enumerate(events)]
    store.apply([decode_parts(encode_frame(envelopes))])
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from rejected_events")).scalar() == 0
        assert conn.execute(text("select message from alerts")).scalar() == "got b'\\x00\x01'"
        assert conn.execute(text("select count(*) from alert_resolutions")).scalar() == 1
