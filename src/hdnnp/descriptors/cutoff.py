"""n2p2 cutoff functions f_c(r) (SPEC §2, n2p2 ``CutoffFunction.cpp``).

With inner cutoff r_ci = alpha * r_c: f = 1 for r < r_ci, else
x = (r - r_ci) / (r_c - r_ci); f = 0 for r >= r_c.

====  =====  ==========================================
code  name   f(x)
====  =====  ==========================================
0     HARD   1
1     COS    (cos(pi x) + 1) / 2
2     TANHU  tanh^3(1 - r/r_c)             (alpha ignored)
3     TANH   c tanh^3(1 - r/r_c), f(0) = 1 (alpha ignored)
4     EXP    e exp(1 / (x^2 - 1))
5     POLY1  (2x - 3) x^2 + 1
6     POLY2  ((15 - 6x) x - 10) x^3 + 1
7     POLY3  (x (x (20x - 70) + 84) - 35) x^4 + 1
8     POLY4  (x (x ((315 - 70x) x - 540) + 420) - 126) x^5 + 1
====  =====  ==========================================

``cutoff_value_derivative`` is compiled with numba and used inside the kernels;
it returns (f, df/dr).
"""

from __future__ import annotations

import math

import numba
import numpy as np

CUTOFF_NAMES = {0: "HARD", 1: "COS", 2: "TANHU", 3: "TANH", 4: "EXP", 5: "POLY1", 6: "POLY2", 7: "POLY3", 8: "POLY4"}
_E = math.e
_TANH_NORM = ((_E + 1.0 / _E) / (_E - 1.0 / _E)) ** 3  # 1 / tanh(1)^3


@numba.njit(cache=True, inline="always")
def cutoff_value_derivative(r: float, r_c: float, cut_type: int, alpha: float):
    """Cutoff function value and derivative d f / d r at distance r (same length unit as r_c)."""
    if r >= r_c:
        return 0.0, 0.0
    if cut_type == 2 or cut_type == 3:
        t = math.tanh(1.0 - r / r_c)
        c = 1.0 if cut_type == 2 else _TANH_NORM
        # d/dr tanh^3(1 - r/rc) = -3 tanh^2 (1 - tanh^2) / rc
        return c * t * t * t, -c * 3.0 * t * t * (1.0 - t * t) / r_c
    r_ci = alpha * r_c
    if r < r_ci:
        return 1.0, 0.0
    if cut_type == 0:
        return 1.0, 0.0
    inv_w = 1.0 / (r_c - r_ci)
    x = (r - r_ci) * inv_w
    if cut_type == 1:
        return 0.5 * (math.cos(math.pi * x) + 1.0), -0.5 * math.pi * math.sin(math.pi * x) * inv_w
    if cut_type == 4:
        y = x * x - 1.0
        f = _E * math.exp(1.0 / y)
        return f, -f * 2.0 * x / (y * y) * inv_w
    if cut_type == 5:
        return (2.0 * x - 3.0) * x * x + 1.0, x * (6.0 * x - 6.0) * inv_w
    if cut_type == 6:
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0, x * x * ((60.0 - 30.0 * x) * x - 30.0) * inv_w
    if cut_type == 7:
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x ** 4 + 1.0, \
            x * x * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0) * inv_w
    if cut_type == 8:
        return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x ** 5 + 1.0, \
            x ** 4 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0) * inv_w
    return 1.0, 0.0


def cutoff_function(r: np.ndarray, r_c: float, cut_type: int, alpha: float = 0.0):
    """Vectorised reference (numpy) version: returns (f, df/dr) arrays."""
    r = np.asarray(r, dtype=np.float64)
    f = np.empty_like(r)
    df = np.empty_like(r)
    for idx, ri in np.ndenumerate(r):
        f[idx], df[idx] = cutoff_value_derivative(float(ri), float(r_c), int(cut_type), float(alpha))
    return f, df
