"""n2p2 ``scaling.data``: per element and symmetry function Gmin, Gmax, Gmean, Gsigma (SPEC §3).

Columns: element index (1-based, atomic-number order), SF index (1-based, sorted order),
Gmin, Gmax, Gmean, Gsigma (sample standard deviation, n-1). ``#`` lines are comments.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

import numpy as np

from hdnnp.errors import ReadError
from hdnnp.io.validation import check_line_utf8

_HEADER = """################################################################################
# Symmetry function scaling data.
################################################################################
# Col  Name     Description
################################################################################
# 1    e_index  Element index.
# 2    sf_index Symmetry function index.
# 3    sf_min   Symmetry function minimum.
# 4    sf_max   Symmetry function maximum.
# 5    sf_mean  Symmetry function mean.
# 6    sf_sigma Symmetry function sigma.
#########################################################################################################################
#        1          2                        3                        4                        5                        6
#  e_index   sf_index                   sf_min                   sf_max                  sf_mean                 sf_sigma
#########################################################################################################################
"""


@dataclass
class ScalingStats:
    """Statistics of one element's symmetry functions, each (n_sf,) float64.

    ``lines`` gives the file line of each row (for error messages), or None.
    """

    g_min: np.ndarray
    g_max: np.ndarray
    g_mean: np.ndarray
    g_sigma: np.ndarray
    lines: np.ndarray | None = None


def read_scaling_data(path: str | Path, n_sf: list[int]) -> list[ScalingStats]:
    """Read ``scaling.data``; ``n_sf[e]`` is the expected SF count of element index e."""
    path = Path(path)
    rows: list[list[list[float]]] = [[] for _ in n_sf]
    lines: list[list[int]] = [[] for _ in n_sf]
    try:
        fh = open(path, encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise ReadError(path, None, f"cannot open: {exc.strerror}") from None
    energy_line = None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            check_line_utf8(path, lineno, raw)
            words = raw.split("#")[0].split()
            if not words:
                continue
            if energy_line is not None:
                raise ReadError(path, energy_line, "a 2-number line (RuNNer's energy range) must be the last line")
            if len(words) == 2:  # RuNNer format: last line = min/max energy per atom (ignored, as n2p2 does)
                energy_line = lineno
                continue
            # 5 columns: older files without sigma (n2p2's shipped 4G examples); sigma is then NaN
            if len(words) < 5:
                raise ReadError(path, lineno, f"expected 6 columns (e_index sf_index min max mean sigma), found {len(words)}")
            try:
                e, s = int(words[0]), int(words[1])
                vals = [float(w) for w in words[2:6]] + ([float("nan")] if len(words) == 5 else [])
            except ValueError:
                raise ReadError(path, lineno, "expected two integers and four numbers") from None
            if not all(math.isfinite(v) for v in vals[:len(words) - 2]):  # a 5-column row's NaN sigma is ours
                raise ReadError(path, lineno, f"expected four finite numbers (min max mean sigma), found "
                                              f"{' '.join(words[2:6])}")
            if not 1 <= e <= len(n_sf):
                raise ReadError(path, lineno, f"element index {e} out of range 1..{len(n_sf)}")
            if s != len(rows[e - 1]) + 1:
                raise ReadError(path, lineno, f"expected symmetry function index {len(rows[e - 1]) + 1} of element {e}, found {s}")
            if s > n_sf[e - 1]:
                raise ReadError(path, lineno, f"element {e} has only {n_sf[e - 1]} symmetry functions in input.nn, found row {s}")
            rows[e - 1].append(vals)
            lines[e - 1].append(lineno)
    out = []
    for e, (r, n) in enumerate(zip(rows, n_sf)):
        if len(r) != n:
            last = lines[e][-1] if lines[e] else None
            raise ReadError(path, last, f"element index {e + 1} has {len(r)} rows (last one here); "
                                        f"input.nn defines {n} symmetry functions for it")
        a = np.array(r, dtype=np.float64)
        out.append(ScalingStats(a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.array(lines[e])))
    return out


def write_scaling_data(path: str | Path, stats: list[ScalingStats]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_HEADER)
        for e, st in enumerate(stats):
            for s in range(len(st.g_min)):
                # a row read without sigma (5 columns) is written back without it
                sigma = f" {st.g_sigma[s]:24.16E}" if math.isfinite(st.g_sigma[s]) else ""
                fh.write(
                    f"{e + 1:10d} {s + 1:10d} {st.g_min[s]:24.16E} {st.g_max[s]:24.16E} "
                    f"{st.g_mean[s]:24.16E}{sigma}\n"
                )
