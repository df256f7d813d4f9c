"""The universe job against the real simulator and a real writer process."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from harness.sim.market import KST
from observer.calendar.timeline import timeline_from
from observer.config.load import load_settings
from observer.kis.daily_bars import DailyBar
from observer.kis.pacing import PACING_S
from observer.process.state_files import STATE_FILE_UNREADABLE
from observer.reference.instruments import current_archive, master_file
from observer.supervisor.schedule import applies, due_at
from tests.support import set_aside
from tests.universe.conftest import CALENDAR, MARKET, Harness, expected
from workers.master_file.files import Current, FileState, LocalFiles
from workers.universe.build import metrics
from workers.universe.cli import app


def bar(day: str, close: int, high: int, low: int, volume: int) -> DailyBar:
    return DailyBar(datetime.strptime(day, "%Y%m%d").date(), close, high, low, close, volume)


def test_metrics_are_the_documented_formulas() -> None:
    bars = [bar(f"202611{d:02d}", 100 + d, 105 + d, 95 + d, 1000 * d) for d in range(1, 22)]
    m = metrics(bars, date(2026, 11, 21))
    assert m is not None and m.prev_close == 121
    assert m.avg_volume_20d == sum(1000 * d for d in range(2, 22)) // 20
    # Each day: high - low = 10, |high - prev close| = 5 + 1, |low - prev close| = 4: TR 10.
    assert m.atr_14 == Decimal("10.00")
    gap = [*bars[:-1], bar("20261121", 150, 160, 140, 1)]  # a gap up: TR from the prev close
    gapped = metrics(gap, date(2026, 11, 21))
    assert gapped is not None
    assert gapped.atr_14 == (Decimal(13 * 10 + (160 - 120)) / 14).quantize(Decimal("0.01"))
    assert metrics(bars, date(2026, 11, 23)) is None  # no bar on the previous session
    assert metrics([], date(2026, 11, 21)) is None


@pytest.mark.parametrize(
    ("day", "previous"),
    [
        (date(2026, 11, 23), date(2026, 11, 20)),  # Monday: Friday
        (date(2026, 9, 28), date(2026, 9, 23)),  # after Chuseok
        (date(2026, 10, 12), date(2026, 10, 8)),  # after Hangul Day (a Friday)
        (date(2026, 6, 4), date(2026, 6, 2)),  # after the local elections (configured)
        (date(2026, 11, 20), date(2026, 11, 19)),  # after the CSAT day's late session
        (date(2027, 1, 4), date(2026, 12, 30)),  # the year's first session
    ],
)
def test_the_universe_is_based_on_the_previous_session(day: date, previous: date) -> None:
    assert CALENDAR.previous_session(day) == previous
    window = CALENDAR.sessions_before(day, 21)
    assert window[-1] == previous and len(window) == 21
    assert all(CALENDAR.is_session(d) for d in window)


def test_build_once_from_the_simulator(harness: Harness) -> None:
    h = harness
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "built" and summary["previous_trading_day"] == "20261119"
    file = json.loads((h.data / "universe" / "20261120_kr_stocks.json").read_text())
    seed_keys = {
        "date",
        "previous_trading_day",
        "generated_at",
        "symbol_count",
        "market",
        "filter_criteria",
        "version",
    }
    assert set(file["metadata"]) >= seed_keys
    codes = [s["code"] for s in file["symbols"]]
    assert codes == expected(date(2026, 11, 20))  # filter, exclusions and market-cap order
    first = file["symbols"][0]
    assert first["prev_close"] == MARKET.close(first["code"], date(2026, 11, 19))
    assert first["avg_volume_20d"] > 0 and Decimal(first["atr_14"]) > 0
    assert summary["candidates"] == len(codes) + sum(summary["excluded"].values())
    assert summary["excluded"]["failed"] == 0 and h.sim.rate_limited == 0
    assert summary["excluded"]["not_traded"] == 0  # every candidate has its bar
    # Never beyond the configured rate, but for each account limiter's first bucket (the
    # PACING_S worth of calls it holds at the start, sent at once).
    rate, elapsed = summary["rate_limit_per_s"], summary["elapsed_s"]
    bucket = 2 * max(1, int(rate / 2 * PACING_S))  # two accounts, each half the rate
    assert 0 < summary["achieved_fraction"] <= (rate * elapsed + bucket) / (rate * elapsed) + 1e-3
    (row,) = h.rows("select trade_date, based_on, member_count from universe_snapshots")
    assert (str(row[0]), str(row[1]), row[2]) == ("2026-11-20", "2026-11-19", len(codes))
    ranks = h.rows("select symbol, rank from universe_members order by rank")
    assert [s for s, _ in ranks] == codes

    # Once built, the day never changes: a second run only checks.
    offsets = h.writer.offsets()
    assert h.build("2026-11-20")["outcome"] == "present"
    assert h.writer.offsets() == offsets
    assert offsets == {"universe": 1}  # one snapshot event, built once


def test_kis_refusing_the_builds_calls_as_over_the_rate_is_alerted_and_a_build_within_resolves(
    harness: Harness,
) -> None:
    """KIS refusing 40 of the build's some 450 calls as over the rate (EGW00201): the build
    still completes (refused calls retried at a slower pace), and the accounts KIS refused
    are alerted once the build's accounts are closed; the next build, refused nothing,
    resolves them (as a later run of the job takes them over from the database)."""
    h = harness
    before = h.sim.rate_limited  # the module's simulator
    # A fault, not a lower rate: a loaded machine's build never reached a rate of 40/s. The
    # refusals come in a row, so a candidate may spend its attempts on them (named, failed).
    h.sim.faults.rate_limited = 40
    summary = h.build("2026-11-19")
    assert summary["outcome"] == "built" and h.sim.rate_limited - before == 40
    raised = h.rows("select subject, severity, message from alerts where code = 'kis_rate_limited'")
    assert raised and {r[0] for r in raised} <= {"acct1", "acct2"}, raised
    assert all(
        severity == "warning" and "of universe's" in message and "(150/s)" in message
        for _, severity, message in raised
    ), raised
    refused = h.sim.rate_limited
    assert h.build("2026-11-20")["outcome"] == "built" and h.sim.rate_limited == refused
    resolved = h.rows("select subject from alert_resolutions where code = 'kis_rate_limited'")
    assert sorted(resolved) == sorted((r[0],) for r in raised)


def test_a_failed_build_reuses_the_previous_universe(harness: Harness) -> None:
    h = harness
    h.sim.faults.master_damage = {"kospi_code.mst.zip": "crc"}
    out = h.build("2026-11-19", code=1)["out"]
    assert "no earlier universe" in out
    h.sim.faults.master_damage.clear()
    h.build("2026-11-19")
    h.sim.faults.master_damage = {"kospi_code.mst.zip": "truncated"}
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261119"
    alerts = h.rows("select severity, code from alerts order by seq")
    assert alerts == [("critical", "universe_failed"), ("critical", "universe_reused")]
    # 11-19 built at the rerun: its failure ends there; 11-20's reuse stays open.
    assert h.rows("select code from alert_resolutions") == [("universe_failed",)]
    snapshots = h.rows("select trade_date, based_on from universe_snapshots order by seq")
    assert [(str(a), str(b)) for a, b in snapshots] == [
        ("2026-11-19", "2026-11-18"),
        ("2026-11-20", "2026-11-18"),
    ]


def test_no_universe_on_a_day_without_a_session(harness: Harness) -> None:
    args = ["build", "--date", "2026-11-21", "--config", str(harness.config)]
    result = CliRunner().invoke(app, args, env=harness.env)
    assert result.exit_code == 0 and "not a KRX session" in result.output
    assert not (harness.data / "universe").exists()


def members(h: Harness, day: str) -> list[Any]:
    return h.rows(
        "select m.symbol, m.rank, m.prev_close from universe_members m join universe_snapshots s"
        " on m.source = s.source and m.seq = s.seq"
        f" where s.trade_date = '{day}' order by s.produced_ns, s.seq, m.rank"
    )


def test_a_day_in_the_database_is_never_built_again(harness: Harness) -> None:
    """Its file lost (a failover to another host, a new disk), the stored universe is
    written back: Track A's universe does not change under it."""
    h = harness
    h.build("2026-11-20")
    path = h.data / "universe" / "20261120_kr_stocks.json"
    before, stored = json.loads(path.read_text()), members(h, "2026-11-20")
    path.unlink()
    offsets = h.writer.offsets()
    h.sim.change_listings(delist=40)  # a build now would make another universe
    try:
        summary = h.build("2026-11-20")
    finally:
        h.sim.faults.delisted.clear()
    assert summary["outcome"] == "restored" and summary["restored_from"] == "database"
    after = json.loads(path.read_text())
    assert after["symbols"] == before["symbols"]
    assert after["metadata"]["previous_trading_day"] == "20261119"
    assert h.writer.offsets()["universe"] == offsets["universe"] + 1  # the alert, no universe
    assert members(h, "2026-11-20") == stored
    assert h.rows("select severity, code from alerts") == [("warning", "universe_file_restored")]
    assert h.build("2026-11-20")["outcome"] == "present"


def test_a_days_file_a_power_cut_tore_is_set_aside_and_restored_from_the_database(
    harness: Harness,
) -> None:
    """The day's file cut short by a power cut failed the job at every run, seven times,
    until the supervisor parked it FATAL and Track A had no universe. It is kept aside,
    alerted, and the day's universe written again from the database: exit 0."""
    h = harness
    h.build("2026-11-20")
    path = h.data / "universe" / "20261120_kr_stocks.json"
    before, stored = json.loads(path.read_text()), members(h, "2026-11-20")
    torn = path.read_bytes()[:4096]
    path.write_bytes(torn)
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "restored" and summary["restored_from"] == "database"
    assert json.loads(path.read_text())["symbols"] == before["symbols"]
    assert members(h, "2026-11-20") == stored  # no other universe published
    aside = set_aside(path, torn)
    alerts = h.rows("select severity, code, subject, message from alerts order by seq")
    assert [(a[0], a[1], a[2]) for a in alerts] == [
        ("warning", STATE_FILE_UNREADABLE, str(path)),
        ("warning", "universe_file_restored", ""),
    ]
    assert f"set aside as {aside.name}" in alerts[0][3]
    assert "restored from the database, else built again" in alerts[0][3]
    assert h.build("2026-11-20")["outcome"] == "present"


def test_a_torn_file_of_a_day_the_database_lacks_is_set_aside_and_the_day_built(
    harness: Harness,
) -> None:
    """Its event lost too (the database holds no universe of the day): built again from KIS."""
    h = harness
    path = h.data / "universe" / "20261120_kr_stocks.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00" * 512)
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "built" and summary["symbol_count"] > 0
    assert [s["code"] for s in json.loads(path.read_text())["symbols"]] == expected(
        date(2026, 11, 20)
    )
    set_aside(path, b"\x00" * 512)
    assert h.rows("select code, subject from alerts") == [(STATE_FILE_UNREADABLE, str(path))]
    assert h.writer.offsets() == {"universe": 2}  # the alert and the day's universe


def test_an_earlier_universe_that_does_not_read_is_set_aside_and_an_older_one_reused(
    harness: Harness,
) -> None:
    """A failed build reuses the newest earlier universe: one torn by a power cut failed the
    job instead. It is kept aside, alerted, and the one before it reused."""
    h = harness
    h.build("2026-11-18")
    h.build("2026-11-19")
    torn = h.data / "universe" / "20261119_kr_stocks.json"
    torn.write_bytes(b'{"metadata": {"date": "20261119", "previous_tr')
    h.sim.faults.master_damage = {"kospi_code.mst.zip": "truncated"}
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261118"
    set_aside(torn, b'{"metadata": {"date": "20261119", "previous_tr')
    alerts = h.rows("select code, subject from alerts order by seq")
    assert alerts == [(STATE_FILE_UNREADABLE, str(torn)), ("universe_reused", "2026-11-20")]


def test_a_reused_universe_gives_way_to_the_days_own_before_the_warmup(
    harness: Harness,
) -> None:
    """A transient failure at 06:10 is retried by the 07:00 run (or any rerun before 08:00):
    Track A then starts on the day's own universe. From the warm-up on, the day's stands."""
    h = harness
    h.build("2026-11-18")
    h.sim.faults.master_damage = {"kospi_code.mst.zip": "truncated"}
    assert h.build("2026-11-19")["reused_from"] == "20261118"  # 11-20 05:00: after its warm-up
    assert h.build("2026-11-20")["reused_from"] == "20261119"  # 11-20 05:00: before it
    h.sim.faults.master_damage.clear()
    assert h.build("2026-11-19")["outcome"] == "present"
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "built" and summary["reused_from"] == ""
    file = json.loads((h.data / "universe" / "20261120_kr_stocks.json").read_text())
    assert file["metadata"]["reused_from"] == "" and len(file["symbols"]) > 0
    newest = h.rows(
        "select based_on from universe_snapshots where trade_date = '2026-11-20'"
        " order by produced_ns desc, seq desc limit 1"
    )
    assert [str(b) for (b,) in newest] == ["2026-11-19"]  # Track A's universe_of: the day's
    # The 06:10 run's critical alert ends with the day's own universe: no reminders all day.
    resolved = h.rows("select code, severity, message from alert_resolutions")
    assert [(c, s) for c, s, _ in resolved] == [("universe_reused", "critical")]
    assert "universe for 2026-11-20 built" in resolved[0][2]
    assert h.build("2026-11-20")["outcome"] == "present"
    assert len(h.rows("select 1 from alert_resolutions")) == 1  # nothing open: none again


def test_a_build_ending_after_the_warmup_keeps_the_reused_universe(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Track A has started on the reused universe: a rerun's build ending after 08:00
    does not change it under Track A, and the alert says why. (Ordinary days: the CSAT day,
    2026-11-19, warms up at 08:50.)"""
    import workers.universe.job as job

    h = harness
    h.build("2026-11-17")
    h.sim.faults.master_damage = {"kospi_code.mst.zip": "truncated"}
    assert h.build("2026-11-18")["reused_from"] == "20261117"
    h.sim.faults.master_damage.clear()
    build = job.build_day
    late = datetime(2026, 11, 18, 8, 3, tzinfo=KST)

    def slow_build(*args: Any) -> Any:  # started before the warm-up, done after it
        built = build(*args)
        monkeypatch.setattr(job, "now_utc", lambda _clock: late)
        return built

    monkeypatch.setattr(job, "build_day", slow_build)
    monkeypatch.setattr(job, "now_utc", lambda _clock: late - timedelta(hours=1))
    summary = h.build("2026-11-18")
    assert summary["outcome"] == "reused" and summary["reused_from"] == "20261117"
    file = json.loads((h.data / "universe" / "20261118_kr_stocks.json").read_text())
    assert file["metadata"]["reused_from"] == "20261117"
    [(message,)] = h.rows(
        "select message from alerts where code = 'universe_reused' order by produced_ns desc"
        " limit 1"
    )
    assert "built only at 08:03:00 KST, once the warm-up had begun" in message
    assert h.rows("select code from alert_resolutions") == []  # the reuse stands: still open


DAILY_CHART = ("domestic-stock/v1/quotations/inquire-daily-itemchartprice", "FHKST03010100")


def test_candidates_whose_chart_fails_are_asked_again_then_named(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The largest stocks' daily charts failing left them out of the day's universe unsaid.

    The first fails once and is asked again after the others; the next two fail twice: left
    out, named in the file's metadata and in a warning.
    """
    from harness.sim import quotes
    from harness.sim.protocol import fail

    h = harness
    first, *lost = expected(date(2026, 11, 20))[:3]
    chart = quotes._ROUTES[DAILY_CHART]
    calls: Counter[str] = Counter()

    def flaky(self: Any, query: Any) -> Any:
        symbol = query["FID_INPUT_ISCD"]
        calls[symbol] += 1
        if symbol in lost or (symbol == first and calls[symbol] == 1):
            return fail(200, "OPSQ0003", "조회 처리 중 오류가 발생했습니다.")  # not retried
        return chart(self, query)

    monkeypatch.setitem(quotes._ROUTES, DAILY_CHART, flaky)
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "built"
    assert {s: calls[s] for s in (first, *lost)} == {first: 2, lost[0]: 2, lost[1]: 2}
    file = json.loads((h.data / "universe" / "20261120_kr_stocks.json").read_text())
    codes = [s["code"] for s in file["symbols"]]
    assert codes == [s for s in expected(date(2026, 11, 20)) if s not in lost]
    assert codes[0] == first
    failed = file["metadata"]["failed_symbols"]
    assert sorted(failed) == sorted(lost) and "OPSQ0003" in failed[lost[0]]
    assert summary["excluded"]["failed"] == 2
    ((severity, code, message),) = h.rows("select severity, code, message from alerts")
    assert (severity, code) == ("warning", "universe_members_failed")
    assert "leaves out 2 candidates" in message and "asked twice" in message
    assert all(s in message for s in lost)


def test_the_members_failed_alert_names_the_first_ten_and_counts_the_rest() -> None:
    from bus.events import Alert, Event
    from workers.universe import job
    from workers.universe.build import Built

    built = Built(date(2026, 11, 20), date(2026, 11, 19), [], 1000, retried=12)
    built.failed = {f"{n:06d}": "KisServerError: EGW00002" for n in range(12, 0, -1)}
    sent: list[Event] = []

    class Producer:
        def send(self, event: Event) -> int:
            sent.append(event)
            return len(sent)

    producer: Any = Producer()
    job.members_failed_alert(built, date(2026, 11, 20), producer)
    (alert,) = sent
    assert isinstance(alert, Alert) and alert.code == "universe_members_failed"
    named = ", ".join(f"{n:06d}" for n in range(1, 11))
    assert alert.message == (
        "universe for 2026-11-20 leaves out 12 candidates whose daily chart failed (asked "
        f"twice): {named} and 2 more; 000001: KisServerError: EGW00002"
    )
    sent.clear()
    none = Built(date(2026, 11, 20), date(2026, 11, 19), [], 1000)
    job.members_failed_alert(none, date(2026, 11, 20), producer)
    assert sent == []  # none failed: nothing to say


def install_masters(h: Harness, installed: datetime) -> None:
    """The KR masters in use as the master-file worker leaves them, installed at ``installed``."""
    files = LocalFiles(h.data)
    for market in ("KOSPI", "KOSDAQ"):
        file = master_file(market)
        data = httpx.get(h.master_url + file.name).content
        current_archive(h.data, file).write_bytes(data)
        stamp = int(installed.timestamp()) * 10**9
        files.save_state(file, FileState(Current(len(data), "a", "b", 1, installed_ns=stamp)))


def test_the_masters_age_is_recorded_and_a_day_old_one_reported(harness: Harness) -> None:
    h = harness
    install_masters(h, datetime(2026, 11, 19, 6, 0, tzinfo=KST))  # the 11-19 06:00 check
    summary = h.build("2026-11-19")  # after the 11-18 close: the day's masters
    installed = {"KOSPI": "2026-11-19T06:00:00+09:00", "KOSDAQ": "2026-11-19T06:00:00+09:00"}
    assert summary["masters_installed"] == installed
    assert not h.rows("select code from alerts")
    summary = h.build("2026-11-20")  # the same masters: before the 11-19 close
    assert summary["outcome"] == "built" and summary["masters_installed"] == installed
    ((severity, message),) = h.rows("select severity, message from alerts")
    assert severity == "warning" and "before the previous session closed" in message
    assert h.rows("select code from alerts") == [("universe_master_stale",)]


def test_the_shipped_universe_follows_the_days_master_check() -> None:
    """The universe reads the KR masters the same morning's check installed: it runs after
    that check (waiting for it while it runs, at start-up too), and before the warm-up."""
    settings = load_settings()
    programs = settings.programs
    universe, masters = programs["universe"], programs["master_file"]
    assert "master_file" in universe.after
    assert list(programs).index("master_file") < list(programs).index("universe")
    timeline = timeline_from(settings.phases, settings.calendar)
    late = settings.calendar.late_days[0].day
    for day in [late + timedelta(days=n) for n in range(-7, 8)]:
        if not timeline.calendar.is_session(day):
            continue
        checks = [due_at(timeline, e, day) for e in masters.schedule if applies(timeline, e, day)]
        warmup = timeline.schedule.starts(day)[0][0]
        runs = [due_at(timeline, e, day) for e in universe.schedule if applies(timeline, e, day)]
        assert runs and all(min(checks) < run < warmup for run in runs), (day, runs)


def test_a_database_that_cannot_be_read_does_not_stop_the_days_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 06:10 run reads the database first (is the day stored?); on a collectors host
    whose store is down it failed before building, and Track A had no universe."""
    import msgspec

    from bus.events import Event
    from observer.calendar.clock import ManualClock
    from observer.config.tree import Settings
    from workers.universe import job
    from workers.universe.build import Built

    settings = msgspec.convert(
        {
            "paths": {"data_dir": str(tmp_path / "data")},
            "database": {"url": f"sqlite:///{tmp_path / 'missing' / 'observer.db'}"},
        },
        Settings,
    )
    day = date(2026, 11, 20)
    built: list[date] = []

    def build(
        settings: Settings, clock: object, on: date, producer: object, notifier: object
    ) -> Built:
        built.append(on)
        return Built(on, date(2026, 11, 19), [], 0)

    monkeypatch.setattr(job, "build_day", build)
    sent: list[Event] = []

    class Producer:
        def send(self, event: Event) -> int:
            sent.append(event)
            return len(sent)

    six = int(datetime(2026, 11, 20, 6, 10, tzinfo=KST).timestamp() * 1e9)
    _, outcome = job.run_universe(settings, ManualClock(six), day, Producer(), None)  # type: ignore[arg-type]
    assert (built, outcome) == ([day], "built")
    assert "UniverseSnapshot" in [type(e).__name__ for e in sent]
    assert (tmp_path / "data" / "universe" / "20261120_kr_stocks.json").is_file()
