"""Where the benchmarks find n2p2's potentials and outputs.

``HDNNP_ANCHORS`` if set; else the full reference set beside the repository
(``../shared/anchors/n2p2``) when it has the files a benchmark needs; else the copy that ships
with the tests (``tests/data/n2p2``: the five example potentials, nnp-predict/nnp-dataset
outputs; no training runs).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "anchors" / "n2p2"
SHIPPED = REPO / "tests" / "data" / "n2p2"


def find_anchors(*needed: str) -> Path:
    """The first of HDNNP_ANCHORS, ../shared/anchors/n2p2, tests/data/n2p2 that holds every
    relative path in ``needed`` (HDNNP_ANCHORS is taken as given); SHARED if none does, so
    that the error names the full set's location."""
    if "HDNNP_ANCHORS" in os.environ:
        return Path(os.environ["HDNNP_ANCHORS"])
    for root in (SHARED, SHIPPED):
        if all((root / p).exists() for p in needed):
            return root
    return SHARED
