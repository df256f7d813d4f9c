"""The master host as KIS's may really be, against the master-file worker and a real writer.

What a real master holds beyond the .h files (codes they do not list, ``.cod`` rows wider
than 24 columns) is read as listings and reported once; a host that answers no HEAD and no
validators is read with a plain GET, a change told by the archive's sha256.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.sim.masters import new_codes
from observer.config.workers import MasterFileSettings
from observer.kis.master import RemoteFile
from tests.master_file.conftest import MARKET, Harness
from workers.master_file.decide import decide
from workers.master_file.files import Current


@pytest.fixture
def deviating(harness: Harness) -> Iterator[Harness]:
    config = harness.sim.config
    config.master_new_codes, config.master_extra_columns = True, 2
    try:
        yield harness
    finally:
        config.master_new_codes, config.master_extra_columns = False, 0


def test_new_codes_and_columns_are_listings_reported_once(deviating: Harness) -> None:
    h = deviating
    odd = new_codes(MARKET.listings.values())
    (pf,) = [s for s, f in odd.items() if f.get("scrt_grp_cls_code") == "PF"]
    (qx,) = [s for s, f in odd.items() if f.get("scrt_grp_cls_code") == "QX"]
    (etp8,) = [s for s, f in odd.items() if f.get("etp_prod_cls_code") == "8"]

    out = h.run("update", "--exchange", "KOSPI", "--exchange", "KOSDAQ", "--exchange", "NAS")
    assert "malformed" not in out
    assert "etp_prod_cls_code=8" in out and "scrt_grp_cls_code=PF" in out  # the run's summary
    kinds = "select symbol, security_type, active from instruments where symbol in (:a, :b, :c)"
    assert sorted(h.rows(kinds, a=pf, b=qx, c=etp8)) == sorted(
        [(pf, "other", 1), (qx, "other", 1), (etp8, "etf", 1)]
    )
    nas = sum(1 for x in MARKET.overseas["nas"])
    assert len(h.instruments("NAS")) == nas  # every wider row read

    reported = "select severity, subject, message from alerts where code = 'master_new_codes'"
    first = sorted(h.rows(reported))
    assert [(s, m) for s, m, _ in first] == [("info", "KOSDAQ"), ("info", "KOSPI"), ("info", "NAS")]
    messages = {subject: message for _, subject, message in first}
    assert "etp_prod_cls_code '8'" in messages["KOSPI"] and "'PF'" in messages["KOSPI"]
    assert "'QX'" in messages["KOSDAQ"] and "cod_columns=26" in messages["NAS"]
    assert not h.rows("select code from alerts where code = 'master_records_malformed'")

    h.run("update", "--exchange", "KOSPI", "--exchange", "NAS", "--force")  # the weekly run
    assert sorted(h.rows(reported)) == first  # each finding said once


@pytest.fixture
def headless(harness: Harness) -> Iterator[Harness]:
    """A host refusing HEAD (405) and sending no ETag or Last-Modified."""
    config = harness.sim.config
    config.master_head, config.master_validators = False, False
    try:
        yield harness
    finally:
        config.master_head, config.master_validators = True, True


def test_a_host_without_head_or_validators_is_read_by_get_and_sha256(headless: Harness) -> None:
    h = headless
    out = h.run("update", "--exchange", "KOSDAQ")
    assert "initial download" in out
    loaded = h.instruments("KOSDAQ")
    assert len(loaded) == sum(x.market == "KOSDAQ" for x in MARKET.listings.values())

    out = h.run("update", "--exchange", "KOSDAQ")  # the same archive: not applied again
    assert "unchanged (same sha256)" in out
    checks = "select changed, downloaded from master_file_checks order by seq desc limit 1"
    assert h.rows(checks) == [(0, 0)]

    renamed = sorted(s for s, x in MARKET.listings.items() if x.market == "KOSDAQ")[0]
    h.sim.faults.renamed[renamed] = "새이름"
    out = h.run("update", "--exchange", "KOSDAQ")
    assert "download" in out and "~1 -0" in out  # judged by the GET's size, as HEAD's
    assert h.instruments("KOSDAQ")[renamed] == ("새이름", True)

    h.sim.config.master_head = h.sim.config.master_validators = True  # told never to ask
    h.config.write_text(h.config.read_text() + 'head = "never"\n')
    assert "unchanged (same sha256)" in h.run("update", "--exchange", "KOSDAQ")


def test_same_size_without_validators_downloads_and_compares() -> None:
    """Trusting the size alone skipped a change that kept the archive's length."""
    current = Current(size=1000, sha256="a", content_sha256="b", records=10)
    limits = MasterFileSettings()
    same = decide(current, RemoteFile(1000), limits, force=False)
    assert (same.action, same.by_hash) == ("download", True)
    tagged = Current(size=1000, sha256="a", content_sha256="b", records=10, etag='"x"')
    assert decide(tagged, RemoteFile(1000, etag='"x"'), limits, force=False).action == "skip"
