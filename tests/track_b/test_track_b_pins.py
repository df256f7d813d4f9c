"""Pins in the worker: more pins than slots are shown, a pins file that does not read is no unpin.

The worker's own evaluation loop (`TrackB._follow`), as in `tests/track_b/test_track_b_resume.py`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bus.events import Alert, AlertResolved
from observer.db.models import Instrument
from observer.process.state_files import STATE_FILE_UNREADABLE
from tests.support import set_aside
from tests.track_b.test_track_b_resume import NINE, Streams, at, follow, store, track_b
from workers.track_b.cli import app
from workers.track_b.pin_standing import PinStandings
from workers.track_b.pins import (
    PINS_UNREADABLE,
    PinFile,
    pins_path,
    read_pins,
    slots_path,
    unplaced,
    write_pins,
)
from workers.track_b.registrations import TRADES, RegistrationPolicy
from workers.track_b.slots import SlotAction, SlotBook, SlotCandidate
from workers.track_b.triggers import TriggerEngine


def test_pins_beyond_the_slots_are_named_in_the_slots_shown_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tb, _, _ = track_b(tmp_path, at("10:00"))
    pins = {f"P{i:05d}" for i in range(1, 46)}  # 45 pins on 41 slots
    write_pins(tmp_path, pins)
    engine = TriggerEngine(tb.config, {}, NINE, 600.0)
    book = SlotBook(["acct1"], 41)
    streams = Streams(["acct1"], lambda symbol, now: 0.0)
    shown: list[dict[str, object]] = []
    counted: list[float] = []

    def look(n: int) -> None:
        shown.append(json.loads(slots_path(tmp_path).read_text()))
        counted.append(tb.counters["pins_unplaced"])

    follow(tb, engine, book, streams, [], at("10:00:15"), monkeypatch, each_round=look)
    assert len(shown) == 3  # every evaluation, not only the one that published the overflow
    left = sorted(pins - set(book.held()))
    assert len(left) == 4 and counted == [4, 4, 4]
    for each in shown:
        assert each["unplaced_pins"] == [{"symbol": p, "reason": "every slot pinned"} for p in left]
    listed = CliRunner().invoke(app, ["slots", "--data-dir", str(tmp_path), "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert len(lines) == 45
    assert lines[41:] == [f"no slot           {p}  pinned: every slot pinned" for p in left]


def test_the_pin_command_says_how_many_pins_wait_beyond_the_slots(tmp_path: Path) -> None:
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        '[kis]\nenvironment = "sim"\n[[kis.accounts]]\nalias = "acct1"\n'
        # KRX's trades and book: 41 registrations hold 20 names
        '[track_b.feeds]\nnextrade = "off"\nnxt_pre_market = []\nnxt_after_market = []\n'
        'regular = ["trades", "book"]\n'
    )
    (tmp_path / "data" / "run").mkdir(parents=True)  # a supervisor has run with it
    runner, pin = CliRunner(), ["slots", "--config", str(config), "pin"]
    within = runner.invoke(app, [*pin, *(f"P{i:05d}" for i in range(1, 21))])
    assert within.exit_code == 0, within.output
    assert len(within.output.splitlines()) == 1  # "pinned: ..." alone
    beyond = runner.invoke(app, [*pin, "P00021", "P00022"])
    assert beyond.exit_code == 0, beyond.output
    assert beyond.output.splitlines()[1] == (
        "2 of the 22 pins may wait for a slot: Track B holds 41 registrations (1 account x "
        "41), up to 2 a symbol; 'observer track-b slots list' shows which hold one"
    )


def test_a_pin_without_a_slot_says_why() -> None:
    pin = SlotCandidate("P00002", "manual", 6.0, pinned=True)
    overflow = SlotAction("overflow", pin, "no healthy account")
    assert unplaced(["P00001", "P00002", "P00003"], {"P00001"}, [overflow], {}) == {
        "P00002": "no healthy account",
        "P00003": "no slot",
    }
    refused = {"P00003": "registration refused: OPSP8992 (not retried today)"}
    assert unplaced(["P00003"], set(), [], refused) == refused


def test_a_pins_file_that_does_not_read_is_set_aside_and_the_pins_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand edit with a syntax error (or a file a power cut tore) changes no pin: a copy is
    kept aside, the last pins read are written back, one alert says so, and `slots pin`
    runs on."""
    tb, sent, _ = track_b(tmp_path, at("10:00"))
    write_pins(tmp_path, {"005930", "000660"})
    engine = TriggerEngine(tb.config, {}, NINE, 600.0)
    book = SlotBook(["acct1"], 41)
    streams = Streams(["acct1"], lambda symbol, now: 0.0)
    edited = b'["005930", "000660", "035420",]'  # a trailing comma
    unreadable: list[float] = []
    files: list[bytes] = []

    def edit(n: int) -> None:
        unreadable.append(tb.counters["pins_unreadable"])
        files.append(pins_path(tmp_path).read_bytes())
        if n == 0:
            pins_path(tmp_path).write_bytes(edited)
        if n == 3:  # done again by the command, and 000660 unpinned meanwhile
            write_pins(tmp_path, {"005930", "035420"})

    caplog.set_level(logging.INFO)
    rounds = follow(tb, engine, book, streams, [], at("10:00:30"), monkeypatch, each_round=edit)
    held = [h for _, h in rounds]
    assert held[:4] == [{"005930", "000660"}] * 4  # the bad file changed nothing
    assert held[4:] == [{"005930", "035420"}] * 2
    assert unreadable == [0] * 6  # the file read again at once
    assert files[1:4] == [b'["000660", "005930"]'] * 3  # written back
    released = [(when, d.candidate.symbol, d.reason) for when, d in streams.applied]
    released = [r for r in released if r[2] == "unpinned"]
    assert released == [(at("10:00:20"), "000660", "unpinned")]
    aside = set_aside(pins_path(tmp_path), edited)
    alerts = [e for e in sent if isinstance(e, (Alert, AlertResolved))]
    assert [(type(e).__name__, e.code, e.severity, e.subject) for e in alerts] == [
        ("Alert", STATE_FILE_UNREADABLE, "warning", str(pins_path(tmp_path)))
    ]
    message = alerts[0].message
    assert "the pins stay as last read (000660, 005930) and are written back" in message
    assert aside.name in message and "Expecting value" in message
    said = [r for r in caplog.records if "pins.json" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.ERROR]  # once, not each 5 s


def test_pins_taken_back_at_a_restart_are_written_over_a_torn_file(tmp_path: Path) -> None:
    """A file a power cut emptied, at the start: the pinned slots the restart took back."""
    pins_path(tmp_path).parent.mkdir(mode=0o700)
    pins_path(tmp_path).write_bytes(b"")
    sent: list[object] = []
    pin_file = PinFile(tmp_path, sent.append)
    pin_file.pins |= {"005930"}  # what `TrackB._resume` knows from the pinned slots held
    assert pin_file.read() == pin_file.read() == {"005930"}
    assert read_pins(tmp_path) == {"005930"} and not pin_file.unreadable
    set_aside(pins_path(tmp_path), b"")
    assert [(type(e).__name__, getattr(e, "code", "")) for e in sent] == [
        ("Alert", STATE_FILE_UNREADABLE)
    ]


def test_pins_that_cannot_be_read_or_written_back_hold_with_one_alert_until_they_read(
    tmp_path: Path,
) -> None:
    """A folder in the file's place cannot be read; pins a hand edit made that are no codes
    cannot be written back: the last pins hold, one ``track_b_pins_unreadable``, resolved."""
    sent: list[object] = []
    pin_file = PinFile(tmp_path, sent.append)
    pin_file.pins |= {"005930"}
    pins_path(tmp_path).mkdir(parents=True)
    assert pin_file.read() == pin_file.read() == {"005930"}
    assert pin_file.unreadable and "Is a directory" in pin_file.unreadable
    pins_path(tmp_path).rmdir()
    pins_path(tmp_path).write_text('["005930", "sam"]')  # a list of strings: read as it is
    assert pin_file.read() == {"005930", "sam"} and not pin_file.unreadable
    pins_path(tmp_path).write_text('["005930", "sam"')
    assert pin_file.read() == pin_file.read() == {"005930", "sam"}
    assert "the last pins cannot be written back (not stock codes: sam)" in pin_file.unreadable
    write_pins(tmp_path, {"000660"})
    assert pin_file.read() == {"000660"} and not pin_file.unreadable
    codes = [(type(e).__name__, getattr(e, "code", "")) for e in sent]
    assert codes == [
        ("Alert", PINS_UNREADABLE),
        ("AlertResolved", PINS_UNREADABLE),
        ("Alert", STATE_FILE_UNREADABLE),  # the copy set aside
        ("Alert", PINS_UNREADABLE),
        ("AlertResolved", PINS_UNREADABLE),
    ]


def test_slots_shown_that_do_not_read_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    """``slots.json`` is Track B's display, written again at every evaluation: a torn one is
    said to be so, exit 1 (it was a JSON traceback)."""
    slots_path(tmp_path).parent.mkdir(mode=0o700)
    slots_path(tmp_path).write_bytes(b'{"slots": [{"account": "acct1", "sl')
    listed = CliRunner().invoke(app, ["slots", "--data-dir", str(tmp_path), "list"])
    assert listed.exit_code == 1 and isinstance(listed.exception, SystemExit)
    assert f"{slots_path(tmp_path)} does not read" in listed.output
    assert "Track B writes it again at its next evaluation" in listed.output


def list_domestic(url: str, listings: dict[str, tuple[str, list[str]]]) -> None:
    """The instruments table lists each symbol (its product, its measures) as the domestic
    master files do."""
    fields = {"name_en": "", "exchange": "KRX", "currency": "KRW", "sector_code": ""}
    listed = {"region": "KR", "active": True, "listed_ns": 0, "updated_ns": 0, **fields}
    rows = [
        {"market": "kospi", "symbol": s, "name": s, "security_type": k, "measures": m} | listed
        for s, (k, m) in listings.items()
    ]
    store(url, Instrument.__table__, rows)


class _Switching(Streams):
    """The collector's part that takes a new policy (`Collector.switch`)."""

    def __init__(self, policy: RegistrationPolicy) -> None:
        super().__init__(["acct1"], lambda symbol, now: 0.0)
        self.policy = policy
        self.switched: list[str] = []

    async def switch(self, policy: RegistrationPolicy, holdings: object, why: str) -> None:
        self.policy = policy
        self.switched.append(why)


def test_an_etf_pin_is_released_in_krx_s_after_market_once_kis_names_it_and_shown_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KRX's after-market (16:05): two pins outside the universe held, whose product is not
    known yet; once KIS's answer names one an ETF, it is released (no after-market trades it)
    and shown unplaced with why, the stock pin kept."""
    tb, _, _ = track_b(tmp_path, at("16:05"))
    etf, stock = "069500", "900001"
    write_pins(tmp_path, {etf, stock})
    engine = TriggerEngine(tb.config, {}, NINE, 600.0)
    book = SlotBook(["acct1"], 41)
    streams = _Switching(RegistrationPolicy().with_krx(TRADES))
    shown: list[dict[str, object]] = []
    follow(tb, engine, book, streams, [], at("16:05:05"), monkeypatch)
    assert set(book.held()) == {etf, stock}  # both on KRX's feed while their kind is not known
    tb.pin_standings.day_only = frozenset({etf})  # as KIS's answer (CTPF1002R) leaves it
    follow(
        tb,
        engine,
        book,
        streams,
        [],
        at("16:05:15"),
        monkeypatch,
        each_round=lambda n: shown.append(json.loads(slots_path(tmp_path).read_text())),
    )
    assert set(book.held()) == {stock}
    (released,) = [d for _, d in streams.applied if d.action == "release"]
    assert released.candidate.symbol == etf
    assert released.reason == (
        f"no after-market trades the pins {etf}: an ETF or ETN: no after-market trades it"
    )
    assert streams.switched == [f"no after-market trades the pins {etf}"]
    why = "an ETF or ETN: no after-market trades it"
    assert shown and all(s["unplaced_pins"] == [{"symbol": etf, "reason": why}] for s in shown)
    assert tb.counters["pins_unplaced"] == 1


def test_a_paper_account_s_etf_pin_holds_no_feed_in_krx_s_after_market_as_the_master_lists_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paper account cannot ask KIS a pin's product (CTPF1002R is real-only): the master
    files' listing of it is read from the database (the instruments table), so at 16:05 the
    ETF pin is shown unplaced with why and the stock pin held."""
    tb, _, url = track_b(tmp_path, at("16:05"))
    etf, stock = "069500", "900001"
    list_domestic(url, {etf: ("etf", []), stock: ("stock", [])})
    tb.pin_standings = PinStandings(None, tb.clock, tb.alerts, (), tb._listed_as)  # run()'s
    write_pins(tmp_path, {etf, stock})
    engine = TriggerEngine(tb.config, {}, NINE, 600.0)
    book = SlotBook(["acct1"], 41)
    streams = _Switching(RegistrationPolicy().with_krx(TRADES))
    shown: list[dict[str, object]] = []
    follow(
        tb,
        engine,
        book,
        streams,
        [],
        at("16:05:10"),
        monkeypatch,
        each_round=lambda n: shown.append(json.loads(slots_path(tmp_path).read_text())),
    )
    assert set(book.held()) == {stock} and tb.pin_standings.day_only == {etf}
    why = "an ETF or ETN: no after-market trades it"
    assert shown and shown[-1]["unplaced_pins"] == [{"symbol": etf, "reason": why}]


def test_a_pin_under_a_measure_nextrade_s_after_market_excludes_holds_krx_s_feed_alone_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both after-markets (16:05): two pins outside the universe that Nextrade trades; the
    master files list one under 투자경고, which Nextrade's after-market excludes: it holds
    KRX's feed alone, as a member would, the other both venues'."""
    tb, _, url = track_b(tmp_path, at("16:05"))
    warned, plain = "900001", "900002"
    list_domestic(url, {warned: ("stock", ["warning"]), plain: ("stock", [])})
    tb.pin_standings = PinStandings(None, tb.clock, tb.alerts, (), tb._listed_as)  # run()'s
    tb.pin_standings.answered = {warned: True, plain: True}  # as KIS's answers leave them
    write_pins(tmp_path, {warned, plain})
    engine = TriggerEngine(tb.config, {}, NINE, 600.0)
    book = SlotBook(["acct1"], 41)
    streams = _Switching(RegistrationPolicy(trades="venues").with_krx(TRADES, TRADES))
    follow(tb, engine, book, streams, [], at("16:05:10"), monkeypatch)
    assert set(book.held()) == {warned, plain}
    assert streams.policy.venues(warned) == ("KRX",)
    assert streams.policy.venues(plain) == ("KRX", "NXT")
    assert streams.switched == [
        f"Nextrade trades the pins {warned}, {plain}; "
        f"Nextrade's after-market excludes the pins' measures {warned}"
    ]
