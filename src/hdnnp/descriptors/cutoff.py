"""n2p2 cutoff functions f_c(r) (SPEC §2, n2p2 ``CutoffFunction.cpp``) and the compact core
functions (n2p2 ``CoreFunction``): the one home of these formulas for every executor.

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

The compact core functions 1-4 (compact SF types 20-25) are the same polynomials POLY1-4 on
x in [0, 1]; core 5 is the EXP function.

Evaluators (all here, nowhere else)
-----------------------------------
* ``cutoff_value_derivative(r, r_c, type, alpha)`` -- numba scalar, (f, df/dr), libm ``tanh``;
  the reference (``cutoff_function`` vectorises it with numpy for tests).
* ``cutoff_value_derivative_fast`` -- numba scalar for the kernels: TANH types through
  tanh(x) = (1 - e^-2x) / (1 + e^-2x) with the branch-free ``_exp`` (one exp instead of libm's
  slower tanh; the same to ~1e-16 absolute), the other types as above.
* ``cutoff_vec(n, r, r_c, type, alpha, f, df)`` -- numba loop over n distances, branch-free for
  TANH and POLY (vectorised by LLVM).
* ``core_value_derivative(x, core)`` -- numba scalar compact core and d/dx.
* ``cutoff_torch(d, r_c, type, alpha)``, ``core_torch(x, core)`` -- torch tensors (value only;
  autograd gives the derivative), any dtype and device.

The POLY polynomials (value and derivative) are written once for numba (``_poly_cutoff``) and the
TANH formula once (``_tanh_cutoff``); the scalar and the vector evaluators inline them.

Why some per-executor code must remain: numba needs (value, derivative) pairs written out as
scalar arithmetic (it cannot differentiate), in a branch-free clamped form for the vectorised
loops; torch needs tensor operations with masked (``torch.where``) branches and obtains the
derivative from autograd, so the numba code cannot be called from torch nor the reverse.
Within each executor the spellings of the polynomials are kept exactly as they were, because the
results must stay bit-identical: ``core_value_derivative`` multiplies by x^4 as ``(x*x)*(x*x)``
and POLY2/POLY4 differ in association from the core polynomials 2/4 (``x*x*x`` vs ``x*x2``), so
merging them would change the last bit of G; the torch core polynomials in float32 use a
factored form without cancellation near x = 1 (see ``core_torch``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from hdnnp.descriptors.numba_math import FASTMATH, _exp

CUTOFF_NAMES = {0: "HARD", 1: "COS", 2: "TANHU", 3: "TANH", 4: "EXP", 5: "POLY1", 6: "POLY2", 7: "POLY3", 8: "POLY4"}
E = math.e
TANH_NORM = ((E + 1.0 / E) / (E - 1.0 / E)) ** 3  # 1 / tanh(1)^3
_E = E
_TANH_NORM = TANH_NORM


# ----------------------------------------------------------------------------- numba
@numba.njit(cache=True, error_model="numpy", inline="always")
def _poly_cutoff(x, cut_type):
    """POLY1-4 (cut_type 5-8) value and d/dx at x in [0, 1] (multiply d/dx by 1/(r_c - r_ci))."""
    if cut_type == 5:
        return (2.0 * x - 3.0) * x * x + 1.0, x * (6.0 * x - 6.0)
    if cut_type == 6:
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0, x * x * ((60.0 - 30.0 * x) * x - 30.0)
    if cut_type == 7:
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x ** 4 + 1.0, \
            x * x * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0)
    return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x ** 5 + 1.0, \
        x ** 4 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _tanh_cutoff(r, r_c, c):
    """c tanh^3(1 - r/r_c) and d/dr for r < r_c, tanh from one branch-free ``_exp``."""
    em = _exp(-2.0 * (1.0 - r / r_c))
    t = (1.0 - em) / (1.0 + em)
    t2 = t * t
    return c * t2 * t, -c * 3.0 * t2 * (1.0 - t2) / r_c


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
    if 5 <= cut_type <= 8:
        v, dv = _poly_cutoff(x, cut_type)
        return v, dv * inv_w
    return 1.0, 0.0


@numba.njit(cache=True, error_model="numpy", inline="always")
def cutoff_value_derivative_fast(r, r_c, cut_type, alpha):
    """``cutoff_value_derivative`` with the TANH types through ``_tanh_cutoff`` (kernels)."""
    if cut_type == 2 or cut_type == 3:
        if r >= r_c:
            return 0.0, 0.0
        return _tanh_cutoff(r, r_c, 1.0 if cut_type == 2 else _TANH_NORM)
    return cutoff_value_derivative(r, r_c, cut_type, alpha)


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def cutoff_vec(n, r, r_c, cut_type, alpha, f, df):
    """f[t], df[t] = cutoff value and derivative at r[t], t < n (0 for r >= r_c; branch-free
    for TANH and POLY). Loops start at 0 so that numba needs no negative-index handling: pass
    slices for other ranges."""
    if cut_type == 2 or cut_type == 3:
        c = 1.0 if cut_type == 2 else _TANH_NORM
        for t in range(n):
            inside = r[t] < r_c
            v, dv = _tanh_cutoff(r[t], r_c, c)
            f[t] = v if inside else 0.0
            df[t] = dv if inside else 0.0
    elif 5 <= cut_type <= 8:
        # polynomials: f(0) = 1, f(1) = 0 and f'(0) = f'(1) = 0 exactly, so clamping x to [0, 1]
        # covers r < r_ci and r >= r_c without branches
        r_ci = alpha * r_c
        iw = 1.0 / (r_c - r_ci)
        for t in range(n):
            x = min(max((r[t] - r_ci) * iw, 0.0), 1.0)
            v, dv = _poly_cutoff(x, cut_type)
            f[t] = v
            df[t] = dv * iw
    else:
        for t in range(n):
            f[t], df[t] = cutoff_value_derivative_fast(r[t], r_c, cut_type, alpha)


@numba.njit(cache=True, error_model="numpy", inline="always")
def core_value_derivative(x, core):
    """Compact core function and derivative on x in [0, 1] (n2p2 ``CoreFunction``)."""
    if core == 1:
        return (2.0 * x - 3.0) * x * x + 1.0, x * (6.0 * x - 6.0)
    if core == 2:
        x2 = x * x
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x2 + 1.0, x2 * ((60.0 - 30.0 * x) * x - 30.0)
    if core == 3:
        x2 = x * x
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0, \
            x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0)
    if core == 4:
        x4 = (x * x) * (x * x)
        return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x * x4 + 1.0, \
            x4 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0)
    # exponential
    t = 1.0 / (x * x - 1.0)
    e = math.e * math.exp(t)
    return e, -2.0 * x * t * t * e



def cutoff_function(r: np.ndarray, r_c: float, cut_type: int, alpha: float = 0.0):
    """Vectorised reference (numpy) version: returns (f, df/dr) arrays."""
    r = np.asarray(r, dtype=np.float64)
    f = np.empty_like(r)
    df = np.empty_like(r)
    for idx, ri in np.ndenumerate(r):
        f[idx], df[idx] = cutoff_value_derivative(float(ri), float(r_c), int(cut_type), float(alpha))
    return f, df


# ----------------------------------------------------------------------------- torch
def cutoff_torch(d: torch.Tensor, r_c: float, cut_type: int, alpha: float) -> torch.Tensor:
    """n2p2 cutoff function f_c(d) (table in the module docstring) on tensors, elementwise; 0 for d >= r_c.

    d : distances (any shape, length unit of the potential). Differentiable; finite gradients
    everywhere (masked branches are fed safe arguments).
    """
    inside = d < r_c
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    if cut_type in (2, 3):
        t = torch.tanh(1.0 - d / r_c)
        f = t * t * t
        if cut_type == 3:
            f = f * TANH_NORM
        return torch.where(inside, f, zero)
    if cut_type == 0:
        return inside.to(d.dtype)
    r_ci = alpha * r_c
    x = ((d - r_ci) * (1.0 / (r_c - r_ci))).clamp(0.0, 1.0)  # r < r_ci -> x = 0 -> f = 1
    if cut_type == 1:
        f = 0.5 * (torch.cos(math.pi * x) + 1.0)
    elif cut_type == 4:
        xs = torch.where(x < 1.0, x, zero)
        f = E * torch.exp(1.0 / (xs * xs - 1.0))
    elif cut_type in (5, 6, 7, 8):
        f = core_torch(x, cut_type - 4)
    else:
        raise ValueError(f"unknown cutoff type {cut_type}")
    return torch.where(inside, f, zero)


def core_torch(x: torch.Tensor, core: int) -> torch.Tensor:
    """Compact core function on x in [0, 1): polynomials 1-4 (value 1 at 0, 0 at 1) or 5 (exp).

    float64: n2p2's spelling (same rounding as the numba kernels). Other dtypes: the factored form
    (1 - x)^(n+1) sum_k C(n+k, k) x^k of the same polynomial, which has no cancellation near x = 1
    (n2p2's form leaves absolute errors of ~100 ulp there: -1e-6 instead of 0 in float32).
    """
    if x.dtype != torch.float64 and core in (1, 2, 3, 4):
        y = 1.0 - x
        if core == 1:
            return y * y * (1.0 + 2.0 * x)
        y2 = y * y
        if core == 2:
            return y2 * y * (1.0 + x * (3.0 + 6.0 * x))
        if core == 3:
            return y2 * y2 * (1.0 + x * (4.0 + x * (10.0 + 20.0 * x)))
        return y2 * y2 * y * (1.0 + x * (5.0 + x * (15.0 + x * (35.0 + 70.0 * x))))
    if core == 1:
        return (2.0 * x - 3.0) * x * x + 1.0
    if core == 2:
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
    if core == 3:
        x2 = x * x
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0
    if core == 4:
        x2 = x * x
        return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x * x2 * x2 + 1.0
    if core == 5:
        return E * torch.exp(1.0 / (x * x - 1.0))
    raise ValueError(f"unknown compact core {core}")
