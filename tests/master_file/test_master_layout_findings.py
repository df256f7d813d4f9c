"""What a real master holds beyond the .h files: listings all the same, reported once.

The master-file worker against the simulator's master host in its deviating modes (codes the
.h files do not list, ``.cod`` rows wider than 24 columns) and a real writer process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.sim.masters import new_codes
from tests.master_file.conftest import MARKET, Harness


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
