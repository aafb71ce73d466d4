"""Shared fixtures: the n2p2 reference data the tests compare against.

They ship with the repository in ``tests/data/n2p2`` (see its README.md: which n2p2 version and
command made each file; GPL-3 data from n2p2's examples). ``HDNNP_ANCHORS`` points the tests at
another copy with the same layout. A missing reference directory or file is a failure, never a
skip: without it the parity tests would not test anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: reference data shipped with the tests (n2p2 v2.3.0 outputs and potentials)
SHIPPED_ANCHORS = REPO / "tests" / "data" / "n2p2"
ANCHORS = Path(os.environ.get("HDNNP_ANCHORS", SHIPPED_ANCHORS))


@pytest.fixture(scope="session")
def anchors() -> Path:
    """The n2p2 reference data directory (tests/data/n2p2, or HDNNP_ANCHORS)."""
    if not ANCHORS.is_dir():
        pytest.fail(f"n2p2 reference data not found at {ANCHORS} (it ships in tests/data/n2p2; "
                    "HDNNP_ANCHORS overrides it)")
    return ANCHORS


_POT_CACHE: dict = {}


def load_potential(path: Path):
    from hdnnp.model.potential import Potential

    key = str(path)
    if key not in _POT_CACHE:
        _POT_CACHE[key] = Potential.from_n2p2(path)
    return _POT_CACHE[key]
