"""Keys for control over tcp: the hosts' pairs and the operators'."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.curve import generate_key_pair


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A folder of CURVE key pairs: two hosts' (``store``, ``collectors``), an operator's
    (``alice``) and one nobody trusts (``mallory``)."""
    folder = tmp_path / "keys"
    for name in ("store", "collectors", "alice", "mallory"):
        generate_key_pair(folder, name)
    return folder
