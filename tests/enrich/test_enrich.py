"""The enrich job against the real simulator (KIS and the fallback source) and a real writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from bus.events import ListingChanged
from bus.producer import Producer
from harness.sim.listings import Overseas
from harness.sim.market import KST, Market
from harness.sim.masters import domestic_master
from harness.sim.sectors import kr_codes, kr_true_sector, listed_code, true_sector
from harness.sim.server import SimConfig
from observer.alerts.states import alert_states
from observer.calendar.trading import TradingCalendar
from observer.db.engine import make_engine
from observer.db.queries import alert_records
from observer.kis.settings import KisSettings
from observer.process.state_files import STATE_FILE_UNREADABLE
from observer.reference.instruments import master_file
from tests.support import SimThread, WriterProcess, db_rows, set_aside, wait_until
from workers.enrich import checkpoint as cp
from workers.enrich.cli import app
from workers.master_file.diff import listing_event
from workers.master_file.reading import read_listings

ROOT = Path(__file__).resolve().parents[2]
MARKET = Market(21, TradingCalendar(), stocks=100, etfs=10)
START = datetime(2026, 11, 22, 6, 30, tzinfo=KST)
REGIONS = {
    "nas": "US",
    "nys": "US",
    "hks": "HK",
    "shs": "CN",
    "tse": "JP",
    "hsx": "VN",
    "hnx": "VN",
}
PER_STEM = 40  # rows per master (ETPs among them are not enriched)


def listings() -> list[Overseas]:
    return [x for stem in REGIONS for x in MARKET.overseas[stem][:PER_STEM]]


STOCKS = [x for x in listings() if x.security_type == "2"]
TRUTH = {(x.exchange, x.symbol): true_sector(x.exchange, x.symbol, x.industry_code) for x in STOCKS}


class Harness:
    def __init__(self, tmp_path: Path, sim: SimThread, tokens: Path) -> None:
        self.sim = sim.sim
        self.clock = sim.sim.clock.spec
        self.env = os.environ | {"OBSERVER_CLOCK": self.clock}
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.writer = WriterProcess(tmp_path, self.url)
        self.data = tmp_path / "data"
        self.tmp = tmp_path
        self.sim_url = sim.url
        self.config = tmp_path / "observer.toml"
        self.tokens = tokens
        self.configure()

    def configure(self, **enrich: object) -> None:
        settings = {
            "fallback_url": f'"{self.sim_url}"',
            "fallback_rate_per_s": 200,
            "retry_delay_s": 0.01,
            "batch_size": 10,
        } | {k: json.dumps(v) for k, v in enrich.items()}
        self.config.write_text(
            f'[paths]\ndata_dir = "{self.data}"\nrun_dir = "{self.writer.run_dir}"\n'
            f'[database]\nurl = "{self.url}"\n'
            f'[kis]\nenvironment = "sim"\nsim_url = "{self.sim_url}"\n'
            f'token_dir = "{self.tokens}"\n'
            # The jobs' share of the account (0.15 shipped) at 90 calls/s: nothing else runs.
            "process_share = { jobs = 0.9 }\n"
            '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 100\n'
            "[enrich]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        )

    def load_listings(self) -> None:
        producer = Producer("masters", self.writer.ingest, self.tmp / "ob-masters")
        for x in listings():
            producer.send(
                ListingChanged(
                    change="new",
                    market=x.exchange,
                    symbol=x.symbol,
                    name=x.name,
                    name_en=x.name_en,
                    exchange=x.exchange,
                    currency=x.currency,
                    security_type="stock" if x.security_type == "2" else "etp",
                    sector_code=x.industry_code,
                    region=REGIONS[x.stem],
                    initial=True,
                )
            )
        assert producer.wait_acked(30)
        producer.close()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "workers.enrich.cli", *args, "--config", str(self.config)]

    def run(self, *args: str, code: int = 0) -> dict[str, Any]:
        done = subprocess.run(
            self.command("run", "--json", *args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == code, done.stderr + done.stdout
        return json.loads(done.stdout.splitlines()[-1])

    def read(self, *args: str, code: int = 0) -> Result:
        """A reading command (``report``, ``unmapped``) run in this process: it only reads
        the database, and an interpreter's start and imports per call cost more than it."""
        result = CliRunner().invoke(
            app, [*args, "--config", str(self.config)], env={"OBSERVER_CLOCK": self.clock}
        )
        assert result.exit_code == code, result.output
        return result

    def report(self, *args: str) -> list[dict[str, Any]]:
        done = self.read("report", "--json", *args)
        regions: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])["regions"]
        return regions

    def alerts(self) -> list[tuple[str, str]]:
        """``(code, state)`` of every alert stored, oldest first."""
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                records = alert_records(conn, 0)
        finally:
            engine.dispose()
        return [(s.notice.code, s.state) for s in alert_states(records)]

    def sectors(self) -> dict[tuple[str, str], tuple[str, str]]:
        rows = db_rows(
            self.url, "SELECT market, symbol, gics_sector_code, origin FROM instrument_sectors"
        )
        return {(m, s): (code, origin) for m, s, code, origin in rows}


@pytest.fixture(scope="module")
def sim_thread() -> Iterator[SimThread]:
    with SimThread(MARKET, START, SimConfig(calls_per_second=100, yahoo_limit=100_000)) as sim:
        yield sim


@pytest.fixture
def harness(tmp_path: Path, sim_thread: SimThread, token_dir: Path) -> Iterator[Harness]:
    faults = sim_thread.sim.faults
    faults.yahoo_429 = faults.yahoo_5xx = 0
    h = Harness(tmp_path, sim_thread, token_dir)
    h.writer.start()
    h.load_listings()
    yield h
    h.writer.kill()


def test_a_run_classifies_every_stock_and_measures_the_mapping(harness: Harness) -> None:
    summary = harness.run("--regions", "ALL")
    sectors = harness.sectors()
    assert set(sectors) == {(x.exchange, x.symbol) for x in STOCKS}  # no ETP
    by_origin: dict[str, list[bool]] = {}
    for key, (code, origin) in sectors.items():
        by_origin.setdefault(origin, []).append(code == TRUTH[key])
    kis, detail, fallback = by_origin["kis_map"], by_origin["kis_detail"], by_origin["fallback"]
    share = len(kis) / len(sectors)
    print(
        f"KIS-mapped {share:.0%}, precision {sum(kis) / len(kis):.0%}; "
        f"KIS detail {len(detail)}, precision {sum(detail) / len(detail):.0%}; "
        f"fallback {len(fallback)}, precision {sum(fallback) / len(fallback):.0%}; "
        f"unresolved {len(by_origin.get('unresolved', []))}"
    )
    assert 0.3 < share < 0.7  # about half the codes are broad (the seed says 46 %)
    assert sum(kis) / len(kis) > 0.9 and all(fallback)
    # HHDFS76200200's sector names classify most of the rest, before the fallback.
    assert len(detail) > len(fallback) and sum(detail) / len(detail) > 0.9
    # HNX has no fallback suffix: its stocks KIS does not classify stay unresolved, unasked.
    hnx = [k for k in sectors if k[0] == "HNX" and sectors[k][1] not in ("kis_map", "kis_detail")]
    assert all(sectors[k][1] == "unresolved" for k in hnx)
    regions = summary["regions"].values()
    assert sum(t["kis_detail"] for t in regions) == len(detail)
    assert summary["kis_calls"] >= len(sectors) - len(kis)  # one call per stock not mapped
    assert summary["kis_codes"] == 42 * 9  # nine exchanges
    names = db_rows(harness.url, "SELECT count(*) FROM kis_sector_codes WHERE exchange = 'NAS'")
    assert names == [(42,)]
    runs = db_rows(harness.url, "SELECT region, total FROM enrichment_runs ORDER BY region")
    assert [r for r, _ in runs] == ["CN", "HK", "JP", "KR", "US", "VN"]  # KR: none loaded here
    # An incremental run right after finds everything fresh and asks nothing.
    again = harness.run("--regions", "ALL", "--incremental")
    assert again["fallback_calls"] == 0
    assert all(t["fresh_skipped"] == t["total"] for t in again["regions"].values())
    regions = harness.report()
    assert {r["region"]: r["total"] for r in regions} == dict(runs)
    unmapped = harness.read("unmapped", "--json")
    rows = json.loads(unmapped.stdout.splitlines()[-1])["unmapped"]
    assert rows and all(r["name"] for r in rows)  # KIS's names, from the fetched catalogs
    assert sum(r["stocks"] for r in rows) == len(sectors) - len(kis)
    # The summary's cross-check (sampled: 5 codes per exchange) compared some stocks.
    assert sum(c["compared"] for c in summary["cross_check"].values()) > 0


def test_a_failing_fallback_never_loses_a_good_sector(harness: Harness) -> None:
    harness.run("--regions", "US,HK")
    before = harness.sectors()
    harness.sim.faults.yahoo_5xx = 10**6
    harness.configure(max_retries=1, breaker_threshold=3)
    failing = harness.run("--regions", "US,HK", "--force-refresh")
    harness.sim.faults.yahoo_5xx = 0
    us = failing["regions"]["US"]
    failed = us["fallback_failed"] + failing["regions"]["HK"]["fallback_failed"]
    assert 3 <= failed <= 3 + 1  # the threshold, plus the other region's call in flight
    assert us["deferred"] > 0 and failing["breaker_opens"] == 1
    assert harness.sectors() == before  # every stored sector kept
    raised = {"enrich_breaker_open", "enrich_fallback_failed", "enrich_deferred"}
    assert raised <= {code for code, state in harness.alerts() if state == "open"}
    # The source is back: the next run that gets through resolves what it no longer finds.
    healthy = harness.run("--regions", "US,HK", "--force-refresh")
    assert healthy["breaker_opens"] == 0 and healthy["fallback_calls"] > 0
    assert not any(healthy["regions"][r][k] for r in ("US", "HK") for k in ("deferred",))
    states = {code: state for code, state in harness.alerts() if code.startswith("enrich")}
    assert states == {code: "resolved" for code in raised}
    resolutions = db_rows(harness.url, "SELECT code FROM alert_resolutions")
    assert sorted(code for (code,) in resolutions) == sorted(raised)  # only of what was open


def test_a_killed_run_resumes_from_its_checkpoint(harness: Harness) -> None:
    harness.configure(fallback_rate_per_s=10, kis_codes=False)  # about 12 s of fallback calls
    asked = harness.sim.yahoo.counts["answered"]
    first = subprocess.Popen(
        harness.command("run", "--regions", "ALL", "--force-refresh"),
        env=harness.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(harness.sectors()) >= 40, timeout=60, what="40 sectors committed")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    checkpoint = harness.data / "enrich" / "checkpoint.json"
    assert checkpoint.exists()
    stored = len(harness.sectors())
    asked_first = harness.sim.yahoo.counts["answered"] - asked
    # The resumed run at the usual rate: the checkpoint is all it takes over.
    harness.configure(kis_codes=False)
    resumed = harness.run("--regions", "ALL", "--force-refresh")
    assert resumed["resumed"] and not checkpoint.exists()
    assert set(harness.sectors()) == {(x.exchange, x.symbol) for x in STOCKS}
    skipped = sum(t["fresh_skipped"] for t in resumed["regions"].values())
    assert skipped >= stored  # what the killed run stored is not asked again
    full = sum(  # the stocks a full run asks the fallback about: no mapping, a suffix
        1
        for (exchange, _), (_, origin) in harness.sectors().items()
        if exchange != "HNX" and origin not in ("kis_map", "kis_detail")
    )
    assert resumed["fallback_calls"] < full <= asked_first + resumed["fallback_calls"]


def test_a_dry_run_publishes_nothing_and_states_the_bounds(harness: Harness) -> None:
    """KIS's per-symbol tier (on by default) is planned apart: its stocks and their time at
    the jobs' share, a floor; the fallback's calls are at most those a real run makes."""
    harness.configure(fallback_rate_per_s=1, kis_codes=False, cross_check="off")
    plan = harness.run("--regions", "ALL", "--dry-run")
    assert harness.sectors() == {}
    needed = sum(t["fallback_needed"] for t in plan["regions"].values())
    asked_kis = sum(t["kis_needed"] for t in plan["regions"].values())
    assert needed == plan["fallback_calls"] > 0 and asked_kis == plan["kis_lookups"] > 0
    assert plan["fallback_max_s"] == needed  # one call a second, whatever the regions
    # The jobs' 0.9 of 100 calls/s, less the default headroom
    assert plan["kis_floor_s"] == round(asked_kis / (90 * (1 - KisSettings().rest_headroom)), 1)
    harness.configure(fallback_rate_per_s=200, kis_codes=False, cross_check="off")
    real = harness.run("--regions", "ALL")
    assert real["fallback_calls"] - real["retries"] <= plan["fallback_calls"]
    assert real["kis_calls"] >= plan["kis_lookups"]  # at least one call per stock planned


def test_a_checkpoint_is_taken_over_only_by_a_run_of_its_regions(harness: Harness) -> None:
    """A killed ``--regions US`` forced run's checkpoint: a KR forced run starts afresh (it
    would otherwise skip the KR stocks stored since the US run started); a US one resumes."""
    harness.configure(kis_codes=False, cross_check="off")
    checkpoint = harness.data / "enrich" / "checkpoint.json"
    started = harness.sim.clock.now_ns() - 3600 * 10**9
    cp.save(checkpoint, cp.Checkpoint(mode="force", started_ns=started, regions=("US",)))
    assert not harness.run("--regions", "KR", "--force-refresh")["resumed"]
    cp.save(checkpoint, cp.Checkpoint(mode="force", started_ns=started, regions=("US",)))
    assert harness.run("--regions", "US", "--force-refresh")["resumed"]
    assert not checkpoint.exists()


def test_a_checkpoint_a_power_cut_tore_is_set_aside_and_the_run_starts_afresh(
    harness: Harness,
) -> None:
    """Cut short: read as none, left in place, said nowhere. It is kept aside and alerted."""
    harness.configure(kis_codes=False, cross_check="off")
    checkpoint = harness.data / "enrich" / "checkpoint.json"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torn = b'{"mode":"force","started_ns":17951'
    checkpoint.write_bytes(torn)
    summary = harness.run("--regions", "US", "--force-refresh")
    assert not summary["resumed"] and not checkpoint.exists()  # the run ended: removed
    set_aside(checkpoint, torn)
    alerts = db_rows(harness.url, "select code, subject, message from alerts")
    assert [(a[0], a[1]) for a in alerts] == [(STATE_FILE_UNREADABLE, str(checkpoint))]
    assert "this run starts afresh" in alerts[0][2]


def test_bad_regions_exit_2(harness: Harness) -> None:
    done = harness.read("run", "--regions", "US,XX", code=2)  # refused before any work
    assert "XX" in done.stderr


def test_the_report_of_a_day_lists_the_sectors_a_run_changed(harness: Harness) -> None:
    harness.configure(kis_codes=False, cross_check="off")
    harness.run("--regions", "US")
    (market, symbol), (code, _) = next(
        (k, v) for k, v in sorted(harness.sectors().items()) if v[1] == "kis_map"
    )
    other = "60" if code != "60" else "10"
    changed_map = harness.tmp / "sector_map.toml"
    changed_map.write_text(
        (ROOT / "config" / "sector_map.toml")
        .read_text()
        .replace(
            "overrides = [\n",
            f'overrides = [\n  {{ symbol = "{market}:{symbol}", '
            f'gics_sector = "{other}", note = "test" }},\n',
        )
    )
    harness.configure(kis_codes=False, cross_check="off", sector_map=str(changed_map))
    second = harness.run("--regions", "US", "--force-refresh")
    assert second["regions"]["US"]["changed"] == 1
    latest = harness.report("--changes")
    day = latest[0]["run_at"][:10]
    rows = harness.report("--date", day, "--changes")
    (us,) = rows
    assert us["changed"] == 1 and us["manual"] == 1
    assert [
        (c["market"], c["symbol"], c["old_code"], c["new_code"], c["origin"]) for c in us["changes"]
    ] == [(market, symbol, code, other, "manual")]
    assert us["coverage_pct"] == latest[0]["coverage_pct"] > 90
    done = harness.read("report", "--date", day, "--changes")
    assert f"{market}:{symbol} {code} " in done.stdout and f"-> {other} " in done.stdout
    assert harness.report("--date", "2020-01-01") == []
    bad = harness.read("report", "--date", "yesterday", code=2)
    assert "--date" in bad.stderr


def test_the_cross_check_lists_and_alerts_what_kis_files_elsewhere(harness: Harness) -> None:
    harness.configure(
        kis_codes=False, kis_detail=False, cross_check="full", cross_check_alert_pct=0.1
    )
    summary = harness.run("--regions", "ALL")
    moved = {
        f"{x.exchange}:{x.symbol}"
        for x in STOCKS
        if listed_code(x.exchange, x.symbol, x.industry_code) != x.industry_code[-3:]
    }
    assert moved  # the simulator files 2 % of its stocks under another code
    found = {entry.split()[0] for c in summary["cross_check"].values() for entry in c["listed"]}
    assert found == moved
    compared = sum(c["compared"] for c in summary["cross_check"].values())
    assert compared >= len(STOCKS)  # every stock's own code was asked: "full"
    codes = {c for (c,) in db_rows(harness.url, "SELECT code FROM alerts")}
    assert "enrich_cross_check" in codes
    stored = {e.split()[0] for r in harness.report() for e in r["cross_disagreements"]}
    assert stored == moved


def test_a_failing_kis_lookup_goes_to_the_fallback(harness: Harness) -> None:
    harness.configure(kis_codes=False, cross_check="off")
    harness.sim.faults.http_5xx = 5  # the first lookup's every attempt
    summary = harness.run("--regions", "US")
    us = summary["regions"]["US"]
    assert us["fallback_ok"] >= 1 and us["fallback_failed"] == 0
    assert set(harness.sectors()) == {
        (x.exchange, x.symbol) for x in STOCKS if x.stem in ("nas", "nys")
    }
    codes = {c for (c,) in db_rows(harness.url, "SELECT code FROM alerts")}
    assert "enrich_kis_lookup_failed" in codes


def test_kr_sectors_come_from_the_domestic_masters_codes_without_a_call(harness: Harness) -> None:
    # The KR listings as the master-file job reads them: the simulator's masters, parsed.
    producer = Producer("kr-masters", harness.writer.ingest, harness.tmp / "ob-kr")
    stocks = []
    for market in ("KOSPI", "KOSDAQ"):
        rows = [x for x in MARKET.listings.values() if x.market == market]
        data = domestic_master(rows, {x.symbol: x.start_price for x in rows})
        for listing in read_listings(master_file(market), data):
            producer.send(listing_event("new", listing, initial=True))
            if listing.security_type == "stock":
                stocks.append(MARKET.listings[listing.symbol])
    assert producer.wait_acked(30)
    producer.close()
    harness.configure(kis_codes=False, cross_check="off")
    before = harness.sim.calls.copy(), harness.sim.yahoo.counts["answered"]
    summary = harness.run("--regions", "KR")
    assert (harness.sim.calls, harness.sim.yahoo.counts["answered"]) == before  # asked nothing
    kr = summary["regions"]["KR"]
    assert kr["total"] == len(stocks) and kr["fallback_ok"] == kr["kis_detail"] == 0
    sectors = harness.sectors()
    truth = {
        (x.market, x.symbol): kr_true_sector(
            x.symbol, x.market, kr_codes(x.symbol, x.market, x.group)[0]
        )
        for x in stocks
    }
    mapped = [k for k in truth if sectors[k][1] == "kis_map"]
    k200 = [k for k in mapped if kr_codes(k[1], k[0], "ST")[1]]
    precision = sum(sectors[k][0] == truth[k] for k in mapped) / len(mapped)
    print(
        f"KR: {len(mapped)} of {len(truth)} mapped ({len(k200)} by KOSPI 200 sector), "
        f"precision {precision:.0%}; unresolved {kr['unresolved']}"
    )
    assert len(mapped) / len(truth) > 0.8 and precision > 0.9 and k200
    assert kr["kis_mapped"] == len(mapped) and kr["unresolved"] == len(truth) - len(mapped)
    (row,) = harness.report()
    assert row["region"] == "KR" and row["coverage_pct"] == round(100 * len(mapped) / len(truth), 1)


def test_kis_refusing_the_lookups_as_over_the_rate_limit_is_alerted_and_a_clean_run_ends_it(
    harness: Harness,
) -> None:
    """KIS answering 10 of the per-symbol lookups with EGW00201: every stock still classified
    (each refused call retried at a slower pace), the account alerted as refused too often by
    enrich; the next run, refused nothing, resolves it."""
    harness.configure(kis_codes=False, cross_check="off")
    refused_before = harness.sim.rate_limited
    harness.sim.faults.rate_limited = 10
    us = harness.run("--regions", "US", "--force-refresh")["regions"]["US"]
    assert harness.sim.rate_limited - refused_before == 10
    assert us["fallback_failed"] == us["deferred"] == 0 and us["kis_detail"] > 0
    assert ("kis_rate_limited", "open") in harness.alerts()
    [message] = db_rows(harness.url, "SELECT message FROM alerts WHERE code = 'kis_rate_limited'")
    assert "of enrich's" in message[0] and "as account acct1" in message[0]
    harness.run("--regions", "US", "--force-refresh")
    assert harness.sim.rate_limited - refused_before == 10
    assert ("kis_rate_limited", "resolved") in harness.alerts()
