"""Compiled (numba) kernels: symmetry functions and their derivatives on the CPU.

Conventions
-----------
* Pairs come from a full neighbour list sorted by central atom (CSR: ``pair_start``);
  ``pair_vec[p] = r_j - r_i + S @ cell`` (length unit of the potential), ``pair_dist[p]`` its norm.
* ``G[i, s]``: raw (unscaled) value of symmetry function s of atom i (element-local order).
* ``D[p, s, :] = dG[i, s] / dr_j`` for pair p = (i, j). Translation invariance gives
  ``dG[i, s]/dr_i = -sum_p D[p, s, :]``; forces and the virial follow from D.
* Mode 2 never stores D: it contracts with ``dE/dG`` on the fly into per-pair gradients
  ``pair_grad[p] = sum_s dE/dG[i, s] D[p, s, :]`` (memory O(pairs), not O(pairs x SFs)).

Per-SF parameter table (one row per element, padded to the largest SF count), see
``SymmetryFunctionSet.kernel_tables``. Type codes follow n2p2.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from hdnnp.descriptors.cutoff import cutoff_value_derivative

# columns of the float parameter table
P_ETA, P_RS, P_RC, P_LAMBDA, P_ZETA, P_PREF, P_RL, P_CR, P_SR, P_CA, P_SA, P_AL, P_AR, P_ALPHA = range(14)
N_FPARAM = 14
# columns of the int parameter table
I_TYPE, I_E1, I_E2, I_ZINT, I_CORE, I_ASYM, I_CUT = range(7)
N_IPARAM = 7


@numba.njit(cache=True, inline="always")
def _ipow(x, n):
    """x**n for integer n >= 0 by squaring."""
    result = 1.0
    while n > 0:
        if n & 1:
            result *= x
        n >>= 1
        x *= x
    return result


@numba.njit(cache=True, inline="always")
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


@numba.njit(cache=True, inline="always")
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


@numba.njit(cache=True, inline="always")
def _is_angular(t):
    return t == 3 or t == 9 or t == 13 or t == 21 or t == 22 or t == 24 or t == 25


@numba.njit(cache=True, inline="always")
def _radial_factor(d, ip, fp):
    """Radial factor of one SF at distance d: (in_range, value, d value / d d)."""
    t = ip[I_TYPE]
    rc = fp[P_RC]
    if t >= 20:  # compact: strict support rl < d < rc, no cutoff function
        if d <= fp[P_RL] or d >= rc:
            return False, 0.0, 0.0
        f, df = _compact(d, fp[P_CR], fp[P_SR], ip[I_CORE], ip[I_ASYM] != 0)
        return True, f, df
    if d >= rc:
        return False, 0.0, 0.0
    fc, dfc = cutoff_value_derivative(d, rc, ip[I_CUT], fp[P_ALPHA])
    x = d - fp[P_RS]
    g = math.exp(-fp[P_ETA] * x * x)
    return True, g * fc, g * (dfc - 2.0 * fp[P_ETA] * x * fc)


@numba.njit(cache=True, parallel=True, fastmath=False)
def symmetry_functions(
    species, znum, pair_start, pair_j, pair_vec, pair_dist,
    n_sf, iparams, fparams, rad_idx, rad_cnt, ang_idx, ang_cnt,
    mode, dEdG,
):
    """Compute G (always) and derivatives (mode 1: D; mode 2: per-pair gradients).

    Parameters
    ----------
    species : (n_atoms,) int64 element index (atomic-number order).
    znum : (n_atoms,) float64 atomic numbers (weights of types 12, 13, 23-25).
    pair_start : (n_atoms + 1,) int64 CSR offsets into the pair arrays.
    pair_j : (n_pairs,) int64; pair_vec : (n_pairs, 3); pair_dist : (n_pairs,).
    n_sf : (n_elements,) SF count per element.
    iparams, fparams : (n_elements, max_sf, N_IPARAM / N_FPARAM) parameter tables.
    rad_idx, rad_cnt : radial SFs of central element e seen by a neighbour of element ej.
    ang_idx, ang_cnt : angular SFs of central element e for a neighbour pair (ej, ek).
    mode : 0 values only, 1 values and D, 2 values and pair gradients (needs dEdG).
    dEdG : (n_atoms, max_sf) derivative of the energy w.r.t. raw G (mode 2 only).

    Returns
    -------
    G : (n_atoms, max_sf); D : (n_pairs, max_sf, 3) or (0, 0, 3); pair_grad : (n_pairs, 3) or (0, 3).
    """
    n_atoms = species.shape[0]
    n_pairs = pair_j.shape[0]
    max_sf = fparams.shape[1]
    G = np.zeros((n_atoms, max_sf))
    D = np.zeros((n_pairs if mode == 1 else 0, max_sf, 3))
    PG = np.zeros((n_pairs if mode == 2 else 0, 3))
    for i in prange(n_atoms):
        e = species[i]
        p0 = pair_start[i]
        p1 = pair_start[i + 1]
        nn = p1 - p0
        nsf = n_sf[e]
        # ---------------------------------------------------------- radial
        for p in range(p0, p1):
            j = pair_j[p]
            ej = species[j]
            d = pair_dist[p]
            ux = pair_vec[p, 0] / d
            uy = pair_vec[p, 1] / d
            uz = pair_vec[p, 2] / d
            acc = 0.0
            for q in range(rad_cnt[e, ej]):
                s = rad_idx[e, ej, q]
                ip = iparams[e, s]
                ok, val, dval = _radial_factor(d, ip, fparams[e, s])
                if not ok:
                    continue
                t = ip[I_TYPE]
                if t == 12 or t == 23:
                    val *= znum[j]
                    dval *= znum[j]
                G[i, s] += val
                if mode == 1:
                    D[p, s, 0] += dval * ux
                    D[p, s, 1] += dval * uy
                    D[p, s, 2] += dval * uz
                elif mode == 2:
                    acc += dEdG[i, s] * dval
            if mode == 2:
                PG[p, 0] += acc * ux
                PG[p, 1] += acc * uy
                PG[p, 2] += acc * uz
        # ---------------------------------------------------------- angular
        has_ang = False
        for ea in range(ang_cnt.shape[1]):
            for eb in range(ang_cnt.shape[2]):
                if ang_cnt[e, ea, eb] > 0:
                    has_ang = True
        if not has_ang or nn < 2:
            continue
        # radial factors of every angular SF for every neighbour, computed once per pair
        rin = np.zeros((nn, nsf), dtype=np.bool_)
        rval = np.zeros((nn, nsf))
        rder = np.zeros((nn, nsf))
        for a in range(nn):
            d = pair_dist[p0 + a]
            for s in range(nsf):
                if _is_angular(iparams[e, s, I_TYPE]):
                    ok, v, dv = _radial_factor(d, iparams[e, s], fparams[e, s])
                    rin[a, s] = ok
                    rval[a, s] = v
                    rder[a, s] = dv
        for a in range(nn - 1):
            pa = p0 + a
            ja = pair_j[pa]
            ea = species[ja]
            da = pair_dist[pa]
            vax = pair_vec[pa, 0]
            vay = pair_vec[pa, 1]
            vaz = pair_vec[pa, 2]
            for b in range(a + 1, nn):
                pb = p0 + b
                jb = pair_j[pb]
                eb = species[jb]
                cnt = ang_cnt[e, ea, eb]
                if cnt == 0:
                    continue
                db = pair_dist[pb]
                vbx = pair_vec[pb, 0]
                vby = pair_vec[pb, 1]
                vbz = pair_vec[pb, 2]
                dot = vax * vbx + vay * vby + vaz * vbz
                cos = dot / da / db
                wx = vbx - vax
                wy = vby - vay
                wz = vbz - vaz
                djk = math.sqrt(wx * wx + wy * wy + wz * wz)
                zz = znum[ja] * znum[jb]
                theta = -1.0
                s_da = 0.0
                s_db = 0.0
                s_djk = 0.0
                s_cos = 0.0
                for q in range(cnt):
                    s = ang_idx[e, ea, eb, q]
                    if not (rin[a, s] and rin[b, s]):
                        continue
                    ip = iparams[e, s]
                    fp = fparams[e, s]
                    t = ip[I_TYPE]
                    # angular part and d/dcos
                    if t <= 13:
                        plam = 1.0 + fp[P_LAMBDA] * cos
                        if plam <= 0.0:
                            continue
                        zi = ip[I_ZINT]
                        if zi >= 0:
                            pm1 = _ipow(plam, zi - 1)
                        else:
                            pm1 = plam ** (fp[P_ZETA] - 1.0)
                        ang = fp[P_PREF] * pm1 * plam
                        dang = fp[P_PREF] * fp[P_ZETA] * fp[P_LAMBDA] * pm1
                    else:
                        if cos <= -1.0 or cos >= 1.0:
                            continue
                        if theta < 0.0:
                            theta = math.acos(cos)
                        if theta <= fp[P_AL] or theta >= fp[P_AR]:
                            continue
                        ang, dth = _compact(theta, fp[P_CA], fp[P_SA], ip[I_CORE], False)
                        dang = -dth / math.sqrt(1.0 - cos * cos)
                    if t == 13 or t == 24 or t == 25:
                        ang *= zz
                        dang *= zz
                    ra = rval[a, s]
                    rb = rval[b, s]
                    if t == 3 or t == 13 or t == 21 or t == 24:  # narrow: r_jk factor
                        ok, rj, drj = _radial_factor(djk, ip, fp)
                        if not ok:
                            continue
                    else:
                        rj = 1.0
                        drj = 0.0
                    rab = ra * rb
                    G[i, s] += ang * rab * rj
                    if mode == 0:
                        continue
                    t_da = ang * rder[a, s] * rb * rj
                    t_db = ang * ra * rder[b, s] * rj
                    t_djk = ang * rab * drj
                    t_cos = dang * rab * rj
                    if mode == 1:
                        ga = (t_da - t_cos * cos / da) / da
                        gb = (t_db - t_cos * cos / db) / db
                        ca = t_cos / (da * db)
                        cj = t_djk / djk
                        D[pa, s, 0] += ga * vax + ca * vbx - cj * wx
                        D[pa, s, 1] += ga * vay + ca * vby - cj * wy
                        D[pa, s, 2] += ga * vaz + ca * vbz - cj * wz
                        D[pb, s, 0] += gb * vbx + ca * vax + cj * wx
                        D[pb, s, 1] += gb * vby + ca * vay + cj * wy
                        D[pb, s, 2] += gb * vbz + ca * vaz + cj * wz
                    else:
                        w = dEdG[i, s]
                        s_da += w * t_da
                        s_db += w * t_db
                        s_djk += w * t_djk
                        s_cos += w * t_cos
                if mode == 2:
                    ga = (s_da - s_cos * cos / da) / da
                    gb = (s_db - s_cos * cos / db) / db
                    ca = s_cos / (da * db)
                    cj = s_djk / djk if djk > 0.0 else 0.0
                    PG[pa, 0] += ga * vax + ca * vbx - cj * wx
                    PG[pa, 1] += ga * vay + ca * vby - cj * wy
                    PG[pa, 2] += ga * vaz + ca * vbz - cj * wz
                    PG[pb, 0] += gb * vbx + ca * vax + cj * wx
                    PG[pb, 1] += gb * vby + ca * vay + cj * wy
                    PG[pb, 2] += gb * vbz + ca * vaz + cj * wz
    return G, D, PG


@numba.njit(cache=True)
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
