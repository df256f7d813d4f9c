"""``observer report``: the day's page says what the coverage, the gaps and the alerts say."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from typer.testing import CliRunner

from bus.events import Alert
from observer.cli import main as cli
from observer.data import Catalog
from observer.data.report import COLOURS, day_report
from observer.writer.store import Store
from tests.data.test_coverage import DAY, at, day, publish

__all__ = ["day"]  # the fixture: a watched symbol's morning with trades and two gaps

HOSTILE = "<script>alert(1)</script> & more"


class Page(HTMLParser):
    """The parts of a report a test reads: heat-map cells, table rows, summary values."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.summary: dict[str, str] = {}
        self.scripts = 0
        self._table: str | None = None
        self._row: list[str] | None = None
        self._key: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "script":
            self.scripts += 1
        elif tag == "rect" and found.get("class") == "cell":
            self.cells.append(found)
        elif tag == "table" and "id" in found:
            self._table = found["id"]
            self.rows[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
            self.rows[self._table].append(self._row)
        elif tag == "td" and "data-key" in found:
            self._key = found["data-key"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = self._row = None

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            self.summary[self._key] = data
            self._key = None
        if self._row is not None and data.strip():
            self._row.append(data)


def test_the_page_shows_each_minute_gap_and_alert_of_the_day(day: Catalog, store: Store) -> None:
    alert = Alert(severity="warning", code="TRACK_B_LAG", message=HOSTILE, subject="a1")
    publish(store, "supervisor", [(at("09:45:00"), alert)])
    text = day_report(day, DAY)
    page = Page(text)
    minutes: Counter[str] = Counter()
    for cell in page.cells:
        assert cell["data-symbol"] == "005930" and cell["fill"] == COLOURS[cell["data-status"]]
        assert int(cell["width"]) == 2 * int(cell["data-minutes"])  # a run of minutes
        minutes[cell["data-status"]] += int(cell["data-minutes"])
    expected = Counter(day.coverage("005930", DAY)["status"].to_pylist())
    assert minutes == expected
    assert minutes["ticks"] == 2 and minutes["missing"] == 1 and minutes["recovered"] == 2
    assert page.summary["symbols watched"] == "1" and page.summary["gaps"] == "2"
    gaps = {tuple(row[i] for i in (0, 4, 5)) for row in page.rows["gaps"][1:]}
    assert gaps == {
        ("005930", "disconnect", "recovered"),
        ("005930", "disconnect", "unrecoverable"),
    }
    [(when, severity, code, subject, message)] = page.rows["alerts"][1:]
    assert (when, severity, code, subject) == ("09:45:00", "warning", "TRACK_B_LAG", "a1")
    assert message == HOSTILE and page.scripts == 0  # text, never markup
    [header, symbol] = page.rows["reconciliation-KRX"]  # minutes by status, judged, trades
    assert dict(zip(header, symbol, strict=True)) == {
        "symbol": "005930",
        "ticks": "2",
        "quiet": "3",
        "recovered_trades": "0",
        "recovered": "2",
        "missing": "1",
        "not_watched": str(minutes["not_watched"]),
        "judged": "0",
        "trades": "4",
    }
    assert 'data-status="missing">1<' in text and "<svg" in text and "http" not in text


def test_the_command_writes_the_page(day: Catalog, store: Store, tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[retention]\ndir = "{tmp_path / "archive"}"\n')
    out = tmp_path / "day.html"
    args = ["report", "--date", str(DAY), "--html", str(out), "--config", str(config)]
    done = CliRunner().invoke(cli.app, args)
    assert done.exit_code == 0, done.output
    assert f"the day of {DAY} to {out}" in done.output
    assert Page(out.read_text()).cells
    bad = CliRunner().invoke(cli.app, ["report", "--date", "2026-13-01", "--config", str(config)])
    assert bad.exit_code == 2 and "a day as YYYY-MM-DD" in bad.output
