"""``observer bench journal``: reading the raw journal against ``zstd -d`` of the same files.

A day's file of H0STCNT0 frames is written by `observer.kis.journal.Journal` itself (real
records, varied prices, stamps and quantities, so zstd compresses them as it does a real day),
then read whole by `verify_file` (decompress, frame, decode every record: what ``journal
verify``, ``replay`` and the weekly verify do) and by the ``zstd`` command decompressing it to
nothing. The ratio is the reader's MB/s over zstd's (target at least 0.5). A second file of
half the records shows the reader linear: its records per second within the run's noise of
the full file's.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import zstandard

from harness.bench.timing import best_seconds
from observer.kis.journal import KST, Journal, verify_file

__all__ = ["JournalBenchReport", "run_journal_bench", "trade_frame"]

_NS = 1_000_000_000
_START = datetime(2026, 11, 27, 9, 0, tzinfo=KST)


@dataclass
class JournalBenchReport:
    """Numbers of one run (the best of ``rounds`` reads each)."""

    records: int = 0
    compressed_bytes: int = 0
    raw_bytes: int = 0  # the decompressed stream
    read_s: float = 0.0
    half_read_s: float = 0.0  # the file of half the records
    zstd_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        mb = self.raw_bytes / 1e6
        reader_mbs, zstd_mbs = mb / self.read_s, mb / self.zstd_s
        full_rate = self.records / self.read_s
        half_rate = (self.records // 2) / self.half_read_s
        return {
            "records": self.records,
            "compressed_bytes": self.compressed_bytes,
            "raw_bytes": self.raw_bytes,
            "read_s": round(self.read_s, 3),
            "records_per_s": round(full_rate),
            "reader_mb_per_s": round(reader_mbs, 1),
            "zstd_s": round(self.zstd_s, 3),
            "zstd_mb_per_s": round(zstd_mbs, 1),
            "ratio_to_zstd": round(reader_mbs / zstd_mbs, 2),
            "half_records_per_s": round(half_rate),
            "linearity": round(full_rate / half_rate, 2),  # 1.0: linear; 0.5: quadratic
        }

    def lines(self) -> list[str]:
        """Human-readable report."""
        s = self.summary()
        return [
            "journal bench",
            f"  file                {s['records']:,} H0STCNT0 frames, "
            f"{s['compressed_bytes']:,} bytes ({s['raw_bytes']:,} decompressed)",
            f"  journal reader      {s['read_s']:.3f} s  {s['records_per_s']:,} records/s  "
            f"{s['reader_mb_per_s']} MB/s",
            f"  zstd -d             {s['zstd_s']:.3f} s  {s['zstd_mb_per_s']} MB/s  "
            f"ratio {s['ratio_to_zstd']}  target >= 0.5",
            f"  half the records    {s['half_records_per_s']:,} records/s  "
            f"linearity {s['linearity']}  (1.0 linear, 0.5 quadratic)",
        ]


def _frame(rng: random.Random, at: datetime) -> str:
    """One H0STCNT0 data frame of one record, in the 46-field layout."""
    symbol = f"{rng.randrange(0, 2500):06d}"
    return trade_frame(rng, symbol, at, rng.randrange(50_000, 90_000, 100), rng.randrange(1, 5000))


def trade_frame(rng: random.Random, symbol: str, at: datetime, price: int, qty: int) -> str:
    """One H0STCNT0 data frame of one trade, in the 46-field layout; ``rng`` fills the rest."""
    fields = [
        symbol,
        at.strftime("%H%M%S"),
        str(price),
        "2",
        str(rng.randrange(-3000, 3000)),
        f"{rng.uniform(-5, 5):.2f}",
        str(price),
        str(price - 1000),
        str(price + 1500),
        str(price - 1500),
        str(price + 100),
        str(price),
        str(qty),
        str(rng.randrange(1_000_000, 9_000_000)),
        str(rng.randrange(10**11, 10**12)),
        *(str(rng.randrange(0, 100_000)) for _ in range(6)),  # the figures that move
        *("0", "1", "95.12", "2", "N", "3", "2", "0.00") * 3,  # and those that mostly do not
        "20",
    ]
    return "0|H0STCNT0|001|" + "^".join(fields)


def _write(folder: Path, records: int, seed: int) -> tuple[Path, int]:
    """A sealed journal file of ``records`` frames; its path and decompressed size."""
    rng = random.Random(seed)
    journal = Journal(folder, "bench")
    start_ns = int(_START.timestamp() * _NS)
    for i in range(records):
        received = start_ns + i * 200_000_000  # 5 a second: a day's spread of stamps
        journal.frame("acct1", _frame(rng, datetime.fromtimestamp(received / _NS, KST)), received)
    path = journal.path
    journal.close()
    assert path is not None
    with open(path, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f)
        raw = sum(len(chunk) for chunk in iter(lambda: reader.read(1 << 20), b""))
    return path, raw


def _zstd(path: Path) -> None:
    subprocess.run(["zstd", "-d", "-q", "-c", str(path)], stdout=subprocess.DEVNULL, check=True)


def run_journal_bench(records: int = 200_000, rounds: int = 3) -> JournalBenchReport:
    """Write the files, then time the reader and ``zstd -d`` on them in this run."""
    if shutil.which("zstd") is None:
        raise RuntimeError("the zstd command is not installed (Debian's zstd package)")
    with tempfile.TemporaryDirectory(prefix="observer-bench-journal-") as scratch:
        full, raw = _write(Path(scratch) / "full", records, 1)
        half, _ = _write(Path(scratch) / "half", records // 2, 2)
        report = JournalBenchReport(records, full.stat().st_size, raw)
        found = verify_file(full)
        if found.records != records or not found.sealed:
            raise RuntimeError(f"the reader found {found.records:,} records of {records:,}")
        report.read_s = best_seconds(lambda: verify_file(full), rounds)
        report.half_read_s = best_seconds(lambda: verify_file(half), rounds)
        report.zstd_s = best_seconds(lambda: _zstd(full), rounds)
    return report
