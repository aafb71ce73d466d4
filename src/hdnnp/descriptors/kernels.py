"""Compiled (numba) kernels: symmetry functions and their derivatives on the CPU.

Conventions
-----------
* Pairs come from a full neighbour list sorted by central atom (CSR: ``pair_start``);
  ``pair_vec[p] = r_j - r_i + S @ cell`` (length unit of the potential), ``pair_dist[p]`` its norm.
  The order of the pairs of one atom does not matter (the kernel sorts them by element locally).
* ``G[i, s]``: raw (unscaled) value of symmetry function s of atom i (element-local order).
* ``D[p, s, :] = dG[i, s] / dr_j`` for pair p = (i, j). Translation invariance gives
  ``dG[i, s]/dr_i = -sum_p D[p, s, :]``; forces and the virial follow from D.
* Mode 2 never stores D: it contracts with ``dE/dG`` on the fly into per-pair gradients
  ``pair_grad[p] = sum_s dE/dG[i, s] D[p, s, :]`` (memory O(pairs), not O(pairs x SFs)).

How the work is organised (this is what makes the kernels fast)
---------------------------------------------------------------
Angular SFs (types 3, 9, 13, 21, 22, 24, 25) all have the form

    term(j, k) = c * A(cos theta_ijk) * R(r_ij) * R(r_ik) * J(r_jk)

with a per-neighbour radial factor R (exp(-eta (r - r_s)^2) f_c(r), or a compact C_r(r)), an
angular factor A (2^(1-zeta) (1 + lambda cos)^zeta, or a compact C_a(theta)), J = R for narrow
types and 1 for wide ones, and c = 1 or Z_j Z_k (weighted types: constant for a pair of
neighbour elements). SFs sharing R (and narrowness) form a radial *group* q, SFs sharing A an
angular *kind* k; SF s is the pair (q, k) (n2p2's SF groups share exp and cutoff terms the same
way). Per atom:

* neighbours are copied and ordered by element; R and dR/dr of every group are computed once
  per neighbour (one loop per group over the neighbours, cutoff values shared between groups);
* for every *block* of neighbour elements (ea <= eb) that has SFs, the triplets (a, b) that can
  contribute (both inside some group's support, and r_jk < r_c for purely narrow blocks) are
  listed and processed in chunks of up to ``TRIPLET_CHUNK``: every step is a long branch-free
  loop over the list that LLVM vectorises (cos theta, r_jk, J per narrow group, A and dA/dcos per
  kind, then the accumulation);
* values (mode 0): M[k, q] += sum_t A_k(t) P_q(t), P_q = c_q R_q(a) R_q(b) J_q, and G_s = M[k, q];
* contracted gradients (mode 2): W[k, q] = sum over s = (q, k) of c_q dE/dG_s; per triplet
  WA_q = sum_k W_kq A_k and WdA_q = sum_k W_kq dA_k give dE/dcos, dE/dr_ij, dE/dr_ik, dE/dr_jk
  with O(groups) work, which become the gradients on the two pairs (no D is stored);
* mode 1 writes D per SF (this is the expensive mode; used for training and derivative_mode
  "store").

Radial SFs are evaluated per SF as one loop over the neighbours of its element.

exp and acos are evaluated by branch-free inline versions (``_exp``, ``_acos``, ~1 ulp) that
vectorise, libm calls do not; the TANH cutoffs use tanh(x) = (1 - e^-2x)/(1 + e^-2x). The
kernels are compiled with ``fastmath={'reassoc', 'contract'}`` (reassociation for the vectorised
sums, FMA contraction), never with approximate functions or finite-math assumptions;
``error_model="numpy"`` removes the division-by-zero checks. Results agree with n2p2 to ~1e-15
relative (tests/test_n2p2_reference.py; the requirement is 1e-10 / 1e-8).

Work spaces are allocated once per call and thread (``numba.get_thread_id``), not per atom.
Atoms are independent: a thread computes each atom alone, so results do not depend on the
number of threads (bitwise).

Tables (see ``SymmetryFunctionSet.kernel_tables``): per-SF rows ``iparams``/``fparams``;
``rad_idx``/``rad_coef``/``rad_cnt``: radial SFs of central element e seen by a neighbour of
element ej, with the weight Z_j for types 12/23; ``grp_i``/``grp_f``: radial groups per element;
``blk_*``: per block (e, ea, eb) the range of its groups in ``q_i``/``q_f`` (with the weight c),
of its kinds in ``kind_i``/``kind_f`` and of its SF entries (s, q, k) in ``ent_s/q/k``.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
from llvmlite import ir as _llvm_ir
from numba import prange, types
from numba.extending import intrinsic

from hdnnp.descriptors.cutoff import cutoff_value_derivative

# columns of the per-SF float parameter table
P_ETA, P_RS, P_RC, P_LAMBDA, P_ZETA, P_PREF, P_RL, P_CR, P_SR, P_CA, P_SA, P_AL, P_AR, P_ALPHA = range(14)
N_FPARAM = 14
# columns of the per-SF int parameter table
I_TYPE, I_E1, I_E2, I_ZINT, I_CORE, I_ASYM, I_CUT = range(7)
N_IPARAM = 7

# radial groups of angular SFs: float / int columns
GF_ETA, GF_RS, GF_RC, GF_ALPHA, GF_RL, GF_CR, GF_SR = range(7)
N_GF = 7
GI_COMPACT, GI_CUT, GI_CORE, GI_ASYM, GI_NARROW = range(5)
N_GI = 5
# groups of one block (flat over blocks): int / float columns
QI_G, QI_NARROW, QI_COMPACT, QI_NEWFC, QI_CORE, QI_ASYM, QI_CUT, QI_E0, QI_E1 = range(9)
N_QI = 9
QF_C, QF_RC, QF_ETA, QF_RS, QF_RL, QF_CR, QF_SR, QF_ALPHA = range(8)
N_QF = 8
# angular kinds: float / int columns
KF_LAMBDA, KF_ZETA, KF_PREF, KF_AL, KF_AR, KF_CA, KF_SA = range(7)
N_KF = 7
KI_COMPACT, KI_ZINT, KI_CORE = range(3)
N_KI = 3


_THREADS_READY = False


def select_threading_layer() -> None:
    """Choose numba's "workqueue" threading layer before its threads start (once; called when
    this module is imported), unless the user chose a layer (NUMBA_THREADING_LAYER) or numba's
    threads are already running.

    Why: numba's default "omp" layer resolves to the GNU OpenMP runtime that torch loads, whose
    threads spin after every parallel region (OMP_WAIT_POLICY is read when torch is imported,
    too early to change here). With as many threads as cores and any other work on the machine,
    the spinning thread takes the core from the thread it waits for: a 20 ms calculation took
    36 ms with two threads instead of one. workqueue threads sleep when idle; measured on
    an idle 2-core machine they are as fast as OpenMP's, and on a busy one two threads are no
    slower than one. Caveat (numba's): workqueue does not support launching parallel kernels
    from several Python threads at the same time; set NUMBA_THREADING_LAYER=omp (or tbb) for that.
    """
    global _THREADS_READY
    if _THREADS_READY:
        return
    _THREADS_READY = True
    from numba.np.ufunc import parallel

    if parallel._is_initialized or "NUMBA_THREADING_LAYER" in os.environ \
            or numba.config.THREADING_LAYER != "default":
        return
    numba.config.THREADING_LAYER = "workqueue"


select_threading_layer()  # at import: before user code can start numba's threads (numba.set_num_threads does)


# ----------------------------------------------------------------------------- elementary
# Branch-free exp and acos that LLVM can vectorise (libm calls cannot be): the loops over the
# partners of a neighbour spend most of their time there. Both agree with libm to ~1 ulp.


@intrinsic
def _f64_from_bits(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llvm_ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _bits_from_f64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llvm_ir.IntType(64))

    return types.int64(types.float64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # high part has 32 trailing zero bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10


@numba.njit(cache=True, error_model="numpy", inline="always")
def _exp(x):
    """exp(x) for x in [-708, 709] (clamped there), branch-free: Cody-Waite reduction
    x = k ln2 + r, |r| <= ln2/2, Taylor series to r^13 (truncation < 1e-17), scaling by 2^k."""
    x = min(max(x, -708.0), 709.0)
    k = math.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _f64_from_bits((np.int64(k) + 1023) << 52)


# fdlibm e_acos.c
_PIO2_HI = 1.57079632679489655800e+00
_PIO2_LO = 6.12323399573676603587e-17
_PI = 3.14159265358979311600e+00
_PS0, _PS1, _PS2 = 1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01
_PS3, _PS4, _PS5 = -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05
_QS1, _QS2 = -2.40339491173441421878e+00, 2.02094576023350569471e+00
_QS3, _QS4 = -6.88283971605453293030e-01, 7.70381505559019352791e-02


@numba.njit(cache=True, error_model="numpy", inline="always")
def _acos(x):
    """acos(x) for x in [-1, 1], fdlibm's algorithm with its three branches evaluated as selects."""
    ax = abs(x)
    small = ax < 0.5
    z = x * x if small else (1.0 - ax) * 0.5
    p = z * (_PS0 + z * (_PS1 + z * (_PS2 + z * (_PS3 + z * (_PS4 + z * _PS5)))))
    q = 1.0 + z * (_QS1 + z * (_QS2 + z * (_QS3 + z * _QS4)))
    r = p / q
    s = math.sqrt(z)
    res_small = _PIO2_HI - (x - (_PIO2_LO - x * r))
    res_neg = _PI - 2.0 * (s + (r * s - _PIO2_LO))
    df = _f64_from_bits(_bits_from_f64(s) & np.int64(-4294967296))  # s with the low 32 bits cleared
    c = (z - df * df) / ((s + df) if z > 0.0 else 1.0)
    res_pos = 2.0 * (df + (r * s + c))
    return res_small if small else (res_neg if x < 0.0 else res_pos)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _ipow(x, n):
    """x**n for integer n >= 0 by squaring."""
    result = 1.0
    while n > 0:
        if n & 1:
            result *= x
        n >>= 1
        x *= x
    return result


@numba.njit(cache=True, error_model="numpy", inline="always")
def _core(x, core):
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


@numba.njit(cache=True, error_model="numpy", inline="always")
def _compact(a, center, scale, core, asym):
    """Compact function on [left, right] = center -/+ 1/scale: value and d/da."""
    u = (a - center) * scale
    x = abs(u)
    if asym:
        f, df = _core((2.0 - x) * x, core)
        df *= 2.0 - 2.0 * x
    else:
        f, df = _core(x, core)
    return f, df * (scale if u >= 0.0 else -scale)


#: fastmath flags of the kernels: reassociation lets LLVM vectorise the sums over partners
_FASTMATH = {'reassoc', 'contract'}

_TANH_NORM = ((math.e + 1.0 / math.e) / (math.e - 1.0 / math.e)) ** 3  # 1 / tanh(1)^3


@numba.njit(cache=True, error_model="numpy", inline="always")
def _cutoff(r, r_c, cut_type, alpha):
    """``cutoff.cutoff_value_derivative`` with tanh(x) = (1 - e^-2x) / (1 + e^-2x) (x in [0, 1]) for
    the TANH types: one exp instead of libm's slower tanh; the same to ~1e-16 absolute."""
    if cut_type == 2 or cut_type == 3:
        if r >= r_c:
            return 0.0, 0.0
        em = _exp(-2.0 * (1.0 - r / r_c))
        t = (1.0 - em) / (1.0 + em)
        c = 1.0 if cut_type == 2 else _TANH_NORM
        t2 = t * t
        return c * t2 * t, -c * 3.0 * t2 * (1.0 - t2) / r_c
    return cutoff_value_derivative(r, r_c, cut_type, alpha)


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _cutoff_vec(n, r, r_c, cut_type, alpha, f, df):
    """f[t], df[t] = cutoff value and derivative at r[t], t < n (0 for r >= r_c; branch-free
    for TANH and POLY). Loops start at 0 so that numba needs no negative-index handling: pass
    slices for other ranges."""
    if cut_type == 2 or cut_type == 3:
        c = 1.0 if cut_type == 2 else _TANH_NORM
        for t in range(n):
            inside = r[t] < r_c
            em = _exp(-2.0 * (1.0 - r[t] / r_c))
            th = (1.0 - em) / (1.0 + em)
            t2 = th * th
            f[t] = c * t2 * th if inside else 0.0
            df[t] = -c * 3.0 * t2 * (1.0 - t2) / r_c if inside else 0.0
    elif 5 <= cut_type <= 8:
        # polynomials: f(0) = 1, f(1) = 0 and f'(0) = f'(1) = 0 exactly, so clamping x to [0, 1]
        # covers r < r_ci and r >= r_c without branches
        r_ci = alpha * r_c
        iw = 1.0 / (r_c - r_ci)
        for t in range(n):
            x = min(max((r[t] - r_ci) * iw, 0.0), 1.0)
            if cut_type == 5:
                v = (2.0 * x - 3.0) * x * x + 1.0
                dv = x * (6.0 * x - 6.0)
            elif cut_type == 6:
                v = ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
                dv = x * x * ((60.0 - 30.0 * x) * x - 30.0)
            elif cut_type == 7:
                v = (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x ** 4 + 1.0
                dv = x * x * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0)
            else:
                v = (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x ** 5 + 1.0
                dv = x ** 4 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0)
            f[t] = v
            df[t] = dv * iw
    else:
        for t in range(n):
            f[t], df[t] = _cutoff(r[t], r_c, cut_type, alpha)


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gaussian_rjk(n, djk, rs, eta, rc, fc, dfc, J, dJ):
    """J = exp(-eta (r_jk - r_s)^2) f_c(r_jk) and dJ/dr_jk (0 for r_jk >= r_c), n values."""
    for t in range(n):
        d = djk[t]
        x = d - rs
        gg = _exp(-eta * x * x)
        inside = d < rc
        J[t] = gg * fc[t] if inside else 0.0
        dJ[t] = gg * (dfc[t] - 2.0 * eta * x * fc[t]) if inside else 0.0


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gaussian_kind(n, cosv, lam, zeta, pref, zi, A, dA):
    """A = 2^(1-zeta) (1 + lambda cos)^zeta and dA/dcos (0 where 1 + lambda cos <= 0), n values."""
    if zi == 1:
        for t in range(n):
            plam = 1.0 + lam * cosv[t]
            pos = plam > 0.0
            A[t] = pref * plam if pos else 0.0
            dA[t] = pref * zeta * lam if pos else 0.0
    elif zi >= 0:
        for t in range(n):
            plam = 1.0 + lam * cosv[t]
            if plam <= 0.0:
                A[t] = 0.0
                dA[t] = 0.0
            else:
                pm1 = _ipow(plam, zi - 1)
                A[t] = pref * pm1 * plam
                dA[t] = pref * zeta * lam * pm1
    else:
        for t in range(n):
            plam = 1.0 + lam * cosv[t]
            if plam <= 0.0:
                A[t] = 0.0
                dA[t] = 0.0
            else:
                pm1 = plam ** (zeta - 1.0)
                A[t] = pref * pm1 * plam
                dA[t] = pref * zeta * lam * pm1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _compact_kind_core(n, theta, isin, center, scale, core, A, dA):
    for t in range(n):
        # inside the window (left, right) <=> |theta - center| * scale < 1
        u = (theta[t] - center) * scale
        x = abs(u)
        inside = x < 1.0
        x = x if inside else 0.0
        f, df = _core(x, core)
        A[t] = f if inside else 0.0
        dA[t] = -(df * (scale if u >= 0.0 else -scale)) * isin[t] if inside else 0.0


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _compact_kind(n, theta, isin, center, scale, core, A, dA):
    """Compact angular factor C_a(theta) and dC_a/dcos = -C_a'(theta) / sin(theta), n values.

    One loop per core type so that every loop is branch-free (vectorisable)."""
    if core == 1:
        _compact_kind_core(n, theta, isin, center, scale, 1, A, dA)
    elif core == 2:
        _compact_kind_core(n, theta, isin, center, scale, 2, A, dA)
    elif core == 3:
        _compact_kind_core(n, theta, isin, center, scale, 3, A, dA)
    elif core == 4:
        _compact_kind_core(n, theta, isin, center, scale, 4, A, dA)
    else:
        _compact_kind_core(n, theta, isin, center, scale, 5, A, dA)


@numba.njit(cache=True, error_model="numpy")
def _compact_radial(n, d, rl, rc, center, scale, core, asym, f, df):
    """Compact radial function C_r(d[t]) on (rl, rc) and its derivative (0 outside), t < n
    (per pair, not per triplet: a plain loop is fast enough)."""
    for t in range(n):
        if d[t] <= rl or d[t] >= rc:
            f[t] = 0.0
            df[t] = 0.0
        else:
            f[t], df[t] = _compact(d[t], center, scale, core, asym)


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _radial_sfs(mode, ii, e, est, loc, lv, ld, linv, iparams, fparams, rad_idx, rad_coef, rad_cnt,
                w, G, D, pbase, lpg, tv, tdv, acc, fcv, dfcv):
    """Radial SFs of one atom (types 2, 12, 20, 23); neighbours in element order.

    Per SF, one loop over the neighbours of its element; consecutive SFs with the same cutoff
    share the cutoff values (fcv, dfcv). tv, tdv, acc: work arrays (>= neighbour count)."""
    n_el = rad_cnt.shape[0]
    for ej in range(n_el):
        cnt = rad_cnt[e, ej]
        a0 = est[ej]
        nb = est[ej + 1] - a0
        if cnt == 0 or nb == 0:
            continue
        # views of this element's neighbours, indexed from 0
        d = ld[a0:a0 + nb]
        v = tv[:nb]
        dv = tdv[:nb]
        ac = acc[:nb]
        fc = fcv[:nb]
        dfc = dfcv[:nb]
        if mode == 2:
            for t in range(nb):
                ac[t] = 0.0
        last_rc = -1.0
        last_cut = -1
        last_alpha = -1.0
        for q in range(cnt):
            s = rad_idx[e, ej, q]
            rc = fparams[e, s, P_RC]
            c = rad_coef[e, ej, q]
            if iparams[e, s, I_TYPE] >= 20:
                _compact_radial(nb, d, fparams[e, s, P_RL], rc, fparams[e, s, P_CR], fparams[e, s, P_SR],
                                iparams[e, s, I_CORE], iparams[e, s, I_ASYM] != 0, v, dv)
            else:
                cut = iparams[e, s, I_CUT]
                alpha = fparams[e, s, P_ALPHA]
                if rc != last_rc or cut != last_cut or alpha != last_alpha:
                    _cutoff_vec(nb, d, rc, cut, alpha, fc, dfc)
                    last_rc = rc
                    last_cut = cut
                    last_alpha = alpha
                rs = fparams[e, s, P_RS]
                eta = fparams[e, s, P_ETA]
                for t in range(nb):
                    x = d[t] - rs
                    g = _exp(-eta * x * x)
                    v[t] = g * fc[t]
                    dv[t] = g * (dfc[t] - 2.0 * eta * x * fc[t])
            if mode == 2:
                ws = w[s] * c
                for t in range(nb):
                    ac[t] += ws * dv[t]
                continue
            tot = 0.0
            for t in range(nb):
                tot += v[t]
            G[ii, s] += tot * c
            if mode == 1:
                for t in range(nb):
                    a = a0 + t
                    f = dv[t] * c * linv[a]
                    pp = loc[a] - pbase
                    D[pp, s, 0] += f * lv[a, 0]
                    D[pp, s, 1] += f * lv[a, 1]
                    D[pp, s, 2] += f * lv[a, 2]
        if mode == 2:
            for t in range(nb):
                a = a0 + t
                f = ac[t] * linv[a]
                lpg[a, 0] += f * lv[a, 0]
                lpg[a, 1] += f * lv[a, 1]
                lpg[a, 2] += f * lv[a, 2]


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _group_factors(e, nn, ld, grp_n, grp_i, grp_f, RT, dRT, fcv, dfcv):
    """RT[g, a], dRT[g, a]: radial factor of group g at neighbour a (0 outside its support);
    groups sorted by cutoff share the cutoff values."""
    last_rc = -1.0
    last_cut = -1
    last_alpha = -1.0
    for g in range(grp_n[e]):
        rc = grp_f[e, g, GF_RC]
        if grp_i[e, g, GI_COMPACT] != 0:
            _compact_radial(nn, ld, grp_f[e, g, GF_RL], rc, grp_f[e, g, GF_CR], grp_f[e, g, GF_SR],
                            grp_i[e, g, GI_CORE], grp_i[e, g, GI_ASYM] != 0, RT[g], dRT[g])
            continue
        cut = grp_i[e, g, GI_CUT]
        alpha = grp_f[e, g, GF_ALPHA]
        if rc != last_rc or cut != last_cut or alpha != last_alpha:
            _cutoff_vec(nn, ld, rc, cut, alpha, fcv, dfcv)
            last_rc = rc
            last_cut = cut
            last_alpha = alpha
        rs = grp_f[e, g, GF_RS]
        eta = grp_f[e, g, GF_ETA]
        for a in range(nn):
            x = ld[a] - rs
            gg = _exp(-eta * x * x)
            RT[g, a] = gg * fcv[a]
            dRT[g, a] = gg * (dfcv[a] - 2.0 * eta * x * fcv[a])


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _flush(mode, n, ta, tb, loc, lv, linv, RT, dRT, G, ii, D, pbase, lpg,
           q0, nq, k0, nk, flag, q_i, q_f, kind_i, kind_f, ent_s, ent_k,
           cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M):
    """Process a list of n triplets (neighbour pairs ta[t] < tb[t] of one block).

    Every step is a loop over the list (long, branch-free: vectorised): cos theta, r_jk and the
    r_jk factors J of narrow groups, angular factors of the kinds, then
    mode 0/1: M[k, q] += sum_t A_k P_q with P_q = c_q R_q(a) R_q(b) J_q;
    mode 2: with W = M (c_q dE/dG summed over the SFs of (k, q)), WA_q = sum_k W_kq A_k and
    WdA_q = sum_k W_kq dA_k, the four derivatives of sum_s w_s G_s w.r.t. cos, r_ij, r_ik, r_jk
    of every triplet, turned into gradients on the two pairs.
    """
    narrow = (flag & 1) != 0
    narrow_only = (flag & 2) != 0
    compact_kinds = (flag & 4) != 0
    for t in range(n):
        a = ta[t]
        b = tb[t]
        cosv[t] = (lv[a, 0] * lv[b, 0] + lv[a, 1] * lv[b, 1] + lv[a, 2] * lv[b, 2]) * linv[a] * linv[b]
    if narrow:
        if narrow_only:  # the list step stored r_jk^2
            for t in range(n):
                djkv[t] = math.sqrt(djkv[t])
        else:
            for t in range(n):
                a = ta[t]
                b = tb[t]
                wx = lv[b, 0] - lv[a, 0]
                wy = lv[b, 1] - lv[a, 1]
                wz = lv[b, 2] - lv[a, 2]
                djkv[t] = math.sqrt(wx * wx + wy * wy + wz * wz)
        # r_jk factors of the narrow groups (consecutive groups sharing a cutoff share f_c)
        for q in range(nq):
            qq = q0 + q
            if q_i[qq, QI_NARROW] == 0:
                continue
            rc = q_f[qq, QF_RC]
            if q_i[qq, QI_COMPACT] != 0:
                rl = q_f[qq, QF_RL]
                cr = q_f[qq, QF_CR]
                sr = q_f[qq, QF_SR]
                core = q_i[qq, QI_CORE]
                asym = q_i[qq, QI_ASYM] != 0
                for t in range(n):
                    djk = djkv[t]
                    if djk <= rl or djk >= rc:
                        Jm[q, t] = 0.0
                        dJm[q, t] = 0.0
                    else:
                        Jm[q, t], dJm[q, t] = _compact(djk, cr, sr, core, asym)
            else:
                if q_i[qq, QI_NEWFC] != 0:
                    _cutoff_vec(n, djkv, rc, q_i[qq, QI_CUT], q_f[qq, QF_ALPHA], fcv, dfcv)
                _gaussian_rjk(n, djkv, q_f[qq, QF_RS], q_f[qq, QF_ETA], rc, fcv, dfcv, Jm[q], dJm[q])
    # angular factors per kind
    if compact_kinds:
        for t in range(n):
            c = cosv[t]
            # collinear (|cos| >= 1): compact kinds give nothing (n2p2 skips the triplet)
            inside = -1.0 < c < 1.0
            cc = c if inside else 0.0
            theta[t] = _acos(cc) if inside else 1e300
            isin[t] = 1.0 / math.sqrt(1.0 - cc * cc) if inside else 0.0
    for k in range(nk):
        kk = k0 + k
        if kind_i[kk, KI_COMPACT] == 0:
            _gaussian_kind(n, cosv, kind_f[kk, KF_LAMBDA], kind_f[kk, KF_ZETA], kind_f[kk, KF_PREF],
                           kind_i[kk, KI_ZINT], Am[k], dAm[k])
        else:
            _compact_kind(n, theta, isin, kind_f[kk, KF_CA], kind_f[kk, KF_SA], kind_i[kk, KI_CORE],
                          Am[k], dAm[k])
    if mode != 2:
        # P_q = c_q R_q(a) R_q(b) J_q and M[k, q] += sum_t A_k P_q
        for q in range(nq):
            qq = q0 + q
            g = q_i[qq, QI_G]
            c = q_f[qq, QF_C]
            if q_i[qq, QI_NARROW] != 0:
                for t in range(n):
                    P[q, t] = c * RT[g, ta[t]] * RT[g, tb[t]] * Jm[q, t]
            else:
                for t in range(n):
                    P[q, t] = c * RT[g, ta[t]] * RT[g, tb[t]]
            for k in range(nk):
                acc = 0.0
                for t in range(n):
                    acc += Am[k, t] * P[q, t]
                M[k, q] += acc
    if mode == 2:
        for t in range(n):
            sv[0, t] = 0.0
            sv[1, t] = 0.0
            sv[2, t] = 0.0
            sv[3, t] = 0.0
        for q in range(nq):
            for t in range(n):
                WA[q, t] = 0.0
                WdA[q, t] = 0.0
            for k in range(nk):
                m = M[k, q]
                if m != 0.0:
                    for t in range(n):
                        WA[q, t] += m * Am[k, t]
                        WdA[q, t] += m * dAm[k, t]
            qq = q0 + q
            g = q_i[qq, QI_G]
            if q_i[qq, QI_NARROW] != 0:
                for t in range(n):
                    ra = RT[g, ta[t]]
                    rb = RT[g, tb[t]]
                    J = Jm[q, t]
                    wa = WA[q, t]
                    rbj = rb * J
                    sv[0, t] += ra * rbj * WdA[q, t]            # d/dcos
                    sv[1, t] += dRT[g, ta[t]] * rbj * wa        # d/dr_ij
                    sv[2, t] += ra * dRT[g, tb[t]] * J * wa     # d/dr_ik
                    sv[3, t] += ra * rb * dJm[q, t] * wa        # d/dr_jk
            else:
                for t in range(n):
                    ra = RT[g, ta[t]]
                    rb = RT[g, tb[t]]
                    wa = WA[q, t]
                    sv[0, t] += ra * rb * WdA[q, t]
                    sv[1, t] += dRT[g, ta[t]] * rb * wa
                    sv[2, t] += ra * dRT[g, tb[t]] * wa
        for t in range(n):
            a = ta[t]
            b = tb[t]
            ia = linv[a]
            ib = linv[b]
            vax = lv[a, 0]
            vay = lv[a, 1]
            vaz = lv[a, 2]
            vbx = lv[b, 0]
            vby = lv[b, 1]
            vbz = lv[b, 2]
            c = cosv[t]
            s_cos = sv[0, t]
            ga = (sv[1, t] - s_cos * c * ia) * ia
            gb = (sv[2, t] - s_cos * c * ib) * ib
            ca = s_cos * ia * ib
            cj = sv[3, t] / djkv[t] if narrow else 0.0
            wx = vbx - vax
            wy = vby - vay
            wz = vbz - vaz
            lpg[a, 0] += ga * vax + ca * vbx - cj * wx
            lpg[a, 1] += ga * vay + ca * vby - cj * wy
            lpg[a, 2] += ga * vaz + ca * vbz - cj * wz
            lpg[b, 0] += gb * vbx + ca * vax + cj * wx
            lpg[b, 1] += gb * vby + ca * vay + cj * wy
            lpg[b, 2] += gb * vbz + ca * vaz + cj * wz
    elif mode == 1:
        for t in range(n):
            a = ta[t]
            b = tb[t]
            pa = loc[a] - pbase
            pb = loc[b] - pbase
            ia = linv[a]
            ib = linv[b]
            vax = lv[a, 0]
            vay = lv[a, 1]
            vaz = lv[a, 2]
            vbx = lv[b, 0]
            vby = lv[b, 1]
            vbz = lv[b, 2]
            wx = vbx - vax
            wy = vby - vay
            wz = vbz - vaz
            c = cosv[t]
            idjk = 1.0 / djkv[t] if narrow else 0.0
            for q in range(nq):
                qq = q0 + q
                g = q_i[qq, QI_G]
                cq = q_f[qq, QF_C]
                ra = RT[g, a]
                rb = RT[g, b]
                J = 1.0
                dJ = 0.0
                if q_i[qq, QI_NARROW] != 0:
                    J = Jm[q, t]
                    dJ = dJm[q, t]
                ta_ = cq * dRT[g, a] * rb * J
                tb_ = cq * ra * dRT[g, b] * J
                tj_ = cq * ra * rb * dJ * idjk
                pq = P[q, t]
                if ta_ == 0.0 and tb_ == 0.0 and tj_ == 0.0 and pq == 0.0:
                    continue
                for en in range(q_i[qq, QI_E0], q_i[qq, QI_E1]):
                    s = ent_s[en]
                    k = ent_k[en]
                    ak = Am[k, t]
                    t_cos = dAm[k, t] * pq
                    ga = (ak * ta_ - t_cos * c * ia) * ia
                    gb = (ak * tb_ - t_cos * c * ib) * ib
                    ca = t_cos * ia * ib
                    cj = ak * tj_
                    D[pa, s, 0] += ga * vax + ca * vbx - cj * wx
                    D[pa, s, 1] += ga * vay + ca * vby - cj * wy
                    D[pa, s, 2] += ga * vaz + ca * vbz - cj * wz
                    D[pb, s, 0] += gb * vbx + ca * vax + cj * wx
                    D[pb, s, 1] += gb * vby + ca * vay + cj * wy
                    D[pb, s, 2] += gb * vbz + ca * vaz + cj * wz


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _angular_block(mode, ii, ea, eb, est, loc, lv, linv, RT, dRT, w, G, D, pbase, lpg,
                   q0, nq, k0, nk, e0, ne_, flag, rcn, q_i, q_f, kind_i, kind_f, ent_s, ent_q, ent_k,
                   alive, ta, tb, cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M):
    """Angular SFs of one atom for one block of neighbour elements (ea <= eb).

    The triplets (a, b) (a of element ea, b of element eb, a < b) that can contribute are listed
    (both neighbours inside the support of some group; for purely narrow blocks also r_jk below
    the largest cutoff) and processed in chunks of the list capacity by ``_flush``.
    """
    narrow_only = (flag & 2) != 0
    rcn2 = rcn * rcn
    cap = ta.shape[0]
    for a in range(est[ea], est[ea + 1]):
        al = False
        for q in range(nq):
            g = q_i[q0 + q, QI_G]
            if RT[g, a] != 0.0 or dRT[g, a] != 0.0:
                al = True
        alive[a] = al
    if eb != ea:
        for a in range(est[eb], est[eb + 1]):
            al = False
            for q in range(nq):
                g = q_i[q0 + q, QI_G]
                if RT[g, a] != 0.0 or dRT[g, a] != 0.0:
                    al = True
            alive[a] = al
    for k in range(nk):
        for q in range(nq):
            M[k, q] = 0.0
    if mode == 2:
        # W[k, q] = sum over the SFs s of (q, k) of c_q dE/dG_s, kept in M
        for en in range(e0, e0 + ne_):
            q = ent_q[en]
            M[ent_k[en], q] += w[ent_s[en]] * q_f[q0 + q, QF_C]
    n = 0
    bend = est[eb + 1]
    for a in range(est[ea], est[ea + 1]):
        if not alive[a]:
            continue
        vax = lv[a, 0]
        vay = lv[a, 1]
        vaz = lv[a, 2]
        b0 = a + 1 if ea == eb else est[eb]
        while b0 < bend:
            if n == cap:
                _flush(mode, np.int64(n), ta, tb, loc, lv, linv, RT, dRT, G, ii, D, pbase, lpg,
                       q0, nq, k0, nk, flag, q_i, q_f, kind_i, kind_f, ent_s, ent_k,
                       cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M)
                n = 0
            b1 = min(bend, b0 + cap - n)  # candidates that fit in the list
            if narrow_only:
                for b in range(b0, b1):
                    wx = lv[b, 0] - vax
                    wy = lv[b, 1] - vay
                    wz = lv[b, 2] - vaz
                    d2 = wx * wx + wy * wy + wz * wz
                    ta[n] = a
                    tb[n] = b
                    djkv[n] = d2
                    n += 1 if (alive[b] and d2 < rcn2) else 0
            else:
                for b in range(b0, b1):
                    ta[n] = a
                    tb[n] = b
                    n += 1 if alive[b] else 0
            b0 = b1
    if n > 0:
        _flush(mode, np.int64(n), ta, tb, loc, lv, linv, RT, dRT, G, ii, D, pbase, lpg,
               q0, nq, k0, nk, flag, q_i, q_f, kind_i, kind_f, ent_s, ent_k,
               cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M)
    if mode != 2:
        for en in range(e0, e0 + ne_):
            G[ii, ent_s[en]] += M[ent_k[en], ent_q[en]]


#: capacity of the triplet lists processed at once (their work arrays should stay in cache)
TRIPLET_CHUNK = 512


@numba.njit(cache=True, error_model="numpy", parallel=True)
def symmetry_functions(species, pair_start, pair_j, pair_vec, pair_dist, atom_begin, atom_end,
                       tables, mode, dEdG, n_slots):
    """Compute G (modes 0, 1) and derivatives (mode 1: D; mode 2: per-pair gradients only).

    Parameters
    ----------
    species : (n_atoms,) int64 element index (atomic-number order).
    pair_start : (n_atoms + 1,) int64 CSR offsets into the pair arrays.
    pair_j : (n_pairs,) int64; pair_vec : (n_pairs, 3); pair_dist : (n_pairs,).
    atom_begin, atom_end : the central atoms treated, a range (chunks of a structure).
    tables : the tuple ``SymmetryFunctionSet.kernel_tables``.
    mode : 0 values only, 1 values and D, 2 pair gradients only (needs dEdG; G is not computed).
    dEdG : (atom_end - atom_begin, max_sf) derivative of the energy w.r.t. raw G (mode 2);
        any (1, max_sf) array otherwise.
    n_slots : number of per-thread work spaces, >= numba's thread count
        (``numba.config.NUMBA_NUM_THREADS``).

    Returns
    -------
    G : (n, max_sf) with n = atom_end - atom_begin (zeros in mode 2);
    D : (m, max_sf, 3) or (0, max_sf, 3), m = pair_start[atom_end] - pair_start[atom_begin]
    (row r is pair pair_start[atom_begin] + r); pair_grad : (m, 3) or (0, 3).
    """
    (n_sf, iparams, fparams, rad_idx, rad_coef, rad_cnt,
     grp_n, grp_i, grp_f,
     blk_id, blk_q0, blk_nq, blk_k0, blk_nk, blk_e0, blk_ne, blk_flag, blk_rcn,
     q_i, q_f, kind_i, kind_f, ent_s, ent_q, ent_k) = tables
    n_el = rad_cnt.shape[0]
    max_sf = fparams.shape[1]
    n_at = atom_end - atom_begin
    pbase = pair_start[atom_begin]
    m_pairs = pair_start[atom_end] - pbase
    G = np.zeros((n_at if mode != 2 else 0, max_sf))
    D = np.empty((m_pairs if mode == 1 else 0, max_sf, 3))
    PG = np.empty((m_pairs if mode == 2 else 0, 3))
    mq = 1
    mk = 1
    for b_ in range(blk_nq.shape[0]):
        mq = max(mq, blk_nq[b_])
        mk = max(mk, blk_nk[b_])
    mg = max(1, grp_i.shape[1])
    nnmax = 1
    for i in range(atom_begin, atom_end):
        nnmax = max(nnmax, pair_start[i + 1] - pair_start[i])
    cap = TRIPLET_CHUNK
    # per-thread work spaces (allocated once, not per atom)
    W_est = np.empty((n_slots, n_el + 1), dtype=np.int64)
    W_fill = np.empty((n_slots, n_el + 1), dtype=np.int64)
    W_loc = np.empty((n_slots, nnmax), dtype=np.int64)
    W_lv = np.empty((n_slots, nnmax, 3))
    W_ld = np.empty((n_slots, nnmax))
    W_linv = np.empty((n_slots, nnmax))
    W_lpg = np.empty((n_slots, nnmax, 3))
    W_RT = np.empty((n_slots, mg, nnmax))
    W_dRT = np.empty((n_slots, mg, nnmax))
    W_alive = np.empty((n_slots, nnmax), dtype=np.bool_)
    W_ta = np.empty((n_slots, cap), dtype=np.int64)
    W_tb = np.empty((n_slots, cap), dtype=np.int64)
    W_t1 = np.empty((n_slots, 6, max(cap, nnmax)))  # cos, r_jk, theta, 1/sin, f_c, df_c (also per neighbour)
    W_Jm = np.empty((n_slots, mq, cap))
    W_dJm = np.empty((n_slots, mq, cap))
    W_Am = np.empty((n_slots, mk, cap))
    W_dAm = np.empty((n_slots, mk, cap))
    W_P = np.empty((n_slots, mq, cap if mode != 2 else 1))
    W_WA = np.empty((n_slots, mq, cap if mode == 2 else 1))
    W_WdA = np.empty((n_slots, mq, cap if mode == 2 else 1))
    W_sv = np.empty((n_slots, 4, cap if mode == 2 else 1))
    W_M = np.empty((n_slots, mk, mq))
    for ii_ in prange(n_at):
        ii = np.int64(ii_)  # one integer type for the callees (one compilation each)
        tid = numba.get_thread_id()
        i = atom_begin + ii
        e = species[i]
        p0 = pair_start[i]
        p1 = pair_start[i + 1]
        nn = p1 - p0
        est = W_est[tid]
        loc = W_loc[tid]
        lv = W_lv[tid]
        ld = W_ld[tid]
        linv = W_linv[tid]
        lpg = W_lpg[tid]
        # ------------------------------------------ local copy, sorted by neighbour element
        for k in range(n_el + 1):
            est[k] = 0
        for p in range(p0, p1):
            est[species[pair_j[p]] + 1] += 1
        for k in range(n_el):
            est[k + 1] += est[k]
        fill = W_fill[tid]
        for k in range(n_el):
            fill[k] = est[k]
        for p in range(p0, p1):
            ej = species[pair_j[p]]
            loc[fill[ej]] = p
            fill[ej] += 1
        for a in range(nn):
            p = loc[a]
            ld[a] = pair_dist[p]
            linv[a] = 1.0 / pair_dist[p]
            lv[a, 0] = pair_vec[p, 0]
            lv[a, 1] = pair_vec[p, 1]
            lv[a, 2] = pair_vec[p, 2]
        if mode == 1:
            for p in range(p0, p1):
                for s in range(max_sf):
                    D[p - pbase, s, 0] = 0.0
                    D[p - pbase, s, 1] = 0.0
                    D[p - pbase, s, 2] = 0.0
        if mode == 2:
            for a in range(nn):
                lpg[a, 0] = 0.0
                lpg[a, 1] = 0.0
                lpg[a, 2] = 0.0
        w = dEdG[0]
        if mode == 2:
            w = dEdG[i - atom_begin]
        t1 = W_t1[tid]
        _radial_sfs(mode, ii, e, est, loc, lv, ld, linv, iparams, fparams, rad_idx, rad_coef, rad_cnt,
                    w, G, D, pbase, lpg, t1[0], t1[1], t1[2], t1[4], t1[5])
        if grp_n[e] > 0 and nn >= 2:
            RT = W_RT[tid]
            dRT = W_dRT[tid]
            _group_factors(e, nn, ld, grp_n, grp_i, grp_f, RT, dRT, t1[4], t1[5])
            for ea in range(n_el):
                for eb in range(ea, n_el):
                    blk = blk_id[e, ea, eb]
                    if blk < 0:
                        continue
                    _angular_block(mode, ii, ea, eb, est, loc, lv, linv, RT, dRT, w, G, D, pbase, lpg,
                                   blk_q0[blk], blk_nq[blk], blk_k0[blk], blk_nk[blk], blk_e0[blk],
                                   blk_ne[blk], blk_flag[blk], blk_rcn[blk],
                                   q_i, q_f, kind_i, kind_f, ent_s, ent_q, ent_k,
                                   W_alive[tid], W_ta[tid], W_tb[tid], t1[0], t1[1], t1[2], t1[3], t1[4], t1[5],
                                   W_Jm[tid], W_dJm[tid], W_Am[tid], W_dAm[tid], W_P[tid], W_WA[tid],
                                   W_WdA[tid], W_sv[tid], W_M[tid])
        if mode == 2:
            for a in range(nn):
                pp = loc[a] - pbase
                PG[pp, 0] = lpg[a, 0]
                PG[pp, 1] = lpg[a, 1]
                PG[pp, 2] = lpg[a, 2]
    return G, D, PG


@numba.njit(cache=True, error_model="numpy", parallel=True)
def contract_pair_gradients(pair_start, atom_begin, atom_end, D, dEdG):
    """pair_grad[p] = sum_s dEdG[i, s] D[p, s, :] for the pairs of atoms [atom_begin, atom_end).

    D rows are relative to pair_start[atom_begin]; dEdG rows to atom_begin."""
    pbase = pair_start[atom_begin]
    m = pair_start[atom_end] - pbase
    out = np.empty((m, 3))
    n_sf = D.shape[1]
    for ii in prange(atom_end - atom_begin):
        i = atom_begin + ii
        for p in range(pair_start[i] - pbase, pair_start[i + 1] - pbase):
            x = 0.0
            y = 0.0
            z = 0.0
            for s in range(n_sf):
                wgt = dEdG[ii, s]
                x += wgt * D[p, s, 0]
                y += wgt * D[p, s, 1]
                z += wgt * D[p, s, 2]
            out[p, 0] = x
            out[p, 1] = y
            out[p, 2] = z
    return out


@numba.njit(cache=True, error_model="numpy")
def forces_from_pair_gradients(n_atoms, pair_i, pair_j, pair_vec, pair_grad):
    """F_i = -dE/dr_i from per-pair gradients g_p = dE_i/dr_j (pair p = (i, j)).

    Returns forces (n_atoms, 3) and the virial W = -sum_p r_p (x) g_p (3, 3), so that the
    stress is -W / V (energy/length^3) with the sign convention of ASE.
    """
    F = np.zeros((n_atoms, 3))
    W = np.zeros((3, 3))
    for p in range(pair_j.shape[0]):
        i = pair_i[p]
        j = pair_j[p]
        for c in range(3):
            F[j, c] -= pair_grad[p, c]
            F[i, c] += pair_grad[p, c]
            for c2 in range(3):
                W[c, c2] -= pair_vec[p, c] * pair_grad[p, c2]
    return F, W
