"""Shared fixtures: paths to the n2p2 reference data in ../shared/anchors (read-only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ANCHORS = Path(os.environ.get("HDNNP_ANCHORS", REPO.parent / "shared" / "anchors" / "n2p2"))


@pytest.fixture(scope="session")
def anchors() -> Path:
    """The n2p2 anchors; in CI their absence is a failure, not a skip."""
    if not ANCHORS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"n2p2 reference data not found at {ANCHORS} (set HDNNP_ANCHORS)")
        pytest.skip(f"n2p2 reference data not found at {ANCHORS}")
    return ANCHORS


_POT_CACHE: dict = {}


def load_potential(path: Path):
    from hdnnp.model.potential import Potential

    key = str(path)
    if key not in _POT_CACHE:
        _POT_CACHE[key] = Potential.from_n2p2(path)
    return _POT_CACHE[key]
