"""Symmetry-function scaling and centring exactly as n2p2 does (SPEC §2).

Every mode is Gs = s_min + factor * (G - shift):

=============================  ======================  ======
mode (input.nn keywords)       factor                  shift
=============================  ======================  ======
scale_symmetry_functions       (Smax-Smin)/(Gmax-Gmin)  Gmin
center_symmetry_functions      1 (and s_min = 0)        Gmean
scale + center                 (Smax-Smin)/(Gmax-Gmin)  Gmean
scale_symmetry_functions_sigma (Smax-Smin)/Gsigma       Gmean
none                           1 (and s_min = 0)        0
=============================  ======================  ======
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdnnp.io.scaling_data import ScalingStats

MODES = ("none", "scale", "center", "scalecenter", "sigma")


def scaling_mode(scale: bool, center: bool, sigma: bool) -> str:
    if sigma:
        return "sigma"
    if scale and center:
        return "scalecenter"
    if scale:
        return "scale"
    if center:
        return "center"
    return "none"


@dataclass
class ElementScaling:
    """Affine map for one element: Gs = s_min + factor * (G - shift); arrays (n_sf,)."""

    s_min: float
    factor: np.ndarray
    shift: np.ndarray

    def apply(self, G: np.ndarray) -> np.ndarray:
        return self.s_min + self.factor * (G - self.shift)


def element_scaling(stats: ScalingStats, mode: str, s_min: float = 0.0, s_max: float = 1.0,
                    where: str = "scaling.data", element: str = "") -> ElementScaling:
    """Build the affine map; a zero range (Gmax == Gmin, or sigma == 0) is an error, not NaN."""
    n = len(stats.g_min)
    if mode == "none":
        return ElementScaling(0.0, np.ones(n), np.zeros(n))
    if mode == "center":
        return ElementScaling(0.0, np.ones(n), stats.g_mean.copy())
    denom = stats.g_sigma if mode == "sigma" else stats.g_max - stats.g_min
    if mode == "sigma" and np.isnan(denom).any():
        from hdnnp.errors import ReadError

        s = int(np.flatnonzero(np.isnan(denom))[0])
        raise ReadError(where, None if stats.lines is None else int(stats.lines[s]),
                        "scale_symmetry_functions_sigma needs column 6 (sigma); this file has 5 columns")
    bad = np.flatnonzero(denom == 0.0)
    if len(bad):
        s = int(bad[0])
        line = None if stats.lines is None else int(stats.lines[s])
        what = "Gsigma is 0" if mode == "sigma" else f"Gmin = Gmax = {stats.g_min[s]:.6g}"
        from hdnnp.errors import ReadError

        raise ReadError(
            where, line,
            f"symmetry function {s + 1} of element {element} has a zero scaling range ({what}): it never varies "
            "in the data, so scaling would divide by zero; remove it from input.nn or add more varied data",
        )
    factor = (s_max - s_min) / denom
    shift = stats.g_min.copy() if mode == "scale" else stats.g_mean.copy()
    return ElementScaling(s_min, factor, shift)
