"""``observer report`` in a real browser: Debian's chromium, headless, driven over the DevTools
protocol. What a reader sees: every heat-map cell on screen in its status's colour, the
tables' text as the page states it, an alert's markup shown as text."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from bus.events import Alert
from observer.data import Catalog
from observer.data.report import COLOURS, day_report
from observer.writer.store import Store
from tests.data.test_coverage import DAY, at, day, publish
from tests.data.test_report import HOSTILE
from tests.support import wait_until

__all__ = ["day"]  # the fixture: a watched symbol's morning with trades and two gaps

CHROMIUM = shutil.which("chromium")
DEADLINE_S = 60.0  # for chromium's start and the page's load: a guard against a hang

# Each rendered cell: its status, its minutes, its box's centre, what the browser finds there.
_CELLS = """JSON.stringify([...document.querySelectorAll("rect.cell")].map(r => {
  const b = r.getBoundingClientRect(), x = b.left + b.width / 2, y = b.top + b.height / 2;
  return {status: r.dataset.status, minutes: Number(r.dataset.minutes), x, y,
          width: b.width, on_top: document.elementFromPoint(x, y) === r};
}))"""


@pytest.fixture(autouse=True)
def _chromium() -> None:
    """Skipped without chromium, with the reason; failed under CI, where it must be there."""
    if CHROMIUM is None and os.environ.get("CI") == "true":
        pytest.fail("the report's browser test needs Debian's chromium", pytrace=False)
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium")


class Tab:
    """One page of a headless chromium, over the DevTools protocol's flat sessions."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self._id = ws, 0
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self._call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:  # events (none enabled) and earlier answers are not this call's
            answer = json.loads(self.ws.recv(timeout=DEADLINE_S))
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._call(method, self.session, **params)

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"][
            "value"
        ]

    def open(self, page: Path) -> None:
        """Load ``page`` in a 1400 x 4000 viewport, waiting until the document is complete."""
        metrics = {"width": 1400, "height": 4000, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", **metrics)
        self.call("Page.navigate", url=page.as_uri())
        wait_until(
            lambda: self.evaluate("document.readyState") == "complete", DEADLINE_S, f"{page} loaded"
        )

    def pixel(self, x: float, y: float) -> str:
        """The colour the screen shows at (x, y), as ``#rrggbb``."""
        clip = {"x": int(x), "y": int(y), "width": 1, "height": 1, "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", clip=clip)
        return _one_pixel(base64.b64decode(shot["data"]))


def _one_pixel(png: bytes) -> str:
    """The colour of a 1 x 1 PNG of 8-bit RGB or RGBA.

    A single pixel's row needs no unfiltering: each of PNG's filters predicts it from
    neighbours that do not exist, which count as zero.
    """
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        chunks[kind] = chunks.get(kind, b"") + png[at + 8 : at + 8 + length]
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, depth) == (1, 1, 8) and colour in (2, 6)
    row = zlib.decompress(chunks[b"IDAT"])
    return "#" + row[1:4].hex()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Tab]:
    """A headless chromium of its own profile, its DevTools port chosen by itself."""
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # as root (CI), chromium refuses to start with its sandbox
        "--disable-gpu",
        "--force-color-profile=srgb",  # the page's colours as written
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    log = tmp_path / "chromium.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    try:
        active = profile / "DevToolsActivePort"

        def written() -> list[str]:  # its port and path, once chromium has written both
            assert proc.poll() is None, log.read_text(errors="replace")
            lines = active.read_text().splitlines() if active.exists() else []
            return lines if len(lines) == 2 else []

        port, path = wait_until(written, DEADLINE_S, "chromium's DevTools port")
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as ws:
            yield Tab(ws)
    finally:
        proc.kill()
        proc.wait(30)


def test_the_browser_shows_each_minute_in_its_colour_and_alerts_as_text(
    day: Catalog, store: Store, browser: Tab, tmp_path: Path
) -> None:
    alert = Alert(severity="warning", code="TRACK_B_LAG", message=HOSTILE, subject="a1")
    publish(store, "supervisor", [(at("09:45:00"), alert)])
    page = tmp_path / "day.html"
    page.write_text(day_report(day, DAY))
    browser.open(page)

    cells = json.loads(browser.evaluate(_CELLS))
    minutes: Counter[str] = Counter()
    for cell in cells:
        # Laid out a minute to 2 pixels, not hidden under anything, painted in its colour.
        assert cell["width"] == 2 * cell["minutes"] and cell["on_top"], cell
        assert browser.pixel(cell["x"], cell["y"]) == COLOURS[cell["status"]], cell
        minutes[cell["status"]] += cell["minutes"]
    assert minutes == Counter(day.coverage("005930", DAY)["status"].to_pylist())
    assert {"ticks", "missing", "recovered", "quiet"} <= minutes.keys()

    alerts = browser.evaluate('document.querySelector("#alerts").innerText')
    assert HOSTILE in alerts and browser.evaluate("document.scripts.length") == 0
    gaps = browser.evaluate('document.querySelector("#gaps").innerText')
    assert "recovered" in gaps and "unrecoverable" in gaps
